"""ruff (lint + import order) and mypy, with the settings in pyproject.toml, as CI runs them. In the fast
tier: a type or lint error is found by `pytest -m "not slow"`, not only by the whole suite."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["ruff", "check", "hookbench", "tests", "benchmarks"], ["mypy", "hookbench"]],
                         ids=["ruff", "mypy"])
def test_passes(command):
    done = subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
