"""Hydra callback that turns a multirun into one MLflow parent run with a child run per job.

The parent (and the tracking store) is created before the first job, so jobs in parallel
processes never race to create a fresh sqlite store. Hydra skips `on_multirun_end` when a job
raises, so the parent is also closed from an atexit hook; its status is read off its children.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hookbench import tracking

log = logging.getLogger(__name__)
PARENT_ENV = "HOOKBENCH_PARENT_RUN_ID"
PARENT_FILE = ".hookbench_parent_run"


def parent_run_id() -> str | None:
    """The sweep's parent run id, for a job of that sweep in any launcher's process."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    f = Path(HydraConfig.get().sweep.dir) / PARENT_FILE
    return f.read_text().strip() if f.exists() else None


def headline(error: str) -> str:
    """One line of a job's error: the message, or a traceback's last line (the exception)."""
    lines = error.strip().splitlines() or [""]
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def sweep_rows(client: MlflowClient, experiment_id: str, parent_id: str) -> list[dict]:
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=10000)
    rows = []
    for r in sorted(runs, key=lambda r: r.info.start_time):
        p = r.data.params
        rows.append({"model": p.get("model.name", "?"), "patch": p.get("patch.name", "?"),
                     "patch_hash": p.get("patch.hash", ""), "dataset": p.get("dataset.name", "?"),
                     "run_id": r.info.run_id, "status": r.info.status, **r.data.metrics})
        if r.data.tags.get("error"):
            rows[-1]["error"] = headline(r.data.tags["error"])
    return rows


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)  # not yet set this early; ${hydra:...} needs it
        self.experiment_id = tracking.configure(config.mlflow)
        self.client = MlflowClient()
        overrides = " ".join(config.hydra.overrides.task)
        run = self.client.create_run(self.experiment_id, run_name=f"sweep {overrides}".strip(),
                                     tags={"hookbench.sweep": "parent", "sweep.overrides": overrides,
                                           **tracking.git_info()})
        self.parent_id = run.info.run_id
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        (self.sweep_dir / PARENT_FILE).write_text(self.parent_id)
        os.environ[PARENT_ENV] = self.parent_id
        atexit.register(self._finish, interrupted=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.parent_id is None:
            return
        atexit.unregister(self._finish)
        if self._finish(interrupted=False) != "FINISHED":
            sys.exit(1)

    def _finish(self, interrupted: bool) -> str:
        """Sweep report on the parent, then its status: FAILED if any job failed or never ran."""
        from hookbench.sweep_report import sweep_table, write_sweep_report

        rows = sweep_rows(self.client, self.experiment_id, self.parent_id)
        failed = [r for r in rows if r["status"] != "FINISHED"]
        status = "FAILED" if failed or interrupted or not rows else "FINISHED"
        try:
            paths = write_sweep_report(self.sweep_dir, rows)
            for p in paths:
                self.client.log_artifact(self.parent_id, str(p))
            if rows:
                self.client.log_table(self.parent_id, sweep_table(rows), "sweep_summary.json")
            self.client.log_metric(self.parent_id, "sweep/jobs", len(rows))
            self.client.log_metric(self.parent_id, "sweep/failed_jobs", len(failed))
        finally:
            self.client.set_terminated(self.parent_id, status)
            os.environ.pop(PARENT_ENV, None)
        for r in failed:  # a job in another process (joblib, submitit) printed its error to its own log
            print(f"  {r['status']}: {r['model']} / {r['patch']} (run {r['run_id']}): {r.get('error', 'no error recorded')}",
                  file=sys.stderr)
        print(f"sweep parent run {self.parent_id}: {status}, {len(rows)} jobs, {len(failed)} failed; "
              f"summary in {self.sweep_dir}/sweep_summary.md", file=sys.stderr)
        return status
