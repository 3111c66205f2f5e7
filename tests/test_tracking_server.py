"""Sweeps and reproduce against a real MLflow tracking server over HTTP (MLFLOW_TRACKING_URI).

The server keeps runs in sqlite and artifacts in its own folder (3.x serves artifacts by default,
so clients upload through it as mlflow-artifacts:/). Nothing may create a local mlruns/ then.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import mlflow_server


@pytest.fixture
def tracking_server(tmp_path):
    """(URL, artifact folder) of a tracking server with a sqlite backend, in its own folder."""
    folder = tmp_path / "server"
    artifacts = folder / "artifacts"
    with mlflow_server(f"sqlite:///{folder}/db.sqlite", folder, "--artifacts-destination", str(artifacts)) as url:
        yield url, artifacts


@pytest.mark.slow
def test_a_sweep_and_its_reproduction_log_to_the_tracking_server(tracking_server, tiny_clean, tmp_path):
    url, artifact_store = tracking_server
    env = {"MLFLOW_TRACKING_URI": url}
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    p = run_cli(["-m", "hydra/launcher=joblib", "model=tiny", "model.server.launch.enabled=false",
                 f"model.server.url={tiny_clean.url}", "patch=general,math", "dataset.n=4", "guards=[]"], work, env)
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

    r = run_cli(["reproduce", child.info.run_id], elsewhere, env)
    assert r.returncode == 0, r.stderr[-3000:]
    rerun = client.search_runs([exp.experiment_id], f"tags.`hookbench.reproduces` = '{child.info.run_id}'")
    assert len(rerun) == 1 and rerun[0].info.status == "FINISHED"
    assert rerun[0].data.metrics["accuracy/delta"] == child.data.metrics["accuracy/delta"]
    assert not (work / "mlruns").exists() and not (elsewhere / "mlruns").exists(), "a local store was created"
