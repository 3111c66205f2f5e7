"""`hookbench plan RUN_ID --effect 0.03 [--patches K]`: size a study from a pilot run.

Reads the pilot's per-item results and latency and prints, before anyone books a node: the items
a change of `--effect` needs at 80% power given the pilot's discordance and clustering (Connor 1987,
hookbench.stats.power), the generations N·(1+K)·draws a K-patch sweep costs (one shared baseline,
one patched arm per patch) and the wall time at the pilot's measured per-answer latency; and the
items a rerun needs for `hookbench reproduce` to show it reproduces (equivalence within the margin)
at 80% power, from the run's own variance (hookbench.stats.power.reproduction_items).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.errors import NothingToCompare
from hookbench.evaluation.results import per_item
from hookbench.reports.formatting import plural
from hookbench.stats import TARGET_EFFECT, cluster_codes
from hookbench.stats.power import POWER, connor_items, design_effect, reproduction_items


@dataclass(frozen=True)
class Plan:
    items: int
    generations: int
    wall_s: float
    discordance: float  # ψ: mean squared per-item difference (the discordant share for 0/1 scores)
    design_effect: float


def size_study(diffs, queries, effect: float, alpha: float, patches: int, draws: int,
         latency_s: dict[str, float]) -> Plan:
    """Items for `effect` at 80% power; generations and wall time for a `patches`-patch sweep."""
    psi = float(sum(d * d for d in diffs) / len(diffs))
    deff = design_effect(diffs, cluster_codes(queries))
    items = math.ceil(connor_items(psi, effect, alpha, POWER) * deff)
    per_item_s = latency_s["baseline"] + patches * latency_s["patched"]
    return Plan(items, items * (1 + patches) * draws, items * draws * per_item_s, psi, deff)


def reproduction_line(diffs, queries, equivalence_margin: float, alpha: float) -> str:
    """The items a rerun of this run needs to reproduce (TOST within ±margin, 80% power)."""
    items = reproduction_items(diffs, cluster_codes(queries), equivalence_margin, alpha, POWER)
    return (f"to show a rerun reproduces it (equivalence within ±{equivalence_margin:g}, TOST at α = {alpha:g}) with "
            f"{POWER:.0%} power: about {plural(items, 'item')} (from this run's own variance)")


def side_costs(metrics: dict, params: dict, patches: int, draws: int, items: int) -> list[str]:
    """What the pilot's guard tasks and prompting arm add to a `patches`-patch sweep, in generations."""
    lines = []
    guards = {k.split("/")[1]: int(v) for k, v in metrics.items()
              if k.count("/") == 2 and k == mlflow_keys.guard(k.split("/")[1], "n")}
    for name, n in sorted(guards.items()):
        lines.append(f"guard {name}:  +{n * (1 + patches) * draws} generations = {n} × (1 + {patches}) × "
                     f"{plural(draws, 'draw')} (its items, baseline shared)")
    if params.get(mlflow_keys.COMPARE_PROMPT) not in (None, "", "None", "null"):
        total = items + sum(guards.values())  # the prompting arm runs on the guards' items too
        on = f"{items} + {' + '.join(str(n) for _, n in sorted(guards.items()))} (guards)" if guards else str(items)
        lines.append(f"prompting arm: +{total * draws} generations = {on} × {plural(draws, 'draw')} "
                     "(once per store, shared by every patch)")
    return lines


def pilot_plan(run_id: str, tracking_uri: str, effect: float | None, patches: int, equivalence_margin: float | None = None) -> int:
    client = tracking.use_store(tracking_uri)
    run = tracking.get_run(client, run_id)
    items = tracking.logged_items(client, run_id, Path(tempfile.mkdtemp(prefix="hookbench-plan-")))
    baseline, patched, queries, _ = per_item(items, count_patch_failures=False)
    if not baseline:
        raise NothingToCompare(f"run {run_id} scored no item in both arms: it cannot pilot a plan")
    m, p = run.data.metrics, run.data.params
    latency = {arm: m.get(mlflow_keys.latency(arm, "per_item_mean"), math.nan) for arm in mlflow_keys.ARMS}
    draws = int(m.get(mlflow_keys.N_DRAWS, len(items)) / max(1, len({r.id for r in items})))
    alpha = float(p.get(mlflow_keys.STATS_ALPHA, 0.05))
    logged_effect = next((float(v) for v in (p.get(mlflow_keys.STATS_TARGET_EFFECT),) if v not in (None, "", "None", "null")),
                         TARGET_EFFECT)  # a run logged before target_effect was a param
    effect = effect or logged_effect
    result = size_study([b - a for a, b in zip(baseline, patched)], queries, effect, alpha, patches, draws, latency)
    print(f"pilot run {run_id}: {plural(len(baseline), 'item')} scored in both arms, discordance ψ = "
          f"{result.discordance:.3f}, design effect {result.design_effect:.2f} (query clusters)")
    print(f"to detect a change of ±{effect:g} at α = {alpha:g} with {POWER:.0%} power (Connor 1987):")
    print(f"  items:       {result.items}")
    print(f"  generations: {result.generations} = {result.items} × (1 + {patches}) × {plural(draws, 'draw')}")
    wall = "n/a (the pilot logged no latency)" if math.isnan(result.wall_s) else \
        f"{result.wall_s:.0f} s ({result.wall_s / 3600:.2f} h) at the pilot's " \
        f"{latency['baseline']:.3f} s / {latency['patched']:.3f} s per baseline / patched answer"
    print(f"  wall time:   {wall}")
    for line in side_costs(m, p, patches, draws, result.items):
        print(f"  {line}")
    equivalence_margin = equivalence_margin or next((float(v) for v in (p.get(mlflow_keys.REPRODUCE_MARGIN),) if v not in (None, "", "None", "null")),
                            logged_effect)
    print(reproduction_line([b - a for a, b in zip(baseline, patched)], queries, equivalence_margin, alpha))
    return 0
