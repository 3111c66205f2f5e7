"""The body of `python -m hookbench`: one MLflow run around one Evaluation, and its console output.

User mistakes end as a one-line error and an exit code (or, inside a sweep, a FAILED child run
that the sweep reports), never as a traceback; the run is left FAILED with the error attached.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import mlflow
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from hookbench import sweep, tracking
from hookbench.errors import HookbenchError
from hookbench.evaluate import Evaluation
from hookbench.report import summary_table, write_run_report
from hookbench.reuse import GenerationStore

# Piped to a log (CI, Slurm) rich would wrap tables at 80 columns; logs have room for a table row per line.
console = Console(width=None if sys.stdout.isatty() else 120)


def _hydra_dirs() -> tuple[Path, Path | None, bool]:
    """(job output dir, its .hydra dir, whether this job is part of a multirun)."""
    if not HydraConfig.initialized():
        return Path.cwd(), None, False
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    return out, out / hc.output_subdir if hc.output_subdir else None, hc.mode == RunMode.MULTIRUN


def ui_command(cfg: DictConfig) -> str:
    return f"mlflow ui --backend-store-uri {cfg.mlflow.tracking_uri}"


def run_job(cfg: DictConfig, extra_tags: dict | None = None, expected_identity: dict | None = None,
            out_dir: Path | None = None) -> dict:
    """Run one job in its own MLflow run; returns its status, run id and metrics."""
    hydra_out, hydra_dir, multirun = _hydra_dirs()
    out_dir = out_dir or hydra_out
    experiment_id = tracking.configure(cfg.mlflow)
    parent = sweep.parent_run_id() if multirun else None
    store = GenerationStore(cfg.reuse.path) if cfg.reuse.enabled else None
    run = mlflow.start_run(experiment_id=experiment_id, run_name=tracking.run_name(cfg),
                           parent_run_id=parent, nested=parent is not None, tags=extra_tags or {})
    run_id = run.info.run_id
    try:
        mlflow.log_params(tracking.config_params(cfg))
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), tracking.RESOLVED_CONFIG)
        out = Evaluation(cfg, run_id, store, expected_identity).run()
        t0 = time.perf_counter()
        report_dir = out_dir / "report"
        write_run_report(report_dir, out.records, out.summary, {"title": tracking.run_name(cfg), "run_id": run_id,
                                                                **tracking.git_info(), **out.context})
        tracking.log_job(out, report_dir, hydra_dir)
        mlflow.log_metric("time/logging_s", time.perf_counter() - t0)
        mlflow.end_run("FINISHED")
    except HookbenchError as e:
        _fail(f"{type(e).__name__}: {e}")
        print(f"error: {e}", file=sys.stderr)
        if multirun:
            return {"status": "FAILED", "run_id": run_id, "error": str(e)}
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C)", status="KILLED")
        console.print("[bold red]interrupted[/]; the server was restored")
        sys.exit(130)
    except BaseException:
        _fail(traceback.format_exc())
        raise
    finally:
        if store is not None:
            store.close()
    console.print(summary_table(out.summary))
    print(f"MLflow run {run_id} ({tracking.run_name(cfg)}); see it with:\n  {ui_command(cfg)}")
    return {"status": "FINISHED", "run_id": run_id, **out.summary.metrics()}


def _fail(text: str, status: str = "FAILED") -> None:
    mlflow.log_text(text, "error.txt")
    mlflow.set_tag("error", text[-4000:])
    mlflow.end_run(status)
