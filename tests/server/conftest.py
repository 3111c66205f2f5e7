"""Real server processes on 127.0.0.1 for the server tests: `tiny` (fast) and `smollm2` (real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import pytest
import requests

from hookbench.server_process import free_port, wait_healthy


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: str

    def call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        """json.dumps, unlike requests' json=, lets NaN/Infinity through: clients do send them."""
        data = None if body is None else json.dumps(body)
        return requests.request(method, self.url + path, data=data, timeout=600,
                                headers={"Content-Type": "application/json"})

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


def start_server(model: str, *args: str, timeout_s: float = 300) -> Server:
    """Start `python -m hookbench.server --model MODEL` and wait until /api/health answers."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"hookbench-server-{model}-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookbench.server", "--model", model, "--port", str(port), *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log.name)
    try:
        wait_healthy(server.url, timeout_s, proc)
    except (RuntimeError, TimeoutError) as e:
        stop_server(server)
        raise RuntimeError(f"{e}:\n{open(log.name).read()[-3000:]}") from None
    return server


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


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
