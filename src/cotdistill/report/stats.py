"""Statistics of accuracies: Wilson intervals and the exact McNemar test of paired outcomes."""

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


def rate_text(k: int, n: int) -> str:
    """k of n as '12.5 [10.1, 15.3]': the rate in % with its 95% Wilson interval."""
    return f"{100 * k / n:.1f} [{interval_text(k, n)}]" if n else "n/a (n=0)"


def interval_text(k: int, n: int) -> str:
    """The 95% Wilson interval of k of n in %, as '10.1, 15.3'."""
    lo, hi = wilson_interval(k, n)
    return f"{100 * lo:.1f}, {100 * hi:.1f}"


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
