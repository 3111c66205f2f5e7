"""benchmarks/gpu_check.py runs on CPU with a tiny random shape, and with the 70B shape shrunk, and prints
its whole table (the numbers are the benchmark's to print; GPU figures come from a GPU node)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hookbench.testing.cli import cli_env
from hookbench.testing.repo import REPO

ROWS = ["load time (start to healthy)", "dtype", "device map", "memory cpu", "tokens/s at batch size 1",
        "tokens/s at batch size 8", "tokens/s at batch size 32", "tokens/s at batch size 64",
        "patch + restore (model.layers.1.mlp.up_proj.weight, top 20%)",
        "weights digest (model.layers.1.mlp.down_proj.weight, mean of 3)", "/api/loss latency (mean of 5)",
        "contract probe"]


def gpu_check(*args: str) -> dict[str, str]:
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args], capture_output=True,
                       text=True, timeout=900, env=cli_env(), cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    return {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1].rstrip(" |")
            for line in r.stdout.splitlines() if line.startswith("| ") and " | " in line}


@pytest.mark.slow
def test_gpu_check_prints_its_table_on_cpu():
    table = gpu_check("--shape", "tiny", "--new-tokens", "4")
    assert [k for k in table if k != "what"] == ROWS
    assert table["dtype"] == "float32" and table["device map"] == "auto over cpu"
    assert table["contract probe"].startswith("pass")


@pytest.mark.slow
def test_the_70b_shape_shrunk_runs_on_cpu():
    """The prepared GPU check's own shape (70B widths, 2 layers) at 1/16 width: every row, the probe passing."""
    table = gpu_check("--shape", "70b-2layers", "--shrink", "16", "--new-tokens", "2")
    assert [k for k in table if k != "what"] == ROWS
    assert table["contract probe"].startswith("pass") and table["weights digest (model.layers.1.mlp.down_proj.weight, mean of 3)"]
