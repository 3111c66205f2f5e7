"""Shared test fixtures: paths, config composition, the legacy stand-in server, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.fixture
def gsm8k_path() -> Path:
    if not GSM8K.exists():
        pytest.skip(f"GSM8K test split not found at {GSM8K}")
    return GSM8K


@pytest.fixture
def legacy_server():
    from hookbench.server_process import free_port
    from tests.legacy_server import LegacyServer

    with LegacyServer(free_port()) as server:
        yield server


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m hookbench ARGS` as a user runs it, in `cwd` (so mlruns/ lands there)."""
    return subprocess.run([sys.executable, "-m", "hookbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def legacy_args(server) -> tuple[list[str], dict]:
    """Overrides + env for running the shipped qwen72b config against the legacy stand-in server."""
    return (["model=qwen72b", "model.generation.batch_size=4"], {"QWEN72B_URL": server.url})


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
