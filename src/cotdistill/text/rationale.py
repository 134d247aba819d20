"""A rationale as a training target: its reasoning on one line, closed by the answer
sentence (sentence.py). The datasets' gold rationales and the teacher's kept CoTs are
both closed this way, so every CoT target ends as the extractor expects.
"""

from __future__ import annotations

import re

from .answers import reasoning_before_answer
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
