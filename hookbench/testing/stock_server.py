"""A faithful stand-in for the users' *stock* hook server (as the hook API document describes it), on a real model.

Serves `tiny` or `smollm2` (loaded once per process with hookbench.server.models.load) through the
reference server's building blocks, with the stock semantics a client must survive: every preset
samples and there is no seed, `use_hooks: true` generates twice while a patch is active (both with
the patch live), unknown tensors and unsupported ops are skipped silently, NaN values are applied,
weight edits compound and outlive DELETE (only /api/restore undoes them), unknown presets are
served as `balanced`, generation errors come back as HTTP 200 text, one model call at a time, and
/api/health lists no extensions and no server identity.

Targets and /api/loss follow the stock rules of hook-api.md, written here on their own (`stock_edit`,
`stock_loss`) rather than through the reference server's code, so tests comparing the two servers
compare two implementations of the same rule.

The one deliberate departure: generation is capped at `max_new_tokens_cap` new tokens (default 16)
so tests stay cheap; the presets still report their stock `max_new_tokens`.

Test hooks are plain attributes read/set on the object (the HTTP surface stays stock):
counters `generations`, `generate_calls`, `loss_calls`, `hooks_posts`, `last_preset`; fault knobs
`fail_calls`, `http_error_calls`, `empty_for`, `planted` (a patch's effect on chosen queries), `hooks_fail_after_apply`, `down_after_call`,
`suggestions`, `suggestions_delay_s`, `broken_routes`, `sigterm_after` (the client process gets
the SIGTERM: the server runs in it), `after_request(route, n)` (a test's fault, e.g. a signal to a
hookbench process, after the n-th request of a route), the `request_log`; and `down()`, `kill()`, `up()`, `swap_model()`,
`weights_sha256()`, `is_clean()`. Module helpers: `load_model(spec)` (the per-process cache) and
`perturbed_copy(lm)` (other weights for swap_model). Each server start reseeds torch from entropy
(loading `tiny` seeds it with 0), so sampled answers differ between runs as on the stock server.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from hookbench.hookapi import contract
from hookbench.hookapi.launcher import free_port
from hookbench.server import generation, models
from hookbench.server.patching import Edit, Patcher, PatchRejected

MODE_WEIGHTS, MODE_HOOKS = contract.APPLY_MODES
SCALE = contract.WEIGHT_OPS[0]
STOCK_PRESETS = {name: p for name, p in generation.PRESETS.items() if contract.is_sampled(p)}
_LOADED: dict[str, models.LoadedModel] = {}


def load_model(spec: str) -> models.LoadedModel:
    """`tiny` / `smollm2` / a path, loaded once per process (servers restore it when they stop)."""
    if spec not in _LOADED:
        _LOADED[spec] = models.load(spec)
    return _LOADED[spec]


def perturbed_copy(lm: models.LoadedModel, scale: float = 1e-3, seed: int = 1) -> models.LoadedModel:
    """A copy of `lm` with every weight nudged by seeded noise: other weights, same name and tokenizer."""
    model = copy.deepcopy(lm.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return dataclasses.replace(lm, model=model, weights_sha256=models.weights_sha256(model))


def stock_edit(w: torch.Tensor, op: str, value: float, target: tuple[str, float]) -> torch.Tensor:
    """The stock target rule: k = round(n*share) (at least 1), threshold = the k-th |w| from the top
    (or bottom) of the sorted magnitudes, every entry equal to it included; the op on those."""
    kind, pct = target
    new = {"scale": w * value, "add": w + value, "clamp_max": w.clamp(max=value), "clamp_min": w.clamp(min=value)}[op]
    if kind == "all":
        return new
    mags = w.abs()
    k = max(1, round(w.numel() * pct / 100))
    ordered = mags.flatten().float().sort(descending=(kind == "top")).values
    thr = ordered[k - 1].to(w.dtype)
    return torch.where(mags >= thr if kind == "top" else mags <= thr, new, w)


@torch.no_grad()
def stock_loss(lm: models.LoadedModel, prompt: str, answer: str, answer_prefix: str) -> dict:
    """The stock /api/loss (rule 10): BOS (when the tokenizer has one) + `prompt + answer_prefix` and
    `answer` tokenized as two segments without special tokens; mean NLL of the answer tokens."""
    tok = lm.tokenizer
    ctx = ([tok.bos_token_id] if tok.bos_token_id is not None else []) + tok.encode(
        prompt + answer_prefix, add_special_tokens=False)
    ans = tok.encode(answer, add_special_tokens=False)
    ids = torch.tensor([ctx + ans], device=lm.input_device)
    logits = lm.model(input_ids=ids).logits[0, len(ctx) - 1:-1].float()
    loss = torch.nn.functional.cross_entropy(logits, ids[0, len(ctx):]).item()
    return {"loss": loss, "prompt_tokens": len(ctx), "answer_tokens": len(ans), "total_tokens": len(ctx) + len(ans)}


def uses_chat_template(lm: models.LoadedModel) -> bool:
    """The stock server applies a chat template only when the model's folder name contains 'qwen' (§9)."""
    return "qwen" in Path(str(lm.tokenizer.name_or_path)).name.lower()


def fallback_suggestions(lm: models.LoadedModel) -> dict[str, list[dict]]:
    """The stock server's fixed set when its agent is unavailable (§7): general 2 edits, math 1."""
    mid = lm.model.config.num_hidden_layers // 2

    def s(tensor: str, value: float, target: str) -> dict:
        return {"tensor_name": f"model.layers.{mid}.{tensor}.weight", "operation": SCALE, "value": value,
                "target": target, "confidence": 0.5, "reason": "fallback suggestion (agent unavailable)"}

    return {"general": [s("mlp.up_proj", 1.05, "top 20%"), s("self_attn.o_proj", 0.95, "all")],
            "math": [s("mlp.down_proj", 1.1, "top 10%")]}


class Suggestion(BaseModel):
    tensor_name: str
    operation: str
    value: float  # NaN passes (pydantic allows it), as on the stock server
    target: str = "all"
    confidence: float | None = None
    reason: str | None = None


class GenerateRequest(BaseModel):
    query: str
    config: str = contract.FALLBACK_PRESET
    use_hooks: bool = False


class HooksRequest(BaseModel):
    suggestions: list[Suggestion]
    apply_mode: str = MODE_WEIGHTS


class SuggestionsRequest(BaseModel):
    capability: str


class LossRequest(BaseModel):
    prompt: str
    answer: str
    answer_prefix: str = contract.LOSS_ANSWER_PREFIX
    use_chat_template: bool = False


class StockServer:
    """Context manager: the stock server's behaviour on `model`, served by uvicorn on 127.0.0.1 in a thread.

    model: "tiny" | "smollm2" | a models.LoadedModel.  port: None picks a free one.
    torch_threads: torch threads while the model runs (1 avoids thread thrashing on a busy shared
    machine, which makes the tiny model 10x slower; None leaves torch's setting alone).
    """

    def __init__(self, model: str | models.LoadedModel = "tiny", port: int | None = None,
                 max_new_tokens_cap: int = 16, torch_threads: int | None = 1):
        self.port = port or free_port()
        self.torch_threads = torch_threads
        self.url = f"http://127.0.0.1:{self.port}"
        self.max_new_tokens_cap = max_new_tokens_cap
        self.lock = threading.Lock()  # §8: one model call at a time
        self._set_model(model)
        torch.seed()  # no seed (§6): loading `tiny` seeds torch with 0, which would make every process sample alike
        # counters
        self.generations = 0  # model generations: two per use_hooks request while a patch is active
        self.generate_calls = 0  # POST /api/generate requests (numbering for the fault knobs)
        self.loss_calls = 0
        self.hooks_posts = 0  # POST /api/hooks requests
        self.last_preset: str | None = None  # the preset the last generation was served with
        # fault knobs
        self.fail_calls: set[int] = set()  # generate call numbers answering "Generation error: ..." in a 200
        self.http_error_calls: dict[int, int] = {}  # generate call number -> HTTP status answered instead
        self.empty_calls: set[int] = set()  # generate call numbers answering "" (the model stops at once)
        self.fake_model = False  # answer without the model (a fixed text per query): for soaks
        # a planted patch effect: (query, names of the tensors edited or hooked right now) -> the answer,
        # or None for the model's own; how a test makes a patch help one task and damage another on demand
        self.planted: Callable[[str, frozenset[str]], str | None] | None = None
        self.empty_for: set[str] = set()  # queries containing one of these answer "" (the model stops at once)
        self.hooks_fail_after_apply: bool | set[int] = False  # True / these POST numbers: apply, then 502
        self.down_after_call: int | None = None  # the server shuts down right after answering this generate call
        self.suggestions: dict[str, list[dict]] | None = None  # None: the stock fallback set
        self.suggestions_delay_s = 0.0  # the stock server takes 4-20 s here; tests need not wait
        self.broken_routes: dict[str, int] = {}  # "METHOD /path" -> HTTP status answered instead
        self.sigterm_after: dict[str, int] = {}  # "METHOD /path" -> its request number that SIGTERMs this process
        self.request_log: list[str] = []  # "METHOD /path" of every request, in order
        self.after_request: Callable[[str, int], None] | None = None  # (route, its request number) -> None, called after answering it
        self.app = self._make_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- test hooks ---------------------------------------------------------------------------
    def _set_model(self, model: str | models.LoadedModel) -> None:
        self.lm = load_model(model) if isinstance(model, str) else model
        self.patcher = Patcher(self.lm.model, edit_weight=stock_edit)
        self.chat = uses_chat_template(self.lm)
        self.loaded_sha256 = models.weights_sha256(self.lm.model)  # the live weights before any patch

    def _release_model(self) -> None:
        """Leave a (possibly shared, cached) model as loaded: originals back, hooks gone."""
        self.patcher.restore()
        self.patcher.remove_hooks()

    def swap_model(self, model: str | models.LoadedModel) -> None:
        """Other weights behind the same URL (a redeploy the client was not told about)."""
        with self.lock:
            self._release_model()
            self._set_model(model)

    def weights_sha256(self) -> str:
        """Fingerprint of the live weights (patches included)."""
        with self.lock:
            return models.weights_sha256(self.lm.model)

    def is_clean(self) -> bool:
        """No patch live: no kept originals, no hooks, flag off, weights as loaded."""
        p = self.patcher
        return (not p.originals and not p.handles and not p.active
                and self.weights_sha256() == self.loaded_sha256)

    def up(self) -> StockServer:
        """Start answering on self.url (again, after down())."""
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"stock server could not start on {self.url}")
            time.sleep(0.02)
        return self

    def down(self, force: bool = False) -> None:
        """Stop answering: connections to self.url are refused from now on (force: do not wait for
        requests in flight). up() serves again, with the same weights and patch state."""
        if self._server is None:
            return
        self._server.should_exit = True
        self._server.force_exit = force
        if self._thread is not None:  # up() starts both
            self._thread.join(timeout=10)

    def kill(self) -> None:
        """Stop at once, without waiting for requests in flight to be answered."""
        self.down(force=True)

    def __enter__(self) -> StockServer:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()
        with self.lock:
            self._release_model()

    # -- the app ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _model_call(self) -> Iterator[None]:
        """The global lock (§8), with torch's thread count set for the call and put back after."""
        with self.lock:
            before = torch.get_num_threads()
            if self.torch_threads:
                torch.set_num_threads(self.torch_threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    def _generate_one(self, query: str, cfg: dict) -> str:
        self.generations += 1
        if any(s in query for s in self.empty_for) or self.generate_calls in self.empty_calls:
            return ""
        if self.planted is not None:
            live = frozenset(self.patcher.originals) | frozenset(name for name, _ in self.patcher.handles)
            answer = self.planted(query, live)
            if answer is not None:
                return answer
        if self.fake_model:  # where the model does not matter (soaks): a fixed answer per query, no model call
            return f"The answer is {sum(map(ord, query)) % 1000}."
        try:
            return generation.generate(self.lm, [query], cfg, self.chat, None,
                                       min(cfg["max_new_tokens"], self.max_new_tokens_cap))[0]
        except Exception as e:  # §3: the error text is the answer, in a 200
            return f"{contract.ERROR_TEXT_PREFIXES[0]} {e}"

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="stock hook server stand-in")

        @app.middleware("http")
        async def faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            route = f"{request.method} {request.url.path}"
            self.request_log.append(route)
            if route in self.broken_routes:
                return JSONResponse({"detail": "Internal Server Error"}, status_code=self.broken_routes[route])
            response = await call_next(request)
            if self.sigterm_after.get(route) == self.request_log.count(route):  # handled, then the signal
                os.kill(os.getpid(), signal.SIGTERM)
            if self.after_request is not None:  # a test's fault, timed by the request that marks a phase
                self.after_request(route, self.request_log.count(route))
            return response

        @app.get(contract.HEALTH, response_model=None)
        def health() -> dict:
            return {"status": "online", "device": self.lm.device, "hooks_active": self.patcher.active}

        @app.get(contract.CONFIGS, response_model=None)
        def configs() -> dict:
            return STOCK_PRESETS

        @app.post(contract.GENERATE, response_model=None)
        def generate(req: GenerateRequest) -> dict | JSONResponse:
            with self._model_call():
                self.generate_calls += 1
                n = self.generate_calls
                if n == self.down_after_call:  # graceful: this answer goes out, then the port closes
                    threading.Thread(target=self.down, daemon=True).start()
                if n in self.http_error_calls:
                    return JSONResponse({"detail": "Internal Server Error"}, status_code=self.http_error_calls[n])
                hooked = req.use_hooks and self.patcher.active
                if n in self.fail_calls:
                    text = f"{contract.ERROR_TEXT_PREFIXES[0]} CUDA out of memory. Tried to allocate 20.00 MiB"
                    return {"original": text, "modified": text if hooked else None,
                            "hook_count": self.patcher.hook_count}
                name = req.config if req.config in STOCK_PRESETS else contract.FALLBACK_PRESET  # §5
                self.last_preset = name
                original = self._generate_one(req.query, STOCK_PRESETS[name])  # §2: with the patch live
                modified = self._generate_one(req.query, STOCK_PRESETS[name]) if hooked else None
                return {"original": original, "modified": modified, "hook_count": self.patcher.hook_count}

        @app.post(contract.SUGGESTIONS, response_model=None)
        def suggestions(req: SuggestionsRequest) -> dict:
            time.sleep(self.suggestions_delay_s)
            table = fallback_suggestions(self.lm) if self.suggestions is None else self.suggestions
            return {"suggestions": table.get(req.capability, [])}

        @app.post(contract.HOOKS, response_model=None)
        def apply(req: HooksRequest) -> dict | PlainTextResponse:
            with self.lock:
                self.hooks_posts += 1
                mode = MODE_HOOKS if req.apply_mode == MODE_HOOKS else MODE_WEIGHTS
                edits = [e for e in (self._lenient(s.model_dump(), mode) for s in req.suggestions) if e]
                if mode == MODE_WEIGHTS:
                    body = {"hook_count": len(edits), "applied_tensors": self.patcher.apply_weights(edits),
                            "mode": mode}
                else:
                    body = {"hook_count": len(edits), "modules": self.patcher.apply_hooks(edits), "mode": mode}
                f = self.hooks_fail_after_apply
                if f is True or (isinstance(f, set) and self.hooks_posts in f):
                    return PlainTextResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
                return body

        @app.get(contract.HOOKS, response_model=None)
        def hooks() -> dict:
            with self.lock:
                return self.patcher.hook_stats()

        @app.delete(contract.HOOKS, response_model=None)
        def delete_hooks() -> dict:
            with self.lock:
                self.patcher.remove_hooks()  # §1: weight edits stay
            return {"hook_count": 0}

        @app.post(contract.RESTORE, response_model=None)
        def restore() -> dict:
            with self.lock:
                return {"restored_params": self.patcher.restore()}

        @app.post(contract.LOSS, response_model=None)
        def loss(req: LossRequest) -> dict:
            with self._model_call():
                self.loss_calls += 1
                prompt = generation.build_prompt(self.lm.tokenizer, req.prompt, req.use_chat_template)
                return stock_loss(self.lm, prompt, req.answer, req.answer_prefix)

        return app

    def _lenient(self, s: dict, mode: str) -> Edit | None:
        """The reference validation, minus its strictness: a bad suggestion is None (skipped, §4) and a
        non-finite value is applied as given."""
        value = s["value"]
        try:
            (edit,) = self.patcher.validate([{**s, "value": 0.0} if not math.isfinite(value) else s], mode)
        except PatchRejected:
            return None
        return dataclasses.replace(edit, value=value)
