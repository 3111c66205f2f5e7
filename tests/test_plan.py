"""Planned sample sizes: Connor's (1987) formula by hand, the reproduction sizing, both by simulation, and the CLI."""

import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from hookbench.stats import compare_arms, equivalence
from hookbench.stats.power import connor_items, design_effect, reproduction_items
from hookbench.stats.score import tango_z
from hookbench.studies.plan import size_study
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.mlflow_store import runs


def test_connor_formula_with_the_continuity_correction_by_hand():
    # Connor: n = [z_.975 sqrt(psi) + z_.8 sqrt(psi - delta^2)]^2 / delta^2 = 154.2 at psi = 0.2, delta = 0.1;
    # the score test's 1/2 correction: n delta - 1/2 = K sqrt(n), sqrt(n) = (K + sqrt(K^2 + 2 delta)) / (2 delta)
    k = 1.959964 * math.sqrt(0.2) + 0.841621 * math.sqrt(0.2 - 0.01)
    assert math.ceil(k ** 2 / 0.01) == 155
    by_hand = ((k + math.sqrt(k * k + 0.2)) / 0.2) ** 2
    assert math.ceil(by_hand) == 165 == connor_items(0.2, 0.1, 0.05, 0.8)
    assert connor_items(0.05, 0.1) == connor_items(0.1, 0.1)  # psi below |delta| is impossible for 0/1


@pytest.mark.parametrize("psi,delta", [(0.2, 0.1), (0.39, 0.03), (0.1, 0.05)])
def test_the_planned_items_give_80_percent_power_with_the_verdicts_test(psi, delta):
    rng = np.random.default_rng(5)
    n, sims = connor_items(psi, delta), 20000
    counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], sims)
    p = 2 * sp_stats.norm.sf(np.abs(tango_z(counts[:, 0], counts[:, 1], n, 0.0)))
    assert abs(float(np.mean(p < 0.05)) - 0.8) < 0.025  # simulated 0.80-0.82 (Connor's own n: 0.79)


def one_run(rng, n, psi, delta, groups):
    """Per-item deltas of one sampled run: each item's pair drawn afresh, half the items of a query
    sharing the query's draw."""
    probs = [(psi + delta) / 2, (psi - delta) / 2, 1 - psi]
    kinds = np.where(rng.random(n) < 0.5, rng.choice(3, groups.max() + 1, p=probs)[groups], rng.choice(3, n, p=probs))
    return np.select([kinds == 0, kinds == 1], [1.0, -1.0], 0.0)


@pytest.mark.parametrize("psi,delta,margin,per_query", [(0.39, 0.0, 0.1, 1), (0.145, -0.085, 0.05, 1), (0.3, 0.05, 0.1, 3)])
def test_reproduction_items_give_80_percent_power_to_reproduce(psi, delta, margin, per_query):
    # a large pilot (its variance near the truth) sizes the rerun; 500 pairs of runs that truly agree,
    # judged by reproduce's own rule (a small pilot's variance is itself noisy: so is its sizing)
    rng = np.random.default_rng(2)
    pilot = np.arange(20000) // per_query
    needed = reproduction_items(one_run(rng, 20000, psi, delta, pilot), pilot, margin)
    groups = np.arange(needed) // per_query
    agree = [equivalence(one_run(rng, needed, psi, delta, groups) - one_run(rng, needed, psi, delta, groups),
                         groups, margin).outcome == "agrees" for _ in range(500)]
    assert abs(float(np.mean(agree)) - 0.8) < 0.08, needed  # within 10% of 80%


def test_a_job_reports_items_needed_from_its_discordance():
    baseline = [0] * 100 + [1] * 100
    patched = [1] * 30 + [0] * 70 + [0] * 10 + [1] * 90  # psi = 40 / 200 = 0.2
    c = compare_arms(baseline, patched, target_effect=0.1)
    assert c.items_needed == 165
    assert design_effect([1, 1, -1, 0], [0, 0, 1, 2]) > 1 == design_effect([1, -1, 0], [0, 1, 2])


def test_plan_counts_generations_and_wall_time_for_a_sweep():
    diffs, queries = [1, -1] * 10 + [0] * 80, [f"q{i}" for i in range(100)]
    p = size_study(diffs, queries, 0.1, 0.05, patches=3, draws=1, latency_s={"baseline": 0.5, "patched": 0.25})
    assert p.items == 165 and p.generations == 165 * 4 and p.wall_s == pytest.approx(165 * (0.5 + 3 * 0.25))


@pytest.mark.slow
def test_plan_cli_reads_a_pilot_run(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset.n=6", "patch=none", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    r = run_cli(["plan", run.info.run_id, "--effect", "0.1", "--patches", "3"], tmp_path, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    items = connor_items(0.1, 0.1)  # nothing changed in the pilot: psi is floored at |delta|
    assert f"items:       {items}" in r.stdout and f"generations: {items * 4} = {items} × (1 + 3)" in r.stdout
    assert "wall time:" in r.stdout and " s (" in r.stdout
    rerun = reproduction_items([0.0] * 6, list(range(6)), 0.03)  # nothing changed: one item differing by 1
    assert f"equivalence within ±0.03, TOST at α = 0.05) with 80% power: about {rerun} items" in r.stdout
    bad = run_cli(["plan", run.info.run_id, "--effect", "3"], tmp_path, env)
    assert bad.returncode == 2 and "--effect must be in (0, 1]" in bad.stderr


def test_plan_prices_a_pilots_guards_and_prompting_arm():
    from hookbench.studies.plan import side_costs

    lines = side_costs({"guard/capitals/n": 106, "guard/capitals/delta": 0.0, "accuracy/delta": 0.1},
                       {"compare.prompt": "Add carefully. {prompt}"}, patches=3, draws=1, items=165)
    assert lines == ["guard capitals:  +424 generations = 106 × (1 + 3) × 1 draw (its items, baseline shared)",
                     "prompting arm: +271 generations = 165 + 106 (guards) × 1 draw (once per store, shared by every patch)"]
    assert side_costs({}, {"compare.prompt": "None"}, 3, 1, 165) == []
