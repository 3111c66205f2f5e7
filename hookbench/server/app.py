"""FastAPI app for the tensor-hook contract (hook-api.md) plus the extensions listed in /api/health.

/api/loss scores the answer tokens only; prompt_tokens counts the context (prompt + answer_prefix);
/api/loss/batch scores many items in one right-padded forward pass, each as /api/loss would.
One global lock serialises everything that touches the model (contract §8); endpoints are plain
`def`s, so FastAPI runs them in its thread pool and requests queue on the lock.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import hookbench
from hookbench.hookapi import contract
from hookbench.server import auth, generation, suggestion_cache, suggestions
from hookbench.server.digests import UnknownTensors
from hookbench.server.patching import WEIGHTS, PatchRejected

if TYPE_CHECKING:
    from hookbench.server.engine import Engine

log = logging.getLogger(__name__)

EXTENSIONS = [contract.EXT_GENERATE_BATCH, contract.EXT_SEED, contract.EXT_SKIP_ORIGINAL, contract.EXT_CHAT,
              contract.EXT_MAX_NEW_TOKENS, contract.EXT_LOSS_BATCH, contract.EXT_WEIGHTS_DIGEST]
GENERATION_ERROR = contract.ERROR_TEXT_PREFIXES[0]
NO_ANSWER_TOKENS = "answer has no tokens to score"
FALLBACK_HEADER = "X-Hookbench-Preset-Fallback"


class GenerateOptions(BaseModel):
    config: str = generation.DEFAULT_PRESET
    use_hooks: bool = False
    seed: int | None = None
    skip_original: bool = False
    chat: bool | None = None
    max_new_tokens: int | None = None


class GenerateRequest(GenerateOptions):
    query: str


class BatchRequest(GenerateOptions):
    queries: list[str]


class SuggestionsRequest(BaseModel):
    capability: str


class HooksRequest(BaseModel):
    suggestions: list  # validated item by item in patching, so every error names its suggestion
    apply_mode: str = WEIGHTS


class DigestRequest(BaseModel):
    tensors: list[str]


class LossItem(BaseModel):
    prompt: str
    answer: str


class LossOptions(BaseModel):
    answer_prefix: str = contract.LOSS_ANSWER_PREFIX
    use_chat_template: bool = False


class LossRequest(LossItem, LossOptions):
    pass


class LossBatchRequest(LossOptions):
    items: list[LossItem]


def json_safe(obj: object) -> object:
    """Echo a rejected suggestion as JSON even when it holds NaN/inf (those become strings)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def identity(engine: Engine, chat_template: str) -> dict:
    """/api/health `server`: everything of this server that changes answers for the same request
    (model, weights_sha256, dtype, device, device_map, devices come from the engine)."""
    return {"name": "hookbench-reference", "version": hookbench.__version__, **engine.identity(),
            "chat_template": chat_template}


def create_app(engine: Engine, chat_template: str = "auto", token: str | None = None) -> FastAPI:
    """The app serving `engine` (an engine.Engine). chat_template: auto | always | never.
    token: required as a bearer token on every endpoint but health (auth.py); None: open."""
    app = FastAPI(title="hookbench reference hook server", version=hookbench.__version__)
    auth.protect(app, token)
    lock = threading.Lock()
    # what reached the model, so a client's claims about reuse can be checked at the server
    counters = {"generate_requests": 0, "generated_sequences": 0}
    default_chat = chat_template == "always" or (chat_template == "auto" and engine.has_chat_template())

    def run_generation(queries: list[str], req: GenerateOptions, response: Response) -> list[dict]:
        """Contract §2 per item: `original` and (hooks active) `modified`, both with the patch live."""
        cfg, fell_back = generation.preset(req.config)
        if fell_back:
            response.headers[FALLBACK_HEADER] = quote(req.config, safe="")
        chat = default_chat if req.chat is None else req.chat

        def gen() -> list[str]:
            counters["generated_sequences"] += len(queries)
            try:
                return engine.generate(queries, cfg, chat, req.seed, req.max_new_tokens)
            except Exception as e:  # contract §3: error text as the answer, HTTP 200
                log.exception("generation of %d queries failed", len(queries))
                return [f"{GENERATION_ERROR} {type(e).__name__}: {e}"] * len(queries)

        with lock:
            counters["generate_requests"] += 1
            hooked = req.use_hooks and engine.active
            original = [None] * len(queries) if hooked and req.skip_original else gen()
            modified = gen() if hooked else [None] * len(queries)
            count = engine.hook_count
        return [{"original": o, "modified": m, "hook_count": count} for o, m in zip(original, modified)]

    server = identity(engine, chat_template)

    @app.get(contract.HEALTH, response_model=None)
    def health() -> dict:
        return {"status": "online", "device": engine.device, "hooks_active": engine.active,
                "server": dict(server), "extensions": EXTENSIONS, "counters": dict(counters),
                "memory": engine.memory(),
                "auth": bool(token)}  # outside `server`: a launch's fresh token leaves identity alone

    @app.get(contract.CONFIGS, response_model=None)
    def configs() -> dict:
        return generation.PRESETS

    @app.post(contract.GENERATE, response_model=None)
    def generate(req: GenerateRequest, response: Response) -> dict:
        return run_generation([req.query], req, response)[0]

    @app.post(contract.GENERATE_BATCH_PATH, response_model=None)
    def generate_batch(req: BatchRequest, response: Response) -> dict:
        return {"results": run_generation(req.queries, req, response) if req.queries else []}

    @app.post(contract.SUGGESTIONS, response_model=None)
    def get_suggestions(req: SuggestionsRequest) -> dict:
        """Computed once per (weights, dtype, capability) and kept on disk for every later start and directory."""
        with lock:
            return {"suggestions": suggestion_cache.cached(server["weights_sha256"], server["dtype"], req.capability,
                                                           suggestions.METHOD, lambda: engine.suggest(req.capability))}

    @app.post(contract.HOOKS, response_model=None)
    def apply_hooks(req: HooksRequest) -> dict | JSONResponse:
        with lock:
            try:
                edits = engine.validate(req.suggestions, req.apply_mode)
            except PatchRejected as e:
                return JSONResponse(status_code=422, content={
                    "detail": e.detail, "suggestion_index": e.index, "suggestion": json_safe(e.suggestion)})
            if req.apply_mode == WEIGHTS:
                return {"hook_count": len(edits), "applied_tensors": engine.apply_weights(edits), "mode": req.apply_mode}
            return {"hook_count": len(edits), "modules": engine.apply_hooks(edits), "mode": req.apply_mode}

    @app.get(contract.HOOKS, response_model=None)
    def hooks() -> dict:
        with lock:
            return engine.hook_stats()

    @app.delete(contract.HOOKS, response_model=None)
    def delete_hooks() -> dict:
        with lock:
            engine.remove_hooks()
        return {"hook_count": 0}

    @app.post(contract.RESTORE, response_model=None)
    def restore() -> dict:
        with lock:
            return {"restored_params": engine.restore()}

    @app.post(contract.WEIGHTS_DIGEST_PATH, response_model=None)
    def weight_digests(req: DigestRequest) -> dict | JSONResponse:
        """SHA-256 of each named tensor as the engine holds it, one per rank (unknown names: 422 naming them)."""
        with lock:
            try:
                return {"algorithm": "sha256", "digests": engine.digests(req.tensors)}
            except UnknownTensors as e:
                return JSONResponse(status_code=422, content={"detail": str(e), "unknown": e.names})

    def losses(items: list[LossItem], opts: LossOptions) -> list[dict]:
        with lock:
            return engine.losses([(it.prompt, it.answer) for it in items], opts.answer_prefix, opts.use_chat_template)

    @app.post(contract.LOSS, response_model=None)
    def loss(req: LossRequest) -> dict | JSONResponse:
        row = losses([req], req)[0]
        if math.isnan(row["loss"]):
            return JSONResponse(status_code=422, content={"detail": NO_ANSWER_TOKENS})
        return row

    @app.post(contract.LOSS_BATCH_PATH, response_model=None)
    def loss_batch(req: LossBatchRequest) -> dict:
        """One right-padded forward pass; an item without answer tokens fails alone (loss null + error)."""
        rows = losses(req.items, req) if req.items else []
        return {"results": [r | {"loss": None, "error": NO_ANSWER_TOKENS} if math.isnan(r["loss"]) else r
                            for r in rows]}

    return app
