"""Paired statistics for hookbench's verdict: is the patched-minus-baseline change real?

Both arms score the same items, so everything here works on per-item paired differences.
Items that sent the same query text to the server are one cluster (under greedy decoding they
give the same answer, so they are one observation, not several): intervals are clustered.
The numbers come from statsmodels and scipy; this module only chooses and words them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats as sp_stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from hookbench.errors import ConfigError, DataError
from hookbench.vocabulary import Verdict

POWER = 0.8
PERMUTATION_RESAMPLES = 9999
PERMUTATION_SEED = 0
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}


@dataclass(frozen=True)
class Comparison:
    """The verdict on one job: counts, delta with its clustered interval, p, MDE, in words."""

    n: int
    n_clusters: int
    draws: int
    fixed: int
    broken: int
    both_right: int
    both_wrong: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    mde: float
    alpha: float
    verdict: Verdict
    test: str
    interval: str
    higher_is_better: bool = True  # False for a loss: the counts then read as lower / higher loss

    def sentence(self) -> str:
        """One line a user reads; calls the patch better or worse only when the verdict does."""
        if self.verdict == Verdict.NO_DATA:
            return "no data (no paired items)"
        size = f"{self.n} item{'s' * (self.n != 1)}"
        if self.n_clusters != self.n:
            size += f" in {self.n_clusters} clusters"
        if self.draws > 1:
            size += f" ({self.draws} draws each)"
        if math.isnan(self.mde):
            floor = f"with {size} no change can be tested"
        elif self.mde < 1 or not self.higher_is_better:
            floor = f"with {size} the smallest detectable change is ±{self.mde:.2f}"
        else:
            floor = f"with {size} not even a change of ±1 would reliably be detected"
        if self.verdict == Verdict.NO_CHANGE_OBSERVED:
            return f"no change observed (0 of {self.n} items changed; {floor})"
        what = f"{_signed(self.delta)} {_interval(self.ci_low, self.ci_high)}, {_p(self.p_value)}"
        if self.verdict == Verdict.NO_DETECTABLE_CHANGE:
            return f"no detectable change ({what}; {floor})"
        name = "exact McNemar" if self.test.startswith("exact McNemar") else "cluster permutation test"
        counts = (f"{self.fixed} fixed / {self.broken} broken" if self.higher_is_better
                  else f"{self.broken} items with lower / {self.fixed} with higher loss")
        return f"{self.verdict}: {what} ({name}, {counts})"


@dataclass(frozen=True)
class RunAgreement:
    """Whether two runs of the same job agree: the difference of their per-item paired deltas."""

    n: int
    n_clusters: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    agree: bool

    def sentence(self) -> str:
        rule = (f"rule: the runs agree unless a sign-flip test over clusters finds their deltas "
                f"differ at α = {self.alpha:g}")
        if self.n == 0:
            return f"no paired items to compare; {rule}"
        if math.isnan(self.p_value):
            return (f"the two runs' deltas differ by {_signed(self.difference)}; with {self.n_clusters} "
                    f"cluster(s) this cannot be tested, so it is not contradicted ({rule})")
        outcome = "consistent" if self.agree else "NOT consistent"
        return (f"the two runs' deltas differ by {_signed(self.difference)} "
                f"{_interval(self.ci_low, self.ci_high)}, {_p(self.p_value)}: "
                f"{outcome} at α = {self.alpha:g} ({rule})")


def compare_arms(baseline: Sequence[float], patched: Sequence[float],
                 clusters: Sequence[str] | None = None, draws: int = 1, alpha: float = 0.05,
                 level: float = 0.95, higher_is_better: bool = True) -> Comparison:
    """Paired comparison of two arms on the same items, clustered by query.

    `baseline[i]`, `patched[i]`: item i's score in each arm (0/1, or the mean over `draws` draws).
    Counts: fixed = patched > baseline, broken = patched < baseline; ties are `both_right` when
    their common score is ≥ 0.5 (for 0/1 scores: right in both), else `both_wrong`.
    Interval: cluster-robust CR1 t-interval (statsmodels OLS of the difference on a constant,
    cov_type="cluster", t with G−1 df; with one item per cluster this is the ordinary paired
    t-interval), clipped to [−1, 1] for scores in [0, 1]; NaN with < 2 clusters or zero SE.
    Test: exact two-sided McNemar (statsmodels, binomial) when scores are 0/1, draws == 1 and
    no cluster holds more than one item; otherwise a seeded sign-flip permutation test over
    clusters of their summed differences (scipy; exact when 2^G ≤ 9999) — McNemar would count a
    repeated query's discordant pair once per repeat. With singleton clusters and 0/1 scores
    both tests give the same p.
    MDE: see `minimum_detectable_effect`. For a loss (lower is better) pass higher_is_better=False.
    """
    b, p = _paired_arrays(baseline, patched)
    groups = _cluster_codes(clusters, len(b))
    n, n_clusters = len(b), int(groups.max()) + 1 if len(b) else 0
    d = p - b
    fixed, broken = int((d > 0).sum()), int((d < 0).sum())
    ties = d == 0
    both_right = int((ties & (b >= 0.5)).sum())
    both_wrong = int(ties.sum()) - both_right
    binary = draws == 1 and bool(np.isin(b, (0, 1)).all() and np.isin(p, (0, 1)).all())
    singletons = n_clusters == n

    if n == 0:
        nan = math.nan
        return Comparison(0, 0, draws, 0, 0, 0, 0, nan, nan, nan, nan, nan, alpha, Verdict.NO_DATA,
                          "no test (no items)", "no interval (no items)")
    delta = float(d.mean())
    clip = bool(((b >= 0) & (b <= 1) & (p >= 0) & (p <= 1)).all())
    ci_low, ci_high = _clustered_interval(d, groups, level, clip)
    interval = (f"cluster-robust (CR1) t-interval over {n_clusters} query clusters" if n_clusters >= 2
                else "no interval (fewer than 2 clusters)")

    if binary and singletons:
        table = [[both_wrong, fixed], [broken, both_right]]
        p_value = float(mcnemar(table, exact=True).pvalue)
        test = f"exact McNemar (binomial) on {fixed + broken} discordant pairs"
    else:
        p_value = _sign_flip_p(d, groups)
        exact = 2 ** n_clusters <= PERMUTATION_RESAMPLES
        test = (f"paired sign-flip permutation test over {n_clusters} clusters, "
                + ("exact (all sign flips)" if exact else f"{PERMUTATION_RESAMPLES} resamples"))

    if not d.any():
        verdict = Verdict.NO_CHANGE_OBSERVED
    else:
        verdict = _verdict(delta, p_value, alpha, higher_is_better)
    return Comparison(n, n_clusters, draws, fixed, broken, both_right, both_wrong, delta,
                      ci_low, ci_high, p_value, minimum_detectable_effect(d, groups, alpha),
                      alpha, verdict, test, interval, higher_is_better)


def minimum_detectable_effect(diffs: Sequence[float], groups: Sequence[int], alpha: float = 0.05,
                              power: float = POWER) -> float:
    """Smallest |mean difference| a two-sided test at `alpha` finds with `power`, for this n.

    statsmodels TTestPower solved for the effect size (in SD units) at nobs = G clusters,
    times the SD of the per-cluster summed differences, times G/n to return to per-item
    accuracy units. The SD is the observed one, so it reflects the observed discordance.
    With no variation (e.g. zero discordant pairs) it assumes a floor of one discordant item:
    one cluster summing to 1, the rest 0. NaN with fewer than 2 clusters.
    """
    d, g = np.asarray(diffs, float), np.asarray(groups, int)
    n_clusters = int(g.max()) + 1 if len(g) else 0
    if n_clusters < 2:
        return math.nan
    sums = np.bincount(g, weights=d, minlength=n_clusters)
    sd = float(sums.std(ddof=1))
    if sd == 0:
        sd = float(np.r_[1.0, np.zeros(n_clusters - 1)].std(ddof=1))
    es = TTestPower().solve_power(effect_size=None, nobs=n_clusters, alpha=alpha, power=power)
    return float(es) * sd * n_clusters / len(d)


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjust a sweep's p-values for the number of jobs tried (statsmodels multipletests).

    `method`: "holm" (default), "bh" (Benjamini–Hochberg FDR) or "none". A NaN (a job that
    failed or was screened out) counts in the family as p = 1 and comes back as NaN, so
    dropping a job never makes the others look stronger.
    """
    if method not in CORRECTIONS:
        raise ConfigError(f"stats.correction={method!r} is not one of {', '.join(CORRECTIONS)}")
    ps = np.asarray(p_values, float)
    if len(ps) == 0:
        return []
    missing = np.isnan(ps)
    if ((ps[~missing] < 0) | (ps[~missing] > 1)).any():
        raise DataError(f"p-values must lie in [0, 1], got {list(p_values)}")
    if CORRECTIONS[method] is None:
        adjusted = ps
    else:
        adjusted = multipletests(np.where(missing, 1.0, ps), method=CORRECTIONS[method])[1]
    return [math.nan if m else float(a) for a, m in zip(adjusted, missing)]


def adjusted_verdict(delta: float, p_adjusted: float, alpha: float = 0.05,
                     higher_is_better: bool = True) -> Verdict:
    """The verdict after correction: "improves" / "hurts" / "no detectable change"; "no data"
    for a NaN p (failed job). Adjusting never lowers p, so a job whose own verdict was
    "no change observed" keeps that verdict: the caller should not pass it here."""
    if math.isnan(p_adjusted) or math.isnan(delta):
        return Verdict.NO_DATA
    return _verdict(delta, p_adjusted, alpha, higher_is_better)


def compare_runs(delta_items_a: Sequence[float], delta_items_b: Sequence[float],
                 clusters: Sequence[str] | None = None, alpha: float = 0.05,
                 level: float = 0.95) -> RunAgreement:
    """Do two runs of the same job (same items) agree? Per item the difference between the two
    runs' paired differences (patched − baseline); its CR1 clustered interval and the sign-flip
    permutation p over clusters (as in compare_arms). `agree` unless p < alpha; untestable
    (fewer than 2 clusters) counts as agreeing, and the sentence says so."""
    a, b = _paired_arrays(delta_items_a, delta_items_b)
    groups = _cluster_codes(clusters, len(a))
    n, n_clusters = len(a), int(groups.max()) + 1 if len(a) else 0
    if n == 0:
        nan = math.nan
        return RunAgreement(0, 0, nan, nan, nan, nan, alpha, True)
    e = a - b
    low, high = _clustered_interval(e, groups, level, clip=False)
    p_value = _sign_flip_p(e, groups) if n_clusters >= 2 or not e.any() else math.nan
    return RunAgreement(n, n_clusters, float(e.mean()), low, high, p_value, alpha,
                        not p_value < alpha)


def _paired_arrays(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(x) != len(y):
        raise DataError(f"paired samples must have equal length, got {len(x)} and {len(y)}")
    a, b = np.asarray(x, float), np.asarray(y, float)
    bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
    if len(bad):
        raise DataError(f"paired scores must be finite numbers; item {int(bad[0])} is not")
    return a, b


def _cluster_codes(clusters: Sequence[str] | None, n: int) -> np.ndarray:
    """Integer cluster codes 0..G-1; None means each item is its own cluster."""
    if clusters is None:
        return np.arange(n)
    if len(clusters) != n:
        raise DataError(f"{len(clusters)} cluster ids for {n} items")
    return np.unique(np.asarray(clusters, dtype=str), return_inverse=True)[1].reshape(-1)


def _clustered_interval(d: np.ndarray, groups: np.ndarray, level: float,
                        clip: bool) -> tuple[float, float]:
    """CR1 cluster-robust t-interval of mean(d) (t with G−1 df); NaN when undefined."""
    if len(np.unique(groups)) < 2:
        return math.nan, math.nan
    fit = sm.OLS(d, np.ones(len(d))).fit(cov_type="cluster", cov_kwds={"groups": groups},
                                         use_t=True)
    if not fit.bse[0] > 1e-12:
        return math.nan, math.nan
    low, high = fit.conf_int(alpha=1 - level)[0]
    return (max(float(low), -1.0), min(float(high), 1.0)) if clip else (float(low), float(high))


def _sign_flip_p(d: np.ndarray, groups: np.ndarray) -> float:
    """Two-sided p of a seeded sign-flip permutation test on the per-cluster summed differences."""
    sums = np.bincount(groups, weights=d)
    if not sums.any():
        return 1.0
    res = sp_stats.permutation_test(
        (sums, np.zeros_like(sums)), lambda x, y, axis: np.sum(x - y, axis=axis),
        permutation_type="samples", vectorized=True, n_resamples=PERMUTATION_RESAMPLES,
        alternative="two-sided", random_state=PERMUTATION_SEED)
    return float(res.pvalue)


def _verdict(delta: float, p_value: float, alpha: float, higher_is_better: bool) -> Verdict:
    if not p_value < alpha or delta == 0:
        return Verdict.NO_DETECTABLE_CHANGE
    return Verdict.IMPROVES if (delta > 0) == higher_is_better else Verdict.HURTS


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.3f}"


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "(interval undefined)"
    return f"[{low:+.3f}, {high:+.3f}]"


def _p(p: float) -> str:
    return "p n/a" if math.isnan(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3g}")


def p95(values: list[float]) -> float:
    """95th percentile (linear interpolation); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * 0.95
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
