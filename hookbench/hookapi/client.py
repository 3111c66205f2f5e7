"""HTTP client for the tensor-hook API, quirks included.

Retries with backoff on connection errors and 5xx come from urllib3, except for POST /api/hooks:
a patch is not idempotent (§1: applied twice it compounds), so it is sent once and a doubtful
answer raises `PatchApplyUncertain`. Everything the contract says can go wrong inside a 200 (error
text as the answer, empty answers) is turned into a failed `Generation` here, so no caller can
score it as a wrong answer. A server that stops answering at all raises `ServerUnreachable` after
a few consecutive connection failures instead of failing every remaining request one by one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from urllib3.exceptions import ConnectTimeoutError

from hookbench.base.errors import ServerError
from hookbench.base.outcomes import FailureKind
from hookbench.hookapi import contract
from hookbench.hookapi.contract import ERROR_TEXT_PREFIXES, is_error_text  # noqa: F401  (re-exported)
from hookbench.hookapi.transport import HookTransport, ServerUnreachable  # noqa: F401  (ServerUnreachable re-exported)

log = logging.getLogger(__name__)


class PatchApplyUncertain(ServerError):
    """POST /api/hooks got no clear answer: the server may or may not have applied the patch."""


class TensorsUnknownToServer(ServerError):
    """POST /api/weights/digest refused names the model does not have (422): `names` are those."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


class LossUnavailable(ServerError):
    """The server has no /api/loss (404/405): the caller falls back to what needs no loss."""


@dataclass(frozen=True)
class Generation:
    """One answer, or the reason there is none (`error` is a failure kind, never a wrong answer)."""

    text: str | None
    latency_s: float
    error: str | None = None
    error_detail: str | None = None


def classify_answer(text: str | None) -> tuple[FailureKind | None, str | None]:
    """(failure kind, detail) for an answer field; (None, None) for a real answer."""
    if text is None:
        return FailureKind.NO_ANSWER, "the server returned no answer for this field"
    if not text.strip():
        return FailureKind.EMPTY, "empty answer"
    if is_error_text(text):
        return FailureKind.ERROR_TEXT, text.strip()[:500]
    return None, None


class HookClient(HookTransport):
    """One hook server: the endpoints of the contract, its quirks turned into typed results."""

    # -- endpoints ----------------------------------------------------------------------------
    def health(self) -> dict:
        self._health = self._call("GET", contract.HEALTH)
        return self._health

    @property
    def extensions(self) -> set[str]:
        """Extensions the server lists in /api/health; an unknown server lists none."""
        if self._health is None:
            self.health()
        return set(self._health.get("extensions") or [])

    def configs(self) -> dict:
        return self._call("GET", contract.CONFIGS)

    def suggestions(self, capability: str) -> list[dict]:
        return self._call("POST", contract.SUGGESTIONS, {"capability": capability}).get("suggestions") or []

    def apply_patch(self, suggestions: list[dict], apply_mode: str) -> dict:
        """POST /api/hooks exactly once (§1: a repeat compounds the patch).

        A 4xx is a refusal (ServerError: nothing applied). Refused connection: ServerUnreachable
        (nothing sent). Anything else doubtful (5xx, reset, timeout, garbage) is PatchApplyUncertain:
        the caller must restore before doing anything else."""
        where = f"POST {self.base_url}{contract.HOOKS}"
        body = {"suggestions": suggestions, "apply_mode": apply_mode}
        try:
            r = self._request("POST", contract.HOOKS, body, retry=False)
        except requests.ConnectionError as e:
            if _never_connected(e):
                raise ServerUnreachable(f"{where}: could not connect, the patch was not sent: {e}") from None
            raise self._uncertain(where, f"connection lost: {e}") from None
        except requests.RequestException as e:
            raise self._uncertain(where, f"{type(e).__name__}: {e}") from None
        if 400 <= r.status_code < 500:
            raise ServerError(f"{where} -> HTTP {r.status_code}: {r.text[:1000]}")
        if r.status_code >= 500:
            raise self._uncertain(where, f"HTTP {r.status_code}: {r.text[:500]}")
        try:
            return r.json()
        except ValueError:
            raise self._uncertain(where, f"non-JSON answer: {r.text[:200]!r}") from None

    @staticmethod
    def _uncertain(where: str, why: str) -> PatchApplyUncertain:
        return PatchApplyUncertain(f"{where} failed ({why}); the server may or may not have applied the patch "
                                   f"(not retried: a repeat would compound it). Restore the server before reuse.")

    def hooks(self) -> dict:
        return self._call("GET", contract.HOOKS)

    def weight_digests(self, names: list[str]) -> dict[str, list[str]]:
        """{name: [SHA-256 per rank]} of tensors as the server holds them (the weights_digest extension).
        TensorsUnknownToServer for names the model lacks; ServerError for any other failure."""
        path = contract.WEIGHTS_DIGEST_PATH
        try:
            r = self._request("POST", path, {"tensors": names})
        except requests.RequestException as e:
            raise ServerError(f"POST {self.base_url}{path} failed: {e}") from None
        if r.status_code == 422:
            unknown = (r.json() if r.headers.get("content-type", "").startswith("application/json") else {}).get("unknown")
            raise TensorsUnknownToServer(f"POST {self.base_url}{path} -> HTTP 422: {r.text[:1000]}", list(unknown or []))
        digests = self._json("POST", path, r).get("digests")
        if not isinstance(digests, dict) or set(digests) != set(names):
            raise ServerError(f"POST {self.base_url}{path}: expected digests of {names}, got {str(digests)[:300]}")
        return digests

    def delete_hooks(self) -> dict:
        return self._call("DELETE", contract.HOOKS)

    def restore(self) -> dict:
        return self._call("POST", contract.RESTORE, {})

    def clean(self) -> None:
        """Contract §1: only restore + delete gives a baseline; DELETE alone leaks weight edits."""
        self.restore()
        self.delete_hooks()

    # -- generation ---------------------------------------------------------------------------
    def generate(self, queries: list[str], preset: str, use_hooks: bool, extras: dict,
                 on_answer: Callable[[int, Generation], None] | None = None) -> list[Generation]:
        """Answers for `queries`, in order: one batch request when the server offers it, else one each.

        `on_answer(i, generation)` is called as each answer arrives (one request each: after each
        request), so a caller can keep every finished answer even if a later request is interrupted.

        `extras` holds extension fields (seed, skip_original, chat, max_new_tokens); the caller only
        puts in what the server lists. The answer field is `modified` under use_hooks, else `original`.
        Raises ServerUnreachable once `max_connection_failures` requests in a row found no server.
        """
        field = "modified" if use_hooks else "original"
        body = {"config": preset, "use_hooks": use_hooks, **extras}
        if contract.EXT_GENERATE_BATCH in self.extensions and len(queries) > 1:
            t0 = time.perf_counter()
            out = self._post_generation(contract.GENERATE_BATCH_PATH, {"queries": queries, **body})
            dt = time.perf_counter() - t0
            if isinstance(out, Generation):  # the whole batch failed: every item carries the failure
                return [Generation(None, dt / len(queries), out.error, out.error_detail) for _ in queries]
            results = out.get("results")
            if not isinstance(results, list) or len(results) != len(queries):
                return [Generation(None, dt / len(queries), FailureKind.API_ERROR, f"bad batch response: {str(out)[:300]}")
                        for _ in queries]
            # one batch costs dt for all: per-item latency is the amortised share
            return _announced([self._answer(res.get(field), dt / len(queries)) for res in results], on_answer)
        gens: list[Generation] = []
        for q in queries:
            t0 = time.perf_counter()
            out = self._post_generation(contract.GENERATE, {"query": q, **body})
            dt = time.perf_counter() - t0
            gens.append(out if isinstance(out, Generation) else self._answer(out.get(field), dt))
            _announced(gens[-1:], on_answer, start=len(gens) - 1)
        return gens

    def _post_generation(self, path: str, body: dict) -> dict | Generation:
        t0 = time.perf_counter()
        try:
            r = self._request("POST", path, body)
        except requests.Timeout as e:
            if isinstance(e, requests.ConnectionError):  # connect timeout: no server there
                self._give_up_if_dead("generate", e)
            return Generation(None, time.perf_counter() - t0, FailureKind.TIMEOUT, str(e)[:500])
        except requests.RequestException as e:
            if isinstance(e, requests.ConnectionError):
                self._give_up_if_dead("generate", e)
            return Generation(None, time.perf_counter() - t0, FailureKind.API_ERROR, str(e)[:500])
        if r.status_code >= 400:
            return Generation(None, time.perf_counter() - t0, FailureKind.API_ERROR, f"HTTP {r.status_code}: {r.text[:500]}")
        try:
            return r.json()
        except ValueError:
            return Generation(None, time.perf_counter() - t0, FailureKind.API_ERROR, f"non-JSON answer: {r.text[:200]!r}")

    @staticmethod
    def _answer(text: str | None, latency_s: float) -> Generation:
        kind, detail = classify_answer(text)
        return Generation(None if kind else text, latency_s, kind, detail)

    # -- teacher-forced loss ----------------------------------------------------------------------
    def losses(self, items: list[tuple[str, str]], answer_prefix: str = contract.LOSS_ANSWER_PREFIX, chat: bool = False,
               batch_size: int = 32) -> list[float | None]:
        """Mean NLL of each answer given its prompt (§10: deterministic, moves when a patch is live).

        One POST /api/loss per item on a stock server; POST /api/loss/batch (`batch_size` items a
        request) where the server lists the loss_batch extension. None for an item the server
        cannot score (422, e.g. an answer with no tokens; a non-finite loss; a failed request, logged).
        Raises LossUnavailable when the server has no loss endpoint, ServerUnreachable when it is gone.
        """
        opts = {"answer_prefix": answer_prefix, "use_chat_template": chat}
        if contract.EXT_LOSS_BATCH in self.extensions:
            out: list[float | None] = []
            for i in range(0, len(items), max(1, batch_size)):
                out += self._loss_batch(items[i:i + max(1, batch_size)], opts)
            return out
        return [self._loss_one(prompt, answer, opts) for prompt, answer in items]

    def _loss_post(self, path: str, body: dict) -> requests.Response:
        self.loss_requests += 1
        try:
            r = self._request("POST", path, body)
        except requests.RequestException as e:
            if isinstance(e, requests.ConnectionError):
                self._give_up_if_dead("loss", e)
            raise
        if r.status_code in (404, 405):
            raise LossUnavailable(f"POST {self.base_url}{path} -> HTTP {r.status_code}: this server has no "
                                  f"teacher-forced loss endpoint")
        return r

    def _loss_one(self, prompt: str, answer: str, opts: dict) -> float | None:
        try:
            r = self._loss_post(contract.LOSS, {"prompt": prompt, "answer": answer, **opts})
        except requests.RequestException as e:
            log.warning("POST %s%s failed: %s", self.base_url, contract.LOSS, str(e)[:300])
            return None
        if r.status_code != 200:
            if r.status_code != 422:
                log.warning("POST %s%s -> HTTP %d: %s", self.base_url, contract.LOSS, r.status_code, r.text[:300])
            return None
        try:
            return _finite(r.json().get("loss"))
        except ValueError:
            log.warning("POST %s%s returned non-JSON: %r", self.base_url, contract.LOSS, r.text[:200])
            return None

    def _loss_batch(self, items: list[tuple[str, str]], opts: dict) -> list[float | None]:
        path = contract.LOSS_BATCH_PATH
        body = {"items": [{"prompt": p, "answer": a} for p, a in items], **opts}
        try:
            r = self._loss_post(path, body)
        except requests.RequestException as e:
            raise ServerError(f"POST {self.base_url}{path} failed: {e}") from None
        results = self._json("POST", path, r).get("results")
        if not isinstance(results, list) or len(results) != len(items):
            raise ServerError(f"POST {self.base_url}{path}: expected {len(items)} results, got {str(results)[:300]}")
        return [_finite(res.get("loss")) if isinstance(res, dict) else None for res in results]


def _finite(value) -> float | None:
    """A loss as float; None for a missing one or NaN (inf stays: a patch can blow the loss up)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _never_connected(err: requests.ConnectionError) -> bool:
    """True when the request provably never reached the server (refused / connect timeout).

    urllib3's NewConnectionError (refused) is a ConnectTimeoutError."""
    reason = getattr(err.args[0], "reason", err.args[0]) if err.args else None
    return isinstance(err, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)


def _announced(gens: list[Generation], on_answer, start: int = 0) -> list[Generation]:
    if on_answer is not None:
        for i, g in enumerate(gens, start):
            on_answer(i, g)
    return gens
