"""What each student variant learns to write: one (question -> target) row per example.

- `answer`: the gold answer alone (the paper's baseline);
- `gold`: the dataset's own rationale, closed by "The answer is X.";
- `cot`: the teacher's kept CoTs (filtering.py), closed the same way;
- `multitask`: one row per kept CoT with both targets, the answer (`target`, the label
  task) and the CoT (`rationale`), for distilling step-by-step (multitask.py).

The filter stage writes every variant's rows to `data/filtered/<variant>/`, so each
train stage depends only on its own variant's folder: a new teacher or filter setting
reruns train@cot and leaves train@answer and train@gold cached (their rows do not change).
"""

from __future__ import annotations

import re
from typing import Callable

from .answers import reasoning_before_answer
from .errors import DataError
from .registry import Registry
from .sentence import answer_sentence


_DANGLING = re.compile(r"[,;]?\s*\b(?:so|thus|therefore|hence|and)\s*$", re.IGNORECASE)


def close_rationale(text: str, answer: str) -> str:
    """The reasoning of `text` up to its final-answer marker, on one line, closed by
    exactly "The answer is X." in the gold's spelling (what the extractor reads back)."""
    body = re.sub(r"\s+", " ", reasoning_before_answer(text)).strip()
    # "..., so the answer is X": the connective belongs to the marker that is replaced
    body = _DANGLING.sub("", body).strip()
    if body and body[-1] not in ".!?:;":
        body += "."
    return f"{body} {answer_sentence(answer)}".strip()


def _row(record: dict, target: str) -> dict:
    return {"id": record["id"], "question": record["question"], "answer": record["answer"], "target": target}


def answer_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    return [_row(r, r["answer"]) for r in records]


def gold_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    rows = [_row(r, close_rationale(r["gold_rationale"], r["answer"])) for r in records if r.get("gold_rationale")]
    if records and not rows:
        raise DataError("variant 'gold' needs records with a gold_rationale; this dataset has none "
                         "(remove gold from train.variants)")
    return rows


def cot_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    return [_row(k, k["target"]) for k in kept]


def multitask_rows(records: list[dict], kept: list[dict]) -> list[dict]:
    # Both tasks are built from the same kept CoT: a question the filter dropped has no
    # label row either, as in the paper.
    return [{**_row(k, k["answer"]), "rationale": k["target"]} for k in kept]


# variant (catalog.VARIANTS) -> (records of a split, the filter's kept CoTs of that split) -> target rows
VARIANTS: Registry[Callable[[list[dict], list[dict]], list[dict]]] = Registry("variant")
VARIANTS.register("answer", answer_rows)
VARIANTS.register("cot", cot_rows)
VARIANTS.register("gold", gold_rows)
VARIANTS.register("multitask", multitask_rows)


def variant_rows(variant: str, records: list[dict], kept: list[dict]) -> list[dict]:
    """The target rows of `variant` for one split."""
    return VARIANTS.get(variant)(records, kept)
