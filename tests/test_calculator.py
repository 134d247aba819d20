"""The external calculator: the safe parser, equations in text, the CLI, and a fuzz test."""

import builtins
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cotdistill.calculator import (
    CalcError, calculate, evaluate, false_equations, find_equations, stated_matches, trailing_expression,
)

from .conftest import run_cmd, venv_bin

VALUES = [
    ("3 * (4 + 1)", "15"),
    ("42 - 65", "-23"),
    ("2^3^2", "512"),          # right-associative
    ("2 ** 10", "1024"),
    ("-2^2", "-4"),            # power binds tighter than unary minus
    ("(-2)^2", "4"),
    ("10 / 4", "2.5"),
    ("10 / 3", "3.333333"),
    ("50%", "0.5"),
    ("20% * 150", "30"),
    ("1,000 + 2,500.5", "3500.5"),
    ("$5 * 3", "15"),
    ("3 ÷ 4 × 2 − 1", "0.5"),
    (".5 + 1.", "1.5"),
    ("10^-2", "0.01"),
    ("  7  ", "7"),
    ("0.1 + 0.2", "0.3"),      # exact: no float error
]


@pytest.mark.parametrize("expr,value", VALUES)
def test_values(expr, value):
    assert calculate(expr) == value


ERRORS = [
    ("", "empty"),
    ("1 +", "ends too early"),
    ("(1 + 2", "ends too early"),
    ("1 + 2)", "unexpected ')'"),
    ("1 / 0", "division by zero"),
    ("0 ^ -1", "division by zero"),
    ("2 ^ 0.5", "whole-number powers"),
    ("2 ^ 65", "exponent larger than 64"),
    ("9999999999 ^ 64", "value too large"),
    ("1" * 300, "longer than 256"),
    ("(" * 40 + "1" + ")" * 40, "nesting deeper"),
    ("-" * 40 + "1", "nesting deeper"),
    ("2 x 3", "unexpected character 'x'"),
    ("__import__('os').system('true')", "unexpected character '_'"),
    ("1e5", "unexpected character 'e'"),
    ("3 4", "unexpected '4'"),
]


@pytest.mark.parametrize("expr,message", ERRORS)
def test_errors(expr, message):
    with pytest.raises(CalcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(expr)


@pytest.mark.parametrize("text,expr", [
    ("She has 3 + 4 * 2 =", "3 + 4 * 2"),
    ("so, 3 + 4 =", "3 + 4"),
    ("is 6. 2 * 3 = ", "2 * 3"),
    ("and (2 + 3) * 4 =", "(2 + 3) * 4"),
    ("He pays $5 * 3 =", "$5 * 3"),
    ("(half of 8 / 2 =", "8 / 2"),
    ("5 =", None),               # no computation
    ("apples =", None),
    ("3 + 4", None),             # no '='
    ("3 + 4 = 7", None),         # '=' not at the end
])
def test_trailing_expression(text, expr):
    assert trailing_expression(text) == expr


def test_equations_in_text():
    text = "He has 42 - 65 = 25 apples. Then 10 / 3 = 3.33 and 2 * 3 = 6. 0.5 * 100 = 50%. 7 * 3 = 20.6"
    eqs = find_equations(text)
    assert [(e.expression, e.stated, e.holds) for e in eqs] == [
        ("42 - 65", "25", False), ("10 / 3", "3.33", True), ("2 * 3", "6", True),
        ("0.5 * 100", "50%", True), ("7 * 3", "20.6", False)]
    assert [e.expression for e in false_equations(text)] == ["42 - 65", "7 * 3"]
    assert find_equations("The coin is heads up. The answer is yes.") == []
    assert stated_matches("$1,000", Fraction(1000)) and not stated_matches("3", Fraction(4))
    assert stated_matches("3.3", Fraction(10, 3)) and not stated_matches("3.4", Fraction(10, 3))


def test_cli_calc():
    ok = run_cmd([venv_bin("cotdistill"), "calc", "3 * (4 + 1)"], ".")
    assert ok.stdout.strip() == "15"
    neg = run_cmd([venv_bin("cotdistill"), "calc", "-3 + 4"], ".")
    assert neg.stdout.strip() == "1"
    bad = run_cmd([venv_bin("cotdistill"), "calc", "2 ^ 999"], ".", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot calculate '2 ^ 999': exponent larger")


# ---------------------------------------------------------------------------- fuzzing

_ARITH = st.text(alphabet="0123456789 .,+-*/^%()×÷−$=", max_size=80)
_NEAR = st.lists(st.sampled_from(["9", "99", "999999", "(", ")", "^", "**", "-", "+", "*", "/", "%", ".", ",",
                                  " ", "0", "1e9", "="]), max_size=60).map("".join)
_HOSTILE = st.sampled_from([
    "__import__('os').system('touch /tmp/cotdistill_pwned')", "open('/etc/passwd').read()",
    "exec('x=1')", "eval('1+1')", "(lambda: 1)()", "1;import os", "9**9**9**9", "2^2^2^2^2^2",
    "((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))",
]).flatmap(lambda s: st.tuples(st.just(s), st.text(max_size=10)).map("".join))
FUZZ = st.one_of(_ARITH, _NEAR, st.text(max_size=300), _HOSTILE)


@settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(FUZZ)
def test_fuzz_no_crash_no_hang_no_code_execution(text):
    start = time.perf_counter()
    try:
        v = evaluate(text)
        assert isinstance(v, Fraction)
    except CalcError:
        pass
    expr = trailing_expression(text + "=")
    if expr is not None:
        calculate(expr)  # whatever it finds, it can compute
    for eq in find_equations(text):
        assert isinstance(eq.holds, bool)
    assert time.perf_counter() - start < 1.0


def test_no_eval_or_exec(monkeypatch, tmp_path):
    """The calculator never reaches Python's evaluators, even on Python source."""
    def boom(*a, **k):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    marker = tmp_path / "pwned"
    for text in [f"__import__('pathlib').Path('{marker}').touch()", "1 + 1", f"open('{marker}', 'w')"]:
        try:
            evaluate(text)
        except CalcError:
            pass
    assert calculate("1 + 1") == "2" and not marker.exists()


def test_arithmetic_prompt_exemplars_have_true_equations():
    """The calculator reads the equations of every number dataset's exemplars, and they hold
    (so `filter.verify_equations` keeps CoTs written in the exemplars' style)."""
    from cotdistill.datasets import DATASETS
    from cotdistill.prompts import load_prompt_file, prompt_path

    checked = 0
    for name, spec in DATASETS.items():
        if spec.answer_type != "number" or not prompt_path(name).exists():
            continue
        for ex in load_prompt_file(prompt_path(name)).exemplars:
            eqs = find_equations(ex.rationale)
            assert eqs and all(e.holds for e in eqs), (name, ex.rationale)
            checked += 1
    assert checked >= 5
