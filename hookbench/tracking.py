"""MLflow: where runs go, and what each job logs so every number traces back to its inputs."""

from __future__ import annotations

import functools
import json
import logging
import re
import subprocess
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from hookbench import __version__

log = logging.getLogger(__name__)
SECRET_KEY = re.compile(r"(token|secret|password|api_key|apikey)$", re.I)  # `*_env` names are fine
PROJECT_DIR = Path(__file__).resolve().parent.parent
RESOLVED_CONFIG = "config_resolved.yaml"  # the fully composed config a run can be reproduced from


def configure(mlflow_cfg: DictConfig) -> str:
    """Point MLflow at the configured store and return the experiment id (created if missing)."""
    uri = mlflow_cfg.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(mlflow_cfg.experiment)
    if exp is None:
        try:
            return mlflow.create_experiment(mlflow_cfg.experiment, artifact_location=mlflow_cfg.get("artifact_location"))
        except MlflowException:  # another process created it first
            exp = mlflow.get_experiment_by_name(mlflow_cfg.experiment)
    return exp.experiment_id


@functools.lru_cache(maxsize=1)
def git_info() -> dict[str, str]:
    """Commit and dirty flag of the hookbench checkout ('unknown' outside git); asked once per process."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {"git.commit": git("rev-parse", "HEAD"), "git.dirty": str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if SECRET_KEY.search(str(k)):
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            s = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
            out[key] = s if len(s) <= 6000 else s[:5990] + "…"
    return out


def config_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config, flattened to dotted params, secrets removed."""
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.model.name} / {cfg.patch.name} / {cfg.dataset.name}"


def log_dataset(dataset) -> None:
    df = pd.DataFrame([{"id": i.id, "task": i.task, "prompt": i.prompt, "gold": i.gold} for i in dataset.items])
    with warnings.catch_warnings():  # MLflow guesses at a source kind for a hub id or generator spec
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(df, source=dataset.source, name=dataset.name, targets="gold",
                                     digest=dataset.fingerprint)
    mlflow.log_input(ds, context="evaluation")


def log_job(out, report_dir: Path, hydra_dir: Path | None) -> None:
    """Everything a finished job logs: tags, traceability params, metrics, artifacts, dataset."""
    c = out.context
    mlflow.set_tags({
        "model": c["model"], "patch.name": c["patch.name"], "patch.hash": c["patch.hash"],
        "dataset.name": c["dataset.name"], "dataset.fingerprint": c["dataset.fingerprint"],
        "server.device": str(c["server.device"]), "server.identity": json.dumps(c["server.identity"], sort_keys=True),
        "server.url": c["server.url"], "hookbench.version": __version__, **git_info(),
    })
    mlflow.log_params({"patch.hash": c["patch.hash"], "patch.source": c["patch.source"],
                       "dataset.fingerprint": c["dataset.fingerprint"],
                       "generation.preset_config": json.dumps(c["generation.preset_config"], sort_keys=True),
                       "generation.extras": json.dumps(c["generation.extras"], sort_keys=True)})
    metrics = out.summary.metrics() | {"patch/hook_count": c["patch.hook_count"],
                                       "requests/generations": c["requests.generations"]}
    metrics |= {f"time/{k}_s": v for k, v in out.phase_s.items()}
    mlflow.log_metrics(metrics)
    mlflow.log_dict(out.patch.to_json(), "patch.json")
    mlflow.log_dict(c, "context.json")
    if hydra_dir is not None and hydra_dir.is_dir():
        mlflow.log_artifacts(str(hydra_dir), ".hydra")
    mlflow.log_artifacts(str(report_dir))
    log_dataset(out.dataset)
