"""Reading a logged run back: the run, its artifacts, its items; errors name the run and the store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError


def get_run(client: MlflowClient, run_id: str):
    try:
        return client.get_run(run_id)
    except MlflowException as e:
        raise ConfigError(f"run {run_id} not found in {mlflow.get_tracking_uri()}: {e.message}") from None


def download(client: MlflowClient, run_id: str, artifact: str, into: Path) -> Path:
    try:
        return Path(client.download_artifacts(run_id, artifact, str(into)))
    except (MlflowException, OSError) as e:
        raise ConfigError(f"run {run_id} has no {artifact} ({e})") from None


def logged_items(client: MlflowClient, run_id: str, into: Path) -> list:
    from hookbench.evaluation.results import ItemResult

    path = download(client, run_id, mlflow_keys.ITEMS_JSONL, into)
    return [ItemResult.from_flat(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def is_finished(run) -> bool:
    return run.info.status == RunStatus.to_string(RunStatus.FINISHED)
