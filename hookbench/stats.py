"""Paired statistics: the patched-minus-baseline difference is measured on the same items."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sp_stats


@dataclass(frozen=True)
class PairedDelta:
    delta: float
    ci_low: float
    ci_high: float
    n: int


def paired_delta_ci(baseline: list[float], patched: list[float], level: float = 0.95) -> PairedDelta:
    """Mean of per-item (patched - baseline) with a t-interval on the paired differences.

    Paired, because both arms score the same items: the item-to-item variance cancels, which is
    what makes a small delta detectable at all. With n < 2 the interval is undefined (NaN).
    """
    if len(baseline) != len(patched):
        raise ValueError("paired samples must have equal length")
    n = len(baseline)
    if n == 0:
        return PairedDelta(math.nan, math.nan, math.nan, 0)
    diffs = [p - b for b, p in zip(baseline, patched)]
    mean = sum(diffs) / n
    if n < 2:
        return PairedDelta(mean, math.nan, math.nan, n)
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = sp_stats.t.ppf(0.5 + level / 2, n - 1) * math.sqrt(var / n)
    return PairedDelta(mean, mean - half, mean + half, n)


def p95(values: list[float]) -> float:
    """95th percentile (linear interpolation); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * 0.95
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
