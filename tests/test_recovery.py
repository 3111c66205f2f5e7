"""kill -9 of hookbench in the patched phase: the server is left patched and the run RUNNING; the same
command then restores the server, says so (console and run), closes the dead run KILLED and resumes
from the last stored answer. Against the stock stand-in (in this process) with hookbench as the user
runs it; the phase is read at the server (generate requests after the patch was posted)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from hookbench.base import mlflow_keys
from hookbench.evaluation.scope import FOUND_PATCHED
from hookbench.testing.cli import cli_env, run_cli, stock_args
from hookbench.testing.mlflow_store import runs

N = 6


def in_patched_phase(server) -> int:
    """Generate requests the server answered after the patch was posted (0 before the patched arm)."""
    log = server.request_log
    if "POST /api/hooks" not in log:
        return 0
    return log[log.index("POST /api/hooks"):].count("POST /api/generate")


@pytest.mark.slow
def test_kill_9_then_the_same_command_restores_warns_closes_the_dead_run_and_resumes(stock_server, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps([{"tensor_name": "model.layers.1.mlp.up_proj.weight",
                                                  "operation": "scale", "value": 1.5, "target": "all"}]))
    args, env = stock_args(stock_server)
    env["HOOKBENCH_CACHE"] = str(tmp_path / "cache")
    cmd = [*args, "patch=file", f"patch.path={tmp_path / 'p.json'}", f"dataset.n={N}", "guards=[]"]
    before = stock_server.weights_sha256()
    proc = subprocess.Popen([sys.executable, "-m", "hookbench", *cmd], cwd=tmp_path, env=cli_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while in_patched_phase(stock_server) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not stock_server.is_clean(), "kill -9 leaves the server patched (nothing could restore it)"
    (dead,) = runs(tmp_path)
    assert dead.info.status == "RUNNING"
    generated_before = stock_server.generate_calls

    rerun = run_cli(cmd, tmp_path, env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert FOUND_PATCHED in rerun.stderr
    assert stock_server.is_clean() and stock_server.weights_sha256() == before
    dead_after, new = runs(tmp_path)
    assert dead_after.info.status == "KILLED" and FOUND_PATCHED in dead_after.data.tags[mlflow_keys.TAG_ERROR]
    assert "died without closing the run" in dead_after.data.tags[mlflow_keys.TAG_ERROR]
    assert new.info.status == "FINISHED" and new.data.tags[mlflow_keys.TAG_RECOVERED] == FOUND_PATCHED
    asked = stock_server.generate_calls - generated_before
    started = in_patched_phase_at(stock_server.request_log, generated_before)  # the last one may be lost in flight
    kept = new.data.metrics["n/reused_patched"]
    assert new.data.metrics["n/reused_baseline"] == N, "every baseline answer was kept"
    assert started - 1 <= kept <= started and kept >= 1, "every patched answer that arrived was kept"
    assert asked == N - kept, "only the unfinished patched answers were generated again"


def in_patched_phase_at(log: list[str], calls_before_kill: int) -> int:
    """Patched generate requests the killed job started: its generate calls after its POST /api/hooks."""
    upto, seen = [], 0
    for route in log:
        seen += route == "POST /api/generate"
        if seen > calls_before_kill:
            break
        upto.append(route)
    return upto[upto.index("POST /api/hooks"):].count("POST /api/generate")
