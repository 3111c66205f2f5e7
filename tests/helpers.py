"""Helpers the tests share: reading a test's MLflow store, pointing hookbench at running servers,
and what a reference server says it generated."""

from __future__ import annotations

from pathlib import Path

import mlflow
import requests
from mlflow.tracking import MlflowClient

from hookbench.hookapi import contract

PROBES = ["What is 2 + 2? Answer with the number only.", "Name a colour."]


def store(tmp_path: Path) -> tuple[MlflowClient, str]:
    """The test's local store (MlflowClient() in the test reads it too; hookbench processes started
    through tests.conftest.cli_env do not inherit it)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    return MlflowClient(), mlflow.get_experiment_by_name("hookbench").experiment_id


def runs(tmp_path: Path) -> list:
    client, exp = store(tmp_path)
    return client.search_runs([exp], order_by=["attribute.start_time ASC"])


def fingerprint(server) -> tuple:
    """Greedy answers and a teacher-forced loss: identical iff the weights are the original ones."""
    return tuple(server.greedy(q)["original"] for q in PROBES) + (server.loss(),)


def external(server, model: str = "smollm2") -> list[str]:
    return [f"model={model}", "model.server.launch.enabled=false", f"model.server.url={server.url}"]


def write_external_models(conf: Path, servers: dict) -> str:
    """Model configs pointing at already-running servers, so generations can be counted there."""
    (conf / "model").mkdir(parents=True)
    for name, (base, server) in servers.items():
        (conf / "model" / f"{name}.yaml").write_text(
            f"defaults:\n  - {base}\n  - _self_\nserver:\n  url: {server.url}\n  launch:\n    enabled: false\n")
    return f"hydra.searchpath=[file://{conf}]"


def generated(server, counter: str = "generated_sequences") -> int:
    """What reached the model, counted by the reference server (generate_requests or generated_sequences)."""
    return requests.get(server.url + contract.HEALTH).json()["counters"][counter]
