"""Numbers in model text: one lexer for every written form, exact values, canonical strings.

A number token is read whole ("$1,234.50", "1 000 000", "3 1/2", "2.5e-3", "2.5 million",
"50%") and gives its exact value as a `Fraction`, or None when its form is ambiguous
("1,23", "8:30", "1.2.3", "5k"): never the value of a piece of it. Tokens joined by
operators form an expression ("20 - 8 = 12"), whose value is the number after its last
"="; an expression without one ("20 - 8") is not read (nothing is ever evaluated).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Iterator, Optional

MAX_DIGITS = 100  # a longer token is not an answer (and would be slow to print)
MAX_EXPONENT = 100

_NUM = re.compile(
    r"""
    (?<![\w.,/])(?<!\d:)                      # not the tail of a word, number or time
    (?P<sign>[-\u2212+])?
    (?:(?P<cur>[$\u20ac\u00a3])\ ?(?P<sign2>[-\u2212])?)?
    (?:
        (?P<whole>\d+)\ (?P<num>\d+)/(?P<den>\d+)              # 3 1/2
      | (?P<int>\d+(?:[,\u00a0\u202f\u2009\ ]\d+)*)(?P<dec>\.\d+)?  # 1,234.5  1 000
      | (?P<dec_only>\.\d+)                                        # .5
    )
    (?:[eE](?P<exp>[-+\u2212]?\d+)                                 # 2.5e-3
      | \ ?[x\u00d7*\u00b7]\ ?10\^\(?(?P<exp10>[-+\u2212]?\d+)\)?)?  # 2.5 x 10^3
    (?:\ */\ *(?P<over>\d+(?:\.\d+)?))?                          # 3/4
    (?:\ ?(?P<mult>hundred|thousand|million|billion|trillion)\b)?
    (?:\ ?%)?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Right after a token, these make it one piece of something else: a time or ratio
# ("8:30"), a version or date ("1.2.3", "12/25/2023"), other digit groupings ("1'000",
# "1_000"), thousands ("5k").
_AMBIGUOUS_AFTER = re.compile(r"[:.,/'\u2019_]\d|k(?![a-z])", re.IGNORECASE)
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+|\d{1,3}(?:[\u00a0\u202f\u2009 ]\d{3})+")
_MULT = {"hundred": 10**2, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# What joins two tokens of one expression: an operator, with spaces and parentheses.
_OPERATOR = re.compile(r"[\s)]*(?P<op>\*\*|[-+*/^=x\u00d7\u00f7\u2212])[\s(]*", re.IGNORECASE)
_SPACE = re.compile(r"\s*")
_PERCENT_OF = re.compile(r"\s+of\s+\$?", re.IGNORECASE)


def _integer_part(digits: str) -> Optional[str]:
    """'1,234' -> '1234', '1 000' -> '1000'; None for a bad grouping ('1,23', '1 0')."""
    if digits.isdigit():
        return digits
    if len({c for c in digits if not c.isdigit()}) > 1 or not _GROUPED.fullmatch(digits):
        return None
    return "".join(c for c in digits if c.isdigit())


def _signed_int(text: str) -> int:
    return int(text.replace("\u2212", "-"))


def token_value(m: re.Match) -> Optional[Fraction]:
    """The exact value of a `_NUM` match, or None when the token is ambiguous or too big."""
    if _AMBIGUOUS_AFTER.match(m.string, m.end()) or sum(c.isdigit() for c in m.group(0)) > MAX_DIGITS:
        return None
    if m["whole"]:
        num, den = int(m["num"]), int(m["den"])
        if not 0 < num < den:  # "3 4/2" is no mixed number
            return None
        value = int(m["whole"]) + Fraction(num, den)
    elif m["int"]:
        digits = _integer_part(m["int"])
        if digits is None:
            return None
        value = Fraction(digits + (m["dec"] or ""))
    else:
        value = Fraction(m["dec_only"])
    exp = m["exp"] or m["exp10"]
    if exp:
        if abs(_signed_int(exp)) > MAX_EXPONENT:
            return None
        value *= Fraction(10) ** _signed_int(exp)
    if m["over"]:
        if Fraction(m["over"]) == 0:
            return None
        value /= Fraction(m["over"])
    if m["mult"]:
        value *= _MULT[m["mult"].lower()]
    negative = (m["sign"] or "") in ("-", "\u2212") or bool(m["sign2"])
    return -value if negative else value


def _joining_operator(text: str, prev_end: int, m: re.Match) -> Optional[str]:
    """The operator between the previous token and `m`, or None when they are apart.

    "20 -8" is read as "20 - 8": a signed token right after a number continues it.
    """
    op = _OPERATOR.fullmatch(text, prev_end, m.start())
    if op is not None:
        return op["op"]
    if text[prev_end - 1] == "%" and _PERCENT_OF.fullmatch(text, prev_end, m.start()):
        return "of"  # "50% of 302" is a computation, not the number 50
    if m.group(0)[0] in "-+\u2212" and _SPACE.fullmatch(text, prev_end, m.start()):
        return m.group(0)[0]
    return None


def _chains(text: str) -> Iterator[Optional[re.Match]]:
    """For each run of tokens joined by operators, in order: the token that is its value.

    A lone token is its own value; "20 - 8 = 12" is its 12; "20 - 8" and "5-6" have
    none (None). Tokens are only matched here; values are computed for the one read.
    """
    last: Optional[re.Match] = None
    last_op: Optional[str] = None  # the operator before `last`, None for a lone token
    for m in _NUM.finditer(text):
        op = _joining_operator(text, last.end(), m) if last else None
        if last and op is None:
            yield last if last_op in (None, "=") else None
            last_op = None
        else:
            last_op = op
        last = m
    if last:
        yield last if last_op in (None, "=") else None


def _value(m: Optional[re.Match]) -> Optional[str]:
    value = token_value(m) if m else None
    return format_number(value) if value is not None else None


def bare_number(text: str) -> Optional[str]:
    """The number an output without a marker gives, when its last line is a bare answer:
    one number and at most two words ("42", "42 apples", "$5.50", "1 000 000"), no "="
    and no clause punctuation. Reasoning that never states an answer ("9 + 2 = 18.") gives None: its
    last number is not necessarily what it answers."""
    line = text.rstrip()
    line = line[line.rfind("\n") + 1 :].strip()
    token = _NUM.search(line)
    if token is None or "=" in line or re.search(r"[,;:!?](?!\d)|\.\s", line):
        return None
    rest = line[: token.start()] + " " + line[token.end() :]
    if len(rest.split()) > 2 or _NUM.search(rest):
        return None
    return first_number(line)


def first_number(text: str) -> Optional[str]:
    """The canonical value of the first number (or expression result) in `text`."""
    return _value(next(_chains(text), None))


def format_number(value: Fraction) -> str:
    """The exact canonical string of a value.

    Integers and terminating decimals are written out in full, with no trailing zeros:
    7 -> '7', -3/4 -> '-0.75', 1/400 -> '0.0025'. A value with no finite decimal is the
    reduced fraction: 1/3 -> '1/3', -10/3 -> '-10/3'. The form reads back to the value.
    """
    num, den = value.numerator, value.denominator
    if den == 1:
        return str(num)
    rest, twos, fives = den, 0, 0
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"{num}/{den}"
    places = max(twos, fives)
    digits = str(abs(num) * (10**places // den)).rjust(places + 1, "0")
    return f"{'-' if num < 0 else ''}{digits[:-places]}.{digits[-places:]}"


def parse_number(token: str) -> Optional[str]:
    """One number token in canonical form: '$1,234.50' -> '1234.5'; '3/4' -> '0.75'; else None."""
    m = _NUM.fullmatch(token.strip())
    value = token_value(m) if m else None
    return format_number(value) if value is not None else None


def snap_float(value: Fraction) -> Fraction:
    """A gold that is a binary float's decimal, as the value it stands for.

    3.3333333333333335 -> 10/3 and 0.30000000000000004 -> 3/10: the one fraction with a
    denominator up to 1000 within four float steps of the value, if there is one. Where
    float steps are too coarse to single one out (|value| above about 10^8), and for
    any value that is not within float noise of such a fraction ("0.333"), the value is
    returned unchanged.
    """
    tolerance = 4 * Fraction(math.ulp(float(value)))
    if tolerance >= Fraction(1, 2 * 1000**2):
        return value
    simple = value.limit_denominator(1000)
    return simple if abs(simple - value) <= tolerance else value


def read_gold_number(text: str) -> Optional[tuple[Fraction, int]]:
    """(value, end) of the number token `text` starts with; None when there is none."""
    m = _NUM.match(text)
    value = token_value(m) if m else None
    return (value, m.end()) if value is not None else None


def number_matches(predicted: str, gold: str) -> bool:
    """Whether two canonical numbers are the same answer.

    Exact equality, with one tolerance: a gold written with d decimal places may be the
    rounding of a value with no finite decimal (a dataset's "3.33" for 10/3). Such a gold
    matches a non-terminating prediction that rounds to it at d places. A terminating
    prediction must equal the gold exactly ("2.46" never matches "2.5").
    """
    p, g = Fraction(predicted), Fraction(gold)
    if p == g:
        return True
    places = len(gold.partition(".")[2]) if "/" not in gold else 0
    return places > 0 and "/" in format_number(p) and abs(p - g) < Fraction(1, 2 * 10**places)
