"""Keep teacher CoTs whose final answer is right; count every drop by reason."""

from __future__ import annotations

import re
from collections import Counter

from .answers import _MARKER, answer_sentence, extract, normalise_gold

DROP_REASONS = ("empty", "truncated", "no_answer", "wrong_answer", "over_limit")


def make_target(cot: str, gold: str) -> str:
    """The CoT up to its final-answer marker, closed by the canonical answer sentence.

    Every `cot` target then ends with exactly "The answer is X." in the gold's spelling,
    which is what the shared extractor reads at evaluation.
    """
    matches = list(_MARKER.finditer(cot))
    body = cot[: matches[-1].start()] if matches else cot
    body = re.sub(r"\s+", " ", body).strip()
    return f"{body} {answer_sentence(gold)}".strip()


def classify(generation: dict, record: dict, mode: str) -> str | None:
    """The drop reason for one generation, or None to keep it."""
    text = generation["text"].strip()
    if not text:
        return "empty"
    predicted = extract(text, record["answer_type"], mode)
    if predicted is None:
        return "truncated" if generation.get("finish_reason") == "length" else "no_answer"
    if predicted != normalise_gold(record["answer"], record["answer_type"]):
        return "wrong_answer"
    return None


def filter_generations(
    records: list[dict], generations: list[dict], mode: str = "strict", max_per_question: int = 1
) -> tuple[list[dict], dict]:
    """Return (kept training rows, metrics). Generations are matched to records by id."""
    by_id = {r["id"]: r for r in records}
    drops: Counter[str] = Counter()
    kept_per_id: Counter[str] = Counter()
    kept: list[dict] = []
    unknown = [g["id"] for g in generations if g["id"] not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} generations have ids not in the train split, e.g. {unknown[:3]}")
    for gen in generations:
        rec = by_id[gen["id"]]
        reason = classify(gen, rec, mode)
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
