"""`python -m hookbench ...` as a user runs it, from a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hookbench.testing.repo import REPO


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600,
            module: str = "hookbench") -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` as a user runs it, in `cwd` (so mlruns/ lands there). A job (overrides,
    no command) runs without the default guard task unless the test names `guards`: its 2 x 183
    generations would be most of every stand-in job's time (tests/test_guards*.py test guards)."""
    if module.rsplit(".", 1)[-1] in ("hookbench", "study") and args and not _names_guards(args) and not _is_command(args):
        args = [*args, "guards=[]"]
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env))


def _names_guards(args: list[str]) -> bool:
    return any(a.lstrip("+~").startswith("guards") for a in args)


def _is_command(args: list[str]) -> bool:
    """The first word names a command (`confirm`, `ui` ...; `study` takes a job's overrides) or asks for help."""
    from hookbench.__main__ import COMMANDS

    return (args[0] in COMMANDS and args[0] != "study") or any(a in ("-h", "--help", "--cfg", "-c", "--info", "--hydra-help") for a in args)


def cli_env(extra: dict | None = None) -> dict:
    """The environment of a hookbench process a test starts. MLflow's set_tracking_uri() in the test
    process exports MLFLOW_TRACKING_URI, which hookbench honours: drop it unless the test sets it."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PYTHONPATH": str(REPO), **(extra or {})}


def stock_args(server) -> tuple[list[str], dict]:
    """Overrides + env for running the shipped qwen72b config against a stock-server stand-in."""
    return (["model=qwen72b", "model.generation.batch_size=4"], {"QWEN72B_URL": server.url})
