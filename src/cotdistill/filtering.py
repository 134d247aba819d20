"""Keep teacher CoTs whose final answer is right; count every drop by reason.

Optionally also drop CoTs whose arithmetic is false (`verify_equations`, checked with the
calculator's safe parser) or whose intermediate steps are wrong (`verify_steps`, with the
dataset's step checker from steps.py).
"""

from __future__ import annotations

import re
from collections import Counter

from typing import Optional

from .answers import answer_sentence, extract, matches, reasoning_before_answer
from .calculator import false_equations
from .steps import StepChecker

DROP_REASONS = ("empty", "truncated", "no_answer", "wrong_answer", "false_equation", "wrong_step", "over_limit")


def make_target(cot: str, gold: str) -> str:
    """The CoT up to its final-answer marker, closed by the canonical answer sentence.

    Every `cot` target then ends with exactly "The answer is X." in the gold's spelling,
    which is what the shared extractor reads at evaluation.
    """
    body = reasoning_before_answer(cot)
    body = re.sub(r"\s+", " ", body).strip()
    return f"{body} {answer_sentence(gold)}".strip()


def classify(generation: dict, record: dict, mode: str, verify_equations: bool = False,
             step_checker: Optional[StepChecker] = None) -> str | None:
    """The drop reason for one generation, or None to keep it."""
    text = generation["text"].strip()
    if not text:
        return "empty"
    predicted = extract(text, record["answer_type"], mode, choices=record.get("choices"))
    if predicted is None:
        return "truncated" if generation.get("finish_reason") == "length" else "no_answer"
    if not matches(predicted, record["answer"], record["answer_type"]):
        return "wrong_answer"
    if verify_equations and false_equations(text):
        return "false_equation"
    if step_checker is not None and step_checker(record["question"], text) is not None:
        return "wrong_step"
    return None


def filter_generations(
    records: list[dict], generations: list[dict], mode: str = "strict", max_per_question: int = 1,
    verify_equations: bool = False, step_checker: Optional[StepChecker] = None,
) -> tuple[list[dict], dict]:
    """Return (kept training rows, metrics). Generations are matched to records by id.

    `verify_equations` drops CoTs with a false equation; `step_checker` (a function of
    question and CoT, see steps.py) drops CoTs with a wrong intermediate step.
    """
    by_id = {r["id"]: r for r in records}
    drops: Counter[str] = Counter()
    kept_per_id: Counter[str] = Counter()
    kept: list[dict] = []
    unknown = [g["id"] for g in generations if g["id"] not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} generations have ids not in the train split, e.g. {unknown[:3]}")
    for gen in generations:
        rec = by_id[gen["id"]]
        reason = classify(gen, rec, mode, verify_equations, step_checker)
        if reason is None and kept_per_id[gen["id"]] >= max_per_question:
            reason = "over_limit"
        if reason is not None:
            drops[reason] += 1
            continue
        kept_per_id[gen["id"]] += 1
        kept.append(
            {
                "id": rec["id"],
                "sample": gen.get("sample", 0),
                "question": rec["question"],
                "answer": rec["answer"],
                "answer_type": rec["answer_type"],
                "target": make_target(gen["text"], rec["answer"]),
            }
        )
    n = len(generations)
    metrics = {
        "generations": n,
        "kept": len(kept),
        "dropped": sum(drops.values()),
        "keep_rate": round(len(kept) / n, 4) if n else 0.0,
        "questions": len(records),
        "questions_with_cot": len(kept_per_id),
        "dropped_by_reason": {r: drops.get(r, 0) for r in DROP_REASONS},
    }
    return kept, metrics
