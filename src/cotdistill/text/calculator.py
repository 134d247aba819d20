"""The external calculator: a safe arithmetic parser, and equation finding in model text.

Model text is never passed to `eval` or `exec`. A small recursive-descent parser reads
numbers, + - * / (also the unicode signs × ÷ −), parentheses, postfix % and powers
(^ or **), with exact `Fraction` arithmetic. Everything is bounded so that any input,
however hostile, ends quickly with a value or a `CalcError`, the only exception the
calculator raises: input length, nesting depth, exponent size and the size of every
intermediate value. There is no wall-clock deadline: the size limits alone keep any
expression to milliseconds, and a result must not depend on how busy the machine is.

Conventions, each a decision that tests/test_calculator.py pins down:
- Digits are ASCII 0-9 only. Other scripts' digits (Arabic-Indic '٣', full-width '３',
  superscripts) are not numbers here: a CalcError in an expression, no equation in text.
  (Python's `\\d` and `int()` would accept most of them silently.)
- 'x%' is x / 100 and 'x% of y' is x / 100 * y. A bare percent is a quantity, not a
  computation: only an expression with a binary operation is one, so '25% =' and
  'The remaining 40% = 40 students' are not equations.
- A dash is a minus sign only where it is written as one ('5 - 3', '-3 * 4'). A dash
  followed by a space that starts the arithmetic ('Monday - 3 * 4 =', a bullet
  '- 3 * 4 =') or one glued to a word ('COVID-19') is prose; the expression starts
  after it.
- Values are written by `format_value`: exact, at most six decimals (half to even). A
  non-whole value beyond float range is a CalcError, since the answer extractor reads
  non-whole numbers through float.

How a stated result is checked (`find_equations`, `stated_matches`):
- To the precision it is written in: for 10 / 3, '3.33' and '3.3' hold, '3' does not
  (a whole number claims an exact value; no rounding convention is assumed).
- Fractions and expressions after '=' are computed: '1/2 + 1/4 = 3/4' and
  '3 * 4 = 6 * 2' hold. So does a running computation, '2 + 3 = 5 * 2 = 10', where the
  number right after '=' is the result and the arithmetic goes on from it.
- Every link of a chain is checked against the chain's value: '3 * 4 = 12 = 13' is false.
- Where every operand is a percent, the result may be written in percent with or without
  the sign: '100% - 60% = 40%' and '100% - 60% = 40' hold; '20% * 150 = 3000' does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction

MAX_CHARS = 256  # longest expression accepted
MAX_DEPTH = 32  # parenthesis / unary nesting
MAX_EXPONENT = 64  # |b| in a ** b
MAX_BITS = 2048  # numerator and denominator size of any intermediate value
DECIMALS = 6  # decimals written for a non-whole value


class CalcError(ValueError):
    """The text is not an arithmetic expression the calculator accepts, or is too big."""


_DIGITS = "0123456789"
_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"|(?P<op>\*\*|of\b|[-+*/^%()×÷−$])"
    r")"
)
_OPS = {"×": "*", "÷": "/", "−": "-"}
_BINARY = frozenset({"+", "-", "*", "/", "^", "**"})


def _is_number(tok: str) -> bool:
    return tok[0] in _DIGITS or tok[0] == "."


def tokenize(text: str) -> list[str]:
    """Split an expression into number and operator tokens ($ signs are dropped, and the
    'of' of '25% of 80' is a multiplication)."""
    if len(text) > MAX_CHARS:
        raise CalcError(f"expression longer than {MAX_CHARS} characters")
    tokens: list[str] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise CalcError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        pos = m.end()
        num, op = m.group("num"), m.group("op")
        if num:
            tokens.append(num.replace(",", ""))
        elif op == "of":
            if not tokens or tokens[-1] != "%":
                raise CalcError("'of' only follows a percent, as in '25% of 80'")
            tokens.append("*")
        elif op != "$":
            tokens.append(_OPS.get(op, op))
    if not tokens:
        raise CalcError("empty expression")
    return tokens


def _is_computation(tokens: list[str]) -> bool:
    """Whether the tokens hold a binary operation ('3 + 4', '25% of 80'), not just a
    quantity ('5', '-5', '25%', '(7)')."""
    return any(
        t in _BINARY and i > 0 and (tokens[i - 1] in (")", "%") or _is_number(tokens[i - 1]))
        for i, t in enumerate(tokens)
    )


def _percent_only(tokens: list[str]) -> bool:
    """Every number is a percent ('100% - 60%'): the result is a percentage too."""
    nums = [i for i, t in enumerate(tokens) if _is_number(t)]
    return bool(nums) and all(i + 1 < len(tokens) and tokens[i + 1] == "%" for i in nums)


class _Parser:
    def __init__(self, tokens: list[str]):
        self.toks, self.i, self.depth = tokens, 0, 0

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
            self._enter()  # a tower 2^2^2^... recurses like parentheses do
            exp = self.unary()  # right-associative: 2^3^2 = 2^9
            self.depth -= 1
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
        return self._check(base**e)

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
        if _is_number(tok):
            return Fraction(tok)
        raise CalcError(f"unexpected {tok!r}")


def _evaluate(tokens: list[str]) -> Fraction:
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.peek() is not None:
        raise CalcError(f"unexpected {parser.peek()!r} after a complete expression")
    return value


def evaluate(text: str) -> Fraction:
    """The exact value of an arithmetic expression; CalcError for anything else."""
    return _evaluate(tokenize(text))


def format_value(value: Fraction) -> str:
    """The value as the calculator writes it: 7 -> '7', 1/3 -> '0.333333' (exact, six
    decimals rounded half to even, trailing zeros cut): a number the extractor reads back
    (answers are compared exactly, so a value with no finite decimal matches only a gold
    that the dataset itself rounded)."""
    if value.denominator == 1:
        return str(value.numerator)
    try:
        float(value)
    except OverflowError:
        raise CalcError("value too large to write with decimals") from None
    whole, frac = divmod(abs(round(value * 10**DECIMALS)), 10**DECIMALS)
    s = f"{whole}.{frac:0{DECIMALS}d}".rstrip("0").rstrip(".")
    return "-" + s if value < 0 and s != "0" else s


def calculate(text: str) -> str:
    """`evaluate` then `format_value`: '3 * (4 + 1)' -> '15'."""
    return format_value(evaluate(text))


def result_text(expression: str) -> str:
    """What to write after 'expression =': `calculate`'s value, in percent where every
    operand is a percent ('100% - 60%' -> '40%', as its writer would state it)."""
    tokens = tokenize(expression)
    value = _evaluate(tokens)
    return format_value(value * 100) + "%" if _percent_only(tokens) else format_value(value)


# --------------------------------------------------------------------------- equations in text

# A run of arithmetic: digits, operators, spaces, and the 'of' of '25% of 80'. Words,
# '=' and other prose end it.
_RUN = re.compile(r"(?:%\s*of\b|[0-9.,+\-*/^%()×÷−$\s])+")
_PROSE_BREAK = re.compile(r"[,.]\s")  # "so, 3 + 4", "is 6. 2 * 3": the arithmetic starts after it
_STATED = re.compile(r"\s*(-?\$?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?%?|-?\.[0-9]+%?)")

_Memo = dict[str, "tuple[list[str], Fraction] | None"]  # expression text -> `_read` of it


def is_arithmetic_run(text: str) -> bool:
    """Whether `text` is one run of arithmetic as `find_equations` reads them (digits, operators,
    spaces, '% of'), with no word, '=' or other prose in it."""
    return _RUN.fullmatch(text) is not None


def _wordy(c: str) -> bool:
    return c.isalnum() or c == "_"


def _read(expr: str, memo: _Memo) -> tuple[list[str], Fraction] | None:
    """(tokens, value) of a computation, None for anything else. Memoised per text: one run
    of arithmetic is often both the result of one '=' and the expression of the next."""
    if expr not in memo:
        try:
            tokens = tokenize(expr)
            memo[expr] = (tokens, _evaluate(tokens)) if _is_computation(tokens) else None
        except CalcError:
            memo[expr] = None
    return memo[expr]


def _after_unmatched_open(text: str, start: int, end: int) -> int:
    """Start after the rightmost '(' in text[start:end] that no ')' closes ('(half of 8 / 2')."""
    depth = 0
    for i in range(end - 1, start - 1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth == 0:
                return i + 1
            depth -= 1
    return start


def _is_sign(text: str, i: int) -> bool:
    """Whether the dash at text[i] is a minus sign: written against its number, not after a word."""
    return i + 1 < len(text) and text[i + 1] in _DIGITS + ".($" and not (i > 0 and _wordy(text[i - 1]))


def _expression_at(text: str, eq: int, run_start: int, memo: _Memo) -> tuple[str, list[str], Fraction] | None:
    """(expression, tokens, value) of the computation just before the '=' at text[eq], whose
    run of arithmetic starts at `run_start`; or None."""
    start = run_start
    for m in _PROSE_BREAK.finditer(text, max(start, eq - MAX_CHARS - 2), eq):
        start = m.end()
    if eq - start > MAX_CHARS:
        return None  # a cut run would misread its first number
    start = _after_unmatched_open(text, start, eq)
    while start < eq and (
        text[start].isspace() or text[start] in ",)" or (text[start] in "-−" and not _is_sign(text, start))
    ):
        start += 1
    if start == eq or text[start] in "+*/^×÷%":
        return None  # nothing, or an operation whose left operand is a word ('x * 2 + 3')
    if _is_number(text[start]) and start > 0 and _wordy(text[start - 1]):
        return None  # a number glued to a word or to a non-ASCII digit ('x2', '٣2')
    expr = text[start:eq].strip()
    found = _read(expr, memo)
    return (expr, *found) if found else None


def trailing_expression(text: str) -> str | None:
    """The arithmetic expression just before a final '=' in `text`, or None.

    'She has 3 + 4 * 2 =' -> '3 + 4 * 2'. Only computations count (see `_is_computation`:
    '5 =' and '25% =' are not). Prose before the arithmetic is cut off: an unmatched '(',
    text before ', ' or '. ', a prose dash ('Monday - 3 * 4 =' -> '3 * 4').
    """
    body = text.rstrip()
    if not body.endswith("="):
        return None
    eq = len(body) - 1
    start = eq
    for m in _RUN.finditer(body, max(0, eq - MAX_CHARS - 2), eq):
        if m.end() == eq:
            start = m.start()
    found = _expression_at(body, eq, start, {})
    return found[0] if found else None


@dataclass(frozen=True)
class Equation:
    """'expression = stated' in a text; `true_value` is the expression's exact value.

    `percent_points`: every operand is a percent, so a plain stated number may be in percent.
    """

    expression: str
    stated: str
    true_value: Fraction
    percent_points: bool = False

    @property
    def holds(self) -> bool:
        return stated_matches(self.stated, self.true_value, self.percent_points)


def _number_matches(number: str, true_value: Fraction, percent_points: bool) -> bool:
    """A number as written ('$1,000', '3.33', '40%') against the true value, to its precision."""
    s = number.replace("$", "").replace(",", "").strip()
    pct = s.endswith("%")
    s = s.rstrip("%")
    value = Fraction(s)  # safe: `_STATED` admits only ASCII digits, one sign and one point
    decimals = len(s.partition(".")[2])
    # Half a unit of the last written decimal; a whole number claims an exact value.
    tol = Fraction(1, 2 * 10**decimals) if decimals else Fraction(0)
    readings = [(value, tol)]
    if pct or percent_points:  # '50%' after '0.5 * 100' means 50; after '100% - 50%' it is 0.5
        readings.append((value / 100, tol / 100))
    return any(abs(v - true_value) <= t for v, t in readings)


def stated_matches(stated: str, true_value: Fraction, percent_points: bool = False) -> bool:
    """Whether a written result equals the true value, to the precision it is written in.

    '3.33' matches 10/3 (two decimals), '3' does not; '3/4' and '6 * 2' are computed. An
    expression also holds as a running computation whose first number is the result
    ('5 * 2' after '2 + 3'). A trailing % may be read as a percent or as a plain number
    ('0.5 * 100 = 50%'); with `percent_points` a plain number may be a percent too.
    """
    s = stated.strip()
    lead = _STATED.match(s)
    if lead is None:
        return False
    if lead.end() == len(s):
        return _number_matches(s, true_value, percent_points)
    computed = _read(s, {})
    return computed is not None and (
        computed[1] == true_value or _number_matches(lead.group(1), true_value, percent_points)
    )


def _stated_at(text: str, eq: int, run_end: int, memo: _Memo) -> tuple[str, int, bool] | None:
    """(stated, where it ends, whether it is a bare number) after the '=' at text[eq], whose
    run of arithmetic ends at `run_end`: the whole run up to a sentence break when it
    computes ('3/4', '5 * 2'), else its leading number; None when no number follows."""
    end = min(run_end, eq + 1 + MAX_CHARS)
    brk = _PROSE_BREAK.search(text, eq + 1, end)
    if brk:
        end = brk.start()
    lead = _STATED.match(text, eq + 1, end)
    if lead is None or (lead.end() < len(text) and text[lead.end()].isdigit()):
        return None  # no number, or one that runs on in non-ASCII digits
    while text[end - 1].isspace():
        end -= 1
    # Prose after the number ('= 12 + the tax') does not compute: the number is what is stated.
    if end > lead.end() and _read(rest := text[eq + 1 : end].strip(), memo):
        return rest, end, False
    return lead.group(1), lead.end(), True


def find_equations(text: str) -> list[Equation]:
    """Every 'expression = result' in `text` whose expression the calculator can read,
    and every further link of a chain ('3 * 4 = 12 = 13' gives 3 * 4 = 12 and 3 * 4 = 13).

    Linear in the length of the text: one pass finds the runs of arithmetic, and each '='
    reads at most MAX_CHARS of the runs either side.
    """
    runs = [m.span() for m in _RUN.finditer(text)]
    run_start = {end: start for start, end in runs}
    run_end = dict(runs)
    memo: _Memo = {}
    out: list[Equation] = []
    chain: Equation | None = None  # the last equation, while its result is a bare number
    chain_end = 0  # where that result ends
    for m in re.finditer("=", text):
        eq = m.start()
        right = _stated_at(text, eq, run_end.get(eq + 1, eq + 1), memo)
        found = _expression_at(text, eq, run_start.get(eq, eq), memo) if right else None
        if found is not None:
            expr, tokens, value = found
            equation = Equation(expr, right[0], value, _percent_only(tokens))
        elif right is not None and chain is not None and text[chain_end:eq].strip() == "":
            equation = replace(chain, stated=right[0])  # '= 12 = 13': 13 is claimed for the same value
        else:
            chain = None
            continue
        out.append(equation)
        chain, chain_end = (equation if right[2] else None), right[1]
    return out


def _signed_number(tokens: list[str]) -> Fraction | None:
    """The value of the tokens of '5' or '-5', None for anything else."""
    sign, rest = (-1, tokens[1:]) if tokens[:1] == ["-"] else (1, tokens)
    return sign * Fraction(rest[0]) if len(rest) == 1 and _is_number(rest[0]) else None


def binary_operation(expression: str) -> tuple[Fraction, str, Fraction] | None:
    """(left, operator, right) of an expression that is one + - * / on two numbers, each with
    an optional minus sign ('12 - 3', '-9 * 2', '7 × 5' -> '*'); None for anything else. A
    step checker reads the `find_equations` of a CoT with it, one operation per step."""
    try:
        tokens = tokenize(expression)
    except CalcError:
        return None
    for i in range(1, len(tokens) - 1):
        if tokens[i] in ("+", "-", "*", "/") and _is_number(tokens[i - 1]):
            left, right = _signed_number(tokens[:i]), _signed_number(tokens[i + 1 :])
            return None if left is None or right is None else (left, tokens[i], right)
    return None


def false_equations(text: str) -> list[Equation]:
    """The equations in `text` whose stated result is wrong."""
    return [e for e in find_equations(text) if not e.holds]
