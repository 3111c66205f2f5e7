"""HookClient over real HTTP: the tiny reference server, and a small fault server for what it cannot do.

The fault server follows hook-api.md (weight edits compound and outlive DELETE, only restore undoes
them, errors in a 200) and adds only the faults under test: a 5xx after applying a patch, a 5xx on
the first restore, no /api/loss, a slow generation, and being stopped and started again.
"""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hookbench.base.errors import ServerError
from hookbench.hookapi import contract
from hookbench.hookapi.client import HookClient, LossUnavailable, PatchApplyUncertain, ServerUnreachable
from hookbench.hookapi.launcher import free_port
from hookbench.testing.servers import start_server, stop_server

MLP = "model.layers.1.mlp.up_proj.weight"
RAW = {"chat": False, "max_new_tokens": 4}  # the tiny model's extensions: short raw generations
ITEMS = [("Question: What is 7 + 5?\nAnswer:", "12"), ("Question: Name a colour.\nAnswer:", "blue"),
         ("Question: Say nothing.\nAnswer:", "")]


class FaultServer:
    """A stock-style hook server on 127.0.0.1 in a thread; `stop()`/`start()` keep the port."""

    def __init__(self, hooks_status: int = 200, restore_fail_first: bool = False, loss: bool = True,
                 loss_batch: bool = False, generate_delay_s: float = 0.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.edits: list[dict] = []  # weight edits: compound, only restore undoes them (§1)
        self.calls: dict[str, int] = {}
        self.last_loss_body: dict | None = None
        self.app = self._app(hooks_status, restore_fail_first, loss, loss_batch, generate_delay_s)
        self.server: uvicorn.Server | None = None

    def _count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    def loss_of(self, prompt: str, answer: str) -> float | None:
        """Deterministic, and it moves with every live edit (§10)."""
        return None if not answer else len(answer) / (1 + len(prompt)) + 0.25 * len(self.edits)

    def _app(self, hooks_status, restore_fail_first, loss, loss_batch, generate_delay_s) -> FastAPI:
        app = FastAPI()
        extensions = [contract.EXT_LOSS_BATCH] if loss_batch else []

        @app.get(contract.HEALTH)
        def health():
            return {"status": "online", "device": "cpu", "hooks_active": bool(self.edits), "extensions": extensions}

        @app.post(contract.GENERATE)
        def generate(body: dict):
            self._count("generate")
            time.sleep(generate_delay_s)
            answer = f"The answer is {len(body['query'])}."
            hooked = body.get("use_hooks") and self.edits
            return {"original": answer, "modified": answer if hooked else None, "hook_count": len(self.edits)}

        @app.post(contract.HOOKS)
        def hooks(body: dict):
            self._count("hooks")
            self.edits += body["suggestions"]  # applied first, then the (faulty) answer
            content = {"hook_count": len(body["suggestions"]), "mode": "weights",
                       "applied_tensors": [s["tensor_name"] for s in body["suggestions"]]}
            return JSONResponse(content if hooks_status == 200 else {"detail": "Bad Gateway"}, hooks_status)

        @app.delete(contract.HOOKS)
        def delete_hooks():
            return {"hook_count": 0}  # §1: weight edits stay

        @app.post(contract.RESTORE)
        def restore():
            if self._count("restore") == 1 and restore_fail_first:
                return JSONResponse({"detail": "Service Unavailable"}, 503)
            n, self.edits = len(self.edits), []
            return {"restored_params": n}

        def one_loss(item: dict) -> dict:
            value = self.loss_of(item["prompt"], item["answer"])
            return {"loss": value, "prompt_tokens": len(item["prompt"]), "answer_tokens": len(item["answer"]),
                    "total_tokens": len(item["prompt"]) + len(item["answer"])}

        if loss:
            @app.post(contract.LOSS)
            def loss_one(body: dict):
                self._count("loss")
                self.last_loss_body = body
                row = one_loss(body)
                return row if row["loss"] is not None else JSONResponse({"detail": "no answer tokens"}, 422)

        if loss_batch:
            @app.post(contract.LOSS_BATCH_PATH)
            def loss_many(body: dict):
                self._count("loss_batch")
                self.last_loss_body = body
                return {"results": [one_loss(it) for it in body["items"]]}

        return app

    def start(self) -> FaultServer:
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def fault():
    servers: list[FaultServer] = []

    def make(**kw) -> FaultServer:
        servers.append(FaultServer(**kw).start())
        return servers[-1]

    yield make
    for s in servers:
        if s.server is not None and not s.server.should_exit:
            s.stop()


# -- the patch is sent once -----------------------------------------------------------------------
def test_patch_applied_then_502_is_not_resent(fault):
    server = fault(hooks_status=502)
    client = HookClient(server.url)
    with pytest.raises(PatchApplyUncertain, match="may or may not have applied"):
        client.apply_patch([{"tensor_name": MLP, "operation": "scale", "value": 1.1, "target": "all"}], "weights")
    assert server.calls["hooks"] == 1 and len(server.edits) == 1  # applied once, not compounded
    client.clean()
    assert server.edits == []


def test_restore_is_still_retried(fault):
    server = fault(restore_fail_first=True)
    server.edits.append({"tensor_name": MLP})
    assert HookClient(server.url).restore() == {"restored_params": 1}
    assert server.calls["restore"] == 2


def test_patch_on_the_reference_server(tiny_clean):
    client = HookClient(tiny_clean.url)
    ok = client.apply_patch([{"tensor_name": MLP, "operation": "scale", "value": 1.5, "target": "all"}], "weights")
    assert ok["hook_count"] == 1 and ok["applied_tensors"] == [MLP]
    with pytest.raises(ServerError, match="HTTP 422") as refused:  # refused: nothing applied, not uncertain
        client.apply_patch([{"tensor_name": "nope.weight", "operation": "scale", "value": 1.5, "target": "all"}],
                           "weights")
    assert not isinstance(refused.value, PatchApplyUncertain)


def test_patch_to_a_stopped_server_was_not_sent(fault):
    server = fault()
    server.stop()
    with pytest.raises(ServerUnreachable, match="not sent"):
        HookClient(server.url).apply_patch([{"tensor_name": MLP, "operation": "scale", "value": 1.1,
                                             "target": "all"}], "weights")


# -- a dead server stops the run ------------------------------------------------------------------
@pytest.mark.slow
def test_killed_reference_server_stops_generation_at_the_default_threshold():
    server = start_server("tiny")
    try:
        client = HookClient(server.url)  # defaults: 3 retries per request, 3 requests in a row
        first = client.generate(["1 + 1 ="], "greedy", False, RAW)
        assert first[0].error is None
        server.running.process.kill()
        server.running.process.wait()
        failed_chunks = []
        with pytest.raises(ServerUnreachable, match="did not answer 3 requests in a row") as gone:
            for _ in range(10):
                failed_chunks.append(client.generate(["2 + 2 =", "3 + 3 ="], "greedy", False, RAW))
        assert [[g.error for g in chunk] for chunk in failed_chunks] == [["api_error"] * 2] * 2
        assert server.url in str(gone.value)
    finally:
        stop_server(server)


def test_server_stopped_mid_list_raises(fault):
    server = fault()
    client = HookClient(server.url, retries=1, max_connection_failures=2)
    assert [g.text for g in client.generate(["a", "bb"], "benchmark", False, {})] == [
        "The answer is 1.", "The answer is 2."]
    server.stop()
    with pytest.raises(ServerUnreachable) as gone:
        client.generate(["ccc", "dddd", "eeeee"], "benchmark", False, {})
    assert server.url in str(gone.value)


def test_an_answer_resets_the_connection_failure_count(fault):
    server = fault()
    client = HookClient(server.url, retries=0, max_connection_failures=2)
    client.health()
    server.stop()
    assert client.generate(["a"], "benchmark", False, {})[0].error == "api_error"  # 1 in a row
    server.start()
    assert client.generate(["a"], "benchmark", False, {})[0].text == "The answer is 1."  # reset
    server.stop()
    assert client.generate(["a"], "benchmark", False, {})[0].error == "api_error"  # 1 again, not 2
    with pytest.raises(ServerUnreachable):
        client.generate(["a"], "benchmark", False, {})


def test_a_busy_server_times_out_without_counting_as_gone(fault):
    server = fault(generate_delay_s=1.0)
    client = HookClient(server.url, timeout_s=0.2, max_connection_failures=1)
    gens = client.generate(["a", "b"], "benchmark", False, {})
    assert [g.error for g in gens] == ["timeout", "timeout"]
    assert server.calls["generate"] == 2  # a read timeout is not retried: the server is busy, not gone


# -- teacher-forced loss --------------------------------------------------------------------------
def test_losses_on_the_reference_server_match_its_loss_endpoint(tiny_clean):
    client = HookClient(tiny_clean.url)
    got = client.losses(ITEMS)
    want = [tiny_clean.loss(p, a) for p, a in ITEMS[:2]]
    assert got[:2] == pytest.approx(want, rel=1e-4) and got[2] is None  # empty answer: no tokens to score
    client.apply_patch([{"tensor_name": MLP, "operation": "scale", "value": 3.0, "target": "all"}], "weights")
    assert client.losses(ITEMS[:1]) != pytest.approx(got[:1], rel=1e-4)  # a live patch moves the loss


def test_losses_one_request_per_item_on_a_stock_server(fault):
    server = fault()
    got = HookClient(server.url).losses(ITEMS, answer_prefix=" A: ", chat=True)
    assert got == [server.loss_of(p, a) for p, a in ITEMS] and got[2] is None  # per-item 422 -> None
    assert server.calls == {"loss": 3}
    assert server.last_loss_body["answer_prefix"] == " A: " and server.last_loss_body["use_chat_template"] is True


def test_losses_batched_where_the_server_lists_loss_batch(fault):
    server = fault(loss_batch=True)
    items = ITEMS * 2
    got = HookClient(server.url).losses(items, batch_size=4)
    assert got == [server.loss_of(p, a) for p, a in items]
    assert server.calls == {"loss_batch": 2}


def test_a_server_without_loss_raises_loss_unavailable(fault):
    server = fault(loss=False)
    with pytest.raises(LossUnavailable, match="HTTP 404"):
        HookClient(server.url).losses(ITEMS[:1])
