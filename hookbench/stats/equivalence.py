"""Do two runs of the same job agree? A difference test and an equivalence test (TOST) on one SE.

Per item the difference between the two runs (of their deltas, or of one arm's score); its mean
with a CR1 cluster-robust SE clustered by query (statsmodels OLS on a constant, cov_type="cluster",
t with G−1 df; with one item per cluster this is the paired t). The runs *differ* when the
two-sided (1−α) interval excludes 0; they are *equivalent* when the (1−2α) interval lies inside
±margin, the interval form of TOST (Schuirmann 1987). Equivalent takes precedence: a difference
that is detectable but inside the margin still reproduces. Neither: inconclusive (too few items).
With no spread at all the SE assumes one cluster differed by 1 (the floor the MDE uses), so six
identical items are not proof of anything while a thousand are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy.stats import t as t_dist

from hookbench.base.outcomes import Agreement

AGREES, DISAGREES, INCONCLUSIVE = Agreement.AGREES, Agreement.DISAGREES, Agreement.INCONCLUSIVE


@dataclass(frozen=True)
class Equivalence:
    """One comparison of two runs: difference, its intervals, both tests and the outcome."""

    what: str  # "delta", "baseline", "patched"
    n: int
    n_clusters: int
    difference: float
    se: float
    df: int
    p_difference: float
    p_equivalence: float  # TOST: max of the two one-sided p's
    ci_low: float  # (1 − α)
    ci_high: float
    tost_low: float  # (1 − 2α)
    tost_high: float
    margin: float
    alpha: float
    outcome: str  # agrees | disagrees | inconclusive


def equivalence(diffs, groups, margin: float, alpha: float = 0.05, what: str = "delta") -> Equivalence:
    """Difference test and TOST at ±margin for the mean of `diffs` (run A − run B per item)."""
    e, g = np.asarray(diffs, float), np.asarray(groups, int)
    n, n_clusters = len(e), len(np.unique(g))
    nan = math.nan
    if n_clusters < 2:
        return Equivalence(what, n, n_clusters, float(e.mean()) if n else nan, nan, 0, nan, nan,
                           nan, nan, nan, nan, margin, alpha, INCONCLUSIVE)
    fit = sm.OLS(e, np.ones(n)).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    mean, se, df = float(fit.params[0]), float(fit.bse[0]), n_clusters - 1
    if not se > 1e-12:  # no spread (e.g. every answer identical): assume one cluster differed by 1
        se = float(np.r_[1.0, np.zeros(n_clusters - 1)].std(ddof=1)) * math.sqrt(n_clusters) / n
    p_diff = float(2 * t_dist.sf(abs(mean) / se, df))
    p_eq = float(max(t_dist.sf((mean + margin) / se, df), t_dist.cdf((mean - margin) / se, df)))
    low, high = mean + np.array([-1, 1]) * t_dist.ppf(1 - alpha / 2, df) * se
    tlow, thigh = mean + np.array([-1, 1]) * t_dist.ppf(1 - alpha, df) * se
    equivalent = -margin < tlow and thigh < margin  # the interval form of TOST: p_eq < alpha
    differs = p_diff < alpha
    outcome = AGREES if equivalent else DISAGREES if differs else INCONCLUSIVE
    return Equivalence(what, n, n_clusters, mean, se, df, p_diff, p_eq, float(low), float(high),
                       float(tlow), float(thigh), margin, alpha, outcome)
