"""Deterministic train / validation / test splits and the dataset-size ablation."""

from __future__ import annotations

import random


def _rng(name: str, seed: int, what: str) -> random.Random:
    return random.Random(f"{name}-{seed}-{what}")


def _sample(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    """`n` rows chosen by `rng`, kept in their source order."""
    if n >= len(rows):
        return list(rows)
    keep = sorted(rng.sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def make_splits(
    pools: dict[str, list[dict]], n_train: int, n_validation: int, n_test: int, seed: int, name: str
) -> dict[str, list[dict]]:
    """Splits from the source's own splits where it has them, else carved by the seed.

    `pools` holds rows by source split: "train", "validation", "test", and "all" for rows
    that come without a split (they join the train pool). Test is taken first (the source's
    test split, or carved from the pool), then validation (the source's, or carved from
    what remains of train), so validation never overlaps test and model selection never
    needs the test split. The n_* are upper limits here.
    """
    train_pool = list(pools.get("train", [])) + list(pools.get("all", []))
    if "test" in pools:
        test = _sample(pools["test"], n_test, _rng(name, seed, "test"))
    else:
        _rng(name, seed, "test-carve").shuffle(train_pool)
        test, train_pool = train_pool[:n_test], train_pool[n_test:]
    if "validation" in pools:
        validation = _sample(pools["validation"], n_validation, _rng(name, seed, "validation"))
    else:
        _rng(name, seed, "validation-carve").shuffle(train_pool)
        validation, train_pool = train_pool[:n_validation], train_pool[n_validation:]
    train = _sample(train_pool, n_train, _rng(name, seed, "train"))
    return {"train": train, "validation": validation, "test": test, "test_ood": []}


def subset_train(train: list[dict], max_train: int | None, data_fraction: float, seed: int) -> list[dict]:
    """The paper's dataset-size ablation: a fraction of train, or at most `max_train` rows.

    Rows are taken in the order of one seeded permutation, so for one seed a smaller
    subset is contained in every larger one (the curve compares nested training sets).
    The source order is kept in the output. With fraction 1 and no cap: train unchanged.
    """
    n = len(train)
    if data_fraction < 1.0:
        n = max(1, round(n * data_fraction))
    if max_train is not None:
        n = min(n, max_train)
    if n >= len(train):
        return train
    order = list(range(len(train)))
    random.Random(f"subset-{seed}").shuffle(order)
    keep = sorted(order[:n])
    return [train[i] for i in keep]
