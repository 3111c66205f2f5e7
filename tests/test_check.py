"""`hookbench check URL` on the stock stand-in and the reference server: what it reports, that it
changes nothing, its exit code per failure, and `--save NAME` giving a model option a job runs with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hookbench
from hookbench.base import mlflow_keys
from hookbench.hookapi.launcher import free_port
from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import start_server, stop_server

EXAMPLE = Path(hookbench.__file__).parent / "data" / "example_patch.json"
pytestmark = pytest.mark.slow


def _check(server_url: str, cwd: Path, *args: str, env: dict | None = None):
    return run_cli(["check", server_url, "--json", *args], cwd, env)


def test_check_reports_the_stock_server_and_leaves_it_as_found(stock_server, tmp_path):
    before = stock_server.weights_sha256()
    p = _check(stock_server.url, tmp_path)
    assert p.returncode == 0, p.stderr
    found = json.loads(p.stdout)
    assert found["extensions"] == [] and found["token"].startswith("none sent")
    assert found["loss_deterministic"] is True and found["left_as_found"] is True
    assert found["probe_loss_before"] == pytest.approx(found["probe_loss_after"], abs=1e-5)
    assert found["default_job"]["generations"] > 0 and found["default_study"]["wall_s"] > found["default_job"]["wall_s"]
    assert found["learned"]["batch_size"] == 1, "a stock server answers one query a request"
    assert stock_server.hooks_posts == 0 and stock_server.is_clean() and stock_server.weights_sha256() == before
    assert "POST /api/restore" not in stock_server.request_log, "check changes nothing, not even a restore"


def test_check_finds_a_bare_question_answered_empty(stock_server, tmp_path):
    stock_server.empty_for = {"capital of France"}  # planted: the model stops at once on a bare question
    p = _check(stock_server.url, tmp_path)
    found = json.loads(p.stdout)
    assert p.returncode == 0 and found["bare_answer_empty"] is True
    assert "Answer:" in found["learned"]["template"] and "template" in " ".join(found["notes"])


def test_check_exit_codes_unreachable_and_broken_contract(stock_server, tmp_path):
    p = _check(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert p.returncode == 4 and "nothing answers" in p.stderr and "Traceback" not in p.stderr
    stock_server.broken_routes = {"GET /api/configs": 404}
    p = _check(stock_server.url, tmp_path)
    assert p.returncode == 10 and "/api/configs" in p.stderr and "HTTP 404" in p.stderr


def test_check_refused_then_accepted_token_on_the_reference_server(tmp_path):
    server = start_server("tiny", token="s3cret-token")
    try:
        p = _check(server.url, tmp_path)
        assert p.returncode == 9 and "token" in p.stderr and "Traceback" not in p.stderr
        p = _check(server.url, tmp_path, "--token-env", "TINY_TOKEN", env={"TINY_TOKEN": "s3cret-token"})
        assert p.returncode == 0, p.stderr
        found = json.loads(p.stdout)
        assert {"generate_batch", "seed", "weights_digest"} <= set(found["extensions"]) and found["token"] == "sent, accepted"
        assert found["learned"]["batch_size"] > 1 and found["learned"]["preset"] == "greedy"
    finally:
        stop_server(server)


def test_check_save_then_a_job_on_that_model_from_the_same_directory(stock_server, tmp_path):
    p = _check(stock_server.url, tmp_path, "--save", "mine")
    assert p.returncode == 0, p.stderr
    saved = tmp_path / "hookbench" / "model" / "mine.yaml"
    assert stock_server.url in saved.read_text()
    again = _check(stock_server.url, tmp_path, "--save", "mine")
    assert again.returncode == 2 and "--force" in again.stderr and stock_server.url in saved.read_text()
    job = run_cli(["model=mine", "patch=file", f"patch.path={EXAMPLE}", "dataset.limit=3", "scorer=auto", "guards=[]"],
                  tmp_path)
    assert job.returncode == 0, job.stderr
    (run,) = runs(tmp_path)
    assert run.data.params[mlflow_keys.MODEL_NAME] == "mine" and stock_server.hooks_posts == 1
