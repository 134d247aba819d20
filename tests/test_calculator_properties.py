"""The calculator against exact Fraction arithmetic on generated expressions.

An expression is generated as a tree, written out as text the way a model might write it
(spaces or none, ^ or **, × ÷ −, $ signs, thousands commas, redundant parentheses), and
read back by the calculator. A reference evaluator computes the tree with Fraction and
the limits calculator.py documents (length, nesting, exponent and value size); the
calculator must give the same value, or a CalcError exactly where a limit is passed,
and never anything else. Formatting is checked against `decimal` at high precision.
"""

import heapq
import random
import time
import timeit
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotdistill.text.calculator import MAX_BITS, MAX_CHARS, MAX_DEPTH, MAX_EXPONENT, CalcError, calculate, evaluate

# Precedence levels of the calculator's grammar: what a child needs to be written bare.
LEVEL = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "pos": 3, "^": 4, "pct": 5, "num": 6, "paren": 6}
SPELLINGS = {"+": ["+"], "-": ["-", "−"], "*": ["*", "×"], "/": ["/", "÷"], "^": ["^", "**"]}


class Rejected(Exception):
    """A limit of the calculator is passed: it must raise CalcError."""


# ------------------------------------------------------------------------- trees and text


def number(rng: random.Random):
    """A number node: (kind, text, value), ints and decimals from tiny to 40 digits."""
    r = rng.random()
    if r < 0.5:
        n = rng.randint(0, 20)
    elif r < 0.8:
        n = rng.randint(0, 10**6)
    elif r < 0.9:
        n = rng.choice([2**64, 10**20, 99999, 2**32, 10**9 + 7])
    else:
        n = rng.randint(0, 10 ** rng.randint(7, 40))
    if rng.random() < 0.3:  # a decimal
        digits = str(rng.randint(0, 10 ** rng.randint(1, 6)))
        text = f"{n}.{digits}" if n or rng.random() < 0.5 else f".{digits}"
        value = Fraction(f"0.{digits}") + n
    else:
        text, value = (f"{n:,}" if n >= 1000 and rng.random() < 0.3 else str(n)), Fraction(n)
    if rng.random() < 0.1:
        text = "$" + text
    return ("num", text, value)


def tree(rng: random.Random, depth: int):
    """A random expression tree; powers get small, large and negative exponents."""
    if depth <= 0 or rng.random() < 0.25:
        return number(rng)
    r = rng.random()
    if r < 0.08:
        return ("neg", tree(rng, depth - 1))
    if r < 0.1:
        return ("pos", tree(rng, depth - 1))
    if r < 0.16:
        return ("pct", tree(rng, depth - 1))
    if r < 0.22:
        return ("paren", tree(rng, depth - 1))
    if r < 0.32:
        exponent = ("num", str(e := rng.choice([0, 1, 2, 3, 5, 17, 33, 64, 65, 70])), Fraction(e))
        if rng.random() < 0.2:
            exponent = ("neg", exponent)
        return ("^", tree(rng, depth - 1), exponent if rng.random() < 0.7 else tree(rng, 1))
    if r < 0.34:  # two powers each within the limits, whose product or sum may not be
        big = ("num", str(b := rng.choice([2**64, 10**19, 3**40])), Fraction(b))
        e = ("num", str(k := rng.randint(10, 31)), Fraction(k))
        return (rng.choice("*/+"), ("^", big, e), ("^", big, e))
    if r < 0.4:  # a long flat sum or product: long inputs
        node = number(rng)
        for _ in range(rng.randint(5, 60)):
            node = (rng.choice("+-*"), node, number(rng))
        return node
    return (rng.choice("+-*/"), tree(rng, depth - 1), tree(rng, depth - 1))


def render(node, rng: random.Random) -> tuple[str, int]:
    """(text, nesting): the text reads back as `node`; nesting counts what the parser's
    depth limit counts (parentheses, signs, exponents)."""

    def child(c, min_level: int) -> tuple[str, int]:
        text, depth = render(c, rng)
        if LEVEL[c[0]] < min_level:
            return f"({text})", depth + 1
        return text, depth

    sp = " " if rng.random() < 0.5 else ""
    kind = node[0]
    if kind == "num":
        return node[1], 0
    if kind == "paren":
        text, depth = render(node[1], rng)
        return f"({sp}{text}{sp})", depth + 1
    if kind in ("neg", "pos"):
        text, depth = child(node[1], 3)
        return ("+" if kind == "pos" else rng.choice(SPELLINGS["-"])) + text, depth + 1
    if kind == "pct":
        text, depth = child(node[1], 5)
        return text + "%", depth
    op = rng.choice(SPELLINGS[kind])
    if kind == "^":
        (left, dl), (right, dr) = child(node[1], 5), child(node[2], 3)
        return f"{left}{sp}{op}{sp}{right}", max(dl, dr + 1)
    (left, dl), (right, dr) = child(node[1], LEVEL[kind]), child(node[2], LEVEL[kind] + 1)
    return f"{left}{sp}{op}{sp}{right}", max(dl, dr)


def _bits(v: Fraction) -> int:
    return max(v.numerator.bit_length(), v.denominator.bit_length())


def reference(node) -> Fraction:
    """The tree's exact value under the calculator's documented limits."""
    kind = node[0]
    if kind == "num":
        v = node[2]
    elif kind in ("paren", "pos"):
        v = reference(node[1])
    elif kind == "neg":
        v = -reference(node[1])
    elif kind == "pct":
        v = reference(node[1]) / 100
    else:
        a, b = reference(node[1]), reference(node[2])
        if kind == "/" and b == 0:
            raise Rejected("division by zero")
        if kind == "^":
            if b.denominator != 1 or abs(b) > MAX_EXPONENT or (a == 0 and b < 0) or _bits(a) * abs(b) > MAX_BITS:
                raise Rejected("power")
            v = a ** int(b)
        else:
            v = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[kind]
    if _bits(v) > MAX_BITS:
        raise Rejected("value too large")
    return v


FLOAT_OVERFLOW = Fraction(2**1024 - 2**970)  # float() of anything this large overflows


def reference_text(v: Fraction) -> str:
    """Six decimals, half to even, by `decimal` at a precision where no rounding is in doubt."""
    if v.denominator == 1:
        return str(v.numerator)
    if abs(v) >= FLOAT_OVERFLOW:
        raise Rejected("too large to write with decimals")
    with localcontext() as ctx:
        ctx.prec = 3000
        d = (Decimal(v.numerator) / Decimal(v.denominator)).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
    s = format(d, "f").rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def expected(node, text: str, depth: int) -> tuple[Fraction | None, str | None]:
    """(value, written value), None where the calculator must raise CalcError."""
    if len(text) > MAX_CHARS or depth + 1 > MAX_DEPTH:
        return None, None
    try:
        v = reference(node)
    except Rejected:
        return None, None
    try:
        return v, reference_text(v)
    except Rejected:
        return v, None


def both(text: str) -> tuple[Fraction | None, str | None]:
    """What `evaluate` and `calculate` give for `text` (None: a CalcError)."""
    try:
        got = evaluate(text)
    except CalcError:
        got = None
    try:
        got_text = calculate(text)
    except CalcError:
        got_text = None
    return got, got_text


def check(node, text: str, depth: int) -> tuple[bool, float]:
    """Assert the calculator agrees on `text`; (whether it had a value, seconds taken)."""
    value, written = expected(node, text, depth)
    start = time.perf_counter()
    got, got_text = both(text)
    took = time.perf_counter() - start
    assert got == value, (text, got, value)
    assert got_text == written, (text, got_text, written)
    return value is not None, took


def run_generated(n: int, seed: int, retime: int = 20) -> tuple[int, float]:
    """(expressions with a value, seconds the slowest one takes). The `retime` slowest
    are timed again, best of 5, so that a pause of the process (a garbage collection, the
    other test worker) is not taken for the calculator's own cost."""
    rng = random.Random(seed)
    accepted, slow = 0, []  # heap of the `retime` slowest (seconds, text)
    for _ in range(n):
        node = tree(rng, rng.randint(0, 6))
        text, depth = render(node, rng)
        ok, took = check(node, text, depth)
        accepted += ok
        (heapq.heappush if len(slow) < retime else heapq.heappushpop)(slow, (took, text))
    return accepted, max(min(timeit.repeat(partial(both, t), number=1, repeat=5)) for _, t in slow)


def test_generated_expressions_agree_with_fractions():
    """5,000 generated expressions in the quick suite (the slow test runs 100,000)."""
    accepted, slowest = run_generated(5_000, seed=1)
    assert 0.3 < accepted / 5_000 < 0.95  # both values and limit errors are exercised
    assert slowest < 0.05


@pytest.mark.slow
def test_100k_generated_expressions_agree_with_fractions():
    accepted, slowest = run_generated(100_000, seed=2)
    assert 0.3 < accepted / 100_000 < 0.95
    assert slowest < 0.05  # each expression, however large, well inside the calculator's deadline


def test_reference_catches_each_limit():
    """The generator reaches every limit the calculator has, so the agreement means something."""
    rng = random.Random(3)
    reasons = set()
    for _ in range(3_000):
        node = tree(rng, rng.randint(0, 6))
        text, depth = render(node, rng)
        if len(text) > MAX_CHARS:
            reasons.add("length")
            continue
        try:
            reference_text(reference(node))
        except Rejected as exc:
            reasons.add(str(exc))
    assert {"length", "division by zero", "power", "value too large", "too large to write with decimals"} <= reasons


# ----------------------------------------------------------------- hypothesis (shrinks on failure)

_num = st.one_of(st.integers(0, 10**6), st.sampled_from([2**64, 10**20, 0, 1])).map(
    lambda n: ("num", str(n), Fraction(n))
)
_dec = st.tuples(st.integers(0, 999), st.integers(1, 99999)).map(
    lambda p: ("num", f"{p[0]}.{p[1]}", Fraction(f"{p[0]}.{p[1]}"))
)
_exp = st.integers(-3, 70).map(
    lambda e: ("num", str(e), Fraction(e)) if e >= 0 else ("neg", ("num", str(-e), Fraction(-e)))
)
_trees = st.recursive(
    st.one_of(_num, _dec),
    lambda sub: st.one_of(
        st.tuples(st.sampled_from("+-*/"), sub, sub),
        st.tuples(st.just("^"), sub, _exp),
        st.tuples(st.sampled_from(["neg", "pct", "paren"]), sub),
    ),
    max_leaves=24,
)


@settings(max_examples=1_500, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_trees, st.integers(0, 2**32))
def test_hypothesis_trees_agree_with_fractions(node, seed):
    text, depth = render(node, random.Random(seed))
    check(node, text, depth)
