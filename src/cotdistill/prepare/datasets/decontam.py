"""Decontamination: no test question may appear in train, validation or the exemplars.

Two checks (as in GPT-3's and PaLM's contamination studies): the normalised question
matches exactly (case, punctuation and spacing ignored), or the two share a 13-gram of
normalised words. Templated tasks get the exact check only (see DatasetSpec.ngram_check).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cotdistill.core.errors import DataError
from cotdistill.core.splits import TEST_SPLITS

NGRAM = 13


def normalise_question(text: str) -> str:
    """Lower case, anything but letters and digits turned into single spaces."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = normalise_question(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Hit:
    test_id: str
    other_id: str  # a train / validation id, or "exemplar[i]"
    other_split: str  # train | validation | exemplars
    kind: str  # exact | ngram

    def as_dict(self) -> dict:
        return {"test_id": self.test_id, "other_id": self.other_id, "other_split": self.other_split, "kind": self.kind}


def find_hits(tests: list[dict], others: list[dict], other_split: str, use_ngrams: bool) -> list[Hit]:
    """Every (test row, other row) pair that matches; exact matches win over n-grams."""
    exact: dict[str, list[str]] = {}
    by_gram: dict[tuple[str, ...], list[str]] = {}
    for t in tests:
        exact.setdefault(normalise_question(t["question"]), []).append(t["id"])
        if use_ngrams:
            for g in ngrams(t["question"]):
                by_gram.setdefault(g, []).append(t["id"])
    hits: list[Hit] = []
    for o in others:
        found = {tid: "exact" for tid in exact.get(normalise_question(o["question"]), [])}
        if use_ngrams:
            for g in ngrams(o["question"]):
                for tid in by_gram.get(g, []):
                    found.setdefault(tid, "ngram")
        hits += [Hit(tid, o["id"], other_split, kind) for tid, kind in sorted(found.items())]
    return hits


def decontaminate(
    splits: dict[str, list[dict]], exemplars: list[str], use_ngrams: bool, action: str
) -> tuple[dict[str, list[dict]], dict, list[Hit]]:
    """Remove contamination: a train or validation row that matches a test row is dropped,
    and so is a test row that matches an exemplar (the exemplars are fixed).

    action "fail" raises instead, naming the first ids. Returns (splits, counts, hits).
    """
    tests = [r for s in TEST_SPLITS for r in splits.get(s, [])]
    ex_rows = [{"id": f"exemplar[{i}]", "question": q} for i, q in enumerate(exemplars)]
    hits: list[Hit] = []
    for split in ("train", "validation"):
        hits += find_hits(tests, splits.get(split, []), split, use_ngrams)
    hits += find_hits(tests, ex_rows, "exemplars", use_ngrams)

    counts = {
        f"{kind}_{where}": sum(1 for h in hits if h.kind == kind and h.other_split == where)
        for kind in ("exact", "ngram")
        for where in ("train", "validation", "exemplars")
    }
    counts["ngram_check"] = int(use_ngrams)
    if hits and action == "fail":
        shown = ", ".join(f"{h.test_id}~{h.other_id} ({h.kind})" for h in hits[:5])
        raise DataError(
            f"prepare: {len(hits)} contamination hits between test and "
            f"train/validation/exemplars, e.g. {shown} (prepare.decontaminate: fail)"
        )
    drop_other = {(h.other_split, h.other_id) for h in hits if h.other_split != "exemplars"}
    drop_test = {h.test_id for h in hits if h.other_split == "exemplars"}
    out = {}
    for split, rows in splits.items():
        if split in TEST_SPLITS:
            out[split] = [r for r in rows if r["id"] not in drop_test]
        else:
            out[split] = [r for r in rows if (split, r["id"]) not in drop_other]
    counts["dropped_train"] = len(splits.get("train", [])) - len(out.get("train", []))
    counts["dropped_validation"] = len(splits.get("validation", [])) - len(out.get("validation", []))
    counts["dropped_test"] = sum(len(splits.get(s, [])) - len(out.get(s, [])) for s in TEST_SPLITS)
    return out, counts, hits
