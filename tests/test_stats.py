"""The verdict's numbers, checked against statsmodels/scipy on fixed tables and by hand."""

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sp_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from hookbench.errors import ConfigError, DataError
from hookbench.stats import adjust_p_values, adjusted_verdict, compare_arms, compare_runs


def arms_from_table(both_wrong, fixed, broken, both_right):
    """Per-item 0/1 scores (baseline, patched) that make the given 2x2 table."""
    pairs = [(0, 0)] * both_wrong + [(0, 1)] * fixed + [(1, 0)] * broken + [(1, 1)] * both_right
    return [b for b, _ in pairs], [p for _, p in pairs]


def test_exact_mcnemar_matches_statsmodels_and_binomtest_on_a_fixed_table():
    baseline, patched = arms_from_table(both_wrong=50, fixed=14, broken=2, both_right=34)
    c = compare_arms(baseline, patched)

    assert (c.n, c.n_clusters, c.fixed, c.broken, c.both_right, c.both_wrong) == (100, 100, 14, 2, 34, 50)
    assert c.delta == pytest.approx(0.12)
    assert c.p_value == pytest.approx(mcnemar([[50, 14], [2, 34]], exact=True).pvalue, rel=1e-12)
    assert c.p_value == pytest.approx(sp_stats.binomtest(2, 16, 0.5).pvalue, rel=1e-12)
    assert c.test == "exact McNemar (binomial) on 16 discordant pairs"
    assert c.verdict == "improves"
    assert c.sentence().startswith("improves: +0.120 [")
    assert "exact McNemar, 14 fixed / 2 broken" in c.sentence()


def test_more_broken_than_fixed_hurts():
    baseline, patched = arms_from_table(both_wrong=20, fixed=1, broken=12, both_right=30)
    c = compare_arms(baseline, patched)
    assert c.verdict == "hurts" and c.delta < 0 and c.p_value < 0.05


def test_five_fixed_none_broken_of_twenty_is_no_detectable_change():
    baseline, patched = arms_from_table(both_wrong=15, fixed=5, broken=0, both_right=0)
    c = compare_arms(baseline, patched, alpha=0.05)

    assert c.p_value == pytest.approx(0.0625)  # 2 * 0.5**5
    assert c.verdict == "no detectable change"
    assert c.sentence().startswith("no detectable change (+0.250 [")
    assert "p = 0.0625" in c.sentence() and "smallest detectable change is ±" in c.sentence()
    assert "improves" not in c.sentence()


def test_zero_discordant_pairs_is_no_change_observed_with_an_mde_and_no_interval():
    baseline, patched = arms_from_table(both_wrong=12, fixed=0, broken=0, both_right=8)
    c = compare_arms(baseline, patched)

    assert c.verdict == "no change observed"
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
    assert c.p_value == 1.0
    # floor of one discordant item: SD of (1, 0, ..., 0) over 20 clusters
    sd = np.r_[1.0, np.zeros(19)].std(ddof=1)
    expected = TTestPower().solve_power(effect_size=None, nobs=20, alpha=0.05, power=0.8) * sd
    assert 0 < c.mde == pytest.approx(expected)
    assert c.sentence() == ("no change observed (0 of 20 items changed; with 20 items the smallest "
                            f"detectable change is ±{expected:.2f})")


def test_two_items_with_a_big_difference_give_an_interval_inside_minus_one_one():
    t = sp_stats.t.interval(0.95, 1, loc=0.5, scale=0.5)  # the old plain t-interval on these two items
    assert (round(t[0], 3), round(t[1], 3)) == (-5.853, 6.853)

    c = compare_arms([0, 0], [1, 0])
    assert -1 <= c.ci_low < c.delta < c.ci_high <= 1
    assert c.verdict == "no detectable change"


def test_clustered_interval_matches_statsmodels_ols_with_cluster_covariance():
    rng = np.random.default_rng(7)
    baseline = rng.integers(0, 2, 40)
    patched = np.where(rng.random(40) < 0.3, 1 - baseline, baseline)
    clusters = [f"q{i}" for i in rng.integers(0, 15, 40)]
    c = compare_arms(baseline.tolist(), patched.tolist(), clusters)

    groups = np.unique(clusters, return_inverse=True)[1]
    fit = sm.OLS(patched - baseline, np.ones(40)).fit(cov_type="cluster", cov_kwds={"groups": groups},
                                                      use_t=True)
    low, high = fit.conf_int(alpha=0.05)[0]
    assert c.n_clusters == len(set(clusters)) < c.n
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-12)
    assert "permutation" in c.test and c.interval.startswith("cluster-robust (CR1)")


def test_duplicated_queries_widen_the_interval_hand_worked_cr1():
    # 20 items: query A sent 4 times (each +1), query B twice (each -1), then 14 distinct queries:
    # one +1, one -1, twelve 0.  n = 20, G = 16, mean d = (4 - 2 + 1 - 1) / 20 = 0.1.
    d = [1] * 4 + [-1] * 2 + [1, -1] + [0] * 12
    clusters = ["A"] * 4 + ["B"] * 2 + [f"s{i}" for i in range(14)]
    baseline = [1 if x < 0 else 0 for x in d]
    patched = [1 if x > 0 else 0 for x in d]
    # residual sums per cluster: A 4 - 0.4 = 3.6, B -2 - 0.2 = -2.2, the +1: 0.9, the -1: -1.1,
    # twelve zeros: -0.1 each.  sum u^2 = 12.96 + 4.84 + 0.81 + 1.21 + 12 * 0.01 = 19.94
    # CR1: V = G/(G-1) * (n-1)/(n-k) * sum u^2 / n^2 with k = 1  ->  16/15 * 19.94 / 400
    se = math.sqrt(16 / 15 * 19.94 / 400)
    half = sp_stats.t.ppf(0.975, 15) * se
    clustered = compare_arms(baseline, patched, clusters)
    assert (clustered.ci_low, clustered.ci_high) == pytest.approx((0.1 - half, 0.1 + half), rel=1e-9)
    assert clustered.n_clusters == 16

    # the same data as 20 independent items: the ordinary paired t-interval, s^2 = 7.8 / 19
    independent = compare_arms(baseline, patched)
    half_iid = sp_stats.t.ppf(0.975, 19) * math.sqrt(7.8 / 19 / 20)
    assert (independent.ci_low, independent.ci_high) == pytest.approx((0.1 - half_iid, 0.1 + half_iid))
    assert clustered.ci_high - clustered.ci_low > 1.5 * (independent.ci_high - independent.ci_low)


def test_repeated_draws_use_an_exact_sign_flip_test_over_clusters():
    baseline = [0.0, 1 / 3, 0.0, 2 / 3, 1.0, 0.0, 1 / 3, 0.5]
    patched = [2 / 3, 1 / 3, 1.0, 1 / 3, 1.0, 1 / 3, 1.0, 0.5]
    clusters = ["a", "b", "c", "d", "e", "f", "g", "g"]
    c = compare_arms(baseline, patched, clusters, draws=3)

    assert (c.fixed, c.broken, c.both_right, c.both_wrong) == (4, 1, 2, 1)
    sums = np.bincount(np.unique(clusters, return_inverse=True)[1], np.subtract(patched, baseline))
    flips = [abs(np.dot(s, sums)) for s in itertools.product((-1, 1), repeat=len(sums))]
    expected = np.mean([f >= abs(sums.sum()) - 1e-12 for f in flips])
    assert c.p_value == pytest.approx(expected)
    assert c.test == "paired sign-flip permutation test over 7 clusters, exact (all sign flips)"
    assert "(3 draws each)" in c.sentence()


def test_sampled_permutation_p_is_seeded():
    rng = np.random.default_rng(1)
    baseline, patched = rng.random(60).round(2), rng.random(60).round(2)
    first, second = compare_arms(baseline, patched, draws=4), compare_arms(baseline, patched, draws=4)
    assert first.p_value == second.p_value
    assert first.test.endswith("60 clusters, 9999 resamples")


def test_mde_is_ttest_power_times_the_sd_of_cluster_differences():
    baseline, patched = arms_from_table(both_wrong=60, fixed=9, broken=6, both_right=25)
    c = compare_arms(baseline, patched)
    es = TTestPower().solve_power(effect_size=None, nobs=100, alpha=0.05, power=0.8)
    assert c.mde == pytest.approx(es * np.std(np.subtract(patched, baseline), ddof=1))
    assert c.verdict == "no detectable change"


def test_lower_is_better_metrics_report_a_drop_as_improvement():
    baseline = [2.0, 2.5, 3.0, 2.2, 2.8, 3.1, 2.4, 2.9]
    patched = [b - 0.5 for b in baseline]
    c = compare_arms(baseline, patched, higher_is_better=False)
    assert c.verdict == "improves" and c.delta == pytest.approx(-0.5)


def test_no_items_and_bad_input():
    assert compare_arms([], []).verdict == "no data"
    assert compare_arms([], []).sentence() == "no data (no paired items)"
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


def test_runs_whose_deltas_differ_by_chance_agree_with_the_rule_stated():
    a = [1, 0, 0, -1, 1, 0, 0, 0, 1, 0, -1, 0]
    b = [1, 0, 1, 0, 0, 0, 0, -1, 1, 0, 0, 0]
    r = compare_runs(a, b, alpha=0.05)
    fit = sm.OLS(np.subtract(a, b), np.ones(12)).fit(cov_type="cluster",
                                                    cov_kwds={"groups": np.arange(12)}, use_t=True)
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(fit.conf_int(alpha=0.05)[0]))
    assert r.agree and r.p_value >= 0.05
    assert "consistent at α = 0.05" in r.sentence() and "rule:" in r.sentence()


def test_runs_whose_deltas_differ_everywhere_do_not_agree():
    # the runs' per-item deltas: run A has +1 on four items, run B on one; three items differ
    a = [1, 1, 1, 1] + [0] * 8
    b = [1] + [0] * 11
    r = compare_runs(a, b)
    assert r.difference == pytest.approx(0.25)
    assert r.p_value == pytest.approx(0.25)  # exact sign flip, 3 non-zero items: 2 / 2**3
    assert r.agree  # three items cannot show it at α = 0.05 ...
    r = compare_runs([1] * 10, [0] * 10)
    assert not r.agree and "NOT consistent" in r.sentence()  # ... ten can
