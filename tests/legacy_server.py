"""A stand-in for a user's existing hook server, with the quirks of ../shared/hook-api.md.

Used only for faults the reference server cannot produce on demand (error text in a 200, a 500 on
the Nth call, silent partial application, a patch that leaks through DELETE). It answers sums
("What is 3 + 4?") and is wrong on an item when the live edits say so, so a leaked patch shows.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

PRESETS = {
    "balanced": {"name": "balanced", "description": "default", "temperature": 0.7, "top_p": 0.9, "top_k": 50,
                 "max_new_tokens": 4096, "repetition_penalty": 1.1, "thinking_budget": 0, "do_sample": True},
    "benchmark": {"name": "benchmark", "description": "eval", "temperature": 0.3, "top_p": 0.9, "top_k": 30,
                  "max_new_tokens": 512, "repetition_penalty": 1.0, "thinking_budget": 0, "do_sample": True},
}
KNOWN_TENSORS = {f"model.layers.{i}.mlp.{p}_proj.weight" for i in range(4) for p in ("up", "down", "gate")}


@dataclass
class State:
    weight_edits: list = field(default_factory=list)  # stays until /api/restore (quirk 1)
    hooks_active: bool = False
    generations: int = 0  # model generations (two per use_hooks request when active: quirk 2)
    calls: int = 0  # /api/generate calls
    fail_calls: set = field(default_factory=set)  # these call numbers answer "Generation error" in a 200
    http500_calls: set = field(default_factory=set)  # these call numbers answer HTTP 500
    empty_for: set = field(default_factory=set)  # queries containing these strings answer ""
    suggestions: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class GenerateBody(BaseModel):
    query: str
    config: str = "balanced"
    use_hooks: bool = False


class HooksBody(BaseModel):
    suggestions: list[dict]
    apply_mode: str = "weights"


def make_app(state: State) -> FastAPI:
    app = FastAPI()

    def answer(query: str) -> str:
        state.generations += 1
        if any(s in query for s in state.empty_for):
            return ""
        nums = [int(n) for n in re.findall(r"\d+", query)]
        total = sum(nums)
        # the "model" errs on some items; each live edit moves which ones
        h = int(hashlib.sha256(query.encode()).hexdigest(), 16)
        if (h + len(state.weight_edits)) % 3 == 0:
            total += 1
        return f"The answer is {total}."

    @app.get("/api/health")
    def health():
        return {"status": "online", "device": "cpu", "hooks_active": state.hooks_active}

    @app.get("/api/configs")
    def configs():
        return PRESETS

    @app.post("/api/generate")
    def generate(body: GenerateBody):
        with state.lock:  # quirk 8: one generation at a time
            state.calls += 1
            if state.calls in state.http500_calls:
                return JSONResponse({"detail": "internal error"}, status_code=500)
            if state.calls in state.fail_calls:
                return {"original": "Generation error: CUDA out of memory", "modified": None, "hook_count": 0}
            original = answer(body.query)  # quirk 2: made with whatever is live
            modified = answer(body.query) if body.use_hooks and state.hooks_active else None
            return {"original": original, "modified": modified, "hook_count": len(state.weight_edits)}

    @app.post("/api/suggestions")
    def suggestions(body: dict):
        return {"suggestions": state.suggestions}

    @app.post("/api/hooks")
    def hooks(body: HooksBody):
        applied = [s["tensor_name"] for s in body.suggestions
                   if s.get("tensor_name") in KNOWN_TENSORS and s.get("operation") in ("scale", "add", "clamp_max", "clamp_min")]
        state.weight_edits += applied  # quirk 4: unknown ones skipped silently; compounding (quirk 1)
        state.hooks_active = True
        return {"hook_count": len(applied), "applied_tensors": applied, "mode": "weights"}

    @app.get("/api/hooks")
    def get_hooks():
        return {"active": state.hooks_active, "stats": {"total_hooks": 0, "total_modifications": 0,
                                                        "modules": [], "stats": {}}}

    @app.delete("/api/hooks")
    def delete_hooks():
        state.hooks_active = False  # quirk 1: weights stay edited
        return {"hook_count": 0}

    @app.post("/api/restore")
    def restore(request: Request):
        n = len(state.weight_edits)
        state.weight_edits = []
        return {"restored_params": n}

    return app


class LegacyServer:
    """Runs the app with uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, port: int):
        self.state = State()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(make_app(self.state), host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
