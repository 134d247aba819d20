"""The test across seeds: a paired t-test of per-seed differences, with the regularized
incomplete beta function that gives its p-value. Only the study reads it; it lives apart from
report/stats.py, which the evaluate and report stages load, so that adding to it reruns no
stage."""

from __future__ import annotations

import math


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz),
    valid and fast for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def paired_t_test(diffs: list[float]) -> dict:
    """Two-sided one-sample t-test that the mean of `diffs` is 0: here the per-seed accuracy
    differences of two students, so that seed-to-seed variation (data, initialisation,
    order) is the noise the difference is measured against. Needs 2 or more differences.
    Differences that are all equal have no spread to measure against: t and p are None
    (the test says nothing), as they are for n < 2 in the callers."""
    n = len(diffs)
    if n < 2:
        raise ValueError(f"a t-test across seeds needs 2 or more seeds, got {n}")
    mean = sum(diffs) / n
    df = n - 1
    if len(set(diffs)) == 1:
        return {"n": n, "mean": mean, "t": None, "df": df, "p_value": None}
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    p = incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return {"n": n, "mean": mean, "t": t, "df": df, "p_value": min(1.0, p)}
