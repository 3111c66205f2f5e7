"""Score tests of a paired mean difference δ, and the intervals that invert them.

Each test has a statistic z(δ₀) for H₀: δ = δ₀ whose variance is estimated *under H₀* (a score
test), which keeps skewed 0/1 data from under-covering the way Wald or sign-flip intervals do.

- 0/1 scores, one draw: Tango's (1998, Stat Med 17:891) score statistic for the difference of paired
  proportions, (f − b − n·δ₀) / √(n·(2·q̃ + δ₀(1 − δ₀))), q̃ the closed-form maximum-likelihood
  share of broken pairs under H₀; with a continuity correction of ½ on the count scale, which
  `benchmarks/coverage.py` shows keeps coverage at 1 − α or above (within 3 SE) from n = 50.
  Items in query clusters: the variance is multiplied by the clusters' design effect at the
  estimate δ̂, Σ_g(s_g − δ̂n_g)² / Σ_i(d_i − δ̂)², floored at 1 (a Rao–Scott-type correction: repeats
  of a query never count as more evidence than independent items). Taken at δ̂ rather than at each
  δ₀, clusters of unequal size do not count as clustering: at δ₀ ≠ δ̂ the term (δ̂ − δ₀)·n_g would
  grow with the spread of the sizes n_g, not with how alike a cluster's items are. Where the design
  effect is above 1 the statistic is referred to t with G − 1 df (it is estimated from G sums). At δ₀ = 0
  without clusters this is McNemar's asymptotic test with the ½ correction.
- Means over draws, and the loss: the cluster score statistic Σ_g(s_g − δ₀n_g) / √V(δ₀) with
  V(δ₀) = max(Σ_g(s_g − δ₀n_g)², Σ_i(d_i − δ₀)²) (the clustered McNemar statistic of Durkalski et al.
  2003 at δ₀ = 0; the same floor on the design effect), referred to t with G − 1 df. The statistic
  is at most √G, so with G clusters where √G ≤ t_{1−α/2, G−1} (G ≤ 6 at α = 0.05) no test is made
  ("too few query clusters to test"). For scores (bounded) whose differences are all equal V(δ₀) is
  at least 1, as if one item's difference lay 1 from the others, so they never give a zero-width
  interval; for the loss (unbounded) identical differences give no test.

The interval is the set of δ₀ the test does not reject that contains the estimate, found by root-
finding outward from the estimate; the p at 0 is read from the same statistic over [0, estimate], so
"the interval excludes 0 exactly when p < α" holds by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from scipy.stats import t as t_dist

CONTINUITY = 0.5  # on the count scale (fixed − broken)
Values = float | np.ndarray  # one δ₀ (or count), or a grid of them: the statistics are vectorised
_GRID = 600
_EDGE = 1e-9
VARIANCE_FLOOR = 1.0  # bounded scores, all differences equal: V(δ₀) ≥ 1, as if one lay 1 from the rest


@dataclass(frozen=True)
class ScoreResult:
    p_value: float
    ci_low: float
    ci_high: float
    df: int | None  # None: normal reference
    untestable: str = ""  # why no test was made (then p and the interval are NaN), else empty


@dataclass(frozen=True)
class Sufficient:
    """What the statistics need: item count n, fixed/broken counts, and the sums that give the
    cluster and item variances under any δ₀ in closed form."""

    n: int
    fixed: int
    broken: int
    total: float  # Σ d_i
    item_sq: float  # Σ d_i²
    cluster_sq: float  # Σ s_g²
    cluster_cross: float  # Σ s_g·n_g
    size_sq: float  # Σ n_g²
    n_clusters: int

    @classmethod
    def of(cls, d: np.ndarray, groups: np.ndarray) -> Sufficient:
        d = np.asarray(d, float)
        g = np.asarray(groups, int)
        sums, sizes = np.bincount(g, weights=d), np.bincount(g).astype(float)
        return cls(len(d), int((d > 0).sum()), int((d < 0).sum()), float(d.sum()), float((d * d).sum()),
                   float((sums * sums).sum()), float((sums * sizes).sum()), float((sizes * sizes).sum()),
                   int((sizes > 0).sum()))

    def item_var(self, d0: Values) -> Values:
        """Σ_i (d_i − δ₀)²."""
        return self.item_sq - 2 * d0 * self.total + d0 * d0 * self.n

    def cluster_var(self, d0: Values) -> Values:
        """Σ_g (s_g − δ₀·n_g)²."""
        return self.cluster_sq - 2 * d0 * self.cluster_cross + d0 * d0 * self.size_sq

    def design_effect(self, d0: Values) -> np.ndarray:
        item = self.item_var(d0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(item > 0, np.maximum(1.0, self.cluster_var(d0) / np.where(item > 0, item, 1)), 1.0)


def tango_z(fixed: Values, broken: Values, n: int, d0: Values, continuity: float = CONTINUITY) -> np.ndarray:
    """Tango's score statistic at δ₀ (vectorised), with the constrained MLE of the broken share
    q̃ = (√(B² − 4AC) − B) / 2A, A = 2n, B = −f − b + (2n − f + b)δ₀, C = −b·δ₀(1 − δ₀)."""
    f, b, d0 = np.asarray(fixed, float), np.asarray(broken, float), np.asarray(d0, float)
    a_, b_, c_ = 2.0 * n, -f - b + (2.0 * n - f + b) * d0, -b * d0 * (1 - d0)
    q = (np.sqrt(np.maximum(b_ * b_ - 4 * a_ * c_, 0.0)) - b_) / (2 * a_)
    var = n * (2 * q + d0 * (1 - d0))
    num = f - b - n * d0
    num = np.sign(num) * np.maximum(np.abs(num) - continuity, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num == 0, 0.0, num / np.sqrt(np.maximum(var, 0.0)))


def binary_z(s: Sufficient, d0: Values) -> np.ndarray:
    """Tango's statistic with its variance times the design effect of the clusters at the estimate."""
    return tango_z(s.fixed, s.broken, s.n, d0) / np.sqrt(s.design_effect(s.total / s.n if s.n else 0.0))


def cluster_z(s: Sufficient, d0: Values, floor: float = 0.0) -> np.ndarray:
    """The cluster score statistic Σ(s_g − δ₀n_g) / √max(cluster, item variance under δ₀, floor)."""
    d0 = np.asarray(d0, float)
    num = s.total - d0 * s.n
    var = np.maximum(np.maximum(s.cluster_var(d0), s.item_var(d0)), floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num == 0, 0.0, num / np.sqrt(np.maximum(var, 0.0)))


def paired_binary(d: np.ndarray, groups: np.ndarray, alpha: float) -> ScoreResult:
    """Tango's score test (clusters: with the design effect) and its interval, within [−1, 1]."""
    s = Sufficient.of(d, groups)
    df = binary_df(s)
    if df is None:
        return invert(lambda x: binary_z(s, x), s.total / s.n, norm.ppf(1 - alpha / 2), lambda z: 2 * norm.sf(z),
                      (-1.0, 1.0), None)
    return invert(lambda x: binary_z(s, x), s.total / s.n, float(t_dist.ppf(1 - alpha / 2, df)),
                  lambda z: 2 * t_dist.sf(z, df), (-1.0, 1.0), df)


def binary_df(s: Sufficient) -> int | None:
    """Degrees of freedom of the 0/1 test's reference: t with G − 1 df where the clusters' design effect
    (estimated from G cluster sums) widens the variance; else None (normal: Tango's own variance)."""
    clustered = s.n_clusters < s.n and float(s.design_effect(s.total / s.n if s.n else 0.0)) > 1
    return max(s.n_clusters - 1, 1) if clustered else None


def paired_mean(d: np.ndarray, groups: np.ndarray, alpha: float, bounded: bool) -> ScoreResult:
    """The cluster score test, t with G − 1 df, and its interval (within [−1, 1] when `bounded`)."""
    s = Sufficient.of(d, groups)
    reason = untestable(s, alpha, bounded)
    if reason:
        return ScoreResult(math.nan, math.nan, math.nan, max(s.n_clusters - 1, 0), reason)
    df = s.n_clusters - 1
    est = s.total / s.n
    floor = VARIANCE_FLOOR if bounded and no_spread(s) else 0.0  # identical differences only
    if bounded:
        limits = (-1.0, 1.0)
    else:
        span = 1e3 * (float(np.max(np.abs(np.asarray(d, float) - est))) + abs(est)) + 1e-12
        limits = (est - span, est + span)
    return invert(lambda x: cluster_z(s, x, floor), est, float(t_dist.ppf(1 - alpha / 2, df)),
                  lambda z: 2 * t_dist.sf(z, df), limits, df, open_ends=not bounded)


def untestable(s: Sufficient, alpha: float, bounded: bool) -> str:
    """Why the cluster score test cannot be made on these data (empty when it can): too few clusters
    for |z| ≤ √G to exceed t_{1−α/2, G−1}, or (unbounded) no spread at all."""
    g = s.n_clusters
    if g < 2 or math.sqrt(g) <= float(t_dist.ppf(1 - alpha / 2, g - 1)):
        return f"too few query clusters to test (G = {g})"
    if not bounded and no_spread(s):
        return f"no spread in the {s.n} differences to test"
    return ""


def no_spread(s: Sufficient) -> bool:
    """Every difference equal (up to rounding: Σ(d_i − d̄)² within 1e-12 of the scale of the d²)."""
    return not s.item_var(s.total / s.n) > 1e-12 * (s.item_sq + 1e-300)


def invert(z: Callable, estimate: float, crit: float, p_of: Callable, limits: tuple[float, float],
           df: int | None, open_ends: bool = False) -> ScoreResult:
    """{δ₀ not rejected} around the estimate, and the p at 0 from the same grid of δ₀ (so they agree).

    Walks out from the estimate on a grid (denser near it, with 0 on it) to the first δ₀ where
    |z| > crit and refines that crossing with brentq; no crossing: the limit (NaN when `open_ends`).
    """
    ends, worst_at_zero = [], 0.0
    for side, limit in ((-1, limits[0]), (1, limits[1])):
        edge = limit - side * _EDGE if not open_ends else limit
        reach = abs(edge - estimate)
        offsets = reach * np.geomspace(1e-7, 1.0, _GRID) if reach > 0 else np.zeros(0)
        zero_here = side * (0 - estimate) > 0 and abs(estimate) <= reach
        if zero_here:  # 0 lies on this side: put it on the grid
            offsets = np.unique(np.r_[offsets, abs(estimate)])
        grid = estimate + side * offsets
        values = np.abs(z(grid)) if len(grid) else np.zeros(0)
        over = np.flatnonzero(values > crit)
        if zero_here:
            worst_at_zero = float(values[offsets <= abs(estimate)].max())
        if len(over) == 0:
            ends.append(math.nan if open_ends else limit)
            continue
        k = int(over[0])
        inner = estimate if k == 0 else float(grid[k - 1])
        outer = float(grid[k])
        ends.append(brentq(lambda x: float(np.abs(z(np.array([x]))[0])) - crit, inner, outer, xtol=1e-14))
    if estimate == 0:
        worst_at_zero = float(np.abs(z(np.array([0.0])))[0])
    low, high = ends
    return ScoreResult(float(min(1.0, p_of(worst_at_zero))), float(low), float(high), df)
