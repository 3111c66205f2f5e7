"""No reported interval can disagree with its test: thousands of random paired tables, every kind.

For each table the interval is computed at the same α as the verdict; it must exclude 0 exactly
when p < α (and so exactly when the verdict calls a change), for 0/1 singletons (Tango's score
test), repeated queries (the same with the design effect), several draws and loss-like continuous
differences (the cluster score test).
"""

import numpy as np

from hookbench.stats import compare_arms, equivalence
from hookbench.testing.config import STATS

RNG = np.random.default_rng(20261201)
SIZES = (1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200, 300)  # few distinct n: the MDE's power solve is cached


def size(low=1, high=300):
    return int(RNG.choice([s for s in SIZES if low <= s <= high]))


def coherent(c) -> bool:
    if c.verdict == "no change observed":
        return np.isnan(c.ci_low) and np.isnan(c.ci_high)
    excludes = c.ci_low > 0 or c.ci_high < 0  # NaN ends (undefined) exclude nothing
    rejects = c.p_value < c.alpha
    return excludes == rejects and (c.verdict in ("improves", "hurts")) == rejects


def random_binary(n):
    base = RNG.integers(0, 2, n)
    flip = RNG.random(n) < RNG.uniform(0.02, 0.5)
    shift = RNG.random(n) < RNG.uniform(0, 0.6)  # bias towards fixing or breaking
    patched = np.where(flip, 1 - base, base)
    patched = np.where(shift & (base == 0) & (RNG.random() < 0.5), 1, patched)
    return base, patched


def test_binary_singletons_tangos_score_test_and_its_interval_agree():
    alphas = (0.05, 0.01, 0.1)
    checked = 0
    for i in range(2000):
        b, p = random_binary(size())
        c = compare_arms(b, p, alpha=alphas[i % 3], target_effect=STATS["target_effect"])
        assert c.test_name == "Tango score test"
        assert coherent(c), c
        checked += c.verdict != "no change observed"
    assert checked > 1600


def test_clustered_binary_tables_score_test_and_its_inverted_interval_agree():
    rejected = 0
    for _ in range(400):
        n = size(2, 120)
        b, p = random_binary(n)
        clusters = RNG.integers(0, max(1, n // int(RNG.choice([1, 2, 4]))), n).astype(str)
        c = compare_arms(b, p, clusters=clusters, alpha=0.05, target_effect=STATS["target_effect"])
        assert coherent(c), c
        rejected += c.p_value < 0.05
    assert rejected > 20  # both sides of the rule were exercised


def test_draws_means_cluster_score_test_and_its_inverted_interval_agree():
    for _ in range(300):
        n, k = size(2, 80), int(RNG.integers(2, 6))
        b = RNG.binomial(k, RNG.uniform(0.1, 0.9), n) / k
        p = RNG.binomial(k, np.clip(b + RNG.normal(0, 0.2), 0, 1)) / k
        c = compare_arms(b, p, clusters=np.arange(n) // int(RNG.choice([1, 2])), draws=k, alpha=0.05, target_effect=STATS["target_effect"])
        assert coherent(c), c


def test_loss_like_continuous_differences_agree():
    for _ in range(300):
        n = size(2, 200)
        b = RNG.gamma(2.0, 1.0, n)
        p = b + RNG.normal(RNG.normal(0, 0.1), RNG.uniform(0.01, 0.5), n)
        c = compare_arms(b, p, alpha=0.05, higher_is_better=False, target_effect=STATS["target_effect"])
        assert coherent(c), c


def test_reproduce_difference_and_equivalence_agree_with_their_intervals():
    for _ in range(1000):
        n = int(RNG.integers(2, 100))
        e = RNG.integers(-1, 2, n) * (RNG.random(n) < 0.3) + (RNG.random() < 0.3) * RNG.normal(0, 0.2)
        groups = RNG.integers(0, n, n)
        eq = equivalence(e, groups, margin=float(RNG.uniform(0.02, 0.3)), alpha=0.05)
        if eq.n_clusters < 2 or not eq.se > 1e-12:
            continue
        assert (eq.ci_low > 0 or eq.ci_high < 0) == (eq.p_difference < 0.05)
        assert (-eq.margin < eq.tost_low and eq.tost_high < eq.margin) == (eq.p_equivalence < 0.05)
