"""`python -m hookbench.reproduce RUN_ID`: rerun a logged run from what it logged, and compare.

The rerun uses the run's fully composed config (config_resolved.yaml) and its frozen patch JSON,
never today's conf/ and never /api/suggestions, with reuse off. It exits non-zero when the server
is not the logged one or the results disagree: greedy runs must give identical per-item outputs,
sampled runs deltas inside each other's confidence intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from rich.table import Table

from hookbench import tracking
from hookbench.errors import HookbenchError, ReproductionMismatch
from hookbench.job import console, run_job

COMPARED = ("accuracy/baseline", "accuracy/patched", "accuracy/delta", "accuracy/delta_ci_low",
            "accuracy/delta_ci_high", "n/scored", "failures/baseline", "failures/patched")


def load_logged(client: MlflowClient, run_id: str, into: Path) -> tuple[dict, Path, dict]:
    """(resolved config, frozen patch path, logged server identity) of a run."""
    try:
        cfg = OmegaConf.load(client.download_artifacts(run_id, tracking.RESOLVED_CONFIG, str(into)))
        patch = Path(client.download_artifacts(run_id, "patch.json", str(into)))
    except (MlflowException, OSError) as e:
        raise HookbenchError(f"run {run_id} cannot be reproduced: its config or frozen patch is missing ({e})") from None
    identity = json.loads(client.get_run(run_id).data.tags["server.identity"])
    return cfg, patch, identity


def items(client: MlflowClient, run_id: str, into: Path) -> dict[str, dict]:
    path = client.download_artifacts(run_id, "items.jsonl", str(into))
    return {r["id"]: r for r in map(json.loads, Path(path).read_text().splitlines())}


def compare(original: dict, rerun: dict, orig_items: dict, new_items: dict, greedy: bool) -> list[str]:
    """Reasons the rerun disagrees with the original; empty when it reproduces."""
    if greedy:
        diffs = [i for i in orig_items if i not in new_items or any(
            orig_items[i][f"{arm}_output"] != new_items[i][f"{arm}_output"] for arm in ("baseline", "patched"))]
        return [f"{len(diffs)} of {len(orig_items)} items differ under greedy decoding, e.g. {diffs[:5]}"] if diffs else []
    lo, hi = "accuracy/delta_ci_low", "accuracy/delta_ci_high"
    a, b = original.get("accuracy/delta"), rerun.get("accuracy/delta")
    if None in (a, b, original.get(lo), rerun.get(lo)):
        return ["a delta or its CI is missing, so the runs cannot be compared"]
    if not (rerun[lo] <= a <= rerun[hi] and original[lo] <= b <= original[hi]):
        return [f"sampled deltas disagree: original {a:+.3f} [{original[lo]:+.3f}, {original[hi]:+.3f}], "
                f"rerun {b:+.3f} [{rerun[lo]:+.3f}, {rerun[hi]:+.3f}]"]
    return []


def reproduce(run_id: str, tracking_uri: str) -> int:
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    work = Path(tempfile.mkdtemp(prefix=f"hookbench-reproduce-{run_id[:8]}-"))
    original = client.get_run(run_id)
    cfg, patch_path, identity = load_logged(client, run_id, work / "original")
    cfg.patch = {"_target_": "hookbench.patches.FileSource", "name": cfg.patch.name, "path": str(patch_path)}
    cfg.reuse.enabled = False
    cfg.mlflow.tracking_uri = tracking_uri
    result = run_job(cfg, extra_tags={"hookbench.reproduces": run_id}, expected_identity=identity,
                     out_dir=work / "rerun")
    preset = json.loads(original.data.params["generation.preset_config"])
    greedy = not preset.get("do_sample")
    reasons = compare(original.data.metrics, result, items(client, run_id, work / "original"),
                      items(client, result["run_id"], work / "rerun-items"), greedy)
    table = Table(title=f"original {run_id} vs reproduced {result['run_id']}")
    for col in ("metric", "original", "reproduced"):
        table.add_column(col)
    for key in COMPARED:
        table.add_row(key, *(f"{m[key]:.4g}" if key in m else "n/a" for m in (original.data.metrics, result)))
    console.print(table)
    if reasons:
        raise ReproductionMismatch("not reproduced: " + "; ".join(reasons))
    print(f"reproduced ({'greedy: per-item outputs identical' if greedy else 'sampled: deltas within CIs'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hookbench.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("run_id")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}",
                        help="the store holding the run (default: ./mlruns/mlflow.db, where `python -m hookbench` logs)")
    args = parser.parse_args(argv)
    try:
        return reproduce(args.run_id, args.tracking_uri)
    except HookbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except MlflowException as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
