"""Answer extraction: one extractor per answer type, shared by the filter and evaluation.

`extract(text, answer_type, mode)` returns the normalised answer or None (invalid).
- strict: only an explicit final-answer marker counts ("The answer is X", "#### X").
- flexible: the marker first; otherwise the last value of the right type in the text.
An answer that cannot be read is None, never a guess: callers count it as invalid.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable, Optional

from .registry import Registry

# "The answer is X", "the final answer is: X", "Answer: X", "#### X"
_MARKER = re.compile(
    r"the\s+(?:final\s+)?answer\s+is\s*:?|^\s*answer\s*:|####",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(
    r"(?<![\w.])[-\u2212]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?%?"
    r"|(?<![\w.\d])[-\u2212]?\.\d+"
)


def _last_match(text: str) -> Optional[re.Match]:
    matches = list(_MARKER.finditer(text))
    return matches[-1] if matches else None


def _last_marker(text: str) -> Optional[str]:
    """The rest of the line after the last final-answer marker, or None."""
    m = _last_match(text)
    return text[m.end() :].split("\n", 1)[0].strip() if m else None


def reasoning_before_answer(text: str) -> str:
    """The text before the last final-answer marker (all of it when there is none)."""
    m = _last_match(text)
    return text[: m.start()] if m else text


def canonical_number(value: Fraction) -> str:
    """7 -> '7', 0.5 -> '0.5', 1/3 -> '0.333333' (six decimals, trailing zeros cut)."""
    if value.denominator == 1:
        return str(value.numerator)
    s = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def parse_number(token: str) -> Optional[str]:
    """'$1,234.50' -> '1234.5'; '3/4' -> '0.75'; '-2' -> '-2'; '50%' -> '50'."""
    t = token.strip().replace("\u2212", "-").replace("$", "").replace(",", "").replace(" ", "")
    t = t.rstrip("%")
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            if Fraction(den) == 0:
                return None
            return canonical_number(Fraction(num) / Fraction(den))
        return canonical_number(Fraction(t))
    except (ValueError, ZeroDivisionError):
        return None


def _numbers(text: str) -> list[str]:
    out = []
    for m in _NUMBER.finditer(text):
        v = parse_number(m.group(0))
        if v is not None:
            out.append(v)
    return out


def extract_number(text: str, strict: bool) -> Optional[str]:
    rest = _last_marker(text)
    if rest is not None:
        found = _numbers(rest)
        if found:
            return found[0]
    if strict:
        return None
    found = _numbers(text)
    return found[-1] if found else None


_YES = {"yes", "true", "correct"}
_NO = {"no", "false", "incorrect"}
_YES_NO_WORD = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)


def extract_yes_no(text: str, strict: bool) -> Optional[str]:
    rest = _last_marker(text)
    if rest is not None:
        m = _YES_NO_WORD.search(rest)
        if m:
            return "yes" if m.group(1).lower() in _YES else "no"
    if strict:
        return None
    words = _YES_NO_WORD.findall(text)
    if not words:
        return None
    return "yes" if words[-1].lower() in _YES else "no"


def normalise_text(value: str) -> str:
    """Lower case, quotes and final punctuation removed, inner spaces collapsed."""
    v = value.strip().strip("\"'`“”‘’").strip()
    v = re.sub(r"[.!?]+$", "", v).strip().strip("\"'`“”‘’")
    return re.sub(r"\s+", " ", v).lower()


def extract_text(text: str, strict: bool) -> Optional[str]:
    rest = _last_marker(text)
    if rest is not None:
        # the answer runs to the end of its sentence
        m = re.match(r"\s*(\"[^\"]*\"|'[^']*'|[^.!?\n]*)", rest)
        value = normalise_text(m.group(1)) if m else ""
        return value or None
    if strict:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    value = normalise_text(lines[-1]) if lines else ""
    return value or None


_CHOICE = re.compile(r"\(?\b([A-Ea-e])\b\)?")


def extract_choice(text: str, strict: bool) -> Optional[str]:
    rest = _last_marker(text)
    if rest is not None:
        m = re.match(r"\s*\(?([A-Ea-e])\)?(?:[\s.,:)]|$)", rest)
        if m:
            return m.group(1).upper()
    if strict:
        return None
    m = re.fullmatch(r"\s*\(?([A-Ea-e])\)?\.?\s*", text)
    if m:
        return m.group(1).upper()
    found = re.findall(r"\(([A-Ea-e])\)", text)
    return found[-1].upper() if found else None


EXTRACTORS: Registry[Callable[[str, bool], Optional[str]]] = Registry("answer type")
EXTRACTORS.register("number", extract_number)
EXTRACTORS.register("yes_no", extract_yes_no)
EXTRACTORS.register("text", extract_text)
EXTRACTORS.register("choice", extract_choice)


def extract(text: str, answer_type: str, mode: str = "strict") -> Optional[str]:
    """The normalised answer in `text`, or None when there is none to read."""
    if mode not in ("strict", "flexible"):
        raise ValueError(f"extraction mode must be 'strict' or 'flexible', got {mode!r}")
    return EXTRACTORS.get(answer_type)(text, mode == "strict")


def normalise_gold(answer: str, answer_type: str) -> Optional[str]:
    """A gold answer in the extractor's canonical form (None if it cannot be read)."""
    return extract(f"The answer is {answer}.", answer_type, "strict")


# A whole gold value: one number, then at most a unit ("9 (apples)", "12 cm", "3 m^2").
_GOLD_NUMBER = re.compile(
    r"\s*(?P<num>[-\u2212]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:\s*/\s*\d+)?%?)"
    r"\s*(?:\(\s*[A-Za-z][A-Za-z .'/\-]*(?:\^[23]|[\u00b2\u00b3])?\s*\)"
    r"|[A-Za-z][A-Za-z .'/\-]*(?:\^[23]|[\u00b2\u00b3])?)?\s*\.?\s*"
)
_GOLD_CHOICE = re.compile(r"\s*\(?([A-Ea-e])\)?(?:\s*[.:)]\s*.*|\s*)", re.DOTALL)


def parse_gold(answer: object, answer_type: str) -> Optional[str]:
    """A dataset's gold answer in canonical form, or None when it is not one clean value.

    Stricter than `normalise_gold`: the whole value must be read, so an ASDiv gold such as
    "9 (apples)" gives "9" but a ratio "3:4" or two answers "4 (hours); 5 (minutes)" give
    None (the loader counts the row as malformed) instead of a wrong first number.
    """
    if answer_type not in EXTRACTORS:
        EXTRACTORS.get(answer_type)  # raises with the allowed names
    if isinstance(answer, bool):
        return ("yes" if answer else "no") if answer_type == "yes_no" else None
    if answer is None:
        return None
    if isinstance(answer, (int, float)) and answer_type == "number":
        if answer != answer or answer in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return canonical_number(Fraction(str(answer)))
    text = str(answer).strip()
    if answer_type == "number":
        m = _GOLD_NUMBER.fullmatch(text)
        return parse_number(m.group("num")) if m and re.search(r"\d", m.group("num")) else None
    if answer_type == "yes_no":
        word = normalise_text(text)
        return "yes" if word in _YES else "no" if word in _NO else None
    if answer_type == "choice":
        m = _GOLD_CHOICE.fullmatch(text)
        return m.group(1).upper() if m else None
    return normalise_text(text) or None


def answer_sentence(answer: str) -> str:
    """The closing sentence every CoT target ends with, and the extractor reads."""
    return f"The answer is {answer}."
