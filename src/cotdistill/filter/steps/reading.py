"""What the coin-flip and last-letters checkers share: a CoT cut into claim sentences, and
the characters of a sentence that no claim has read yet."""

from __future__ import annotations

import re
from typing import Iterator

# Sentence ends; a semicolon also ends a claim ("Tom doesn't flip it; it stays tails").
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_LIST_MARK = re.compile(r"^\s*(?:step\s*)?(?:\d+|[a-e])\s*[.):]?\s*$|^\s*[-*\u2022]\s*$", re.IGNORECASE)
# "Step 1: Mia flips it", "2) Tom ...": a list marker before a claim is not a count
_LIST_PREFIX = re.compile(r"^\s*(?:step\s*\d+\s*[.):]?|\d+\s*[.)]|\d+\s*:(?=\s*[A-Z]))\s*", re.IGNORECASE)


def claim_sentences(cot: str) -> Iterator[str]:
    """The sentences of `cot` that may make a claim, stripped of a list marker ('Step 1:', '2)'):
    neither empty, nor a bare marker, nor a question (a restated question claims nothing)."""
    for sentence in _SENTENCE.split(cot):
        s = _LIST_PREFIX.sub("", sentence.strip())
        if s and not _LIST_MARK.match(s) and not s.endswith("?"):
            yield s


class Unread:
    """A sentence's characters not yet read as part of a claim: each character belongs to one
    claim at most, and what is left over must hold nothing checkable."""

    def __init__(self, sentence: str):
        self.sentence = sentence
        self.taken = [False] * len(sentence)

    def take(self, a: int, b: int) -> bool:
        """Read sentence[a:b] as one claim, unless a claim already holds part of it."""
        if any(self.taken[a:b]):
            return False
        self.taken[a:b] = [True] * (b - a)
        return True

    def leftover(self) -> str:
        """The sentence with every claim blanked out."""
        return "".join(" " if t else ch for ch, t in zip(self.sentence, self.taken))
