"""The default guard can pass: a harmless patch is shown non-inferior with at least 80% chance, exactly,
and the chance is the one the guard's own test gives (simulated through `non_inferiority`); end to end,
a harmless patch on the embedded model reads non-inferior on the default guard."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.evaluation.parts import check_inputs
from hookbench.stats.coverage import draw
from hookbench.stats.guard_power import detectable_share, guard_items, pass_chance
from hookbench.stats.noninferiority import non_inferiority
from hookbench.testing.cli import run_cli
from hookbench.testing.config import STATS, compose_cfg
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import external

HARMLESS_SHARE = 0.05  # ψ: the share of a guard's answers a patch with no effect still changes

ALPHA = STATS["alpha"]


def shown_rate(n: int, psi: float, margin: float, reps: int, seed: int = 0) -> tuple[float, float]:
    """How often the guard's own test calls a δ = 0 patch non-inferior, by simulation; with its MC SE."""
    rng, groups = np.random.default_rng([seed, n]), np.arange(n)
    shown = sum(non_inferiority(draw("one draw", rng, groups, psi, 0.0)[0], groups, margin, 0.05, True,
                                Verdict.NO_DETECTABLE_CHANGE).verdict == GuardVerdict.NON_INFERIOR for _ in range(reps))
    return shown / reps, math.sqrt(shown / reps * (1 - shown / reps) / reps)


def test_every_default_guard_shows_a_harmless_patch_non_inferior_with_exact_chance_of_at_least_80_percent():
    guards = check_inputs(compose_cfg(["model=tiny"])).guards
    assert guards, "the default job has a guard"
    for g in guards:
        chance = pass_chance(len(g.dataset.items), HARMLESS_SHARE, g.margin, ALPHA)
        assert chance >= 0.80, f"{g.name}: {len(g.dataset.items)} items at margin {g.margin}: {chance:.3f}"


@pytest.mark.parametrize("n, psi", [(106, 0.05), (183, 0.05), (150, 0.1)])
def test_the_exact_pass_chance_is_what_the_guards_test_does_by_simulation(n, psi):
    rate, se = shown_rate(n, psi, 0.05, reps=1500)
    assert abs(rate - pass_chance(n, psi, 0.05, ALPHA)) <= 3 * se + 1e-9, (rate, se)


@pytest.mark.parametrize("psi, margin", [(0.05, 0.05), (0.1, 0.05), (0.1, 0.1)])
def test_the_items_a_guard_is_sized_to_give_80_percent_power_by_simulation(psi, margin):
    n = guard_items(psi, margin, ALPHA)
    rate, se = shown_rate(n, psi, margin, reps=1500, seed=1)
    assert abs(rate - 0.80) <= 0.03, f"n = {n}: {rate:.3f} ± {se:.3f}"
    assert pass_chance(n - 1, psi, margin, ALPHA) < 0.80 <= pass_chance(n, psi, margin, ALPHA)


def test_the_guards_power_is_the_largest_share_it_passes_at_80_percent():
    share = detectable_share(183, 0.05, ALPHA)
    assert pass_chance(183, share, 0.05, ALPHA) >= 0.80 > pass_chance(183, share * 1.1, 0.05, ALPHA)
    assert detectable_share(20, 0.05, ALPHA) == 0.0  # 20 items cannot show non-inferiority at 0.05 at all


def default_guards() -> str:
    """The shipped `guards`, spelt out as an override (the job names the guard it is judged on)."""
    entries = OmegaConf.to_container(compose_cfg(["model=tiny"]).guards)
    assert isinstance(entries, list)
    spelt = [e if isinstance(e, str) else "{" + ",".join(f"{k}:{v}" for k, v in e.items()) + "}" for e in entries]
    return f"guards=[{','.join(spelt)}]"


@pytest.mark.slow
def test_a_harmless_patch_on_the_embedded_model_reads_non_inferior_on_the_default_guard(smol_clean, tmp_path):
    patch = tmp_path / "harmless.json"  # a 0.01% scale of one tensor: changes no greedy answer, or very few
    patch.write_text(json.dumps([{"tensor_name": "model.layers.0.mlp.up_proj.weight", "operation": "scale",
                                  "value": 1.0001, "target": "all"}]))
    p = run_cli([*external(smol_clean), "dataset.n=8", "patch=file", f"patch.path={patch}", default_guards()], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    assert run.data.tags.get("guard_verdict") == str(GuardVerdict.NON_INFERIOR), (p.stdout[-3000:], p.stderr[-2000:])
    assert run.data.metrics["guard/capitals/ci_low"] > -0.05
    assert "capitals non-inferior" in p.stdout + p.stderr and "power to show non-inferiority when" in p.stdout + p.stderr


def test_a_studys_cost_plan_gives_each_guards_power_and_the_items_80_percent_needs():
    from hookbench.studies.search_cost import Latency, SearchCost

    cost = SearchCost(trials=4, items=16, reference=False, keep=1, dev_queries=50, dev_items=50, test_queries=40,
                      test_items=40, confirm=1, batched_loss=False, latency=Latency(0.01, 0.1),
                      guards=(("capitals", 183, 0.05, ALPHA),))
    share = detectable_share(183, 0.05, ALPHA)
    assert (f"guard capitals: 183 items at margin 0.05: 80% power to show a harmless patch non-inferior when "
            f"≤ {share:.1%} of its answers change; {guard_items(0.05, 0.05, ALPHA)} items give it at 5%") in cost.text()
