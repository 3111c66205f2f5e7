"""A sweep through a real Slurm: the single-node cluster of scripts/slurm_cluster.sh, hydra/launcher=slurm_local.

The cluster needs root (CI runs as root); elsewhere the test is skipped with the script's reason.
In CI (CI=true) a cluster that cannot start fails the test instead, so CI never skips it silently.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hookbench.testing.cli import run_cli
from hookbench.testing.repo import REPO

SCRIPT = REPO / "scripts" / "slurm_cluster.sh"


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local cluster, started for the session (and stopped after, unless it was already up)."""
    was_up = cluster("status").returncode == 0
    started = cluster("start")
    if started.returncode != 0:
        reason = (started.stderr.strip().splitlines() or [f"exit {started.returncode}"])[-1]
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    yield
    if not was_up:
        cluster("stop")


def sacct(job_ids: list[str]) -> dict[str, str]:
    """Slurm's accounting record of jobs: job id -> state, once slurmdbd has their final states."""
    for _ in range(30):
        p = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                           capture_output=True, text=True, check=True)
        states = dict(line.split("|") for line in p.stdout.split())
        if len(states) == len(job_ids) and not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values()):
            break
        time.sleep(1)  # the controller sends job records to slurmdbd asynchronously
    return states


@pytest.mark.slow
def test_a_sweep_on_slurm_runs_each_job_as_a_slurm_job(slurm_cluster, tiny_clean, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri in-process exports it
    p = run_cli(["-m", "hydra/launcher=slurm_local", "model=tiny", "model.server.launch.enabled=false",
                 f"model.server.url={tiny_clean.url}", "patch=general,math", "dataset.n=4", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    # submitit keeps a folder per Slurm job (array tasks are named <array job>_<task>)
    job_ids = sorted(d.name for d in (sweep_dir / ".submitit").iterdir() if d.is_dir() and "_" in d.name)
    assert len(job_ids) == 2
    assert sacct(job_ids) == {j: "COMPLETED" for j in job_ids}

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("hookbench").experiment_id
    all_runs = client.search_runs([exp])
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("hookbench.parent") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    assert sorted((c.data.params["patch.name"], c.info.status) for c in children) == \
        [("general", "FINISHED"), ("math", "FINISHED")]
    summary = (sweep_dir / "sweep_summary.csv").read_text()  # every column, the run ids included
    assert all(c.info.run_id in summary for c in children)
    # the jobs ran on the node through srun, with their output in submitit's Slurm logs
    logs = " ".join(Path(sweep_dir / ".submitit" / j / f"{j}_0_log.out").read_text() for j in job_ids)
    assert all(f"job_id={j}" in logs for j in job_ids)
