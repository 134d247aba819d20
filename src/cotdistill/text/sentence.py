"""The sentence that closes every rationale: "The answer is X."

The exemplars of the prompt files, the datasets' gold rationales and every training
target end with it, and the answer extractor reads it back (answers/markers.py).
"""

from __future__ import annotations


def answer_sentence(answer: str) -> str:
    """The closing sentence every CoT target ends with, and the extractor reads."""
    return f"The answer is {answer}."
