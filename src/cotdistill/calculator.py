"""The external calculator: a safe arithmetic parser, and equation finding in model text.

Model text is never passed to `eval` or `exec`. A small recursive-descent parser reads
numbers, + - * / (also x-free unicode × ÷ −), parentheses, postfix % (percent: /100)
and powers (^ or **), with exact `Fraction` arithmetic. Everything is bounded so that
any input, however hostile, ends quickly with a value or a `CalcError`:
input length, nesting depth, exponent size, the size of every intermediate value, and
a wall-clock deadline checked at every node.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fractions import Fraction

from .answers import canonical_number

MAX_CHARS = 256        # longest expression accepted
MAX_DEPTH = 32         # parenthesis / unary nesting
MAX_EXPONENT = 64      # |b| in a ** b
MAX_BITS = 2048        # numerator and denominator size of any intermediate value
DEADLINE_S = 0.05      # wall-clock bound per expression


class CalcError(ValueError):
    """The text is not an arithmetic expression the calculator accepts, or is too big."""


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<op>\*\*|[-+*/^%()×÷−$])"
    r")"
)
_OPS = {"×": "*", "÷": "/", "−": "-"}


def tokenize(text: str) -> list[str]:
    """Split an expression into number and operator tokens ($ signs are dropped)."""
    if len(text) > MAX_CHARS:
        raise CalcError(f"expression longer than {MAX_CHARS} characters")
    tokens: list[str] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CalcError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        pos = m.end()
        if m.group("num"):
            tokens.append(m.group("num").replace(",", ""))
        elif m.group("op") != "$":
            tokens.append(_OPS.get(m.group("op"), m.group("op")))
    if not tokens:
        raise CalcError("empty expression")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], deadline: float):
        self.toks, self.i, self.deadline, self.depth = tokens, 0, deadline, 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise CalcError("expression ends too early")
        self.i += 1
        return tok

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CalcError(f"nesting deeper than {MAX_DEPTH}")
        if time.perf_counter() > self.deadline:
            raise CalcError(f"took longer than {DEADLINE_S} s")

    @staticmethod
    def _check(v: Fraction) -> Fraction:
        if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
            raise CalcError("value too large")
        return v

    def expr(self) -> Fraction:
        self._enter()
        v = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            v = self._check(v + rhs if op == "+" else v - rhs)
        self.depth -= 1
        return v

    def term(self) -> Fraction:
        v = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.unary()
            if op == "/" and rhs == 0:
                raise CalcError("division by zero")
            v = self._check(v * rhs if op == "*" else v / rhs)
        return v

    def unary(self) -> Fraction:
        if self.peek() in ("-", "+"):
            self._enter()
            op = self.take()
            v = self.unary()
            self.depth -= 1
            return -v if op == "-" else v
        return self.power()

    def power(self) -> Fraction:
        base = self.postfix()
        if self.peek() in ("^", "**"):
            self.take()
            exp = self.unary()  # right-associative: 2^3^2 = 2^9
            return self._pow(base, exp)
        return base

    def _pow(self, base: Fraction, exp: Fraction) -> Fraction:
        if exp.denominator != 1:
            raise CalcError("only whole-number powers are supported")
        e = exp.numerator
        if abs(e) > MAX_EXPONENT:
            raise CalcError(f"exponent larger than {MAX_EXPONENT}")
        if base == 0 and e < 0:
            raise CalcError("division by zero")
        bits = max(base.numerator.bit_length(), base.denominator.bit_length())
        if bits * abs(e) > MAX_BITS:
            raise CalcError("value too large")
        return self._check(base ** e)

    def postfix(self) -> Fraction:
        v = self.atom()
        while self.peek() == "%":
            self.take()
            v = v / 100
        return self._check(v)

    def atom(self) -> Fraction:
        tok = self.take()
        if tok == "(":
            v = self.expr()
            if self.take() != ")":
                raise CalcError("missing ')'")
            return v
        if tok[0].isdigit() or tok[0] == ".":
            return Fraction(tok)
        raise CalcError(f"unexpected {tok!r}")


def evaluate(text: str) -> Fraction:
    """The exact value of an arithmetic expression; CalcError for anything else."""
    parser = _Parser(tokenize(text), time.perf_counter() + DEADLINE_S)
    value = parser.expr()
    if parser.peek() is not None:
        raise CalcError(f"unexpected {parser.peek()!r} after a complete expression")
    return value


def format_value(value: Fraction) -> str:
    """The value as the calculator writes it (the extractor's canonical number form)."""
    return canonical_number(value)


def calculate(text: str) -> str:
    """`evaluate` then `format_value`: '3 * (4 + 1)' -> '15'."""
    return format_value(evaluate(text))


# --------------------------------------------------------------------------- equations in text

_EXPR_TAIL = re.compile(r"[\d\s.,+\-*/^%()×÷−$]*$")
_STATED = re.compile(r"\s*(-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)(%?)")
_BINARY = re.compile(r"\d\s*(?:\*\*|[-+*/^×÷−])\s*[-(.$\d]|\d\s*%")


def _has_operation(expr: str) -> bool:
    return bool(_BINARY.search(expr))


def trailing_expression(text: str) -> str | None:
    """The arithmetic expression just before a final '=' in `text`, or None.

    'She has 3 + 4 * 2 =' -> '3 + 4 * 2'. Only expressions with an operation count
    (a bare '5 =' is not a computation). Unmatched leading '(' and text before ', '
    are cut off, so prose punctuation does not spoil the expression.
    """
    body = text.rstrip()
    if not body.endswith("="):
        return None
    body = body[:-1][-MAX_CHARS:]
    m = _EXPR_TAIL.search(body)
    cand = m.group(0) if m else ""
    cand = re.split(r"[,.]\s", cand)[-1]  # "so, 3 + 4" -> "3 + 4"; "is 6. 2 * 3" -> "2 * 3"
    cand = re.sub(r"^[^\d(.$\-−]+", "", cand).strip()
    while cand:
        if _has_operation(cand):
            try:
                evaluate(cand)
                return cand
            except CalcError:
                pass
        if cand[0] not in "(-−":  # drop a prose '(' or a dash before the numbers
            return None
        cand = cand[1:].strip()
    return None


@dataclass(frozen=True)
class Equation:
    expression: str
    stated: str
    true_value: Fraction

    @property
    def holds(self) -> bool:
        return stated_matches(self.stated, self.true_value)


def stated_matches(stated: str, true_value: Fraction) -> bool:
    """Whether a written result equals the true value, to the precision it is written in.

    '3.33' matches 10/3 (rounded to 2 decimals); '25' does not match 42 - 65.
    A trailing % may be read as a percent or as a plain number ('0.5 * 100 = 50%').
    """
    s = stated.replace("$", "").replace(",", "").strip()
    pct = s.endswith("%")
    s = s.rstrip("%")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return False
    decimals = len(s.split(".", 1)[1]) if "." in s else 0
    tolerance = Fraction(1, 2 * 10 ** decimals)
    readings = [(value, tolerance), (value / 100, tolerance / 100)] if pct else [(value, tolerance)]
    # Rounding is forgiven only where the true value is not whole: '10 / 3 = 3.33' holds,
    # '42 - 65 = 25' and '7 * 3 = 20.6' do not.
    return any(v == true_value or (true_value.denominator != 1 and abs(v - true_value) <= tol)
               for v, tol in readings)


def find_equations(text: str) -> list[Equation]:
    """Every 'expression = number' in `text` whose expression the calculator can read."""
    out = []
    for m in re.finditer("=", text[: 50 * MAX_CHARS]):
        expr = trailing_expression(text[: m.end()])
        if expr is None:
            continue
        stated = _STATED.match(text, m.end())
        if not stated:
            continue
        out.append(Equation(expr, stated.group(1) + stated.group(2), evaluate(expr)))
    return out


def false_equations(text: str) -> list[Equation]:
    """The equations in `text` whose stated result is wrong."""
    return [e for e in find_equations(text) if not e.holds]
