
"""benchmarks/gpu_check.py runs on CPU with a tiny random shape and prints its whole table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hookbench.testing.cli import cli_env
from hookbench.testing.repo import REPO

ROWS = ["load time (start to healthy)", "dtype", "device map", "memory cpu", "tokens/s at batch size 1",
        "tokens/s at batch size 8", "tokens/s at batch size 32", "tokens/s at batch size 64",
        "patch + restore (model.layers.1.mlp.up_proj.weight, top 20%)", "/api/loss latency (mean of 5)",
        "contract probe"]


@pytest.mark.slow
def test_gpu_check_prints_its_table_on_cpu():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--shape", "tiny",
                        "--new-tokens", "4"], capture_output=True, text=True, timeout=600, env=cli_env(), cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    table = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1].rstrip(" |")
             for line in r.stdout.splitlines() if line.startswith("| ") and " | " in line}
    assert [k for k in table if k != "what"] == ROWS
    assert table["dtype"] == "float32" and table["device map"] == "auto over cpu"
    assert table["contract probe"].startswith("pass")
