"""Non-inferiority of a guard task: did the patch keep its accuracy within `margin` of the baseline?

H₀: δ ≤ −margin against H₁: δ > −margin, one-sided at α: the same score statistic as the job's own
paired test (`score`: Tango's for 0/1 scores with one draw, the cluster score test otherwise),
evaluated at δ₀ = −margin instead of 0. Its interval form is the (1 − 2α) two-sided interval that
inverts the same statistic: non-inferior exactly when that interval's lower end lies above −margin
(the p of the one-sided test is then below α). A guard that is not non-inferior but whose two-sided
paired test at α calls a decrease *hurts*; else it is *inconclusive*. Non-inferior takes precedence:
a detectable drop smaller than the margin is what the margin allows.

A family of guards is judged by intersection–union: "every guard non-inferior" holds only when each
one-sided test rejects at α, which keeps the family's error at α with no adjustment (Berger 1982).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from scipy.stats import t as t_dist

from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.stats.score import Sufficient, binary_z, cluster_z, paired_binary, paired_mean

DEFAULT_MARGIN = 0.05  # conf/config.yaml guard.margin; see docs/guards.md for why


@dataclass(frozen=True)
class NonInferiority:
    """One guard's test: its delta, the (1 − 2α) interval, the one-sided p at −margin and the verdict."""

    delta: float
    ci_low: float  # (1 − 2α) interval, inverting the same statistic
    ci_high: float
    p_value: float  # one-sided, H₀: δ ≤ −margin
    margin: float
    alpha: float
    verdict: GuardVerdict


def ni_p_value(d: np.ndarray, groups: np.ndarray, margin: float, binary: bool) -> float:
    """One-sided p of H₀: δ ≤ −margin from the paired score statistic at δ₀ = −margin."""
    s = Sufficient.of(d, groups)
    if binary:
        return float(norm.sf(binary_z(s, np.array([-margin]))[0]))
    if s.n_clusters < 2:
        return math.nan
    return float(t_dist.sf(cluster_z(s, np.array([-margin]))[0], s.n_clusters - 1))


def non_inferiority(d, groups, margin: float, alpha: float, binary: bool, paired_verdict: Verdict,
                    bounded: bool = True) -> NonInferiority:
    """The guard's non-inferiority verdict; `paired_verdict` is its own two-sided test's (compare_arms)."""
    d, g = np.asarray(d, float), np.asarray(groups, int)
    nan = math.nan
    if len(d) == 0:
        return NonInferiority(nan, nan, nan, nan, margin, alpha, GuardVerdict.NO_DATA)
    score = paired_binary(d, g, 2 * alpha) if binary else paired_mean(d, g, 2 * alpha, bounded)
    p = ni_p_value(d, g, margin, binary)
    low = -1.0 if binary and math.isnan(score.ci_low) else score.ci_low
    if low > -margin:
        verdict = GuardVerdict.NON_INFERIOR
    elif paired_verdict == Verdict.HURTS:
        verdict = GuardVerdict.HURTS
    else:
        verdict = GuardVerdict.INCONCLUSIVE
    return NonInferiority(float(d.mean()), float(score.ci_low), float(score.ci_high), p, margin, alpha, verdict)
