"""One job in its own MLflow run: compose the parts, evaluate, report, log, end the run.

`run_job` raises: a user mistake is a HookbenchError (run FAILED with the error attached), Ctrl-C a
KeyboardInterrupt and SIGTERM/SIGHUP a `Terminated` (run KILLED, server restored). Exit codes are
chosen by the entry points (`python -m hookbench`, reproduce, confirm), never here.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console

from hookbench import names, tracking
from hookbench.errors import HookbenchError, NothingMeasured
from hookbench.evaluation.job_output import JobOutput
from hookbench.evaluation.loop import Evaluation
from hookbench.evaluation.parts import Offline, check_inputs, connect, generation_store_path
from hookbench.evaluation.reuse import GenerationStore
from hookbench.reports.formatting import job_headline
from hookbench.reports.report import summary_table, write_run_report
from hookbench.signals import Terminated, graceful_signals
from hookbench.tracking.naming import base_name

log = logging.getLogger("hookbench")
# Piped to a log (CI, Slurm) rich would wrap tables at 80 columns; logs have room for a table row per line.
console = Console(width=None if sys.stdout.isatty() else 120)


JobFailed = NothingMeasured  # the job ran but measured nothing: a failure (exit 7), never a success


@dataclass
class LoggedJob:
    """A job's output once logged: its run, the metrics logged, and where its report was written."""

    run_id: str
    metrics: dict
    output: JobOutput
    report_dir: Path

    def as_dict(self) -> dict:
        return {"status": "FINISHED", "run_id": self.run_id, **self.metrics}


def hydra_dirs() -> tuple[Path, Path | None, Path | None]:
    """(job output dir, its .hydra dir, the sweep dir when this job is part of a multirun)."""
    if not HydraConfig.initialized():
        return Path.cwd(), None, None
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    sweep = Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
    return out, out / hc.output_subdir if hc.output_subdir else None, sweep


def _checked(cfg: DictConfig, name: str, parent_id: str | None, extra_tags: dict | None) -> Offline:
    """`check_inputs` before any server or run. In a sweep a job that fails here still gets a FAILED
    child run, so the parent counts it; alone it leaves no run behind."""
    try:
        return check_inputs(cfg)
    except BaseException as e:
        if parent_id is not None and not isinstance(e, (KeyboardInterrupt, Terminated)):
            detail = f"{type(e).__name__}: {e}" if isinstance(e, HookbenchError) else traceback.format_exc()
            tracking.JobRun(cfg, name, parent_id, extra_tags).end("FAILED", detail)
        raise


def run_job(cfg: DictConfig, extra_tags: dict | None = None, expected_identity: dict | None = None,
            out_dir: Path | None = None, parent_id: str | None = None) -> LoggedJob:
    """Run one job in its own MLflow run and return its result; raises on failure (see module doc)."""
    hydra_out, hydra_dir, sweep_dir = hydra_dirs()
    in_sweep = sweep_dir is not None and parent_id is None
    name, parent_id = base_name(cfg, extra_tags), parent_id or tracking.parent_run_id(sweep_dir)
    offline = _checked(cfg, name, parent_id, extra_tags)
    run = tracking.JobRun(cfg, name, parent_id, extra_tags, in_sweep=in_sweep)
    store = GenerationStore(generation_store_path(cfg)) if cfg.reuse.enabled else None
    try:
        with graceful_signals():
            parts = connect(cfg, offline)
            out = Evaluation(parts, run.run_id, store, expected_identity, run.lease_record(), run.took_over).run()
            report_dir = (out_dir or hydra_out) / f"report-{run.run_id[:8]}"
            result = _log(run, out, report_dir, hydra_dir)
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


def _log(run: tracking.JobRun, out: JobOutput, report_dir: Path, hydra_dir: Path | None) -> LoggedJob:
    """Everything computed is written and logged first; only then can the job fail for measuring nothing."""
    t0 = time.perf_counter()
    warnings = out.warnings()
    for w in warnings:
        log.warning(w)
    write_run_report(report_dir, out.records, out.summary, out.record, run.name, warnings, run.in_sweep)
    run.log_output(out, report_dir, hydra_dir)
    run.log_metrics({names.LOGGING_S: time.perf_counter() - t0})
    problem = out.summary.problem() if out.settings.generates and out.screen_passed else None
    if problem:
        raise JobFailed(problem)
    run.end("FINISHED")
    console.print(summary_table(out.summary, neutral=run.in_sweep))
    log.info("%s: %s", run.name, job_headline(out, run.in_sweep))
    log.info("report: %s", report_dir)
    log.info("MLflow run %s (%s); see it with:\n  %s", run.run_id, run.name,
             tracking.ui_hint(run.cfg.mlflow.tracking_uri, run.experiment_id))
    return LoggedJob(run.run_id, out.metrics(), out, report_dir)

