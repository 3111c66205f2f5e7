"""Coverage and type-I error of the verdict's intervals and tests, by simulation.

Each cell draws `reps` data sets from a known truth, runs the same functions `compare_arms` uses
(`score.paired_binary`, `score.paired_mean`) and counts how often the interval holds the true
delta (coverage) and, at delta = 0, how often p < α (type-I error); Monte Carlo SEs with them;
elsewhere how often p < α (power), for 0/1 one-draw data next to exact McNemar's on the same data.
Kinds, each the way hookbench meets them:
- "one draw": 0/1 scores, one item per query; pairs fixed / broken / tied with probabilities
  (ψ + δ)/2, (ψ − δ)/2, 1 − ψ (ψ the discordant share).
- "clustered": the same in query clusters of 1–5 items; each item repeats its cluster's pair with
  probability ½ (a repeated query), else draws its own.
- "draws": 3 draws per arm and item; fixed items are right with probability 0.2 → 0.8, broken
  0.8 → 0.2, tied 0.1 or 0.9 in both (true delta 0.6·δ); singletons or clusters as above.
- few clusters (`FEW`): exactly G = 7, 8 or 15 query clusters of sizes 1, 2, …, largest, 1, 2, …
  (largest 8: 36 items at G = 8, the issue's example) or singletons, for the kinds with clusters.
- "loss": per-item differences δ + ½(E_g − 1) + ½(E_i − 1), E exponential (skewed), E_g shared
  by a cluster; ψ plays no part.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from hookbench.stats.score import paired_binary, paired_mean

KINDS = ("one draw", "clustered", "draws", "loss")
DRAWS = 3
FULL = {"n": (50, 200, 1000), "psi": (0.1, 0.2, 0.4), "ratio": (0.0, 0.25, 0.5, 0.75, 0.9), "cluster": (1, 5)}
FEW = {"clusters": (7, 8, 15), "psi": (0.1, 0.4), "ratio": (0.0, 0.5, 0.9), "cluster": (1, 8)}
FEW_KINDS = ("clustered", "draws", "loss")
MODERATE = {"n": (50, 200), "psi": (0.1, 0.4), "ratio": (0.0, 0.5, 0.9), "cluster": (1, 5)}


@dataclass(frozen=True)
class Cell:
    kind: str
    n: int
    psi: float
    ratio: float  # |δ| / ψ
    cluster: int  # largest cluster: 1 = singletons
    reps: int
    coverage: float
    type_one: float  # NaN unless the truth is 0
    power: float  # share rejecting at α when the truth is not 0 (else NaN)
    mcnemar_power: float  # the same for exact McNemar on the same data ("one draw" only, else NaN)
    n_clusters: int = 0  # fixed number of query clusters (a FEW cell), else 0 (random sizes)

    @property
    def coverage_se(self) -> float:
        return mc_se(self.coverage, self.reps)

    @property
    def type_one_se(self) -> float:
        return mc_se(self.type_one, self.reps)


def mc_se(rate: float, reps: int) -> float:
    return math.sqrt(rate * (1 - rate) / reps) if reps and not math.isnan(rate) else math.nan


def cells(grid: dict, kinds: Sequence[str] = KINDS) -> Iterator[tuple[str, int, float, float, int]]:
    """(kind, n, ψ, ratio, largest cluster) over the grid; "one draw" has singletons only,
    "clustered" clusters only, the loss no ψ."""
    for kind in kinds:
        for n in grid["n"]:
            for psi in (grid["psi"] if kind != "loss" else (grid["psi"][0],)):
                for ratio in grid["ratio"]:
                    for cluster in grid["cluster"]:
                        if (kind == "one draw" and cluster > 1) or (kind == "clustered" and cluster == 1):
                            continue
                        yield kind, n, psi, ratio, cluster


def few_cells(grid: dict = FEW, kinds: Sequence[str] = FEW_KINDS) -> Iterator[tuple[str, int, float, float, int]]:
    """(kind, G, ψ, ratio, largest cluster) over a few-cluster grid; "clustered" needs clusters, the loss no ψ."""
    for kind in kinds:
        for g in grid["clusters"]:
            for psi in (grid["psi"] if kind != "loss" else (grid["psi"][0],)):
                for ratio in grid["ratio"]:
                    for cluster in grid["cluster"]:
                        if not (kind == "clustered" and cluster == 1):
                            yield kind, g, psi, ratio, cluster


def fixed_clusters(n_clusters: int, largest: int) -> np.ndarray:
    """Codes of exactly `n_clusters` clusters of sizes 1, 2, …, largest, 1, 2, … items."""
    sizes = 1 + np.arange(n_clusters) % largest
    return np.repeat(np.arange(n_clusters), sizes)


def simulate(kind: str, n: int, psi: float, ratio: float, cluster: int, reps: int, alpha: float,
             seed: int = 0, n_clusters: int = 0) -> Cell:
    """One cell: `n` items in clusters of 1..`cluster` (random sizes), or with `n_clusters` exactly that
    many clusters (`fixed_clusters`; `n` is then ignored)."""
    rng = np.random.default_rng([seed, n, int(psi * 1000), int(ratio * 1000), cluster, KINDS.index(kind), n_clusters])
    groups = fixed_clusters(n_clusters, cluster) if n_clusters else cluster_codes(rng, n, cluster)
    n = len(groups)
    delta = ratio * psi
    covered = rejected = mcnemar_rejected = 0
    for _ in range(reps):
        d, truth = draw(kind, rng, groups, psi, delta)
        if kind in ("one draw", "clustered"):
            result = paired_binary(d, groups, alpha)
        else:
            result = paired_mean(d, groups, alpha, bounded=kind == "draws")
        low = -math.inf if math.isnan(result.ci_low) else result.ci_low
        high = math.inf if math.isnan(result.ci_high) else result.ci_high
        covered += low <= truth <= high
        rejected += result.p_value < alpha
        if kind == "one draw" and delta != 0:
            mcnemar_rejected += exact_mcnemar_p(int((d > 0).sum()), int((d < 0).sum())) < alpha
    null, nan = delta == 0, math.nan
    return Cell(kind, n, psi, ratio, cluster, reps, covered / reps, rejected / reps if null else nan,
                nan if null else rejected / reps,
                mcnemar_rejected / reps if kind == "one draw" and not null else nan, n_clusters)


def exact_mcnemar_p(fixed: int, broken: int) -> float:
    """Exact McNemar (two-sided binomial on the discordant pairs), the test the score test replaced."""
    return float(binomtest(fixed, fixed + broken).pvalue) if fixed + broken else 1.0


def cluster_codes(rng: np.random.Generator, n: int, largest: int) -> np.ndarray:
    """Cluster codes for n items in clusters of 1..largest items (uniform sizes)."""
    if largest == 1:
        return np.arange(n)
    sizes = rng.integers(1, largest + 1, n)
    ends = np.cumsum(sizes)
    return np.searchsorted(ends, np.arange(n), side="right")


def draw(kind: str, rng: np.random.Generator, groups: np.ndarray, psi: float, delta: float) -> tuple[np.ndarray, float]:
    """One data set's per-item differences and the true delta they estimate."""
    n, n_groups = len(groups), int(groups.max()) + 1
    if kind == "loss":
        shared = rng.exponential(1.0, n_groups)[groups] if n_groups < n else rng.exponential(1.0, n)
        return delta + 0.5 * (shared - 1) + 0.5 * (rng.exponential(1.0, n) - 1), delta
    probs = [(psi + delta) / 2, (psi - delta) / 2, 1 - psi]
    own = rng.choice(3, size=n, p=probs)
    types = np.where(rng.random(n) < 0.5, rng.choice(3, size=n_groups, p=probs)[groups], own) if n_groups < n else own
    if kind in ("one draw", "clustered"):
        return np.select([types == 0, types == 1], [1.0, -1.0], 0.0), delta
    tied = np.where(rng.random(n) < 0.5, 0.1, 0.9)
    before = np.select([types == 0, types == 1], [0.2, 0.8], tied)
    after = np.select([types == 0, types == 1], [0.8, 0.2], tied)
    return (rng.binomial(DRAWS, after) - rng.binomial(DRAWS, before)) / DRAWS, 0.6 * delta


def non_inferiority_size(n: int, psi: float, margin: float, reps: int, alpha: float,
                         seed: int = 0) -> tuple[float, float]:
    """How often a guard is called non-inferior when its true delta is exactly −margin (the null's
    boundary, where the size is largest), on one-draw 0/1 data with discordant share ψ; with its MC SE."""
    from hookbench.stats.noninferiority import ni_p_value

    rng = np.random.default_rng([seed, n, int(psi * 1000), int(margin * 1000)])
    groups = np.arange(n)
    rejected = sum(ni_p_value(draw("one draw", rng, groups, psi, -margin)[0], groups, margin, True) < alpha
                   for _ in range(reps))
    return rejected / reps, mc_se(rejected / reps, reps)


def exact_coverage(n: int, psi: float, ratio: float, alpha: float) -> tuple[float, float]:
    """Exact coverage and (at δ = 0) type-I error of the one-draw interval and test: every table of
    fixed / broken counts with its trinomial probability, no simulation (NaN type I where δ ≠ 0)."""
    from scipy.stats import multinomial

    delta = ratio * psi
    f, b, low, high, p = _one_draw_tables(n, alpha)
    weight = multinomial.pmf(np.stack([f, b, n - f - b], 1), n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi])
    covered = float(weight[(low <= delta) & (delta <= high)].sum())
    return covered, float(weight[p < alpha].sum()) if delta == 0 else math.nan


@functools.lru_cache(maxsize=8)
def _one_draw_tables(n: int, alpha: float) -> tuple[np.ndarray, ...]:
    """Every (fixed, broken) table of n pairs with the interval and p `paired_binary` gives it."""
    tables = [(f, b) for f in range(n + 1) for b in range(n + 1 - f)]
    out = []
    for f, b in tables:
        d = np.r_[np.ones(f), -np.ones(b), np.zeros(n - f - b)]
        r = paired_binary(d, np.arange(n), alpha)
        out.append((f, b, -math.inf if math.isnan(r.ci_low) else r.ci_low,
                    math.inf if math.isnan(r.ci_high) else r.ci_high, r.p_value))
    return tuple(np.array(col) for col in zip(*out))
