"""Answer extraction: one extractor per answer type, shared by the filter and evaluation.

`extract(text, answer_type, mode)` returns the canonical answer or None (invalid), and
`matches(predicted, gold, answer_type)` is the one comparison both stages use.
- strict: only a final-answer statement counts ("The answer is X", "Final answer: X",
  "#### X", "\\boxed{X}"); the last one in the text is the answer.
- flexible: the statement first; only when the output has none, a fallback per type
  (a bare number line, the last yes/no word, a bare text line, a lone option).
An answer that cannot be read is None, never a guess: callers count it as invalid.
The rules are written out for users in the README ("How answers are read").
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

from cotdistill.core.registry import Registry

from .labels import (
    NO,
    YES,
    NotAnOption,
    bare_text,
    choice_answer,
    choice_fallback,
    last_yes_no,
    normalise_text,
    text_answer,
    yes_no_answer,
)
from .markers import find_statements, has_marker, reasoning_before_answer, through_first_answer
from .numbers import (
    bare_number,
    first_number,
    format_number,
    number_matches,
    parse_number,
    read_gold_number,
    snap_float,
)

__all__ = [
    "EXTRACTORS",
    "extract",
    "format_number",
    "matches",
    "normalise_gold",
    "normalise_text",
    "parse_gold",
    "parse_number",
    "reasoning_before_answer",
    "through_first_answer",
]

Reader = Callable[[str], Optional[str]]


def _read(text: str, strict: bool, from_statement: Reader, fallback: Reader) -> Optional[str]:
    """The final-answer statements decide when there are any; without one, strict gives
    None and flexible the type's fallback.

    Statements whose answer cannot be read are passed over; the readable ones must all
    state the same answer, else the output is invalid ("The answer is no. ... The answer
    is yes."). A last statement cut off by the end of the output ("... The answer is
    lxar. The answer is lx") is passed over when it disagrees with the ones before it.
    """
    statements = find_statements(text)
    if not statements:
        return None if strict or has_marker(text) else fallback(text)
    read = [(st, from_statement(st.answer)) for st in statements if st.answer is not None]
    read = [(st, value) for st, value in read if value is not None]
    if len({v for _, v in read}) > 1 and read[-1][0] is statements[-1] and statements[-1].open_end:
        read = read[:-1]
    values = {v for _, v in read}
    value = values.pop() if len(values) == 1 else None
    return None if isinstance(value, NotAnOption) else value


def extract_number(text: str, strict: bool) -> Optional[str]:
    """The number a statement starts with (an expression: its result after the last '=')."""
    return _read(text, strict, first_number, bare_number)


# An output that opens with its answer: "Yes, but only for a short period. ..."
_OPENING = re.compile(r"\s*(yes|no)\b[,.!]", re.IGNORECASE)


def extract_yes_no(text: str, strict: bool) -> Optional[str]:
    """yes / no (true / false) as a standalone, not negated word. An output that opens
    with "Yes," or "No." has stated that answer too: a statement that contradicts it
    makes the output invalid."""
    value = _read(text, strict, yes_no_answer, last_yes_no)
    opening = _OPENING.match(text)
    if value is not None and opening and opening.group(1).lower() != value and find_statements(text):
        return None
    return value


def extract_text(text: str, strict: bool) -> Optional[str]:
    """The quoted text or first clause of a statement; flexible: a bare last line."""
    return _read(text, strict, text_answer, bare_text)


def extract_choice(text: str, strict: bool, choices: Optional[Sequence[str]] = None) -> Optional[str]:
    """An option letter; with `choices` (the record's option texts) also an option's text."""
    return _read(text, strict, lambda a: choice_answer(a, choices), lambda t: choice_fallback(t, choices))


EXTRACTORS: Registry[Callable[[str, bool], Optional[str]]] = Registry("answer type")
EXTRACTORS.register("number", extract_number)
EXTRACTORS.register("yes_no", extract_yes_no)
EXTRACTORS.register("text", extract_text)
EXTRACTORS.register("choice", extract_choice)


def extract(
    text: str, answer_type: str, mode: str = "strict", *, choices: Optional[Sequence[str]] = None
) -> Optional[str]:
    """The canonical answer in `text`, or None when there is none to read.

    `choices` (a choice record's option texts) lets an answer name an option by its text.
    """
    if mode not in ("strict", "flexible"):
        raise ValueError(f"extraction mode must be 'strict' or 'flexible', got {mode!r}")
    extractor = EXTRACTORS.get(answer_type)
    if choices is not None and extractor is extract_choice:
        return extract_choice(text, mode == "strict", choices)
    return extractor(text, mode == "strict")


def matches(predicted: Optional[str], gold: object, answer_type: str) -> bool:
    """Whether an extracted answer is the gold answer: the filter's and evaluation's test.

    Numbers compare as exact values (see `number_matches` for the one rounding rule);
    other types compare canonical strings. An invalid prediction (None) never matches.
    """
    canonical = parse_gold(gold, answer_type)
    if predicted is None or canonical is None:
        return False
    if answer_type == "number":
        return number_matches(predicted, canonical)
    return predicted == canonical


# What may follow a gold number: a unit, bare or in parentheses ("9 (apples)", "12 cm^2").
# Words in a unit are joined by single spaces, so no two repeats share a character.
_UNIT = r"[A-Za-z](?:[A-Za-z.'/\-]|\s(?=[A-Za-z]))*(?:\^[23]|[\u00b2\u00b3])?"
_GOLD_UNIT = re.compile(rf"\s*(?:(?:\(\s*{_UNIT}\s*\)|{_UNIT})\s*)?\.?")
_GOLD_CHOICE = re.compile(r"\s*\(?([A-Ea-e])\)?(?:\s*[.:)]\s*.*|\s*)", re.DOTALL)


def _gold_number(answer: object) -> Optional[str]:
    if isinstance(answer, (int, float)):
        if answer != answer or answer in (float("inf"), float("-inf")):  # NaN / inf
            return None
        answer = repr(answer)
    text = str(answer).strip()
    read = read_gold_number(text)
    if read is None or not _GOLD_UNIT.fullmatch(text, read[1]):
        return None
    value, end = read
    # a decimal may be a float's repr; a fraction the dataset wrote is meant exactly
    return format_number(value if "/" in text[:end] else snap_float(value))


def parse_gold(answer: object, answer_type: str) -> Optional[str]:
    """A dataset's gold answer in canonical form, or None when it is not one clean value.

    The whole value must be read, so an ASDiv gold such as "9 (apples)" gives "9" but a
    ratio "3:4" or two answers "4 (hours); 5 (minutes)" give None (the loader counts the
    row as malformed) instead of a wrong first number. A float gold is read as the value
    it stands for (3.3333333333333335 -> "10/3", see `snap_float`).
    """
    EXTRACTORS.get(answer_type)  # an unknown type raises with the allowed names
    if isinstance(answer, bool):
        return ("yes" if answer else "no") if answer_type == "yes_no" else None
    if answer is None:
        return None
    if answer_type == "number":
        return _gold_number(answer)
    text = str(answer).strip()
    if answer_type == "yes_no":
        word = normalise_text(text)
        return "yes" if word in YES else "no" if word in NO else None
    if answer_type == "choice":
        m = _GOLD_CHOICE.fullmatch(text)
        return m.group(1).upper() if m else None
    return normalise_text(text) or None


def normalise_gold(answer: object, answer_type: str) -> Optional[str]:
    """A gold answer in the extractor's canonical form: the same as `parse_gold`."""
    return parse_gold(answer, answer_type)
