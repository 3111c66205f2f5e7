"""docs/your-server.md runs as written: every ```bash block, in order, from an empty directory, against
the stock-server stand-in (its address in place of the page's), so the page cannot drift."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hookbench.base import mlflow_keys
from hookbench.hookapi.launcher import free_port
from hookbench.testing.cli import cli_env
from hookbench.testing.mlflow_store import runs
from hookbench.testing.repo import REPO

PAGE = REPO / "docs" / "your-server.md"
PAGE_URL = "http://gpu-node:8000"
SHELL = f'hookbench() {{ "{sys.executable}" -m hookbench "$@"; }}\nset -e\n'


def blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)


def _ui(script: str, cwd: Path) -> str:
    """`hookbench ui` until it prints its link, then Ctrl-C (as a user stops it)."""
    proc = subprocess.Popen(["bash", "-c", SHELL + script], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, deadline = "", time.monotonic() + 300
    assert proc.stdout is not None
    while "(Ctrl-C stops it)" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stdout.readline()
    os.killpg(proc.pid, signal.SIGINT)
    try:  # it stops its MLflow server (SIGTERM, SIGKILL after 15 s) first: longer on a loaded machine
        rest, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"hookbench ui did not stop within 180 s of Ctrl-C; it printed:\n{seen}") from None
    return seen + rest


@pytest.mark.slow
def test_the_tutorial_runs_as_written(stock_server, tmp_path):
    port = str(free_port())
    outputs = []
    for script in blocks():
        script = script.replace(PAGE_URL, stock_server.url).replace("--port 5000", f"--port {port}")
        if "hookbench ui" in script:
            outputs.append(_ui(script, tmp_path))
            continue
        done = subprocess.run(["bash", "-c", SHELL + script], cwd=tmp_path, env=cli_env(), capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"{script}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    assert len(outputs) == 6 and f"127.0.0.1:{port}" in outputs[-1], outputs[-1]
    assert (tmp_path / "hookbench" / "model" / "mymodel.yaml").is_file()
    assert [r.data.params[mlflow_keys.MODEL_NAME] for r in runs(tmp_path)] == ["mymodel", "mymodel"]
    assert stock_server.is_clean(), "the tutorial leaves the server as it found it"
