"""Where runs go: the MLflow store (created once, safely), the experiment and its saved UI view, and
what a run records about the checkout it ran from."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError
from hookbench.base.paths import sqlite_path

PROJECT_DIR = Path(__file__).resolve().parents[2]
# MLflow 3's UI opens an experiment by this tag: without it, on the GenAI overview with no runs table
EXPERIMENT_KIND = {mlflow_keys.TAG_EXPERIMENT_KIND: "custom_model_development"}
# A view of the runs table MLflow's UI loads from an experiment tag `mlflow.sharedViewState.<key>` when the
# link has `viewStateShareKey=<key>` (its "Share" button writes the same, as JSON): newest first, with
# hookbench's columns, the rounded result first. Newest first, because MLflow 3.17's table nests runs
# under their `mlflow.parentRunId` only when it is sorted by creation time (or not sorted): a study's jobs
# are nested so, under the parent whose row holds its answer (a sweep's jobs are not: each shows its result).
# The view has no setting for the digits of a metric column: the rounded numbers are in `tags.result`.
VIEW_KEY = "hookbench-results"
ORDER_BY_CREATED = "attributes.start_time"  # MLflow UI's sort key for the "Created" column
RUN_NAME_COLUMN = "attributes.`Run Name`"  # the runs table's column ids (its ag-grid colId)
COLUMNS = [f"tags.`{mlflow_keys.TAG_RESULT}`", f"tags.`{mlflow_keys.TAG_GUARD_VERDICT}`", f"tags.`{mlflow_keys.TAG_VERDICT_ADJUSTED}`",
           f"metrics.`{mlflow_keys.ACC_DELTA}`", f"metrics.`{mlflow_keys.P_ADJUSTED}`", f"params.`{mlflow_keys.PATCH_HASH}`"]
# the run name (which holds the answer) and the rounded result wide enough to read without a click
WIDTHS = {RUN_NAME_COLUMN: 720, COLUMNS[0]: 360, COLUMNS[1]: 160}
VIEW_STATE = {"orderByKey": ORDER_BY_CREATED, "orderByAsc": False, "selectedColumns": COLUMNS,
              "columnOrder": [RUN_NAME_COLUMN, *COLUMNS], "columnWidths": WIDTHS}

EXPERIMENT_TAGS = {**EXPERIMENT_KIND, mlflow_keys.shared_view_state(VIEW_KEY): json.dumps(VIEW_STATE)}


def configure(mlflow_cfg: DictConfig) -> str:
    """Point MLflow at the configured store and return the experiment id (created if missing).

    A local sqlite store is created under a file lock: two first runs in a fresh directory would
    otherwise race through MLflow's schema migration (`duplicate column name: step`)."""
    uri = mlflow_cfg.tracking_uri
    mlflow.set_tracking_uri(uri)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(db) + ".lock"):
            return _experiment(mlflow_cfg, mlflow_cfg.get("artifact_location"))
    return _experiment(mlflow_cfg, None)


def _experiment(mlflow_cfg: DictConfig, artifact_location: str | None) -> str:
    client = MlflowClient()
    exp = client.get_experiment_by_name(mlflow_cfg.experiment)
    if exp is None:
        try:
            return client.create_experiment(mlflow_cfg.experiment, artifact_location=artifact_location,
                                            tags=EXPERIMENT_TAGS)
        except MlflowException as e:  # only the creation race (another process made it first) is not an error
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(mlflow_cfg.experiment)
            if exp is None:
                raise
    for k, v in EXPERIMENT_TAGS.items():
        if exp.tags.get(k) != v:
            client.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


ONE_CLICK = ('at the plain UI root MLflow opens its GenAI overview: click "Model training" in the sidebar once '
             "(the browser remembers it)")


def ui_page(experiment_id: str) -> str:
    """The experiment's runs table with hookbench's view. MLflow 3.17/3.18's UI picks the landing from the
    URL's `workflowType`, else the browser's stored choice (default GenAI); no server setting decides it."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


def ui_hint(uri: str, experiment_id: str) -> str:
    """How to see the runs: the link, and the one click MLflow needs at its plain root."""
    page = ui_page(experiment_id)
    if uri.startswith("http"):
        return f"open {uri.rstrip('/')}/{page}\n  ({ONE_CLICK})"
    command = "hookbench ui" if uri == default_tracking_uri() else f"hookbench ui --tracking-uri {uri}"
    return (f"{command}   (starts MLflow's UI on this store and opens the results view)\n"
            f"  or: mlflow ui --backend-store-uri {uri}, then open http://127.0.0.1:5000/{page}\n  ({ONE_CLICK})")


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the local store `python -m hookbench` logs to from here."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"


def use_store(uri: str) -> MlflowClient:
    """A client on an existing store; refuses to create an empty local store by reading a missing one."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise ConfigError(f"no MLflow store at {uri} (run from the directory you ran hookbench in, "
                             "or set MLFLOW_TRACKING_URI / --tracking-uri)")
    mlflow.set_tracking_uri(uri)
    return MlflowClient()


@functools.lru_cache(maxsize=1)
def git_info() -> dict[str, str]:
    """Commit and dirty flag of the hookbench checkout ('unknown' outside git); asked once per process."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {mlflow_keys.GIT_COMMIT: git("rev-parse", "HEAD"), mlflow_keys.GIT_DIRTY: str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.SubprocessError):
        return {mlflow_keys.GIT_COMMIT: "unknown", mlflow_keys.GIT_DIRTY: "unknown"}
