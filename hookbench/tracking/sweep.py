"""Sweeps (`python -m hookbench -m ...`): one MLflow parent run, a child per job, a verdict per family.

The parent is created before the first job and closed after the last one — also when Hydra skips
`on_multirun_end` because a job crashed or the sweep was interrupted (an atexit hook closes it
then). Each child's p-value is adjusted over the whole sweep (`stats.correction`), failed and
screened-out jobs included in the family, and the adjusted verdict is written back to every child.
"""

from __future__ import annotations

import atexit
import math
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.outcomes import GuardVerdict, Screen, Verdict
from hookbench.reports.plots import verdict_hex
from hookbench.reports.sweep_report import sweep_answer, sweep_note, sweep_table, write_sweep_report
from hookbench.stats import adjust_p_values, adjusted_verdict
from hookbench.tracking import naming
from hookbench.tracking.sweep_children import lead_children


def headline(error: str) -> str:
    """One line of a job's error: the message, or a traceback's last line (the exception)."""
    lines = error.strip().splitlines() or [""]
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def sweep_rows(runs) -> list[dict]:
    """One dict per child run: what the sweep report and the correction read."""
    rows = []
    for r in runs:
        p, t = r.data.params, r.data.tags
        row = {"name": t.get(mlflow_keys.TAG_NAME, r.info.run_name), "model": p.get(mlflow_keys.MODEL_NAME, "?"),
               "patch": p.get(mlflow_keys.PATCH_NAME, "?"), "patch_hash": p.get(mlflow_keys.PATCH_HASH, ""),
               "dataset": p.get(mlflow_keys.DATASET_NAME, "?"),
               "strength": float(p.get(mlflow_keys.PATCH_STRENGTH, 1.0) or 1.0), "run_id": r.info.run_id,
               "status": r.info.status, mlflow_keys.TAG_VERDICT: t.get(mlflow_keys.TAG_VERDICT),
               mlflow_keys.TAG_SCREEN: t.get(mlflow_keys.TAG_SCREEN), mlflow_keys.TAG_GUARD_VERDICT: t.get(mlflow_keys.TAG_GUARD_VERDICT),
               **r.data.metrics}
        if t.get(mlflow_keys.TAG_ERROR):
            row["error"] = headline(t[mlflow_keys.TAG_ERROR])
        rows.append(row)
    return rows


def adjust(rows: list[dict], method: str, alpha: float) -> None:
    """Adjusted p and verdict per row, over the whole family (a job without a p stays in it)."""
    p = [r.get(mlflow_keys.P_VALUE, math.nan) if r["status"] == "FINISHED" and r.get(mlflow_keys.TAG_SCREEN) != Screen.REJECTED else math.nan
         for r in rows]
    for row, adjusted in zip(rows, adjust_p_values(p, method)):
        row[mlflow_keys.P_ADJUSTED] = adjusted
        if row.get(mlflow_keys.TAG_VERDICT) in (Verdict.NO_CHANGE_OBSERVED, Verdict.NO_DATA) or math.isnan(adjusted):
            row[mlflow_keys.TAG_VERDICT_ADJUSTED] = row.get(mlflow_keys.TAG_VERDICT) or Verdict.NO_DATA
        else:
            row[mlflow_keys.TAG_VERDICT_ADJUSTED] = adjusted_verdict(row.get(mlflow_keys.ACC_DELTA, math.nan), adjusted, alpha)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent: tracking.SweepParent | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # not yet set this early; ${hydra:...} needs it
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.stats = config.stats
        self.parent = tracking.SweepParent(config.mlflow, list(config.hydra.overrides.task), self.sweep_dir)
        atexit.register(self._finish, interrupted=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.parent is None:
            return
        atexit.unregister(self._finish)
        if self._finish(interrupted=False) != "FINISHED":
            sys.exit(1)

    def _finish(self, interrupted: bool) -> str:
        """Correction, sweep report on the parent, then its status: FAILED if any job failed or never ran."""
        parent = self.parent
        runs = parent.children()
        rows = sweep_rows(runs)
        failed = [r for r in rows if r["status"] != "FINISHED"]
        status = "FAILED" if failed or interrupted or not rows else "FINISHED"
        correction, alpha = self.stats.correction, float(self.stats.alpha)
        try:
            adjust(rows, correction, alpha)
            for row in rows:
                metrics = {} if math.isnan(row[mlflow_keys.P_ADJUSTED]) else {mlflow_keys.P_ADJUSTED: row[mlflow_keys.P_ADJUSTED]}
                result = naming.sweep_result(row, correction)
                guard_hurt = str(row.get(mlflow_keys.TAG_GUARD_VERDICT) or "").startswith(GuardVerdict.HURTS)
                tracking.set_child_tags(parent.client, row["run_id"], {mlflow_keys.TAG_VERDICT_ADJUSTED: row[mlflow_keys.TAG_VERDICT_ADJUSTED],
                                                                       mlflow_keys.TAG_RESULT: result,
                                                                       mlflow_keys.TAG_RUN_COLOR: verdict_hex(row[mlflow_keys.TAG_VERDICT_ADJUSTED],
                                                                                                        guard_hurt)}, metrics)
                parent.client.update_run(row["run_id"], name=naming.with_result(row["name"], result))
            leads = lead_children(parent.client, rows, correction, alpha)
            files = write_sweep_report(self.sweep_dir, rows, correction, alpha)
            metrics = {mlflow_keys.SWEEP_JOBS: len(rows), mlflow_keys.SWEEP_FAILED_JOBS: len(failed),
                       **{mlflow_keys.sweep_count(v): sum(r[mlflow_keys.TAG_VERDICT_ADJUSTED] == v for r in rows)
                          for v in (Verdict.IMPROVES, Verdict.HURTS)}}
            largest = max((r for r in rows if not math.isnan(r.get(mlflow_keys.ACC_DELTA, math.nan))),
                          key=lambda r: r[mlflow_keys.ACC_DELTA], default=None)
            if largest is not None:  # the largest delta, not "best": it may be negative or not significant
                metrics[mlflow_keys.SWEEP_LARGEST_DELTA] = largest[mlflow_keys.ACC_DELTA]
                parent.client.set_tag(parent.run_id, mlflow_keys.TAG_SWEEP_LARGEST_JOB,
                                      f"{largest['model']} / {largest['patch']} / {largest['dataset']} "
                                      f"(run {largest['run_id']})")
            parent.finish(status, metrics, files, sweep_table(rows) if rows else None,
                          sweep_note(rows, correction, alpha), sweep_answer(rows, correction))
        except BaseException:
            parent.client.set_terminated(parent.run_id, "FAILED")
            raise
        for line in leads:  # each child's claim after the correction, not its own test
            print(f"  {line}", file=sys.stderr)
        for r in failed:  # a job in another process (joblib, submitit) printed its error to its own log
            print(f"  {r['status']}: {r['model']} / {r['patch']} (run {r['run_id']}): {r.get('error', 'no error recorded')}",
                  file=sys.stderr)
        print(f"sweep parent run {parent.run_id}: {status}, {len(rows)} jobs, {len(failed)} failed; "
              f"summary in {self.sweep_dir}/{mlflow_keys.SWEEP_MD}", file=sys.stderr)
        return status
