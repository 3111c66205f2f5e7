"""A test's MLflow store: the local one a test's hookbench runs write, or a real tracking server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import requests
from mlflow.tracking import MlflowClient

from hookbench.hookapi.launcher import free_port

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def store(tmp_path: Path) -> tuple[MlflowClient, str]:
    """The test's local store (MlflowClient() in the test reads it too; hookbench processes started
    through hookbench.testing.cli.cli_env do not inherit it)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    return MlflowClient(), mlflow.get_experiment_by_name("hookbench").experiment_id


def runs(tmp_path: Path) -> list:
    """The store's runs, oldest first; none when no job made the store's experiment."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    exp = mlflow.get_experiment_by_name("hookbench")
    return [] if exp is None else MlflowClient().search_runs([exp.experiment_id], order_by=["attribute.start_time ASC"])


@contextmanager
def mlflow_server(backend_uri: str, folder: Path, *args: str, command: str = "server"):
    """`mlflow server|ui` on a free loopback port, answering /health; its URL. Stopped with its workers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / f"mlflow-{command}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([MLFLOW, command, "--backend-store-uri", backend_uri, "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1", *args], cwd=folder, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow {command} exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"mlflow {command} did not answer on {url}: {log.read_text()[-2000:]}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
