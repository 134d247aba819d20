"""Synthetic symbolic tasks of the paper, generated deterministically from the seed."""

from __future__ import annotations

import random

from . import DatasetSpec, register

# Short given names, chosen so that no name is a prefix of the others' sentences.
NAMES = (
    "Ana Bo Cy Dan Eva Fay Gus Hal Ivy Jo Kim Lee Mia Ned Oli Pam Raj Sam Tom Uma Val Wes "
    "Xia Yan Zoe Abe Bea Cal Dee Eli Flo Gil Hana Ian Jay Kai Liv Max Nia Otto Pia Quin Rex "
    "Sue Ted Una Vic Wyn Ada Ben Cleo Dev Emi Finn Gia Hugo Iris Jude Kara Leo Mara Nico "
    "Omar Paz Rosa Seth Tara Ugo Vera Will Yara Zack"
).split()


def coin_flip_example(rng: random.Random, n_people: int) -> dict:
    """One coin-flip question, its yes/no answer and a step-by-step gold rationale."""
    people = rng.sample(NAMES, n_people)
    flips = [rng.random() < 0.5 for _ in people]
    sentences = ["A coin is heads up."]
    steps = ["The coin starts heads up."]
    heads = True
    for person, flip in zip(people, flips):
        if flip:
            heads = not heads
            sentences.append(f"{person} flips the coin.")
            steps.append(f"{person} flips it, so it is {'heads' if heads else 'tails'} up.")
        else:
            sentences.append(f"{person} does not flip the coin.")
            steps.append(f"{person} does not flip it, so it stays {'heads' if heads else 'tails'} up.")
    answer = "yes" if heads else "no"
    question = " ".join(sentences) + " Is the coin still heads up?"
    rationale = " ".join(steps) + f" The answer is {answer}."
    return {"question": question, "answer": answer, "answer_type": "yes_no", "gold_rationale": rationale}


def _draw(rng: random.Random, n: int, lo: int, hi: int, seen: set[str], prefix: str) -> list[dict]:
    rows: list[dict] = []
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(
                f"coin_flip: cannot draw {n} distinct questions with {lo}-{hi} people; "
                "lower the split size or widen the range"
            )
        ex = coin_flip_example(rng, rng.randint(lo, hi))
        if ex["question"] in seen:
            continue
        seen.add(ex["question"])
        rows.append({"id": f"{prefix}-{len(rows):05d}", **ex})
    return rows


def load_coin_flip(params) -> dict[str, list[dict]]:
    """Test splits are drawn first, so train never repeats a test question."""
    cfg, opts = params.prepare, params.prepare.coin_flip
    rng = random.Random(f"coin_flip-{params.seed}")
    seen: set[str] = set()
    test = _draw(rng, cfg.n_test, opts.min_people, opts.max_people, seen, "coin-test")
    ood = _draw(rng, cfg.n_test_ood, opts.ood_min_people, opts.ood_max_people, seen, "coin-ood")
    val = _draw(rng, cfg.n_validation, opts.min_people, opts.max_people, seen, "coin-val")
    train = _draw(rng, cfg.n_train, opts.min_people, opts.max_people, seen, "coin-train")
    return {"train": train, "validation": val, "test": test, "test_ood": ood}


register(
    DatasetSpec(
        name="coin_flip",
        answer_type="yes_no",
        load=load_coin_flip,
        offline=True,
        description="Is the coin still heads up after N people flip it or not (Wei et al., 2022)",
    )
)
