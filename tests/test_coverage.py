"""The verdict's intervals cover the true delta at their level and its tests hold α, by simulation
(a small grid of benchmarks/coverage.py's; the full table is in docs/statistics.md)."""

import math

import numpy as np
import pytest

from hookbench.stats import compare_arms
from hookbench.stats.coverage import cells, cluster_codes, draw, few_cells, simulate
from hookbench.stats.score import paired_binary
from hookbench.testing.config import STATS

ALPHA, REPS = 0.05, 400
SMALL = {"n": (50,), "psi": (0.1, 0.4), "ratio": (0.0, 0.75, 0.9), "cluster": (1, 5)}
SE = math.sqrt(ALPHA * (1 - ALPHA) / REPS)


@pytest.mark.parametrize("kind,n,psi,ratio,cluster", list(cells(SMALL)))
def test_coverage_and_type_one_error_within_three_monte_carlo_ses(kind, n, psi, ratio, cluster):
    c = simulate(kind, n, psi, ratio, cluster, REPS, ALPHA, seed=1)
    assert c.coverage >= 1 - ALPHA - 3 * SE, c
    if ratio == 0:
        assert c.type_one <= ALPHA + 3 * SE, c


def test_the_simulation_measures_the_interval_compare_arms_reports():
    rng = np.random.default_rng(3)
    groups = cluster_codes(rng, 60, 5)
    d, _ = draw("clustered", rng, groups, 0.3, 0.1)
    c = compare_arms((d < 0).astype(float), (d > 0).astype(float), clusters=groups.astype(str), **STATS)
    r = paired_binary(d, groups, ALPHA)
    assert (c.ci_low, c.ci_high, c.p_value) == (r.ci_low, r.ci_high, r.p_value)


FEW_SMALL = {"clusters": (7, 8, 15), "psi": (0.4,), "ratio": (0.0, 0.5), "cluster": (8,)}
FEW_REPS = 200


@pytest.mark.parametrize("kind,g,psi,ratio,cluster", list(few_cells(FEW_SMALL)))
def test_with_few_query_clusters_coverage_and_type_one_error_hold(kind, g, psi, ratio, cluster):
    """G = 7, 8, 15 clusters of 1…8 items (benchmarks/coverage.py --few has the whole grid)."""
    c = simulate(kind, 0, psi, ratio, cluster, FEW_REPS, ALPHA, seed=1, n_clusters=g)
    se = math.sqrt(ALPHA * (1 - ALPHA) / FEW_REPS)
    assert c.coverage >= 1 - ALPHA - 3 * se, c
    if ratio == 0:
        assert c.type_one <= ALPHA + 3 * se, c
