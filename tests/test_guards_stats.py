"""Non-inferiority of a guard task: the paired score test shifted to −margin, checked against
statsmodels/scipy, its interval agreeing with its verdict, and its size measured by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.contingency_tables import mcnemar

from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.stats.coverage import non_inferiority_size
from hookbench.stats.noninferiority import non_inferiority


def pairs(fixed: int, broken: int, tied: int) -> np.ndarray:
    return np.r_[np.ones(fixed), -np.ones(broken), np.zeros(tied)]


def test_at_a_vanishing_margin_it_is_one_sided_mcnemar_between_statsmodels_two_corrections():
    """At δ₀ → 0 Tango's statistic is McNemar's with a ½ correction on f − b: its one-sided p lies between
    half of statsmodels' uncorrected and half of its Edwards-corrected (1 on f − b) McNemar p."""
    d = pairs(14, 5, 81)
    ni = non_inferiority(d, np.arange(len(d)), 1e-12, 0.05, True, Verdict.NO_DETECTABLE_CHANGE)
    plain = mcnemar([[40, 14], [5, 41]], exact=False, correction=False).pvalue / 2
    edwards = mcnemar([[40, 14], [5, 41]], exact=False, correction=True).pvalue / 2
    assert plain < ni.p_value < edwards
    assert ni.p_value == pytest.approx(norm.sf((14 - 5 - 0.5) / np.sqrt(19)), rel=1e-6)


@pytest.mark.parametrize("counts", [(3, 4, 193), (2, 9, 189), (10, 30, 60), (0, 0, 300), (1, 0, 40)])
def test_the_interval_shown_agrees_with_the_verdict_and_the_one_sided_p(counts):
    d = pairs(*counts)
    for margin in (0.01, 0.02, 0.05, 0.1):
        ni = non_inferiority(d, np.arange(len(d)), margin, 0.05, True, Verdict.NO_DETECTABLE_CHANGE)
        assert (ni.ci_low > -margin) == (ni.p_value < 0.05) == (ni.verdict == GuardVerdict.NON_INFERIOR)
        assert ni.ci_low <= ni.delta <= ni.ci_high


def test_a_detected_decrease_outside_the_margin_hurts_and_one_inside_it_is_non_inferior():
    d = pairs(2, 40, 958)  # −0.038, clearly below 0
    assert non_inferiority(d, np.arange(len(d)), 0.01, 0.05, True, Verdict.HURTS).verdict == GuardVerdict.HURTS
    assert non_inferiority(d, np.arange(len(d)), 0.1, 0.05, True, Verdict.HURTS).verdict == GuardVerdict.NON_INFERIOR


def test_the_one_sided_p_is_the_normal_tail_of_the_score_statistic_at_minus_margin():
    d = pairs(5, 9, 186)  # Tango's statistic at −0.05 by hand, with the ½ continuity correction
    n, f, b, d0 = 200, 5, 9, -0.05
    a_, b_, c_ = 2 * n, -f - b + (2 * n - f + b) * d0, -b * d0 * (1 - d0)
    q = (np.sqrt(b_ * b_ - 4 * a_ * c_) - b_) / (2 * a_)
    z = (f - b - n * d0 - 0.5) / np.sqrt(n * (2 * q + d0 * (1 - d0)))
    ni = non_inferiority(d, np.arange(n), 0.05, 0.05, True, Verdict.NO_DETECTABLE_CHANGE)
    assert ni.p_value == pytest.approx(norm.sf(z), rel=1e-9)


@pytest.mark.parametrize("n, psi", [(100, 0.1), (400, 0.2)])
def test_the_size_at_the_margin_stays_at_alpha_or_below(n, psi):
    size, se = non_inferiority_size(n, psi, margin=0.05, reps=600, alpha=0.05)
    assert size <= 0.05 + 3 * se, f"rejections {size:.3f} ± {se:.3f} at the null boundary"
