"""Exact McNemar test with the interval that inverts it, for one 0/1 score per item and cluster.

Conditional on the m = fixed + broken discordant pairs, fixed ~ Binomial(m, π) and the delta is
(m/n)·(2π − 1). The exact McNemar p (statsmodels, = 2·min binomial tail) and the Clopper–Pearson
interval for π (inverting the same two one-sided binomial tests at α/2) therefore agree: the
mapped interval excludes 0 exactly when p < α. The interval is read from its closed form in beta
quantiles (Clopper & Pearson 1934), which is what scipy's binomtest(...).proportion_ci(method=
"exact") solves for numerically (tests check they agree); the closed form is ~100x faster.
"""

from __future__ import annotations

import math

from scipy.stats import beta
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_interval(fixed: int, broken: int, n: int, alpha: float) -> tuple[float, float, float]:
    """(p, low, high): exact two-sided McNemar p and the conditional exact (1−α) interval of the
    paired delta. No discordant pair: p = 1 and no interval (NaN), "no change observed"."""
    m = fixed + broken
    if m == 0:
        return 1.0, math.nan, math.nan
    p = float(mcnemar([[0, fixed], [broken, 0]], exact=True).pvalue)
    low, high = clopper_pearson(fixed, m, alpha)
    share = m / n
    return p, share * (2 * low - 1), share * (2 * high - 1)


def clopper_pearson(x: int, m: int, alpha: float) -> tuple[float, float]:
    """Exact (1−α) interval for a binomial proportion from x of m: beta quantiles at α/2."""
    low = float(beta.ppf(alpha / 2, x, m - x + 1)) if x > 0 else 0.0
    high = float(beta.ppf(1 - alpha / 2, x + 1, m - x)) if x < m else 1.0
    return low, high
