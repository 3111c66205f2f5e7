"""Mistakes caught before a server starts or a run is created, and jobs that measured nothing failing.

The CLI tests run `python -m hookbench` as a user does; the in-process ones drive the loop against the
stock-server stand-in. Exit codes are the documented ones (hookbench.cli.dispatch)."""

from __future__ import annotations

import mlflow
import pytest

from hookbench.base import mlflow_keys
from hookbench.base.errors import NothingMeasured
from hookbench.cli.commands import confirm, reproduce
from hookbench.evaluation.loop import EvaluationLoop
from hookbench.studies.reproduce import output_dir
from hookbench.testing.cli import run_cli
from hookbench.testing.inprocess import parts, patch_file
from hookbench.testing.mlflow_store import runs


@pytest.mark.slow
def test_a_missing_patch_file_fails_before_any_server_or_run(tmp_path):
    proc = run_cli(["model=tiny", "patch=file", "patch.path=/nonexistent.json", "guards=[]"], tmp_path, timeout=300)
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert "patch file not found: /nonexistent.json" in proc.stderr
    assert "starting the model server" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mlruns" / "mlflow.db").exists(), "no run (not even a store) was created"


@pytest.mark.slow
def test_a_sweep_counts_jobs_that_failed_their_checks_and_ends_failed(tmp_path):
    proc = run_cli(["-m", "model=tiny", "patch=file", "patch.path=/nonexistent.json,/also-missing.json", "guards=[]"],
                   tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "2 jobs, 2 failed" in proc.stderr and "starting the model server" not in proc.stderr
    all_runs = runs(tmp_path)
    parent = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("hookbench.sweep") != "parent"]
    assert [p.info.status for p in parent] == ["FAILED"]
    assert sorted(r.info.status for r in children) == ["FAILED", "FAILED"]
    assert all("patch file not found" in r.data.tags[mlflow_keys.TAG_ERROR] for r in children)


def test_a_loss_only_job_whose_every_loss_failed_exits_7(stock_server, tmp_path):
    stock_server.broken_routes = {"POST /api/loss": 500}
    with pytest.raises(NothingMeasured, match="every /api/loss request of the baseline arm failed") as e:
        EvaluationLoop(parts(stock_server.url, patch_file(tmp_path), metric="loss"), "run-1").run()
    assert e.value.exit_code == 7
    assert stock_server.generations == 0 and stock_server.is_clean()


@pytest.mark.parametrize("command", [reproduce, confirm])
def test_reproduce_and_confirm_exit_2_on_a_missing_store_or_run(command, tmp_path, caplog):
    assert command(["0123abcd", "--tracking-uri", f"sqlite:///{tmp_path}/none/mlflow.db"]) == 2
    assert "no MLflow store" in caplog.text
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.MlflowClient().search_experiments()  # an empty store exists now
    assert command(["0123abcd", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    assert "run 0123abcd not found" in caplog.text


def test_a_server_that_fails_to_start_leaves_no_file_descriptor_open(tmp_path):
    import os

    from hookbench.base.errors import ServerError
    from hookbench.hookapi.launcher import start_server

    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(ServerError, match="failed to start"):
            start_server(["{python}", "-c", "print('no server here')"], timeout_s=30)
    assert set(os.listdir("/proc/self/fd")) == before


def test_studies_write_under_the_outputs_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = output_dir("reproduce", "0123abcdef")
    assert path.is_dir() and path.parent.parent == tmp_path / "outputs" and "reproduce-0123abcd" in path.name
