"""The statistics under the report: the Wilson interval's edge case and exact McNemar at scale."""

import math
import random
import time
from fractions import Fraction
from types import SimpleNamespace

import pytest

from cotdistill.evaluate.evaluation import score
from cotdistill.report.reporting import accuracy_table, render_report
from cotdistill.report.stats import binomial_half_cdf, mcnemar_exact, wilson_interval
from cotdistill.study.seeds import incomplete_beta, paired_t_test

from .test_filter import YES_NO_RECS


def _exact_cdf(k: int, n: int) -> Fraction:
    return Fraction(sum(math.comb(n, j) for j in range(k + 1)), 2**n)


def test_binomial_tail_matches_exact_sums_for_small_n():
    """Against the exact sum of binomial coefficients, every k for n <= 120 and a sample up to 200."""
    rng = random.Random(0)
    cases = [(k, n) for n in range(121) for k in range(n + 1)]
    cases += [(rng.randint(0, n), n) for n in range(121, 201) for _ in range(10)]
    for k, n in cases:
        exact = _exact_cdf(k, n)
        assert abs(Fraction(binomial_half_cdf(k, n)) - exact) <= 1e-11 * exact, (k, n)


@pytest.mark.parametrize("k,n", [(480, 1000), (500, 1000), (2400, 5000), (2200, 5000)])
def test_binomial_tail_matches_exact_sums_for_larger_n(k, n):
    exact = _exact_cdf(k, n)
    assert abs(Fraction(binomial_half_cdf(k, n)) - exact) <= 1e-10 * exact


def test_binomial_tail_edges():
    assert binomial_half_cdf(0, 0) == 1.0 and binomial_half_cdf(5, 5) == 1.0 and binomial_half_cdf(-1, 5) == 0.0
    assert binomial_half_cdf(0, 40_000) == 0.0  # 2**-40000 underflows to zero: no error


@pytest.mark.parametrize("n", [10_000, 40_000])
def test_mcnemar_scales(n):
    """40,000 discordant pairs in well under a second (the comb sum took 167 s); the p-value is
    the known two-sided tail."""
    a = [True] * (n // 2 - 150) + [False] * (n // 2 + 150)
    b = [not x for x in a]
    start = time.perf_counter()
    t = mcnemar_exact(a, b)
    assert time.perf_counter() - start < 0.5
    assert (t["only_a"], t["only_b"]) == (n // 2 - 150, n // 2 + 150)
    # normal approximation with continuity correction, close enough at this n to check the scale
    z = 299 / math.sqrt(n)
    assert t["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.02)
    assert mcnemar_exact([True] * n, [False] * n)["p_value"] == 0.0
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_wilson_with_no_trials_is_the_whole_range():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_report_shows_an_empty_split_as_not_available():
    """A split with no questions shows 'n/a (n=0)', not '0.0 [0.0, 0.0]', and has no plot row."""
    _, empty = score([], [], "flexible")
    assert (empty["n"], empty["ci95_low"], empty["ci95_high"]) == (0, 0.0, 1.0)
    full = {"accuracy": 0.5, "n": 10, "correct": 5, "ci95_low": 0.24, "ci95_high": 0.76, "invalid_rate": 0.0}
    evals = [{"variant": "cot", "id": full, "ood": empty}]
    md = render_report(
        SimpleNamespace(dataset="d", model="m", teacher="t"),
        evals,
        {"kept": 1, "generations": 1, "keep_rate": 1.0, "dropped_by_reason": {}},
    )
    assert "| d | cot | 10/0 | 50.0 [24.0, 76.0] | n/a (n=0) |" in md
    assert [r["split"] for r in accuracy_table(evals)] == ["id"]


def test_wilson_and_score():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing known: the whole range
    preds, m = score(YES_NO_RECS, ["The answer is yes.", "yes", "maybe"], "flexible")
    assert m["correct"] == 1 and m["n"] == 3 and m["invalid_rate"] == pytest.approx(0.3333)
    assert [p["correct"] for p in preds] == [True, False, False]


def test_paired_t_test_matches_known_values():
    # scipy.stats.ttest_1samp([1, 1, 3], 0).pvalue = 0.12961172022151082 (t = 2.5, df = 2)
    t = paired_t_test([1, 1, 3])
    assert (t["n"], t["df"], t["t"]) == (3, 2, pytest.approx(2.5))
    assert t["p_value"] == pytest.approx(0.12961172022151082, rel=1e-12)
    # df = 1 is the Cauchy distribution: P(|T| > 1) = 1/2 exactly
    assert paired_t_test([0.0, 2.0])["p_value"] == pytest.approx(0.5, rel=1e-12)
    assert incomplete_beta(0.5, 0.5, 0.5) == pytest.approx(0.5, rel=1e-12)  # symmetric
    # large df: the t distribution becomes the normal one
    diffs = [1.0, -1.0] * 2000 + [0.1]
    t = paired_t_test(diffs)
    assert t["p_value"] == pytest.approx(math.erfc(abs(t["t"]) / math.sqrt(2)), rel=1e-3)


def test_paired_t_test_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(300):
        diffs = [rng.gauss(rng.uniform(-1, 1), rng.uniform(0.1, 2)) for _ in range(rng.randint(2, 12))]
        assert paired_t_test(diffs)["p_value"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue, rel=1e-9)


def test_paired_t_test_edges():
    with pytest.raises(ValueError, match="2 or more seeds"):
        paired_t_test([0.1])
    # no spread to measure the difference against: no p-value rather than a certain one
    assert paired_t_test([0.1, 0.1, 0.1])["p_value"] is None and paired_t_test([0.0, 0.0])["t"] is None
