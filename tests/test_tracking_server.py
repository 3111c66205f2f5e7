"""Sweeps and reproduce against a real MLflow tracking server over HTTP (MLFLOW_TRACKING_URI).

The server keeps runs in sqlite and artifacts in its own folder (3.x serves artifacts by default,
so clients upload through it as mlflow-artifacts:/). Nothing may create a local mlruns/ then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from hookbench.hookapi.launcher import free_port
from tests.conftest import run_cli

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


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
                pytest.fail(f"mlflow {command} exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"mlflow {command} did not answer on {url}: {log.read_text()[-2000:]}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def tracking_server(tmp_path):
    """(URL, artifact folder) of a tracking server with a sqlite backend, in its own folder."""
    folder = tmp_path / "server"
    artifacts = folder / "artifacts"
    with mlflow_server(f"sqlite:///{folder}/db.sqlite", folder, "--artifacts-destination", str(artifacts)) as url:
        yield url, artifacts


def test_a_sweep_and_its_reproduction_log_to_the_tracking_server(tracking_server, tiny_clean, tmp_path):
    url, artifact_store = tracking_server
    env = {"MLFLOW_TRACKING_URI": url}
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    p = run_cli(["-m", "hydra/launcher=joblib", "model=tiny", "model.server.launch.enabled=false",
                 f"model.server.url={tiny_clean.url}", "patch=general,math", "dataset.n=4"], work, env)
    assert p.returncode == 0, p.stderr[-3000:]

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("hookbench")
    assert exp is not None, "the sweep logged nowhere on the server"
    all_runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("hookbench.parent") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(all_runs) == 3
    assert sorted((c.data.params["patch.name"], c.info.status) for c in children) == \
        [("general", "FINISHED"), ("math", "FINISHED")]
    # artifacts went through the server into its artifact store
    for run in (*children, parent):
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    child = children[0]
    assert {"items.jsonl", "report.md", "patch.json"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    assert "sweep_summary.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert len(list(artifact_store.rglob("items.jsonl"))) == 2

    r = run_cli([child.info.run_id], elsewhere, env, module="hookbench.reproduce")
    assert r.returncode == 0, r.stderr[-3000:]
    rerun = client.search_runs([exp.experiment_id], f"tags.`hookbench.reproduces` = '{child.info.run_id}'")
    assert len(rerun) == 1 and rerun[0].info.status == "FINISHED"
    assert rerun[0].data.metrics["accuracy/delta"] == child.data.metrics["accuracy/delta"]
    assert not (work / "mlruns").exists() and not (elsewhere / "mlruns").exists(), "a local store was created"
