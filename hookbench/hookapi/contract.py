"""The tensor-hook API contract (the hook API document, quirks included) in one place: every module that speaks it
(client, judge, patch validation, the reference server and the test stand-ins) reads it from here.

Nothing outside this module spells an error prefix, an operation name, a target pattern, an
extension name or an endpoint path.
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

# -- endpoints ------------------------------------------------------------------------------------
HEALTH = "/api/health"
CONFIGS = "/api/configs"
GENERATE = "/api/generate"
SUGGESTIONS = "/api/suggestions"
HOOKS = "/api/hooks"
RESTORE = "/api/restore"
LOSS = "/api/loss"
# extension endpoints of hookbench's reference server, used only when listed in /api/health
GENERATE_BATCH_PATH = "/api/generate/batch"
LOSS_BATCH_PATH = "/api/loss/batch"
WEIGHTS_DIGEST_PATH = "/api/weights/digest"

# -- §3: a failed generation comes back as HTTP 200 with its error text as the answer -------------
LOSS_ANSWER_PREFIX = " #### "  # /api/loss's answer_prefix when a request gives none (hook-api.md)
ERROR_TEXT_PREFIXES = ("Generation error:", "Model not loaded")


def is_error_text(text: str) -> bool:
    return text.strip().startswith(ERROR_TEXT_PREFIXES)


# -- apply modes and operations ------------------------------------------------------------------
MODE_WEIGHTS, MODE_HOOKS = "weights", "hooks"  # (HOOKS is the endpoint)
APPLY_MODES = (MODE_WEIGHTS, MODE_HOOKS)
SCALE, ADD, CLAMP_MAX, CLAMP_MIN, NORMALIZE = "scale", "add", "clamp_max", "clamp_min", "normalize"
WEIGHT_OPS = (SCALE, ADD, CLAMP_MAX, CLAMP_MIN)
HOOK_OPS = WEIGHT_OPS + (NORMALIZE,)


def ops_for(mode: str) -> tuple[str, ...]:
    """Operations a server applies in `mode` (weights | hooks)."""
    return HOOK_OPS if mode == MODE_HOOKS else WEIGHT_OPS


# Weights mode patches only attention/MLP projection matrices and norm weights.
PATCHABLE_WEIGHT = re.compile(r"(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$|norm[^.]*\.weight$")

# -- targets: 'all', 'top N%', 'bottom N%' -------------------------------------------------------
_TARGET = re.compile(r"^\s*(?:(all)|(top|bottom)\s+([0-9]*\.?[0-9]+)\s*%)\s*$", re.IGNORECASE)


def parse_target(text: object) -> tuple[str, float]:
    """('all', 100.0) | ('top', N) | ('bottom', N) with N in (0, 100]; ValueError otherwise.

    Client and server accept exactly the same spellings (case and spacing are free)."""
    m = _TARGET.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"bad target {text!r}: use 'all', 'top N%' or 'bottom N%' with N in (0, 100]")
    if m.group(1):
        return ("all", 100.0)
    pct = float(m.group(3))
    if not 0 < pct <= 100:
        raise ValueError(f"bad target {text!r}: N in 'top N%' / 'bottom N%' must be in (0, 100]")
    return (m.group(2).lower(), pct)


def canonical_target(text: object) -> str:
    """The one spelling a patch set is hashed and sent with: 'all', 'top 20%', 'bottom 12.5%'."""
    kind, pct = parse_target(text)
    return "all" if kind == "all" else f"{kind} {pct:g}%"


# -- §4: one suggestion (an edit), checked alike by the client before sending and the server before applying --
class SuggestionError(ValueError):
    """A bad suggestion: `field` is the one at fault (None for the whole object), `message` says why."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message = field, message


class Suggestion(BaseModel):
    """tensor_name, operation (of the apply mode given as validation context), finite value, target.

    Other fields (reason, confidence, ...) are kept. `target` keeps the user's spelling: it is
    only checked here (`canonical_target` gives the one spelling a patch set is hashed with)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    tensor_name: str
    operation: str
    value: float
    target: str = "all"

    @field_validator("tensor_name", mode="before")
    @classmethod
    def _tensor_name(cls, v: object) -> str:
        if not isinstance(v, str) or not v:
            raise ValueError("must be a non-empty string")
        return v

    @field_validator("operation", mode="before")
    @classmethod
    def _operation(cls, v: object, info: ValidationInfo) -> object:
        mode = (info.context or {}).get("mode", MODE_HOOKS)
        if v not in ops_for(mode):
            raise ValueError(f"{v!r} is not one of {', '.join(ops_for(mode))} ({mode} mode)")
        return v

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, v: object) -> float:  # the stock server would apply NaN silently
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{v!r} is not a finite number")
        return float(v)

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, v: str) -> str:
        parse_target(v)
        return v

    @classmethod
    def check(cls, s: object, mode: str) -> Suggestion:
        """`s` validated for `mode`; SuggestionError naming the first bad field (missing ones first)."""
        if not isinstance(s, dict):
            raise SuggestionError(None, f"a suggestion must be an object, got {type(s).__name__}")
        try:
            return cls.model_validate(s, context={"mode": mode})
        except ValidationError as e:
            err = sorted(e.errors(), key=lambda x: x["type"] != "missing")[0]
            field = str(err["loc"][0]) if err["loc"] else None
            if err["type"] == "missing":
                raise SuggestionError(None, f"missing field '{field}'") from None
            raise SuggestionError(field, str(err.get("ctx", {}).get("error", err["msg"]))) from None

    @property
    def edit(self) -> tuple[str, str, float, tuple[str, float]]:
        """(tensor_name, operation, value, parsed target): what a server applies."""
        return self.tensor_name, self.operation, self.value, parse_target(self.target)


# -- extensions a server may list in /api/health `extensions` (the stock server lists none) -------
EXT_GENERATE_BATCH = "generate_batch"  # POST /api/generate/batch {"queries": [...], ...} -> {"results": [...]}
EXT_SEED = "seed"  # "seed": int in a generate body
EXT_SKIP_ORIGINAL = "skip_original"  # "skip_original": true skips the wasted `original` under use_hooks
EXT_CHAT = "chat"  # "chat": bool, the client decides the chat template
EXT_MAX_NEW_TOKENS = "max_new_tokens"  # "max_new_tokens": int overrides the preset's
EXT_LOSS_BATCH = "loss_batch"  # POST /api/loss/batch {"items": [{prompt, answer}], ...} -> {"results": [...]}
# POST /api/weights/digest {"tensors": [names]} -> {"algorithm": "sha256", "digests": {name: [hex per rank]}};
# 422 {"detail", "unknown": [names]} when the model has no such tensor
EXT_WEIGHTS_DIGEST = "weights_digest"

# -- presets (GET /api/configs) ------------------------------------------------------------------
PRESET_FIELDS = ("name", "description", "temperature", "top_p", "top_k", "max_new_tokens",
                 "repetition_penalty", "thinking_budget", "do_sample")
FALLBACK_PRESET = "balanced"  # §5: unknown preset names are served with this one


def is_sampled(preset: dict) -> bool:
    return bool(preset.get("do_sample"))

# The reference server's bearer token: the variable it is read from by default (launched servers get
# a fresh one there, never on the command line).
SERVER_TOKEN_ENV = "HOOKBENCH_SERVER_TOKEN"
