"""gsm_symbolic: GSM8K-style word problems from the templates of PyPI `reasoning-gym`.

reasoning-gym 0.1.25 instantiates GSM-Symbolic templates (Mirzadeh et al., 2024) with
random names and numbers, with the answer and a worked solution, so an arithmetic dataset
with gold rationales runs fully offline. Questions of one template share long n-grams, so
the in-distribution test split (same templates, new names and numbers) is a test of
generalising over numbers; `test_ood` draws from templates held out of every other split
(prepare.gsm_symbolic.ood_template_fraction), a test of new problem types.
"""

from __future__ import annotations

import random

from cotdistill.core.errors import DataError
from cotdistill.text.answers import parse_gold
from cotdistill.text.rationale import close_rationale

from .records import gsm_reasoning

# reasoning-gym appends an instruction meant for chat models; the record holds the problem.
_SUFFIX = " Give the result as your final answer. Do not include units."


def template_generators() -> dict[int, object]:
    """Template id -> generator(rng, difficulty), for the templates reasoning-gym marks ok."""
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import (
        GSMSymbolicDataset,
        GSMSymbolicDatasetConfig,
        tasks_ok,
    )

    gens = GSMSymbolicDataset(GSMSymbolicDatasetConfig(size=1, seed=0)).generators
    return {t: gens[t] for t in tasks_ok}


def split_templates(ids: list[int], ood_fraction: float, seed: int, want_ood: bool) -> tuple[list[int], list[int]]:
    """(in-distribution templates, held-out templates), a seeded partition."""
    order = sorted(ids)
    random.Random(f"gsm_symbolic-{seed}-templates").shuffle(order)
    n_ood = round(len(order) * ood_fraction) if want_ood else 0
    if want_ood and not 1 <= n_ood < len(order):
        raise DataError(
            f"gsm_symbolic: prepare.gsm_symbolic.ood_template_fraction {ood_fraction} holds out "
            f"{n_ood} of {len(order)} templates; it must hold out at least one and keep one"
        )
    return sorted(order[n_ood:]), sorted(order[:n_ood])


def load_gsm_symbolic(params) -> dict[str, list[dict]]:
    cfg = params.prepare
    gens = template_generators()
    in_dist, held_out = split_templates(
        list(gens), cfg.gsm_symbolic.ood_template_fraction, params.seed, cfg.n_test_ood > 0
    )
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split, n, templates, prefix in (
        ("test", cfg.n_test, in_dist, "gsmsym-test"),
        ("test_ood", cfg.n_test_ood, held_out, "gsmsym-ood"),
        ("validation", cfg.n_validation, in_dist, "gsmsym-val"),
        ("train", cfg.n_train, in_dist, "gsmsym-train"),
    ):
        rng = random.Random(f"gsm_symbolic-{params.seed}-{split}")
        rows: list[dict] = []
        attempts = 0
        while len(rows) < n:
            attempts += 1
            if attempts > 20 * n + 100:
                raise DataError(f"gsm_symbolic: cannot draw {n} distinct {split} questions")
            item = gens[rng.choice(templates)](rng, 1.0)
            question = item["question"].removesuffix(_SUFFIX).strip()
            if question in seen:  # a few duplicates per thousand
                continue
            answer = parse_gold(item["answer"], "number")
            if answer is None:
                raise DataError(f"gsm_symbolic: reasoning-gym gave an unreadable answer {item['answer']!r}")
            seen.add(question)
            rows.append(
                {
                    "id": f"{prefix}-{len(rows):05d}",
                    "question": question,
                    "answer": answer,
                    "answer_type": "number",
                    "gold_rationale": close_rationale(gsm_reasoning(item["metadata"]["answer_cot"]), answer),
                }
            )
        out[split] = rows
    return {name: out[name] for name in ("train", "validation", "test", "test_ood")}
