"""Paired statistics for hookbench's verdict: is the patched-minus-baseline change real?

Both arms score the same items, so everything here works on per-item paired differences.
Items that sent the same query text to the server are one cluster (under greedy decoding they
give the same answer, so they are one observation, not several). Every interval is the inversion
of the test it is reported with, at the same α, so an interval excludes 0 exactly when the test
rejects: Tango's score test for 0/1 scores (with the clusters' design effect), else a cluster score
test, each with the interval for the paired difference that inverts it (`score`); their coverage is
measured by `coverage`. Two runs are compared in `equivalence`, sample sizes planned in `power`.
Wording lives in hookbench.reports.formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests

from hookbench.base.errors import ConfigError, DataError
from hookbench.base.outcomes import Verdict
from hookbench.stats.equivalence import Equivalence, equivalence
from hookbench.stats.power import POWER, TARGET_EFFECT, items_needed, minimum_detectable_effect
from hookbench.stats.score import paired_binary, paired_mean

CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}
__all__ = ["Comparison", "Equivalence", "POWER", "TARGET_EFFECT", "adjust_p_values", "adjusted_verdict", "cluster_codes", "compare_arms",
           "equivalence", "items_needed", "minimum_detectable_effect", "p95"]


@dataclass(frozen=True)
class Comparison:
    """The verdict on one job: counts, delta with the interval of its test, p, MDE, items needed."""

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
    items_needed: int = 0  # items a change of `target_effect` needs at 80% power (0: not computed)
    target_effect: float = TARGET_EFFECT

    @property
    def test_name(self) -> str:
        """The test in two or three words, for sentences."""
        return self.test.split(" (")[0].split(" on ")[0]


def compare_arms(baseline: Sequence[float], patched: Sequence[float],
                 clusters: Sequence[str] | None = None, draws: int = 1, alpha: float = 0.05,
                 higher_is_better: bool = True, target_effect: float = TARGET_EFFECT) -> Comparison:
    """Paired comparison of two arms on the same items, clustered by query.

    `baseline[i]`, `patched[i]`: item i's score in each arm (0/1, or the mean over `draws` draws).
    Counts: fixed = patched > baseline, broken = patched < baseline; ties are `both_right` when
    their common score is ≥ 0.5 (for 0/1 scores: right in both), else `both_wrong`.
    0/1 scores, one draw: Tango's score test with the interval for the paired difference inverting
    it; repeated queries widen it by their design effect. Otherwise (draws, a loss) the cluster
    score test, t with G − 1 df, and its inverted interval. Both at level 1 − alpha; for a loss
    (lower is better) pass higher_is_better=False.
    """
    b, p = _paired_arrays(baseline, patched)
    groups = _cluster_codes(clusters, len(b))
    n, n_clusters = len(b), int(groups.max()) + 1 if len(b) else 0
    d = p - b
    fixed, broken = int((d > 0).sum()), int((d < 0).sum())
    ties = d == 0
    both_right = int((ties & (b >= 0.5)).sum())
    both_wrong = int(ties.sum()) - both_right
    if n == 0:
        nan = math.nan
        return Comparison(0, 0, draws, 0, 0, 0, 0, nan, nan, nan, nan, nan, alpha, Verdict.NO_DATA,
                          "no test (no items)", "no interval (no items)")
    binary = draws == 1 and bool(np.isin(b, (0, 1)).all() and np.isin(p, (0, 1)).all())
    if binary:
        score = paired_binary(d, groups, alpha)
        test = ("Tango score test (continuity-corrected"
                + (f", design effect of {n_clusters} query clusters)" if n_clusters < n else ")")
                + f" on {fixed} fixed / {broken} broken of {n} pairs")
        interval = "for the paired difference (patched − baseline), inverting the same score test (Tango 1998)"
    else:
        bounded = bool(((b >= 0) & (b <= 1) & (p >= 0) & (p <= 1)).all())  # scores: δ within [−1, 1]
        score = paired_mean(d, groups, alpha, bounded)
        test = f"cluster score test (t, {max(n_clusters - 1, 0)} df) over {n_clusters} query clusters"
        interval = "for the paired mean difference (patched − baseline), inverting the same cluster score test"
    p_value, ci_low, ci_high = score.p_value, score.ci_low, score.ci_high
    if not d.any():  # nothing changed: "no change observed", no interval
        p_value, ci_low, ci_high = 1.0, math.nan, math.nan
    verdict = Verdict.NO_CHANGE_OBSERVED if not d.any() else _verdict(float(d.mean()), p_value, alpha, higher_is_better)
    needed = items_needed(d, groups, target_effect, alpha) if higher_is_better else 0
    return Comparison(n, n_clusters, draws, fixed, broken, both_right, both_wrong, float(d.mean()),
                      ci_low, ci_high, p_value, minimum_detectable_effect(d, groups, alpha),
                      alpha, verdict, test, interval, higher_is_better, needed, target_effect)

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


def _paired_arrays(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(x) != len(y):
        raise DataError(f"paired samples must have equal length, got {len(x)} and {len(y)}")
    a, b = np.asarray(x, float), np.asarray(y, float)
    bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
    if len(bad):
        raise DataError(f"paired scores must be finite numbers; item {int(bad[0])} is not")
    return a, b


def cluster_codes(queries: Sequence[str]) -> np.ndarray:
    """Integer cluster codes 0..G-1 of items by their query text."""
    return _cluster_codes(queries, len(queries))


def _cluster_codes(clusters: Sequence[str] | None, n: int) -> np.ndarray:
    """Integer cluster codes 0..G-1; None means each item is its own cluster."""
    if clusters is None:
        return np.arange(n)
    if len(clusters) != n:
        raise DataError(f"{len(clusters)} cluster ids for {n} items")
    return np.unique(np.asarray(clusters, dtype=str), return_inverse=True)[1].reshape(-1)


def _verdict(delta: float, p_value: float, alpha: float, higher_is_better: bool) -> Verdict:
    if not p_value < alpha or delta == 0:
        return Verdict.NO_DETECTABLE_CHANGE
    return Verdict.IMPROVES if (delta > 0) == higher_is_better else Verdict.HURTS


def p95(values: list[float]) -> float:
    """95th percentile (linear interpolation); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * 0.95
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
