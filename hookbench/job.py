"""One job in its own MLflow run: compose the parts, evaluate, report, log, end the run.

`run_job` raises: a user mistake is a HookbenchError (run FAILED with the error attached), Ctrl-C a
KeyboardInterrupt and SIGTERM/SIGHUP a `Terminated` (run KILLED, server restored). Exit codes are
chosen by the entry points (`python -m hookbench`, reproduce, confirm), never here.

Fixed cost: the server is asked first. MLflow, the report's libraries and a fresh store (whose schema
migrations take seconds) are made ready in a background thread while the server is cleaned, probed
and asked for suggestions; the run itself starts just before the first generation (`PendingRun`).
A job that fails before then still gets its FAILED or KILLED run.
"""

from __future__ import annotations

import atexit
import gc
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console

from hookbench.base import mlflow_keys
from hookbench.base.background import Background
from hookbench.base.errors import HookbenchError, NothingMeasured
from hookbench.base.signals import Terminated, graceful_signals
from hookbench.evaluation.job_output import JobOutput, LoggedOutput
from hookbench.evaluation.loop import EvaluationLoop
from hookbench.evaluation.parts import CheckedInputs, check_inputs, connect, generation_store_path
from hookbench.evaluation.reuse import GenerationStore

if TYPE_CHECKING:
    from hookbench.tracking import MlflowRun

log = logging.getLogger("hookbench")
# Piped to a log (CI, Slurm) rich would wrap tables at 80 columns; logs have room for a table row per line.
console = Console(width=None if sys.stdout.isatty() else 120)


# At exit CPython's last garbage collections walk every object MLflow, pandas and matplotlib made (about
# 1 s here); frozen, they are skipped. Nothing is lost: atexit handlers (logging's flush included) and
# reference-count finalisers still run, and objects left in cycles were never promised a finaliser.
atexit.register(gc.freeze)

def hydra_dirs() -> tuple[Path, Path | None, Path | None]:
    """(job output dir, its .hydra dir, the sweep dir when this job is part of a multirun)."""
    if not HydraConfig.initialized():
        return Path.cwd(), None, None
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    sweep = Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
    return out, out / hc.output_subdir if hc.output_subdir else None, sweep


def _checked(cfg: DictConfig, run: PendingRun) -> CheckedInputs:
    """`check_inputs` before any server or run. In a sweep a job that fails here still gets a FAILED
    child run, so the parent counts it; alone it leaves no run behind."""
    try:
        return check_inputs(cfg)
    except BaseException as e:
        if not isinstance(e, (KeyboardInterrupt, Terminated)) and run.parent_id() is not None:
            detail = f"{type(e).__name__}: {e}" if isinstance(e, HookbenchError) else traceback.format_exc()
            run.end("FAILED", detail)
        raise


def _prepare_store(cfg: DictConfig) -> None:
    """MLflow and the report's modules loaded, the local store created (its schema migrations take
    seconds) and the commit read, while the main thread sets the server up (see PendingRun)."""
    from hookbench import tracking
    from hookbench.reports import report  # noqa: F401  (matplotlib, pandas: loaded now, used at the end)

    tracking.configure(cfg.mlflow)
    tracking.git_info()


class PendingRun:
    """The job's MLflow run, made when first asked for (after the server's set-up, or on a failure).

    The store is prepared in a background thread from the start, so MLflow's imports and a fresh
    store's migrations overlap the server's first requests instead of preceding them. The run
    itself is started in the asking thread: MLflow's active run belongs to a thread."""

    def __init__(self, cfg: DictConfig, sweep_dir: Path | None, parent_id: str | None, extra_tags: dict | None,
                 in_sweep: bool):
        self.cfg, self.sweep_dir, self.extra_tags, self.in_sweep = cfg, sweep_dir, extra_tags, in_sweep
        self._parent_id = parent_id
        self._run: MlflowRun | None = None
        self._store: Background[None] | None = None

    def parent_id(self) -> str | None:
        """The sweep's parent run (given, or found as tracking.parent_run_id finds it)."""
        if self._parent_id is None:
            from hookbench import tracking

            self._parent_id = tracking.parent_run_id(self.sweep_dir)
        return self._parent_id

    def start(self) -> None:
        self._store = Background(lambda: _prepare_store(self.cfg), "hookbench-mlflow")

    def get(self) -> MlflowRun:
        if self._run is None:
            from hookbench import tracking
            from hookbench.tracking.naming import base_name

            if self._store is not None:
                self._store.result()
            name = base_name(self.cfg, self.extra_tags)
            self._run = tracking.MlflowRun(self.cfg, name, self.parent_id(), self.extra_tags, in_sweep=self.in_sweep)
        return self._run

    def run_id(self) -> str:
        return self.get().run_id

    def took_over(self, record: dict, recovered: str | None) -> None:
        self.get().took_over(record, recovered)

    def end(self, status: str, error: str | None = None) -> None:
        """End the run as `status`, making it first if the job failed before it; nothing when the
        store itself could not be made (that error is the job's own and propagates)."""
        try:
            run = self.get()
        except Exception:  # noqa: BLE001  (the store's own error, if it is the job's, propagates from there)
            return
        run.end(status, error)


def run_job(cfg: DictConfig, extra_tags: dict | None = None, expected_identity: dict | None = None,
            out_dir: Path | None = None, parent_id: str | None = None) -> LoggedOutput:
    """Run one job in its own MLflow run and return its result; raises on failure (see module doc)."""
    hydra_out, hydra_dir, sweep_dir = hydra_dirs()
    run = PendingRun(cfg, sweep_dir, parent_id, extra_tags, in_sweep=sweep_dir is not None and parent_id is None)
    checked = _checked(cfg, run)
    run.start()
    store = GenerationStore(generation_store_path(cfg)) if cfg.reuse.enabled else None
    try:
        with graceful_signals():
            parts = connect(cfg, checked)
            holder = {"tracking_uri": cfg.mlflow.tracking_uri}
            out = EvaluationLoop(parts, run.run_id, store, expected_identity, holder, run.took_over).run()
            report_dir = (out_dir or hydra_out) / f"report-{run.run_id()[:8]}"
            result = _log(run.get(), out, report_dir, hydra_dir)
    except HookbenchError as e:
        run.end("FAILED", f"{type(e).__name__}: {e}")
        raise
    except (KeyboardInterrupt, Terminated) as e:
        reason = "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else f"stopped by {e.signal_name}"
        run.end("KILLED", f"{reason}; the server was restored")
        raise
    except BaseException:
        run.end("FAILED", traceback.format_exc())
        raise
    finally:
        if store is not None:
            store.close()
    return result


def _log(run: MlflowRun, out: JobOutput, report_dir: Path, hydra_dir: Path | None) -> LoggedOutput:
    """Everything computed is written and logged first; only then can the job fail for measuring nothing."""
    from hookbench import tracking
    from hookbench.reports.console import summary_table
    from hookbench.reports.formatting import job_headline, verdict_lead
    from hookbench.reports.report import write_run_report

    t0 = time.perf_counter()
    warnings = out.warnings()
    for w in warnings:
        log.warning(w)
    lead = verdict_lead(out.summary.comparison.verdict, out.dataset.name, out.guards)
    write_run_report(report_dir, out.items, out.summary, out.run_record, run.name, warnings, run.in_sweep,
                     out.guards, out.guard_items, lead, out.prompt, out.prompt_items)
    run.log_output(out, report_dir, hydra_dir)
    run.log_metrics({mlflow_keys.LOGGING_S: time.perf_counter() - t0})
    problem = out.summary.problem() if out.settings.generates and out.screen_passed else None
    if problem:
        raise NothingMeasured(problem)  # the job ran but measured nothing: a failure (exit 7), never a success
    run.end("FINISHED")
    console.print(summary_table(out.summary, neutral=run.in_sweep, guards=out.guards, prompt=out.prompt))
    log.info("%s: %s", run.name, job_headline(out, run.in_sweep))
    log.info("report: %s", report_dir)
    log.info("MLflow run %s (%s); see it with:\n  %s", run.run_id, run.name,
             tracking.ui_hint(run.cfg.mlflow.tracking_uri, run.experiment_id))
    return LoggedOutput(run.run_id, out.metrics(), out, report_dir)

