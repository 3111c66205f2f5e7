"""Shared test fixtures: real reference servers (tiny, smollm2), the stock-server stand-in, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import hookbench.evaluation.schema  # noqa: F401  (registers the config schema before any test composes)
from hookbench.hookapi.launcher import RunningServer, reference_server_command
from hookbench.hookapi.launcher import start_server as launch

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.fixture
def gsm8k_path() -> Path:
    if not GSM8K.exists():
        pytest.skip(f"GSM8K test split not found at {GSM8K}")
    return GSM8K


@pytest.fixture
def stock_server():
    """tests.stock_server.StockServer on the tiny model: the users' stock server, fresh counters and knobs."""
    from tests.stock_server import StockServer

    with StockServer("tiny") as server:
        yield server


@pytest.fixture
def stock_smol():
    """The stock-server stand-in on the real smollm2 model (loaded once per process)."""
    from tests.stock_server import StockServer

    with StockServer("smollm2") as server:
        yield server


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600,
            module: str = "hookbench") -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` as a user runs it, in `cwd` (so mlruns/ lands there)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env))


def cli_env(extra: dict | None = None) -> dict:
    """The environment of a hookbench process a test starts. MLflow's set_tracking_uri() in the test
    process exports MLFLOW_TRACKING_URI, which hookbench honours: drop it unless the test sets it."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PYTHONPATH": str(REPO), **(extra or {})}


def stock_args(server) -> tuple[list[str], dict]:
    """Overrides + env for running the shipped qwen72b config against a stock-server stand-in."""
    return (["model=qwen72b", "model.generation.batch_size=4"], {"QWEN72B_URL": server.url})


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass
class Server:
    """A reference server process (started as hookbench starts one) and calls the tests make."""

    running: RunningServer

    @property
    def url(self) -> str:
        return self.running.url

    def call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        """json.dumps, unlike requests' json=, lets NaN/Infinity through: clients do send them."""
        data = None if body is None else json.dumps(body)
        auth = {"Authorization": f"Bearer {self.running.token}"} if self.running.token else {}
        return requests.request(method, self.url + path, data=data, timeout=600,
                                headers={"Content-Type": "application/json", **auth})

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        """The JSON of a call that must succeed."""
        r = self.call(method, path, body)
        assert r.status_code == 200, r.text
        return r.json()

    def loss(self, prompt: str = "Question: What is 7 + 5?\nAnswer:", answer: str = "12") -> float:
        return self.ok("POST", "/api/loss", {"prompt": prompt, "answer": answer})["loss"]

    def greedy(self, query: str, n: int = 12, **extra) -> dict:
        return self.ok("POST", "/api/generate", {"query": query, "config": "greedy", "max_new_tokens": n, **extra})

    def clean(self) -> None:
        self.ok("POST", "/api/restore", {})
        self.ok("DELETE", "/api/hooks")


def start_server(model: str, *args: str, timeout_s: float = 300, port: int | None = None,
                 token: str | None = None) -> Server:
    """`python -m hookbench.server --model MODEL ARGS`, healthy, through hookbench's own launcher
    (with `token`, behind that bearer token, which Server.call then sends)."""
    return Server(launch(reference_server_command(model) + list(args), {"TOKENIZERS_PARALLELISM": "false"},
                         timeout_s=timeout_s, port=port, token=token))


def stop_server(server: Server) -> None:
    server.running.stop()


@pytest.fixture(scope="session")
def tiny():
    server = start_server("tiny")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def smol():
    server = start_server("smollm2")
    yield server
    stop_server(server)


@pytest.fixture
def tiny_clean(tiny):
    """The tiny server, unpatched before and after the test."""
    tiny.clean()
    yield tiny
    tiny.clean()


@pytest.fixture
def smol_clean(smol):
    smol.clean()
    yield smol
    smol.clean()


def option_cfg(group: str, option: str, *overrides: str):
    """One config group option as a job sees it: composed by Hydra over its schema (not the bare yaml)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"{group}={option}", *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.cwd} resolves, as in a real run
    return cfg[group]


@pytest.fixture(autouse=True)
def _tracking_uri_does_not_leak():
    """mlflow.set_tracking_uri (a test's, or hookbench's own in-process) exports MLFLOW_TRACKING_URI,
    which the config then reads: each test leaves the variable as it found it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
