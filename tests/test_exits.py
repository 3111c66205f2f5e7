"""`python -m hookbench` and the study commands share one error-to-exit mapping (hookbench.cli.exits);
a value the schema refuses exits 2 at compose time: no MLflow store, no server, no traceback."""

import os
import subprocess
import sys

import pytest
from mlflow.exceptions import MlflowException

from hookbench.base.errors import DataError
from hookbench.base.signals import Terminated
from hookbench.cli.exits import run_command
from hookbench.testing.repo import REPO


def cli(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "hookbench", *args], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.parametrize("args, key", [
    (["stats.correction=holmm"], "stats.correction"),
    (["-m", "patch=math", "patch.strength=abc"], "patch.strength")])
def test_a_refused_config_value_exits_2_before_any_run_or_server(tmp_path, args, key):
    done = cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert f"full_key: {key}" in done.stderr and "Traceback" not in done.stderr
    assert "starting" not in done.stderr.lower()  # no reference server was launched
    assert list(tmp_path.iterdir()) == []  # no mlruns/, outputs/ or multirun/


def _raise(e):
    def body():
        raise e
    return body


@pytest.mark.parametrize("error, code, words", [
    (DataError("bad row"), 3, "error: bad row"), (MlflowException("no such run"), 2, "error: no such run"),
    (KeyboardInterrupt(), 130, "interrupted"), (Terminated(15), 143, "KILLED"), (Terminated(1), 129, "KILLED")])
def test_study_commands_map_outcomes_to_exit_codes(error, code, words, caplog):
    assert run_command(_raise(error)) == code
    assert words in caplog.text


def test_a_bug_is_not_hidden_behind_an_exit_code():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 / 0)
