"""The reference server's bearer token: nobody without it patches the model; a launched server always has one."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hookbench.hookapi import contract, launcher
from hookbench.hookapi.launcher import launched_token, reference_server_command
from hookbench.hookapi.launcher import start_server as launch
from hookbench.server.auth import DEFAULT_ENV, is_loopback, protect
from hookbench.testing.cli import cli_env
from hookbench.testing.servers import Server, stop_server

TOKEN = "tok-3f9a-not-a-real-secret-0123456789"


@pytest.fixture(scope="module")
def guarded():
    """A tiny reference server requiring TOKEN, given as `--token-env` names it."""
    server = Server(launch(reference_server_command("tiny") + ["--token-env", "HB_TEST_TOKEN"],
                           {"TOKENIZERS_PARALLELISM": "false", "HB_TEST_TOKEN": TOKEN}))
    yield server
    stop_server(server)


def call(server, method: str, path: str, token: str | None = None, scheme: str = "Bearer") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return requests.request(method, server.url + path, headers=headers, timeout=60)


def endpoints(server) -> list[tuple[str, str]]:
    """Every route the server serves, read from its own OpenAPI schema (so a new endpoint is covered), and the docs."""
    schema = call(server, "GET", "/openapi.json", TOKEN).json()
    routes = [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]
    assert (("POST", contract.HOOKS) in routes and ("POST", contract.LOSS) in routes
            and ("GET", contract.HEALTH) in routes), routes
    return routes + [("GET", "/openapi.json"), ("GET", "/docs")]


def test_every_endpoint_but_health_refuses_a_missing_or_wrong_token(guarded):
    for method, path in endpoints(guarded):
        attempts = {"none": call(guarded, method, path), "wrong": call(guarded, method, path, TOKEN + "x"),
                    "prefix": call(guarded, method, path, TOKEN[:-1]), "basic": call(guarded, method, path, TOKEN, "Basic")}
        if (method, path) == ("GET", contract.HEALTH):
            assert all(r.status_code == 200 for r in attempts.values())
            continue
        for how, r in attempts.items():
            assert r.status_code == 401, f"{method} {path} with {how} token: {r.status_code}"
            assert TOKEN not in r.text and r.headers["WWW-Authenticate"] == "Bearer"
        assert call(guarded, method, path, TOKEN).status_code != 401, f"{method} {path} refused the right token"


def test_with_the_token_the_contract_works(guarded):
    s, ok = guarded.url, {"Authorization": f"Bearer {TOKEN}"}
    sug = {"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 2.0, "target": "all"}
    r = requests.post(s + contract.HOOKS, json={"suggestions": [sug]}, headers=ok, timeout=60)
    assert r.status_code == 200 and r.json()["hook_count"] == 1
    r = requests.post(s + contract.GENERATE, json={"query": "Hi", "config": "greedy", "max_new_tokens": 2,
                                                   "use_hooks": True}, headers=ok, timeout=60)
    assert r.status_code == 200 and r.json()["modified"] is not None
    assert requests.post(s + contract.RESTORE, headers=ok, timeout=60).json()["restored_params"] == 1
    r = requests.post(s + contract.LOSS, json={"prompt": "2+2=", "answer": "4"}, headers=ok, timeout=60)
    assert r.status_code == 200 and r.json()["loss"] > 0


def test_health_says_only_that_auth_is_on_and_the_identity_is_unchanged(guarded, tiny):
    h, open_h = call(guarded, "GET", contract.HEALTH).json(), tiny.ok("GET", contract.HEALTH)
    assert h["auth"] is True and open_h["auth"] is False
    assert h["server"] == open_h["server"], "the token changed the server's identity"
    assert TOKEN not in str(h) and TOKEN not in guarded.running.log_tail(200)
    assert "bearer token required (from $HB_TEST_TOKEN)" in guarded.running.log_tail(200)


def server_cli(*args: str, unset: tuple = (DEFAULT_ENV,)) -> subprocess.CompletedProcess:
    env = {k: v for k, v in cli_env().items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "hookbench.server", "--model", "tiny", "--port", "9", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_public_bind_without_a_token_does_not_start():
    r = server_cli("--host", "0.0.0.0")
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 without a token" in r.stderr
    assert "--token-env" in r.stderr and "--insecure-no-token" in r.stderr and "Traceback" not in r.stderr
    assert "loaded" not in r.stderr, "the model was loaded before the refusal"


def test_a_token_env_naming_an_unset_variable_does_not_start():
    r = server_cli("--token-env", "HB_NOT_SET_ANYWHERE", unset=("HB_NOT_SET_ANYWHERE",))
    assert r.returncode == 2 and "--token-env names HB_NOT_SET_ANYWHERE, which is not set" in r.stderr


@pytest.mark.slow
def test_insecure_no_token_starts_open_and_says_so_loudly():
    server = Server(launch(reference_server_command("tiny") + ["--host", "0.0.0.0", "--insecure-no-token"],
                           {"TOKENIZERS_PARALLELISM": "false", DEFAULT_ENV: ""}))
    try:
        assert server.ok("GET", contract.HEALTH)["auth"] is False
        assert server.call("DELETE", contract.HOOKS).status_code == 200
        assert "WARNING: --insecure-no-token" in server.running.log_tail() and "OPEN" in server.running.log_tail()
    finally:
        stop_server(server)


def test_loopback_names():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.1.2.3", "gpu-node-7"]))


@pytest.mark.slow
def test_a_launched_server_gets_a_fresh_token_in_its_environment_not_its_command_line():
    """model.server.launch as compose runs it: a token per launch, and the server refuses a caller without it."""
    from omegaconf import OmegaConf

    from hookbench.testing.config import compose_cfg

    spec = OmegaConf.to_container(compose_cfg(["model=tiny"]).model.server.launch, resolve=True)
    url = launcher.ensure_server(spec, None)
    try:
        token, pid = launched_token(url), next(s.process.pid for s in launcher._running.values() if s.url == url)
        assert token and len(token) >= 32 and launched_token("http://127.0.0.1:9") is None
        assert token.encode() not in open(f"/proc/{pid}/cmdline", "rb").read(), "the token is visible in ps"
        assert f"{DEFAULT_ENV}={token}".encode() in open(f"/proc/{pid}/environ", "rb").read()
        sug = {"suggestions": [{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale",
                                "value": 0.0, "target": "all"}]}
        assert requests.post(url + contract.HOOKS, json=sug, timeout=60).status_code == 401  # curl -X POST
        assert requests.get(url + contract.HEALTH, timeout=60).json()["auth"] is True
        assert requests.get(url + contract.CONFIGS, headers={"Authorization": f"Bearer {token}"},
                            timeout=60).status_code == 200
    finally:
        launcher._stop_all()


def test_a_websocket_without_the_token_is_closed():
    """No route of the reference server is a websocket; should one appear, it is guarded too."""
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(socket: WebSocket):
        await socket.accept()
        await socket.send_text("model state")

    protect(app, TOKEN)
    client = TestClient(app)
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008
    with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as socket:
        assert socket.receive_text() == "model state"
