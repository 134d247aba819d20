"""Generated datasets: the paper's symbolic tasks (coin flip, last letters), multistep
arithmetic and gsm_symbolic, each drawn deterministically from the seed.

GENERATORS maps a dataset name to its generator, (params) -> {split: records}: what the
`synthetic` source of datasets/prepare.py runs.
"""

from __future__ import annotations

import random
from typing import Callable

from cotdistill.core.errors import DataError
from cotdistill.core.registry import Registry
from cotdistill.text.sentence import answer_sentence

from .arithmetic import multistep_example
from .gsm_symbolic import load_gsm_symbolic
from .names import NAMES

Generator = Callable[..., dict[str, list[dict]]]
GENERATORS: Registry[Generator] = Registry("generated dataset")


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
    rationale = " ".join(steps) + " " + answer_sentence(answer)
    return {"question": question, "answer": answer, "answer_type": "yes_no", "gold_rationale": rationale}


def _draw(
    rng: random.Random,
    n: int,
    lo: int,
    hi: int,
    seen: set[str],
    prefix: str,
    make: Callable[[random.Random, int], dict],
    what: str,
) -> list[dict]:
    """`n` examples of length lo..hi whose questions are not in `seen` (which grows)."""
    rows: list[dict] = []
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise DataError(
                f"{what}: cannot draw {n} distinct questions of length {lo}-{hi}; "
                "lower the split size or widen the range"
            )
        ex = make(rng, rng.randint(lo, hi))
        if ex["question"] in seen:
            continue
        seen.add(ex["question"])
        rows.append({"id": f"{prefix}-{len(rows):05d}", **ex})
    return rows


def generated_splits(
    params,
    name: str,
    prefix: str,
    make: Callable[[random.Random, int], dict],
    lengths: tuple[int, int],
    ood_lengths: tuple[int, int],
) -> dict[str, list[dict]]:
    """The four splits of a generated task, all questions distinct: the test splits are
    drawn first (test in `lengths`, test_ood in `ood_lengths`), then validation and train,
    so that train never repeats a test question. `make(rng, length)` draws one example."""
    cfg = params.prepare
    rng = random.Random(f"{name}-{params.seed}")
    seen: set[str] = set()

    def draw(n: int, bounds: tuple[int, int], split: str) -> list[dict]:
        return _draw(rng, n, *bounds, seen, f"{prefix}-{split}", make, name)

    test = draw(cfg.n_test, lengths, "test")
    ood = draw(cfg.n_test_ood, ood_lengths, "ood")
    val = draw(cfg.n_validation, lengths, "val")
    train = draw(cfg.n_train, lengths, "train")
    return {"train": train, "validation": val, "test": test, "test_ood": ood}


def load_coin_flip(params) -> dict[str, list[dict]]:
    o = params.prepare.coin_flip
    return generated_splits(
        params,
        "coin_flip",
        "coin",
        coin_flip_example,
        (o.min_people, o.max_people),
        (o.ood_min_people, o.ood_max_people),
    )


# ------------------------------------------------------------------ last-letter concatenation

# The project's own name list: common given names and surnames (first words, last word).
FIRST_NAMES = (
    "Maria James Elena Omar Sofia Liam Aisha Noah Chloe Mateo Hannah Ivan Grace Kenji Laura "
    "Pedro Nadia Oscar Julia Felix Amara Diego Irene Tobias Leila Victor Rosa Hugo Alice Marco "
    "Ingrid Samuel Olga Rafael Clara Jonas Priya Arthur Lucia Martin Yusuf Emma Carlos Wanda "
    "Daniel Fatima George Helen Lorenzo Beatriz"
).split()
LAST_NAMES = (
    "Garcia Smith Novak Khan Rossi Lopez Muller Tanaka Silva Ivanova Dubois Hansen Costa Kowalski "
    "Nguyen Brown Moreau Fischer Okafor Jensen Walsh Petrov Schmidt Romero Bauer Herrera Lindqvist "
    "Mendez Quinn Becker Ortiz Reyes Varga Wright Young Zhou Adams Baker Chavez Diaz Evans Ford "
    "Gomez Hughes Ito Kim Lewis Morgan Patel Ramos"
).split()


def load_name_lists(source: str, package_cache: str) -> tuple[list[str], list[str]]:
    """(given names, surnames): the project's lists, or the census lists of PyPI `names`."""
    if source == "project":
        return list(FIRST_NAMES), list(LAST_NAMES)
    from .packaged import NAMES_SDIST, fetch_archive, read_member

    archive = fetch_archive(NAMES_SDIST, package_cache)

    def top(member: str, n: int = 1000) -> list[str]:
        text = read_member(archive, member).decode("utf-8")
        # each line: NAME frequency cumulative-frequency rank
        return [line.split()[0].title() for line in text.splitlines()[:n] if line.strip()]

    return top("names/dist.female.first") + top("names/dist.male.first"), top("names/dist.all.last")


def last_letters_example(rng: random.Random, n_words: int, first: list[str], last: list[str]) -> dict:
    """One question: concatenate the last letters of an n-word name (Wei et al., 2022)."""
    words = [rng.choice(first) for _ in range(n_words - 1)] + [rng.choice(last)]
    answer = "".join(w[-1] for w in words).lower()
    name = " ".join(words)
    steps = [f'The last letter of "{w}" is "{w[-1].lower()}".' for w in words]
    rationale = " ".join(steps) + f' Concatenating them is "{answer}". ' + answer_sentence(answer)
    question = f'Take the last letters of each word in "{name}" and concatenate them.'
    return {"question": question, "answer": answer, "answer_type": "text", "gold_rationale": rationale}


def load_last_letters(params) -> dict[str, list[dict]]:
    o = params.prepare.last_letters
    first, last = load_name_lists(o.names, params.prepare.package_cache)
    return generated_splits(
        params,
        "last_letters",
        "letters",
        lambda r, k: last_letters_example(r, k, first, last),
        (o.min_words, o.max_words),
        (o.ood_min_words, o.ood_max_words),
    )


def load_multistep_arith(params) -> dict[str, list[dict]]:
    o = params.prepare.multistep_arith
    return generated_splits(
        params,
        "multistep_arith",
        "arith",
        lambda r, k: multistep_example(r, k, o.max_value, o.max_operand),
        (o.min_ops, o.max_ops),
        (o.ood_min_ops, o.ood_max_ops),
    )


GENERATORS.register("coin_flip", load_coin_flip)
GENERATORS.register("last_letters", load_last_letters)
GENERATORS.register("multistep_arith", load_multistep_arith)
GENERATORS.register("gsm_symbolic", load_gsm_symbolic)
