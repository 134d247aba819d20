"""Statistics of accuracies: Wilson intervals, the exact McNemar test of paired outcomes,
and the paired t-test of per-seed differences."""

from __future__ import annotations

import math


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials.

    With n = 0 nothing is known: the interval is the whole range, (0, 1).
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_half_cdf(k: int, n: int) -> float:
    """P[X <= k] for X ~ Binomial(n, 1/2), in O(k) float steps at most.

    Summing math.comb(n, j) / 2**n is exact but its cost grows steeply with n (167 s at
    n = 40,000). Here the largest term, C(n, k) / 2**n, is taken in log space (lgamma), and
    the others follow from it by the ratio C(n, j-1) / C(n, j) = j / (n - j + 1), summed
    downwards until they no longer change the sum: no huge integer and no underflow
    before the final multiplication (relative error about 1e-12 at n = 40,000).
    """
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    total = term = 1.0
    for j in range(k, 0, -1):
        term *= j / (n - j + 1)
        total += term
        if term < 1e-17 * total:
            break
    return min(1.0, math.exp(log_top + math.log(total)))


def mcnemar_exact(a_correct: list[bool], b_correct: list[bool]) -> dict:
    """Exact (binomial) McNemar test on paired outcomes of two systems on the same items.

    b = items only A gets right, c = items only B gets right; under the null hypothesis
    that both are equally accurate each discordant item is a fair coin, so the two-sided
    p-value is min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)]).
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired test needs equal lengths, got {len(a_correct)} and {len(b_correct)}")
    b = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    c = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    p = min(1.0, 2 * binomial_half_cdf(min(b, c), b + c))
    return {"n": len(a_correct), "only_a": b, "only_b": c, "p_value": p}


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
