"""The reference server as tests drive it (started as hookbench starts one), and what it reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from hookbench.hookapi import contract
from hookbench.hookapi.launcher import RunningServer, reference_server_command
from hookbench.hookapi.launcher import start_server as launch

if TYPE_CHECKING:
    from hookbench.testing.stock_server import StockServer

PROBES = ["What is 2 + 2? Answer with the number only.", "Name a colour."]


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

    def greedy(self, query: str, n: int = 12, **extra: Any) -> dict:
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


def fingerprint(server: Server) -> tuple:
    """Greedy answers and a teacher-forced loss: identical iff the weights are the original ones."""
    return tuple(server.greedy(q)["original"] for q in PROBES) + (server.loss(),)


def external(server: Server | StockServer, model: str = "smollm2") -> list[str]:
    return [f"model={model}", "model.server.launch.enabled=false", f"model.server.url={server.url}"]


def write_external_models(conf: Path, servers: dict) -> str:
    """Model configs pointing at already-running servers, so generations can be counted there."""
    (conf / "model").mkdir(parents=True)
    for name, (base, server) in servers.items():
        (conf / "model" / f"{name}.yaml").write_text(
            f"defaults:\n  - {base}\n  - _self_\nserver:\n  url: {server.url}\n  launch:\n    enabled: false\n")
    return f"hydra.searchpath=[file://{conf}]"


def generated(server: Server, counter: str = "generated_sequences") -> int:
    """What reached the model, counted by the reference server (generate_requests or generated_sequences)."""
    return requests.get(server.url + contract.HEALTH).json()["counters"][counter]
