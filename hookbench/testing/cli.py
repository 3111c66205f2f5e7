"""`python -m hookbench ...` as a user runs it, from a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hookbench.testing.repo import REPO


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m hookbench ARGS` as a user runs it, in `cwd` (so mlruns/ lands there), with exactly
    `args`: a test that wants no guard task says `guards=[]` itself."""
    return subprocess.run([sys.executable, "-m", "hookbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env))


def cli_env(extra: dict | None = None) -> dict:
    """The environment of a hookbench process a test starts. MLflow's set_tracking_uri() in the test
    process exports MLFLOW_TRACKING_URI, which hookbench honours: drop it unless the test sets it."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PYTHONPATH": str(REPO), **(extra or {})}


def stock_args(server) -> tuple[list[str], dict]:
    """Overrides + env for running the shipped qwen72b config against a stock-server stand-in."""
    return (["model=qwen72b", "model.generation.batch_size=4"], {"QWEN72B_URL": server.url})
