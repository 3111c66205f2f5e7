"""The 70B configs start the reference server in bf16 over every GPU, with a start-up timeout for 140 GB."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from hookbench.testing.cli import cli_env
from hookbench.testing.config import compose_cfg


@pytest.mark.slow
@pytest.mark.parametrize("model, env", [("qwen72b", "QWEN72B_MODEL_PATH"), ("llama70b", "LLAMA70B_MODEL_PATH")])
def test_big_model_launch_is_the_reference_server_in_bf16_over_all_gpus(model, env, monkeypatch, tmp_path):
    monkeypatch.setenv(env, str(tmp_path / "no-such-model"))
    launch = compose_cfg([f"model={model}", "model.server.launch.enabled=true"]).model.server.launch
    cmd = [str(c).format(python=sys.executable, port=1) for c in OmegaConf.to_container(launch.command, resolve=True)]
    assert cmd[1:4] == ["-m", "hookbench.server", "--model"] and cmd[4] == str(tmp_path / "no-such-model")
    assert " ".join(cmd[5:9]) == "--dtype bfloat16 --device-map auto" and launch.startup_timeout_s >= 3600
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=cli_env())  # every flag accepted
    assert r.returncode == 2 and "cannot load model" in r.stderr and "no-such-model" in r.stderr
