"""`hookbench ui`: MLflow's UI on a real local store, answering at the printed link, opened in the
browser ($BROWSER: a script that records what it was asked to open), and gone with all its processes
after SIGTERM; a tracking server is linked, not started; no store is a config error."""

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
from omegaconf import OmegaConf

from hookbench import tracking
from hookbench.testing.cli import cli_env, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def a_store(tmp_path: Path) -> str:
    """A store with the hookbench experiment and one run in it, as a job leaves it."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    mlflow.set_tracking_uri(uri)
    exp = tracking.configure(OmegaConf.create({"tracking_uri": uri, "experiment": "hookbench",
                                               "artifact_location": str(tmp_path / "mlruns" / "artifacts")}))
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_metric("accuracy/delta", 0.1)
    return exp


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ui_serves_the_store_opens_the_results_view_and_stops_with_its_workers(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = a_store(tmp_path)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hookbench", "ui", "--port", str(port)], cwd=tmp_path,
                            env=cli_env({"BROWSER": str(browser)}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:  # the link comes once MLflow answers
            lines.append(line)
            if "Ctrl-C" in line:
                break
        out = "".join(lines)
        link = re.search(r"http://127\.0\.0\.1:\d+/\S+", out)
        assert link, out + (proc.stderr.read() if proc.poll() is not None else "")
        url = link.group(0)
        assert url == f"http://127.0.0.1:{port}/{tracking.ui_page(exp)}"
        page = requests.get(url, timeout=30)
        assert page.ok and "<html" in page.text.lower()  # MLflow's app
        runs = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp]},
                             timeout=30).json()["runs"]
        assert [r["data"]["metrics"][0]["value"] for r in runs] == [0.1]  # it serves this store
        for _ in range(40):
            if opened.exists():
                break
            time.sleep(0.25)
        assert opened.read_text().strip() == url  # the browser was asked to open the results view
        workers = descendants(proc.pid)
        assert workers  # mlflow server and its uvicorn worker
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert "stopped the MLflow UI" in proc.stderr.read()
        deadline = time.monotonic() + 30
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in workers if alive(p)] == []
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_tracking_server_is_linked_not_started(tmp_path):
    p = run_cli(["ui", "--no-browser"], tmp_path, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "tracking server http://127.0.0.1:9" in p.stdout
    assert "http://127.0.0.1:9/#/experiments" in p.stdout
    assert list(tmp_path.iterdir()) == []


def test_no_store_is_a_config_error_before_anything_starts(tmp_path):
    p = run_cli(["ui", "--no-browser", "--port", str(free_port())], tmp_path, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "no MLflow store at sqlite:///" in p.stderr and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_busy_port_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a_store(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        p = run_cli(["ui", "--no-browser", "--port", str(s.getsockname()[1])], tmp_path, timeout=300)
    assert p.returncode == 2 and "pass --port N" in p.stderr, p.stderr[-2000:]


def test_a_job_names_the_ui_command_for_its_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.ui_hint(tracking.default_tracking_uri(), "1").startswith("hookbench ui   (")
    other = f"sqlite:///{tmp_path}/elsewhere/mlflow.db"
    assert tracking.ui_hint(other, "1").startswith(f"hookbench ui --tracking-uri {other}   (")
