"""`python -m hookbench.reproduce RUN_ID`: rerun a logged run from what it logged, and compare.

The rerun uses the run's fully composed config (config_resolved.yaml) and its frozen patch JSON,
never today's conf/ and never /api/suggestions, with reuse off. The rules, printed with the result:
- greedy runs reproduce when the dataset fingerprint, every gold answer, every output and score
  and the headline metrics are identical;
- sampled runs reproduce when the two runs' per-item deltas do not differ significantly (a paired
  test of the difference of the deltas, clustered by query, at the run's alpha).
The rerun is tagged `hookbench.reproduces=RUN_ID` and `hookbench.reproduced=agrees|disagrees`.
Exit codes: 0 reproduced, 6 not reproduced (or another server), other codes as `python -m hookbench`.
"""

from __future__ import annotations

import argparse
import json
import math
import datetime as dt
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from hookbench import names, tracking
from hookbench.entry import run_command
from hookbench.errors import ReproductionMismatch
from hookbench.evaluation.patches import NO_PATCH_SOURCE
from hookbench.evaluation.results import ItemResult, per_item
from hookbench.job import console, run_job
from hookbench.stats import compare_runs


def logged_config(client, run_id: str, into: Path) -> tuple[DictConfig, dict]:
    """(config to rerun with: the logged one with its frozen patch and reuse off, logged server identity)."""
    run = tracking.get_run(client, run_id)
    cfg = OmegaConf.load(tracking.download(client, run_id, names.RESOLVED_CONFIG, into))
    patch = tracking.download(client, run_id, names.PATCH_JSON, into)
    if json.loads(patch.read_text()).get("source") == NO_PATCH_SOURCE:  # the A/A job: nothing to apply
        cfg.patch = {"_target_": "hookbench.evaluation.patches.NoPatch", "name": cfg.patch.name}
    else:
        cfg.patch = {"_target_": "hookbench.evaluation.patches.FileSource", "name": cfg.patch.name, "path": str(patch)}
    cfg.reuse.enabled = False
    identity = json.loads(run.data.tags.get(names.TAG_SERVER_IDENTITY, "null"))
    return cfg, identity


def per_item_deltas(records: list[ItemResult]) -> dict[str, tuple[float, str]]:
    """item id -> (mean patched - mean baseline over draws scored in both arms, query)."""
    baseline, patched, queries, ids = per_item(records, count_patch_failures=False)
    return {i: (p - b, q) for i, b, p, q in zip(ids, baseline, patched, queries)}


def greedy_differences(original, rerun, orig_items: list[ItemResult], new_items: list[ItemResult]) -> list[str]:
    """Reasons a greedy rerun is not identical; empty when it is."""
    reasons = []
    fp = "dataset.fingerprint"
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
        for a in names.ARMS for f in ("output", "correct", "error"))]
    if diffs:
        reasons.append(f"{len(diffs)} of {len(orig_items)} items differ in output or score, e.g. {diffs[:5]}")
    for key in (names.ACC_BASELINE, names.ACC_PATCHED, names.ACC_DELTA, names.N_SCORED):
        a, b = original.data.metrics.get(key), rerun.data.metrics.get(key)
        if a != b and not (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12)):
            reasons.append(f"{key}: {a} -> {b}")
    return reasons


def sampled_agreement(orig_items: list[ItemResult], new_items: list[ItemResult], alpha: float):
    a, b = per_item_deltas(orig_items), per_item_deltas(new_items)
    ids = [i for i in a if i in b]
    return compare_runs([a[i][0] for i in ids], [b[i][0] for i in ids], clusters=[a[i][1] for i in ids], alpha=alpha)


def output_dir(kind: str, run_id: str) -> Path:
    """Where a study command writes: the same outputs/DATE/TIME-... tree as `python -m hookbench` runs."""
    now = dt.datetime.now()
    path = Path.cwd() / "outputs" / now.strftime("%Y-%m-%d") / f"{now:%H-%M-%S}-{kind}-{run_id[:8]}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reproduce(run_id: str, tracking_uri: str) -> int:
    client = tracking.use_store(tracking_uri)
    work = output_dir("reproduce", run_id)
    original = tracking.get_run(client, run_id)
    cfg, identity = logged_config(client, run_id, work / "original")
    cfg.mlflow.tracking_uri = tracking_uri
    result = run_job(cfg, extra_tags={names.TAG_REPRODUCES: run_id}, expected_identity=identity, out_dir=work / "rerun")
    rerun = client.get_run(result.run_id)
    greedy = not json.loads(original.data.params["generation.preset_config"]).get("do_sample")
    orig_items = tracking.logged_items(client, run_id, work / "original-items")
    new_items = result.output.records
    if greedy:
        reasons = greedy_differences(original, rerun, orig_items, new_items)
        rule = "greedy: dataset, gold answers, every output and score, and the metrics must be identical"
        verdict = "; ".join(reasons) if reasons else "identical"
    else:
        agreement = sampled_agreement(orig_items, new_items, float(cfg.stats.alpha))
        reasons = [] if agreement.agree else [agreement.sentence()]
        rule = "sampled: the two runs' per-item deltas must not differ significantly (paired, clustered by query)"
        verdict = agreement.sentence()
    client.set_tag(result.run_id, names.TAG_REPRODUCED, "disagrees" if reasons else "agrees")
    table = Table(title=f"original {run_id} vs reproduced {result.run_id}")
    for col in ("metric", "original", "reproduced"):
        table.add_column(col)
    for key in names.COMPARED:
        table.add_row(key, *(f"{m[key]:.4g}" if key in m else "n/a" for m in (original.data.metrics, rerun.data.metrics)))
    console.print(table)
    print(f"rule: {rule}\nresult: {verdict}")
    if reasons:
        raise ReproductionMismatch("not reproduced: " + "; ".join(reasons))
    print(f"reproduced ({rule.split(':')[0]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookbench.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("run_id")
    parser.add_argument("--tracking-uri", default=None,
                        help="the store holding the run (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db, "
                             "where `python -m hookbench` logs)")
    args = parser.parse_args(argv)
    return run_command(lambda: reproduce(args.run_id, args.tracking_uri or tracking.default_tracking_uri()))
