"""Exact McNemar test with the interval that inverts it, for one 0/1 score per item and cluster.

Conditional on the m = fixed + broken discordant pairs, fixed ~ Binomial(m, π) and the delta is
(m/n)·(2π − 1). The exact McNemar p (statsmodels, = 2·min binomial tail) and the Clopper–Pearson
interval for π (scipy, inverting the same two one-sided binomial tests at α/2) therefore agree:
the mapped interval excludes 0 exactly when p < α.
"""

from __future__ import annotations

import math

from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_interval(fixed: int, broken: int, n: int, alpha: float) -> tuple[float, float, float]:
    """(p, low, high): exact two-sided McNemar p and the conditional exact (1−α) interval of the
    paired delta. No discordant pair: p = 1 and no interval (NaN), "no change observed"."""
    m = fixed + broken
    if m == 0:
        return 1.0, math.nan, math.nan
    p = float(mcnemar([[0, fixed], [broken, 0]], exact=True).pvalue)
    ci = binomtest(fixed, m).proportion_ci(confidence_level=1 - alpha, method="exact")
    share = m / n
    return p, share * (2 * ci.low - 1), share * (2 * ci.high - 1)
