"""The shared answer extractor against hand-labelled real outputs (tests/data/answer_corpus.jsonl).

Every row is a teacher generation or a student prediction from this project's own runs,
labelled by a person reading it (tests/data/README.md). `expected` is the final answer a
careful reader takes from the text (null: none can be read), compared with the flexible
mode the evaluation uses; `expected_strict` is that answer where the text states it after
an explicit final-answer marker (null otherwise), compared with the strict mode the
filter uses. The test fails when agreement is below MIN_AGREEMENT for any answer type,
and lists the disagreeing rows.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from cotdistill.text.answers import extract

CORPUS = Path(__file__).parent / "data" / "answer_corpus.jsonl"
MIN_AGREEMENT = 0.99
TYPES = ("number", "yes_no", "text", "choice")
SOURCES = ("teacher_hint", "teacher_nohint", "student_answer", "student_cot")
DATASETS = ("coin_flip", "last_letters", "gsm_symbolic", "asdiv", "commonsenseqa", "strategyqa")
CANONICAL = {
    "number": re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?"),
    "yes_no": re.compile(r"yes|no"),
    "choice": re.compile(r"[A-E]"),
    "text": re.compile(r"\S(?:.*\S)?"),
}


def load_corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def _extract(row: dict, mode: str):
    # An extractor that also reads the options (a choice answered by its text) gets them.
    if row.get("choices") and "choices" in inspect.signature(extract).parameters:
        return extract(row["text"], row["answer_type"], mode, choices=row["choices"])
    return extract(row["text"], row["answer_type"], mode)


def agreement(rows: list[dict], mode: str, column: str) -> tuple[dict, list[tuple]]:
    """({answer type: (agreeing, total)}, [(id, snippet, expected, got)] of the rest)."""
    totals: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    wrong: list[tuple] = []
    for row in rows:
        got = _extract(row, mode)
        totals[row["answer_type"]] += 1
        if got == row[column]:
            agree[row["answer_type"]] += 1
        else:
            text = row["text"]
            snippet = text if len(text) <= 160 else f"{text[:70]} ... {text[-80:]}"
            wrong.append((row["id"], snippet, row[column], got))
    return {t: (agree[t], totals[t]) for t in TYPES if totals[t]}, wrong


def report(mode: str, per_type: dict, wrong: list[tuple]) -> str:
    lines = [f"{mode} extraction vs hand labels:"]
    lines += [f"  {t}: {a}/{n} = {a / n:.1%}" for t, (a, n) in per_type.items()]
    lines += [f"  {i}: expected {e!r}, got {g!r} <- {s!r}" for i, s, e, g in wrong]
    return "\n".join(lines)


def test_corpus_is_well_formed():
    rows = load_corpus()
    assert CORPUS.stat().st_size < 1_000_000
    assert len(rows) >= 300
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        fields = {"id", "dataset", "source", "answer_type", "gold", "text", "expected", "expected_strict"}
        assert set(r) >= fields, r["id"]
        assert r["dataset"] in DATASETS and r["source"] in SOURCES and r["answer_type"] in TYPES, r["id"]
        for column in ("expected", "expected_strict", "gold"):
            value = r[column]
            assert value is None or CANONICAL[r["answer_type"]].fullmatch(value), (r["id"], column, value)
        if r["answer_type"] == "text":
            assert r["expected"] is None or r["expected"] == r["expected"].lower(), r["id"]
        # a marker-read answer is the reader's answer too
        assert r["expected_strict"] is None or r["expected_strict"] == r["expected"], r["id"]
    assert {r["dataset"] for r in rows} == set(DATASETS)
    assert {r["source"] for r in rows} == set(SOURCES)


@pytest.mark.parametrize("mode,column", [("flexible", "expected"), ("strict", "expected_strict")])
def test_extractor_agrees_with_hand_labels(mode, column, record_property):
    per_type, wrong = agreement(load_corpus(), mode, column)
    text = report(mode, per_type, wrong)
    record_property(f"{mode}_agreement", {t: round(a / n, 4) for t, (a, n) in per_type.items()})
    print(text)
    low = [t for t, (a, n) in per_type.items() if a / n < MIN_AGREEMENT]
    assert not low, text
