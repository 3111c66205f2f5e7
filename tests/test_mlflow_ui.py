"""What a user sees in MLflow's UI: a hookbench run's experiment page, rendered by headless Chromium.

MLflow 3.17 opens an experiment on the page of its global workflow type (the sidebar's
"GenAI" / "Model training" switch, carried in the URL as `workflowType` and remembered by the
browser; a fresh browser starts on GenAI's Overview, whatever the experiment's
`mlflow.experimentKind` tag says). The link to hookbench's runs therefore names the type.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_cli
from tests.test_tracking_server import mlflow_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUNS_TABLE = 'data-testid="sort-header-Run Name"'  # the runs table's "Run Name" column header
GENAI_OVERVIEW = ">Overview<"                      # the GenAI overview tab


def rendered(chromium: str, url: str, profile: Path) -> str:
    """The page's DOM once the app has loaded its data (Chromium's virtual time runs the requests)."""
    dom = ""
    for attempt in range(3):  # a cold start can use up the budget before the data arrives
        p = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}-{attempt}", "--virtual-time-budget=20000",
                            "--dump-dom", url], capture_output=True, text=True, timeout=180)
        dom = p.stdout
        if RUNS_TABLE in dom or GENAI_OVERVIEW in dom:
            break
    return dom


def install_chromium() -> str | None:
    """Debian's chromium, installed when missing and we are root with apt-get (as CI runs)."""
    if CHROMIUM is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=900)
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium():
    path = install_chromium()
    if path is None:
        reason = "Chromium is not installed and cannot be (needs root and apt-get: apt-get install chromium)"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    return path


def test_the_experiment_link_opens_on_the_runs_table_with_the_run(chromium, tiny_clean, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri in-process exports it
    p = run_cli(["model=tiny", "model.server.launch.enabled=false", f"model.server.url={tiny_clean.url}",
                 "patch=general", "dataset.n=4"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("hookbench")
    (run,) = client.search_runs([exp.experiment_id])
    (page,) = re.findall(r"http://127\.0\.0\.1:5000/(#/experiments/\d+\?workflowType=machine_learning)", p.stderr)
    assert page == f"#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    with mlflow_server(store, tmp_path / "ui", command="ui") as url:  # the link hookbench printed, on this port
        dom = rendered(chromium, f"{url}/{page}", tmp_path / "profile")
    assert RUNS_TABLE in dom, "the experiment page shows no runs table"
    assert GENAI_OVERVIEW not in dom, "the experiment page is MLflow's GenAI overview"
    assert run.info.run_name in dom
