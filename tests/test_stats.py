"""The verdict's numbers, checked against statsmodels/scipy on fixed tables and by hand."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from hookbench.errors import ConfigError, DataError
from hookbench.reports.formatting import comparison_sentence
from hookbench.stats import adjust_p_values, adjusted_verdict, compare_arms
from hookbench.stats.permutation import sign_flip


def arms_from_table(both_wrong, fixed, broken, both_right):
    """Per-item 0/1 scores (baseline, patched) that make the given 2x2 table."""
    pairs = [(0, 0)] * both_wrong + [(0, 1)] * fixed + [(1, 0)] * broken + [(1, 1)] * both_right
    return [b for b, _ in pairs], [p for _, p in pairs]


def scipy_sign_flip_p(sums, **kw):
    return sp_stats.permutation_test((sums, np.zeros_like(sums)), lambda x, y, axis: np.sum(x - y, axis=axis),
                                     permutation_type="samples", vectorized=True, n_resamples=9999,
                                     alternative="two-sided", **kw).pvalue


def test_exact_mcnemar_matches_statsmodels_and_binomtest_on_a_fixed_table():
    baseline, patched = arms_from_table(both_wrong=50, fixed=14, broken=2, both_right=34)
    c = compare_arms(baseline, patched)

    assert (c.n, c.n_clusters, c.fixed, c.broken, c.both_right, c.both_wrong) == (100, 100, 14, 2, 34, 50)
    assert c.delta == pytest.approx(0.12)
    assert c.p_value == pytest.approx(mcnemar([[50, 14], [2, 34]], exact=True).pvalue, rel=1e-12)
    assert c.p_value == pytest.approx(sp_stats.binomtest(2, 16, 0.5).pvalue, rel=1e-12)
    assert c.test == "exact McNemar (binomial) on 16 discordant pairs"
    assert c.verdict == "improves" and 0 < c.ci_low < c.delta < c.ci_high
    assert comparison_sentence(c).startswith("improves: +0.120 95% [")
    assert "exact McNemar, 14 fixed / 2 broken" in comparison_sentence(c)


def test_the_default_runs_table_gets_the_conditional_exact_interval_worked_by_hand():
    # 9 fixed / 20 broken of n = 200 (the default run): m = 29 discordant pairs.
    # Clopper-Pearson for pi = fixed / m: L = Beta(0.025; 9, 21), U = Beta(0.975; 10, 20)
    # -> L = 0.15285, U = 0.50832; delta = (m / n)(2 pi - 1) -> [-0.1007, +0.0024]; p = 2 P(X <= 9 | 29, 1/2)
    baseline, patched = arms_from_table(both_wrong=100, fixed=9, broken=20, both_right=71)
    c = compare_arms(baseline, patched)
    low, high = sp_stats.beta.ppf(0.025, 9, 21), sp_stats.beta.ppf(0.975, 10, 20)
    assert (round(low, 5), round(high, 5)) == (0.15285, 0.50832)
    assert (c.ci_low, c.ci_high) == pytest.approx((29 / 200 * (2 * low - 1), 29 / 200 * (2 * high - 1)), rel=1e-9)
    assert (round(c.ci_low, 4), round(c.ci_high, 4)) == (-0.1007, 0.0024)
    assert c.p_value == pytest.approx(2 * sp_stats.binom.cdf(9, 29, 0.5), rel=1e-12)
    assert c.p_value > 0.05 and c.ci_low < 0 < c.ci_high  # the test and its interval say the same
    assert c.verdict == "no detectable change"
    assert comparison_sentence(c).startswith("no detectable change (-0.055 95% [-0.101, +0.002], p = 0.0614")


def test_the_closed_form_clopper_pearson_is_scipys_exact_binomial_interval():
    from hookbench.stats.exact import clopper_pearson

    for x, m, alpha in [(9, 29, 0.05), (0, 7, 0.05), (7, 7, 0.1), (3, 40, 0.01), (120, 250, 0.05)]:
        ci = sp_stats.binomtest(x, m).proportion_ci(confidence_level=1 - alpha, method="exact")
        assert clopper_pearson(x, m, alpha) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_the_interval_level_follows_alpha():
    baseline, patched = arms_from_table(both_wrong=100, fixed=9, broken=20, both_right=71)
    c = compare_arms(baseline, patched, alpha=0.1)
    assert c.verdict == "hurts" and c.ci_high < 0  # p = 0.061 < 0.1: the 90% interval excludes 0
    assert "-0.055 90% [" in comparison_sentence(c)


def test_more_broken_than_fixed_hurts():
    baseline, patched = arms_from_table(both_wrong=20, fixed=1, broken=12, both_right=30)
    c = compare_arms(baseline, patched)
    assert c.verdict == "hurts" and c.delta < 0 and c.p_value < 0.05 and c.ci_high < 0


def test_five_fixed_none_broken_of_twenty_is_no_detectable_change():
    baseline, patched = arms_from_table(both_wrong=15, fixed=5, broken=0, both_right=0)
    c = compare_arms(baseline, patched, alpha=0.05)

    assert c.p_value == pytest.approx(0.0625)  # 2 * 0.5**5
    assert c.verdict == "no detectable change" and c.ci_low <= 0
    assert comparison_sentence(c).startswith("no detectable change (+0.250 95% [")
    assert "p = 0.0625" in comparison_sentence(c) and "smallest detectable change is ±" in comparison_sentence(c)
    assert "improves" not in comparison_sentence(c)


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
    assert comparison_sentence(c).startswith(
        f"no change observed (0 of 20 items changed; with 20 items the smallest detectable change is ±{expected:.3f}")


def test_one_item_reads_in_the_singular():
    c = compare_arms([0], [1])
    assert "with 1 item " in comparison_sentence(c)
    loss = compare_arms([2.0, 2.1, 1.0], [1.0, 1.1, 1.5], higher_is_better=False)
    assert loss.broken == 2 and loss.fixed == 1
    text = comparison_sentence(compare_arms([2.0] * 6, [1.0] * 5 + [2.5], higher_is_better=False))
    assert "5 items with lower / 1 with higher loss" in text or "no detectable change" in text


def test_clustered_data_get_the_inverted_sign_flip_interval():
    rng = np.random.default_rng(7)
    baseline = rng.integers(0, 2, 40)
    patched = np.where(rng.random(40) < 0.3, 1 - baseline, baseline)
    clusters = [f"q{i}" for i in rng.integers(0, 12, 40)]
    c = compare_arms(baseline.tolist(), patched.tolist(), clusters)
    groups = np.unique(clusters, return_inverse=True)[1]
    sums = np.bincount(groups, weights=patched - baseline)
    assert c.n_clusters == len(set(clusters)) < c.n
    assert c.p_value == pytest.approx(scipy_sign_flip_p(sums), rel=1e-12)  # 2^G <= 9999: exact, same p
    assert c.ci_low <= c.delta <= c.ci_high
    assert "permutation" in c.test and c.interval == "interval inverting the same sign-flip test"


def test_the_inverted_interval_is_the_set_of_shifts_the_test_does_not_reject():
    # the interval's ends, found by scanning delta with scipy's own test of the shifted sums
    sums, sizes = np.array([3.0, -1.0, 2.0, 1.0, 0.0, 2.0, -2.0, 1.0]), np.array([2.0, 1, 3, 1, 1, 2, 2, 1])
    flip = sign_flip(sums, sizes, 0.05)

    def one_sided(delta, alternative):
        shifted = sums - delta * sizes
        return sp_stats.permutation_test((shifted, np.zeros_like(shifted)), lambda x, y, axis: np.sum(x - y, axis=axis),
                                         permutation_type="samples", vectorized=True, alternative=alternative).pvalue

    for delta in np.linspace(-1.5, 2.0, 141) + 0.0007:  # off the breakpoints, where float ties decide
        inside = one_sided(delta, "greater") >= 0.025 and one_sided(delta, "less") >= 0.025
        assert inside == (flip.ci_low <= delta <= flip.ci_high), delta


def test_many_clusters_use_9999_seeded_sign_vectors_like_scipy():
    rng = np.random.default_rng(3)
    sums = rng.normal(0.15, 1.0, 40)
    flip = sign_flip(sums, np.ones(40), 0.05)
    reference = scipy_sign_flip_p(sums, random_state=11)
    se = math.sqrt(reference * (1 - reference) / 9999)
    assert not flip.exact and flip.resamples == 9999
    assert abs(flip.p_value - reference) < 5 * se + 2 / 9999
    assert flip.p_value >= 2 / 10000  # (count + 1) / (R + 1): never 0


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
    assert "(3 draws each)" in comparison_sentence(c)


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
