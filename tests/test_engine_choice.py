"""Choosing the server's engine: `model.server.launch.engine` and the server CLI's engine flags.

No model is loaded: every case here is refused (or composed) before anything starts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from hookbench.base.errors import ConfigError
from hookbench.hookapi.launcher import check_launch
from hookbench.server.vllm_engine import vllm_available
from hookbench.testing.cli import cli_env, run_cli
from hookbench.testing.config import compose_cfg


def server_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hookbench.server", "--model", "smollm2", "--port", "1", *args],
                          capture_output=True, text=True, timeout=300, env=cli_env())


@pytest.mark.parametrize("model", ["smollm2", "tiny", "qwen72b"])
def test_launch_engine_reaches_the_server_command(model):
    launch = compose_cfg([f"model={model}", "model.server.launch.engine=vllm"]).model.server.launch
    cmd = OmegaConf.to_container(launch.command, resolve=True)
    assert cmd[cmd.index("--engine") + 1] == "vllm"
    default = compose_cfg([f"model={model}"]).model.server.launch
    cmd = OmegaConf.to_container(default.command, resolve=True)
    assert cmd[cmd.index("--engine") + 1] == "hf"


def test_bad_engine_and_launch_python_are_config_errors():
    with pytest.raises(ConfigError, match="model.server.launch.engine='trt'"):
        check_launch({"enabled": True, "engine": "trt"})
    with pytest.raises(ConfigError, match="launch.python"):
        check_launch({"enabled": True, "engine": "vllm", "python": "/no/such/python"})
    check_launch({"enabled": True, "engine": "vllm"})


def test_job_with_a_bad_engine_exits_2_before_a_server_starts(tmp_path):
    p = run_cli(["model=tiny", "model.server.launch.engine=trt", "dataset.n=2", "guards=[]"], cwd=tmp_path, timeout=300)
    assert p.returncode == 2 and "full_key: model.server.launch.engine" in p.stderr and "'trt'" in p.stderr
    assert "starting the model server" not in p.stderr + p.stdout


@pytest.mark.slow
def test_server_cli_refuses_vllm_flags_on_the_hf_engine():
    r = server_cli("--tensor-parallel-size", "2")
    assert r.returncode == 2 and "--tensor-parallel-size: only with --engine vllm" in r.stderr
    r = server_cli("--engine", "vllm", "--tensor-parallel-size", "0")
    assert r.returncode == 2 and "must be at least 1" in r.stderr


@pytest.mark.slow
def test_server_cli_vllm_engine_refusals():
    r = server_cli("--engine", "vllm", "--device-map", "cpu")
    assert r.returncode == 2 and "use --tensor-parallel-size" in r.stderr
    if vllm_available() is not None:  # the main venv: a clear pointer to the set-up, not a traceback
        r = server_cli("--engine", "vllm")
        assert r.returncode == 2 and "vLLM cannot be imported" in r.stderr and "Traceback" not in r.stderr
