"""`hookbench reproduce RUN_ID`: rerun a logged run from what it logged, and compare.

The rerun uses the run's fully composed config (config_resolved.yaml) and its frozen patch JSON,
never today's conf/ and never /api/suggestions, with reuse off. The rules, printed with the result:
- greedy runs reproduce when the dataset fingerprint, every gold answer, every output and score
  and the headline metrics are identical;
- sampled runs are judged on the per-item difference of the two runs' deltas (CR1 clustered by
  query): *reproduces* when its (1−2α) interval lies within ±reproduce.margin (TOST; default:
  stats.target_effect), *does not reproduce* when its (1−α) interval excludes 0, else
  *inconclusive*, which says how many items a rerun needs to decide at 80% power. Each arm is
  compared the same way and an arm that moved is named.
The rerun is tagged `hookbench.reproduces=RUN_ID` and `hookbench.reproduced=agrees|disagrees|inconclusive`.
Exit codes: 0 reproduces, 6 does not (or another server), 8 inconclusive, 7 nothing to compare.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.errors import (
    ConfigError,
    HookbenchError,
    NothingToCompare,
    ReproductionInconclusive,
    ReproductionMismatch,
)
from hookbench.evaluation.config_schema import completed
from hookbench.evaluation.patches import NO_PATCH_SOURCE
from hookbench.evaluation.results import ItemResult, per_item
from hookbench.job import console, run_job
from hookbench.reports.formatting import equivalence_rule, equivalence_sentence, fmt_metric
from hookbench.stats import Equivalence, cluster_codes, equivalence
from hookbench.stats.equivalence import AGREES, DISAGREES, INCONCLUSIVE
from hookbench.stats.power import POWER, reproduction_items


def logged_config(client, run_id: str, into: Path) -> tuple[DictConfig, dict]:
    """(config to rerun with: the logged one with its frozen patch and reuse off, logged server identity)."""
    run = tracking.get_run(client, run_id)
    cfg = completed(cast(DictConfig, OmegaConf.load(tracking.download(client, run_id, mlflow_keys.RESOLVED_CONFIG, into))))
    patch = tracking.download(client, run_id, mlflow_keys.PATCH_JSON, into)
    if json.loads(patch.read_text()).get("source") == NO_PATCH_SOURCE:  # the A/A job: nothing to apply
        cfg.patch = {"_target_": "hookbench.evaluation.patches.NoPatch", "name": cfg.patch.name}
    else:
        cfg.patch = {"_target_": "hookbench.evaluation.patches.FileSource", "name": cfg.patch.name, "path": str(patch)}
    cfg.reuse.enabled = False
    identity = json.loads(run.data.tags.get(mlflow_keys.TAG_SERVER_IDENTITY, "null"))
    return cfg, identity


ARMS_MOVED = {"baseline": "the baseline moved: the server behaves differently",
              "patched": "the patched arm moved: the patch acts differently on this server"}


def per_item_arms(items: list[ItemResult]) -> dict[str, tuple[float, float, str]]:
    """item id -> (mean baseline, mean patched over draws scored in both arms, query)."""
    baseline, patched, queries, ids = per_item(items, count_patch_failures=False)
    return {i: (b, p, q) for i, b, p, q in zip(ids, baseline, patched, queries)}


def sampled_agreement(orig_items: list[ItemResult], new_items: list[ItemResult], alpha: float,
                      equivalence_margin: float) -> dict[str, Equivalence]:
    """The difference test and TOST for the delta and for each arm, on the items both runs scored."""
    a, b = per_item_arms(orig_items), per_item_arms(new_items)
    ids = [i for i in a if i in b]
    groups = cluster_codes([a[i][2] for i in ids])
    value = {"baseline": lambda x: x[0], "patched": lambda x: x[1], "delta": lambda x: x[1] - x[0]}
    return {what: equivalence([f(a[i]) - f(b[i]) for i in ids], groups, equivalence_margin, alpha, what)
            for what, f in value.items()}


def equivalence_margin_of(cfg: DictConfig, override: float | None) -> float:
    """--margin, else reproduce.margin, else stats.target_effect (a logged config is completed from the
    schema, so it has one): the change the user said matters
    (a margin of the original's MDE would shrink with n as fast as the rerun's interval, so tiny
    runs would reproduce as easily as large ones)."""
    key, value = next((k, v) for k, v in (("--margin", override),
                                          (mlflow_keys.REPRODUCE_MARGIN, OmegaConf.select(cfg, mlflow_keys.REPRODUCE_MARGIN)),
                                          (mlflow_keys.STATS_TARGET_EFFECT, OmegaConf.select(cfg, mlflow_keys.STATS_TARGET_EFFECT)))
                      if v is not None)
    if not float(value) > 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return float(value)


GREEDY_RULE = "greedy: dataset, gold answers, every output and score, and the metrics must be identical"


def greedy_differences(original, rerun, orig_items: list[ItemResult], new_items: list[ItemResult],
                       with_metrics: bool = True) -> list[str]:
    """Reasons a greedy rerun is not identical; empty when it is (a FAILED original has no metrics)."""
    reasons = []
    fp = mlflow_keys.DATASET_FINGERPRINT
    if original.data.params.get(fp) != rerun.data.params.get(fp):
        reasons.append(f"the dataset changed: fingerprint {original.data.params.get(fp)} -> {rerun.data.params.get(fp)}")
    new = {(r.id, r.draw): r for r in new_items}
    golds = [r.id for r in orig_items if (r.id, r.draw) in new and new[(r.id, r.draw)].gold != r.gold]
    if golds:
        reasons.append(f"{len(golds)} gold answers changed, e.g. {golds[:5]}")
    missing = [r.id for r in orig_items if (r.id, r.draw) not in new]
    if missing:
        reasons.append(f"{len(missing)} items are missing from the rerun, e.g. {missing[:5]}")
    diffs = [r.id for r in orig_items if (r.id, r.draw) in new and any(
        getattr(r.arm(a), f) != getattr(new[(r.id, r.draw)].arm(a), f)
        for a in mlflow_keys.ARMS for f in ("output", "correct", "error"))]
    if diffs:
        reasons.append(f"{len(diffs)} of {len(orig_items)} items differ in output or score, e.g. {diffs[:5]}")
    for key in (mlflow_keys.ACC_BASELINE, mlflow_keys.ACC_PATCHED, mlflow_keys.ACC_DELTA, mlflow_keys.N_SCORED) if with_metrics else ():
        a, b = original.data.metrics.get(key), rerun.data.metrics.get(key)
        if a != b and not (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12)):
            reasons.append(f"{key}: {a} -> {b}")
    return reasons


def output_dir(kind: str, run_id: str) -> Path:
    """Where a study command writes: the same outputs/DATE/TIME-... tree as `python -m hookbench` runs."""
    now = dt.datetime.now()
    path = Path.cwd() / "outputs" / now.strftime("%Y-%m-%d") / f"{now:%H-%M-%S}-{kind}-{run_id[:8]}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reproduce(run_id: str, tracking_uri: str, equivalence_margin: float | None = None) -> int:
    client = tracking.use_store(tracking_uri)
    work = output_dir("reproduce", run_id)
    original = tracking.get_run(client, run_id)
    orig_items = comparable_items(client, original, work / "original-items")  # a FAILED run may have no patch.json
    cfg, identity = logged_config(client, run_id, work / "original")
    cfg.mlflow.tracking_uri = tracking_uri
    m = equivalence_margin_of(cfg, equivalence_margin)  # a bad margin is refused before anything is rerun
    result = run_job(cfg, extra_tags={mlflow_keys.TAG_REPRODUCES: run_id}, expected_identity=identity, out_dir=work / "rerun")
    rerun = client.get_run(result.run_id)
    new_items = result.output.items
    if not json.loads(original.data.params[mlflow_keys.GEN_PRESET_CONFIG]).get("do_sample"):
        reasons = greedy_differences(original, rerun, orig_items, new_items, tracking.is_finished(original))
        outcome: str
        rule, outcome = GREEDY_RULE, DISAGREES if reasons else AGREES
        lines = ["; ".join(reasons) if reasons else "identical"]
    else:
        compared = sampled_agreement(orig_items, new_items, float(cfg.stats.alpha), m)
        outcome, rule = compared["delta"].outcome, "sampled: " + equivalence_rule(float(cfg.stats.alpha), m)
        lines = [equivalence_sentence(e) for e in compared.values()]
        lines += [ARMS_MOVED[w] for w in mlflow_keys.ARMS if compared[w].outcome == DISAGREES]
        reasons = lines if outcome == DISAGREES else []
    client.set_tag(result.run_id, mlflow_keys.TAG_REPRODUCED, outcome)
    print_side_by_side(run_id, result.run_id, original, rerun)
    print(f"rule: {rule}\nresult:\n  " + "\n  ".join(lines))
    kind = rule.split(":")[0]
    if outcome == DISAGREES:
        raise ReproductionMismatch(f"not reproduced ({kind}): " + "; ".join(reasons))
    if outcome == INCONCLUSIVE:
        raise ReproductionInconclusive(f"inconclusive ({kind}): the runs neither differ significantly nor lie "
                                       f"within the margin; {items_to_reproduce(orig_items, float(cfg.stats.alpha), m)}")
    print(f"reproduced ({kind})")
    return 0


def items_to_reproduce(orig_items: list[ItemResult], alpha: float, equivalence_margin: float) -> str:
    """What would decide: the items a rerun needs to show equivalence at 80% power (original's variance)."""
    baseline, patched, queries, _ = per_item(orig_items, count_patch_failures=False)
    needed = reproduction_items([b - a for a, b in zip(baseline, patched)], cluster_codes(queries), equivalence_margin, alpha)
    return (f"a rerun on about {needed} items (dataset.n) would show equivalence within ±{equivalence_margin:g} with "
            f"{POWER:.0%} power if the runs agree (from the original's variance; this one compared {len(baseline)})")


def comparable_items(client, original, into: Path) -> list[ItemResult]:
    """The original's items; a FAILED run is said so, and compared on the items it scored in both arms."""
    status = original.info.status
    if tracking.is_finished(original):
        return tracking.logged_items(client, original.info.run_id, into)
    reason = headline_of(original.data.tags.get(mlflow_keys.TAG_ERROR, "no error recorded"))
    try:
        items = tracking.logged_items(client, original.info.run_id, into)
    except HookbenchError:
        items = []
    if not per_item(items, count_patch_failures=False)[3]:
        raise NothingToCompare(f"run {original.info.run_id} is {status} ({reason}) and scored no item in both arms: "
                               "there is nothing to compare a rerun with, so none was started")
    print(f"run {original.info.run_id} is {status} ({reason}); comparing the items it scored in both arms")
    return items


def headline_of(error: str) -> str:
    lines = error.strip().splitlines() or [""]
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def print_side_by_side(run_id: str, rerun_id: str, original, rerun) -> None:
    table = Table(title=f"original {run_id} vs reproduced {rerun_id}")
    for col in ("metric", "original", "reproduced"):
        table.add_column(col)
    for key in mlflow_keys.COMPARED:
        table.add_row(key, *(fmt_metric(m.get(key)) for m in (original.data.metrics, rerun.data.metrics)))
    console.print(table)
