"""Planned sample sizes: Connor's (1987) paired-proportions formula by hand, a simulation, and the CLI."""

import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from hookbench.stats import compare_arms
from hookbench.stats.power import connor_items, design_effect
from hookbench.studies.plan import plan
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.store import runs


def test_connor_formula_by_hand():
    # n = [z_.975 sqrt(psi) + z_.8 sqrt(psi - delta^2)]^2 / delta^2, psi = 0.2, delta = 0.1
    by_hand = (1.959964 * math.sqrt(0.2) + 0.841621 * math.sqrt(0.2 - 0.01)) ** 2 / 0.01
    assert math.ceil(by_hand) == 155 == connor_items(0.2, 0.1, 0.05, 0.8)
    assert connor_items(0.05, 0.1) == connor_items(0.1, 0.1)  # psi below |delta| is impossible for 0/1


def test_155_items_give_about_80_percent_power_in_simulation():
    rng = np.random.default_rng(5)
    n, psi, delta, sims = 155, 0.2, 0.1, 4000
    m = rng.binomial(n, psi, sims)  # discordant pairs
    fixed = rng.binomial(m, (1 + delta / psi) / 2)
    tail = sp_stats.binom.cdf(np.minimum(fixed, m - fixed), m, 0.5)
    power = float(np.mean(np.minimum(1, 2 * tail) < 0.05))
    assert 0.72 < power < 0.86  # exact McNemar is a little conservative against the normal formula


def test_a_job_reports_items_needed_from_its_discordance():
    baseline = [0] * 100 + [1] * 100
    patched = [1] * 30 + [0] * 70 + [0] * 10 + [1] * 90  # psi = 40 / 200 = 0.2
    c = compare_arms(baseline, patched, target_effect=0.1)
    assert c.items_needed == 155
    assert design_effect([1, 1, -1, 0], [0, 0, 1, 2]) > 1 == design_effect([1, -1, 0], [0, 1, 2])


def test_plan_counts_generations_and_wall_time_for_a_sweep():
    diffs, queries = [1, -1] * 10 + [0] * 80, [f"q{i}" for i in range(100)]
    p = plan(diffs, queries, 0.1, 0.05, patches=3, draws=1, latency_s={"baseline": 0.5, "patched": 0.25})
    assert p.items == 155 and p.generations == 155 * 4 and p.wall_s == pytest.approx(155 * (0.5 + 3 * 0.25))


@pytest.mark.slow
def test_plan_cli_reads_a_pilot_run(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset.n=6", "patch=none"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    r = run_cli([run.info.run_id, "--effect", "0.1", "--patches", "3"], tmp_path, env, module="hookbench.plan")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    items = connor_items(0.1, 0.1)  # nothing changed in the pilot: psi is floored at |delta|
    assert f"items:       {items}" in r.stdout and f"generations: {items * 4} = {items} × (1 + 3)" in r.stdout
    assert "wall time:" in r.stdout and " s (" in r.stdout
    bad = run_cli([run.info.run_id, "--effect", "3"], tmp_path, env, module="hookbench.plan")
    assert bad.returncode == 2 and "--effect must be in (0, 1]" in bad.stderr
