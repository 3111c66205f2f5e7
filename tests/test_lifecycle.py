"""Server lifecycle and interruption: started servers are reused and stopped; Ctrl-C restores."""

import signal
import subprocess
import sys
import time

import pytest
import requests

from hookbench.testing.cli import cli_env, run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import fingerprint, generated, write_external_models


@pytest.mark.slow
def test_one_launched_server_serves_consecutive_jobs_of_a_model(tmp_path):
    p = run_cli(["-m", "model=tiny", "patch=math,general", "dataset.n=2", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    children = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.parent")]
    urls = {r.data.tags["server.url"] for r in children}
    assert len(children) == 2 and len(urls) == 1, "each job started its own server"
    try:
        requests.get(urls.pop() + "/api/health", timeout=5)
        raise AssertionError("the launched server outlived hookbench")
    except requests.ConnectionError:
        pass


@pytest.mark.slow
def test_a_server_that_fails_to_start_reports_its_log(tmp_path):
    p = run_cli(["model=tiny", "model.server.launch.command=['{python}',-m,hookbench.server,--model,/no/such/model.gguf,"
                 "--port,'{port}']", "dataset.n=2", "guards=[]"], tmp_path)
    assert p.returncode == 4, p.stderr[-3000:]
    assert "failed to start" in p.stderr and "last lines of" in p.stderr and "/no/such/model.gguf" in p.stderr
    assert "Traceback (most recent call last)" not in p.stderr.split("--- last lines of")[0]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["hydra/launcher=joblib", "hydra/launcher=submitit_local"])
def test_parallel_jobs_on_one_server_take_turns(tiny_clean, tmp_path, launcher):
    """Two jobs in parallel processes share one server: neither may see the other's patch."""
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    before, n = generated(tiny_clean), 8
    p = run_cli(["-m", launcher, "model=ext_tiny", "patch=math,general", f"dataset.n={n}",
                 "model.generation.batch_size=2", searchpath, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("hookbench.parent") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    # taking turns, the second job finds the first one's baseline and reuses it
    assert generated(tiny_clean) - before == n + 2 * n


N_CTRL_C = 24  # items: the signal comes after two of the six patched chunks of 4, so some are left for the rerun


@pytest.mark.slow
def test_ctrl_c_mid_run_restores_the_server_marks_the_run_killed_and_a_rerun_resumes(smol_clean, tmp_path):
    before = fingerprint(smol_clean)
    args = ["model.server.launch.enabled=false", f"model.server.url={smol_clean.url}", f"dataset.n={N_CTRL_C}",
            "model.generation.batch_size=4", "guards=[]"]  # the default guard is not what this measures
    proc = subprocess.Popen([sys.executable, "-m", "hookbench", *args], cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not requests.get(smol_clean.url + "/api/health").json()["hooks_active"]:  # wait for the patched phase
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    patched_start = generated(smol_clean)
    while generated(smol_clean) < patched_start + 8:  # two patched chunks done
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in out + err
    assert not requests.get(smol_clean.url + "/api/health").json()["hooks_active"]
    assert fingerprint(smol_clean) == before, "Ctrl-C left the patch in the weights"
    (run,) = runs(tmp_path)
    assert run.info.status == "KILLED"
    # the same command again picks up where it stopped: finished answers are reused, not regenerated
    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = runs(tmp_path)[-1].data.metrics
    assert rerun["n/reused_baseline"] == N_CTRL_C and 0 < rerun["n/reused_patched"] < N_CTRL_C
    assert rerun["requests/generations"] == N_CTRL_C - rerun["n/reused_patched"]


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_still_closes_the_parent(tiny_clean, tmp_path):
    """Hydra skips on_multirun_end when a job does not return; the parent must not stay RUNNING."""
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    proc = subprocess.Popen([sys.executable, "-m", "hookbench", "-m", "model=ext_tiny", "patch=math,general",
                             "dataset.n=400", "dataset.max_value=99", "model.generation.batch_size=1", "guards=[]", searchpath],
                            cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    at_signal = _wait_for_patched_generations(tiny_clean, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert generated(tiny_clean, "generate_requests") <= at_signal + 2, "the job stopped at the next answer"
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    (child,) = [r for r in all_runs if r is not parent]
    assert parent.info.status == "FAILED" and child.info.status == "KILLED"
    assert not requests.get(tiny_clean.url + "/api/health").json()["hooks_active"]


def _wait_for_patched_generations(server, proc, timeout_s: float = 300) -> int:
    """Wait until the server has answered patched generate requests (hooks active, and requests counted
    after they turned active: the patched arm, not the apply or a probe); their count at that moment."""
    deadline, first = time.monotonic() + timeout_s, None
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        health = requests.get(server.url + "/api/health").json()
        count = health["counters"]["generate_requests"]
        if health["hooks_active"]:
            first = count if first is None else first
            if count >= first + 2:
                return count
        time.sleep(0.05)
