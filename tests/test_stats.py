"""The verdict's numbers, checked against statsmodels/scipy on fixed tables and by hand."""

import math

import numpy as np
import pytest
from scipy import stats as sp_stats
from scipy.optimize import brentq, minimize_scalar
from scipy.special import xlogy
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from hookbench.base.errors import ConfigError, DataError
from hookbench.reports.formatting import comparison_sentence
from hookbench.stats import adjust_p_values, adjusted_verdict, compare_arms
from hookbench.stats.score import tango_z


def arms_from_table(both_wrong, fixed, broken, both_right):
    """Per-item 0/1 scores (baseline, patched) that make the given 2x2 table."""
    pairs = [(0, 0)] * both_wrong + [(0, 1)] * fixed + [(1, 0)] * broken + [(1, 1)] * both_right
    return [b for b, _ in pairs], [p for _, p in pairs]


def tango_by_likelihood(fixed, broken, n, d0, continuity=0.5):
    """Tango's statistic with the broken share under H0 found by maximising the multinomial
    likelihood numerically (not the closed form the package uses)."""
    if fixed + broken == 0 and d0 == 0:
        return 0.0
    lo, hi = max(0.0, -d0) + 1e-12, (1 - d0) / 2 - 1e-12

    def neg_loglik(q):
        return -(xlogy(fixed, q + d0) + xlogy(broken, q) + xlogy(n - fixed - broken, 1 - 2 * q - d0))
    q = minimize_scalar(neg_loglik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    num = fixed - broken - n * d0
    num = math.copysign(max(abs(num) - continuity, 0.0), num)
    return num / math.sqrt(n * (2 * q + d0 * (1 - d0)))


def interval_by_scan(stat, crit, estimate):
    """Ends of {d0: |stat(d0)| <= crit} around the estimate, by brentq on the scanned crossings."""
    ends = []
    for limit in (-1 + 1e-9, 1 - 1e-9):
        grid = np.linspace(estimate, limit, 4001)
        values = np.array([abs(stat(x)) for x in grid])
        k = int(np.argmax(values > crit))
        ends.append(brentq(lambda x: abs(stat(x)) - crit, grid[k - 1], grid[k]) if values[k] > crit else limit)
    return ends


def test_tangos_score_test_on_a_fixed_table_is_mcnemars_asymptotic_test_at_zero():
    baseline, patched = arms_from_table(both_wrong=50, fixed=14, broken=2, both_right=34)
    c = compare_arms(baseline, patched)

    assert (c.n, c.n_clusters, c.fixed, c.broken, c.both_right, c.both_wrong) == (100, 100, 14, 2, 34, 50)
    assert c.delta == pytest.approx(0.12)
    # without the continuity correction Tango's statistic at 0 is McNemar's asymptotic chi-square
    assert float(tango_z(14, 2, 100, 0.0, continuity=0.0)) ** 2 == pytest.approx(
        mcnemar([[50, 14], [2, 34]], exact=False, correction=False).statistic, rel=1e-12)
    # with it: (|f - b| - 1/2) / sqrt(f + b), two-sided normal p
    assert c.p_value == pytest.approx(2 * sp_stats.norm.sf((12 - 0.5) / math.sqrt(16)), rel=1e-12)
    assert c.test == "Tango score test (continuity-corrected) on 14 fixed / 2 broken of 100 pairs"
    assert c.interval == "for the paired difference (patched − baseline), inverting the same score test (Tango 1998)"
    assert c.verdict == "improves" and 0 < c.ci_low < c.delta < c.ci_high
    assert comparison_sentence(c).startswith("improves: +0.120 95% [")
    assert "Tango score test, 14 fixed / 2 broken" in comparison_sentence(c)


def test_the_closed_form_constrained_mle_is_the_likelihood_maximum():
    for fixed, broken, n in [(9, 20, 200), (14, 2, 100), (0, 3, 10), (5, 0, 20), (40, 20, 160), (1, 7, 21)]:
        for d0 in (-0.6, -0.2, -0.01, 0.0, 0.05, 0.3, 0.7):
            assert float(tango_z(fixed, broken, n, d0)) == pytest.approx(
                tango_by_likelihood(fixed, broken, n, d0), rel=1e-6, abs=1e-9), (fixed, broken, n, d0)


def test_the_default_runs_table_gets_tangos_interval_found_independently():
    # 9 fixed / 20 broken of n = 200 (the default run): the interval is every d0 whose score
    # statistic (variance from the likelihood maximised under d0) stays within +-1.96
    baseline, patched = arms_from_table(both_wrong=100, fixed=9, broken=20, both_right=71)
    c = compare_arms(baseline, patched)
    low, high = interval_by_scan(lambda x: tango_by_likelihood(9, 20, 200, x), sp_stats.norm.ppf(0.975), -0.055)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-7)
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (-0.1139, 0.0003)
    assert c.p_value == pytest.approx(2 * sp_stats.norm.sf((11 - 0.5) / math.sqrt(29)), rel=1e-12)
    assert c.p_value > 0.05 and c.ci_low < 0 < c.ci_high  # the test and its interval say the same
    assert c.verdict == "no detectable change"
    assert comparison_sentence(c).startswith("no detectable change (-0.055 95% [-0.114, +0.000], p = 0.0512")


def test_the_interval_level_follows_alpha():
    baseline, patched = arms_from_table(both_wrong=100, fixed=9, broken=20, both_right=71)
    c = compare_arms(baseline, patched, alpha=0.1)
    assert c.verdict == "hurts" and c.ci_high < 0  # p = 0.051 < 0.1: the 90% interval excludes 0
    assert "-0.055 90% [" in comparison_sentence(c)


def test_more_broken_than_fixed_hurts():
    baseline, patched = arms_from_table(both_wrong=20, fixed=1, broken=12, both_right=30)
    c = compare_arms(baseline, patched)
    assert c.verdict == "hurts" and c.delta < 0 and c.p_value < 0.05 and c.ci_high < 0


def test_five_fixed_none_broken_of_twenty_improves_by_the_score_test():
    # exact McNemar would give 2 * 0.5**5 = 0.0625; the score test (4.5 / sqrt 5) is less conservative
    baseline, patched = arms_from_table(both_wrong=15, fixed=5, broken=0, both_right=0)
    c = compare_arms(baseline, patched, alpha=0.05)

    assert c.p_value == pytest.approx(2 * sp_stats.norm.sf(4.5 / math.sqrt(5)))
    assert c.verdict == "improves" and 0 < c.ci_low < 0.25 < c.ci_high <= 1
    assert comparison_sentence(c).startswith("improves: +0.250 95% [")
    weaker = compare_arms(*arms_from_table(both_wrong=16, fixed=4, broken=0, both_right=0))
    assert weaker.verdict == "no detectable change" and weaker.ci_low <= 0
    assert "smallest detectable change is ±" in comparison_sentence(weaker)


def test_zero_discordant_pairs_is_no_change_observed_with_an_mde_and_no_interval():
    baseline, patched = arms_from_table(both_wrong=12, fixed=0, broken=0, both_right=8)
    c = compare_arms(baseline, patched)

    assert c.verdict == "no change observed"
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
    assert c.p_value == 1.0
    # floor of one discordant item: SD of (1, 0, ..., 0) over 20 clusters
    sd = np.r_[1.0, np.zeros(19)].std(ddof=1)
    expected = TTestPower().solve_power(effect_size=None, nobs=20, alpha=0.05, power=0.8) * sd
    assert 0 < c.mde == pytest.approx(expected, rel=1e-5)
    assert comparison_sentence(c).startswith(
        f"no change observed (0 of 20 items changed; with 20 items the smallest detectable change is ±{expected:.3f}")


def test_one_item_reads_in_the_singular():
    c = compare_arms([0], [1])
    assert "with 1 item " in comparison_sentence(c)
    loss = compare_arms([2.0, 2.1, 1.0], [1.0, 1.1, 1.5], higher_is_better=False)
    assert loss.broken == 2 and loss.fixed == 1
    text = comparison_sentence(compare_arms([2.0] * 6, [1.0] * 5 + [2.5], higher_is_better=False))
    assert "5 items with lower / 1 with higher loss" in text or "no detectable change" in text


def test_cluster_sums_that_cancel_still_get_an_interval_as_wide_as_the_items_give():
    # the input: all 26 items changed, each query's two items in opposite directions
    clustered = compare_arms([0, 1] * 13, [1, 0] * 13, clusters=[f"q{i // 2}" for i in range(26)], draws=1)
    singletons = compare_arms([0, 1] * 13, [1, 0] * 13)
    assert clustered.n_clusters == 13 and clustered.delta == 0
    assert clustered.ci_low < -0.3 and clustered.ci_high > 0.3  # not the zero-width [+0.000, +0.000]
    assert (clustered.ci_low, clustered.ci_high) == pytest.approx((singletons.ci_low, singletons.ci_high))
    assert clustered.verdict == "no detectable change" and clustered.mde >= singletons.mde
    assert "+0.000 95% [-0.375, +0.375], p = 1;" in comparison_sentence(clustered)


def test_repeated_queries_widen_the_interval_by_their_design_effect():
    rng = np.random.default_rng(7)
    kinds = rng.choice(4, 30, p=[0.4, 0.25, 0.05, 0.3])  # both wrong, fixed, broken, both right
    base, patch = np.array([0, 0, 1, 1])[kinds], np.array([0, 1, 0, 1])[kinds]
    repeated = np.repeat(np.arange(30), 3)  # each query asked three times, the same answer each time
    c = compare_arms(np.repeat(base, 3), np.repeat(patch, 3), repeated.astype(str))
    once = compare_arms(base, patch)
    assert c.n == 90 and c.n_clusters == 30 and c.delta == pytest.approx(once.delta)
    assert c.ci_high - c.ci_low > 1.5 * (once.ci_high - once.ci_low) * math.sqrt(30 / 90)
    assert c.p_value > compare_arms(np.repeat(base, 3), np.repeat(patch, 3)).p_value  # less evidence than 90 items
    assert "design effect of 30 query clusters" in c.test


def test_draws_get_the_cluster_score_test_and_its_inverted_interval():
    baseline = [0.0, 1 / 3, 0.0, 2 / 3, 1.0, 0.0, 1 / 3, 0.5]
    patched = [2 / 3, 1 / 3, 1.0, 1 / 3, 1.0, 1 / 3, 1.0, 0.5]
    clusters = ["a", "b", "c", "d", "e", "f", "g", "g"]
    c = compare_arms(baseline, patched, clusters, draws=3)

    assert (c.fixed, c.broken, c.both_right, c.both_wrong) == (4, 1, 2, 1)
    d = np.subtract(patched, baseline)
    groups = np.unique(clusters, return_inverse=True)[1]
    sizes = np.bincount(groups)

    def statistic(d0):  # by hand: the null-centred cluster sums over the larger of the two variances
        e = d - d0
        s = np.bincount(groups, weights=e)
        return s.sum() / math.sqrt(max((s ** 2).sum(), (e ** 2).sum()))
    crit = sp_stats.t.ppf(0.975, 6)
    assert c.p_value == pytest.approx(2 * sp_stats.t.sf(abs(statistic(0.0)), 6), rel=1e-9)
    low, high = interval_by_scan(statistic, crit, d.mean())
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-7)
    assert c.test == "cluster score test (t, 6 df) over 7 query clusters" and len(sizes) == 7
    assert "(3 draws each)" in comparison_sentence(c)


def test_mde_is_ttest_power_times_the_sd_of_cluster_differences():
    baseline, patched = arms_from_table(both_wrong=60, fixed=9, broken=6, both_right=25)
    c = compare_arms(baseline, patched)
    es = TTestPower().solve_power(effect_size=None, nobs=100, alpha=0.05, power=0.8)
    assert c.mde == pytest.approx(es * np.std(np.subtract(patched, baseline), ddof=1), rel=1e-5)
    assert c.verdict == "no detectable change"


def test_the_power_solve_converges_where_statsmodels_stops_short():
    # two clusters at alpha = 0.01: statsmodels' solver returned 10.0 (power 0.18 there)
    from hookbench.stats.power import _standardized_mde

    effect = _standardized_mde(2, 0.01, 0.8)
    assert effect == pytest.approx(57.69, abs=0.01) and effect > _standardized_mde(2, 0.05, 0.8)
    rng = np.random.default_rng(11)

    def simulated_power(es):  # a one-sample t test on 2 observations, 40000 times
        p = sp_stats.ttest_1samp(rng.normal(es, 1.0, (40000, 2)), 0.0, axis=1).pvalue
        return float(np.mean(p < 0.01))
    assert abs(simulated_power(effect) - 0.8) < 0.01
    assert simulated_power(10.0) < 0.25


def test_lower_is_better_metrics_report_a_drop_as_improvement():
    baseline = [2.0, 2.5, 3.0, 2.2, 2.8, 3.1, 2.4, 2.9]
    patched = [b - 0.5 for b in baseline]
    c = compare_arms(baseline, patched, higher_is_better=False)
    assert c.verdict == "improves" and c.delta == pytest.approx(-0.5)
    assert c.ci_low <= -0.5 <= c.ci_high < 0
    spread = compare_arms(baseline, [b - 0.5 + 0.05 * (-1) ** i for i, b in enumerate(baseline)], higher_is_better=False)
    assert spread.verdict == "improves" and spread.ci_low < -0.5 < spread.ci_high < 0


def test_no_items_and_bad_input():
    assert compare_arms([], []).verdict == "no data"
    assert comparison_sentence(compare_arms([], [])) == "no data (no paired items)"
    with pytest.raises(DataError, match="equal length"):
        compare_arms([1, 0], [1])
    with pytest.raises(DataError, match="3 cluster ids for 2 items"):
        compare_arms([1, 0], [1, 1], ["a", "b", "c"])
    with pytest.raises(DataError, match="item 1"):
        compare_arms([1, math.nan], [1, 1])


def test_holm_matches_multipletests_and_a_hand_calculation():
    ps = [0.01, 0.04, 0.03]
    # Holm by hand: sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(1*0.04, 0.06) = 0.03, 0.06, 0.06
    assert adjust_p_values(ps, "holm") == pytest.approx([0.03, 0.06, 0.06])
    assert adjust_p_values(ps, "holm") == pytest.approx(list(multipletests(ps, method="holm")[1]))
    more = [0.001, 0.2, 0.012, 0.04, 0.03]
    assert adjust_p_values(more, "bh") == pytest.approx(list(multipletests(more, method="fdr_bh")[1]))
    assert adjust_p_values(ps, "none") == ps


def test_a_failed_job_stays_in_the_family():
    adjusted = adjust_p_values([0.01, math.nan, 0.04], "holm")
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.03) and adjusted[2] == pytest.approx(0.08)  # family of 3
    with pytest.raises(ConfigError, match="stats.correction='bonf'"):
        adjust_p_values([0.1], "bonf")


def test_adjusted_verdict():
    assert adjusted_verdict(0.1, 0.01, 0.05) == "improves"
    assert adjusted_verdict(-0.1, 0.01, 0.05) == "hurts"
    assert adjusted_verdict(0.1, 0.06, 0.05) == "no detectable change"
    assert adjusted_verdict(0.1, math.nan, 0.05) == "no data"
