"""HTTP client for the tensor-hook API (../shared/hook-api.md), quirks included.

Retries with backoff on connection errors and 5xx come from urllib3; everything the contract
says can go wrong inside a 200 (error text as the answer, empty answers) is turned into a
`GenerationFailure` here, so no caller can score it as a wrong answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from hookbench.errors import ServerError

# Contract §3: a failed generation comes back as HTTP 200 with its error text as the answer.
ERROR_TEXT_PREFIXES = ("Generation error:", "Model not loaded")


@dataclass(frozen=True)
class Generation:
    """One answer, or the reason there is none (`error` is a failure kind, never a wrong answer)."""

    text: str | None
    latency_s: float
    error: str | None = None
    error_detail: str | None = None


def classify_answer(text: str | None) -> tuple[str | None, str | None]:
    """(failure kind, detail) for an answer field; (None, None) for a real answer."""
    if text is None:
        return "no_answer", "the server returned no answer for this field"
    stripped = text.strip()
    if not stripped:
        return "empty", "empty answer"
    if stripped.startswith(ERROR_TEXT_PREFIXES):
        return "error_text", stripped[:500]
    return None, None


class HookClient:
    """One hook server. `token` goes in an Authorization header and is never logged."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, timeout_s)
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,  # a read timeout means the server is busy generating: do not pile on
            status=retries,
            backoff_factor=backoff_s,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=None,  # POSTs here are idempotent enough: generate has no side effects
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._health: dict | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, json: dict | None = None) -> requests.Response:
        return self.session.request(method, self.base_url + path, json=json, timeout=self.timeout)

    def _call(self, method: str, path: str, json: dict | None = None) -> dict:
        """A control-plane call: any failure is a ServerError naming the endpoint."""
        try:
            r = self._request(method, path, json)
        except requests.RequestException as e:
            raise ServerError(f"{method} {self.base_url}{path} failed: {e}") from None
        if r.status_code >= 400:
            raise ServerError(f"{method} {self.base_url}{path} -> HTTP {r.status_code}: {r.text[:1000]}")
        try:
            return r.json()
        except ValueError:
            raise ServerError(f"{method} {self.base_url}{path} returned non-JSON: {r.text[:200]!r}") from None

    # -- endpoints ----------------------------------------------------------------------------
    def health(self) -> dict:
        self._health = self._call("GET", "/api/health")
        return self._health

    @property
    def extensions(self) -> set[str]:
        """Extensions the server lists in /api/health; an unknown server lists none."""
        if self._health is None:
            self.health()
        return set(self._health.get("extensions") or [])

    def configs(self) -> dict:
        return self._call("GET", "/api/configs")

    def suggestions(self, capability: str) -> list[dict]:
        return self._call("POST", "/api/suggestions", {"capability": capability}).get("suggestions") or []

    def apply_patch(self, suggestions: list[dict], apply_mode: str) -> dict:
        return self._call("POST", "/api/hooks", {"suggestions": suggestions, "apply_mode": apply_mode})

    def hooks(self) -> dict:
        return self._call("GET", "/api/hooks")

    def delete_hooks(self) -> dict:
        return self._call("DELETE", "/api/hooks")

    def restore(self) -> dict:
        return self._call("POST", "/api/restore", {})

    def clean(self) -> None:
        """Contract §1: only restore + delete gives a baseline; DELETE alone leaks weight edits."""
        self.restore()
        self.delete_hooks()

    # -- generation ---------------------------------------------------------------------------
    def generate(self, queries: list[str], preset: str, use_hooks: bool, extras: dict) -> list[Generation]:
        """Answers for `queries`, in order: one batch request when the server offers it, else one each.

        `extras` holds extension fields (seed, skip_original, chat, max_new_tokens); the caller only
        puts in what the server lists. The answer field is `modified` under use_hooks, else `original`.
        """
        field = "modified" if use_hooks else "original"
        body = {"config": preset, "use_hooks": use_hooks, **extras}
        if "generate_batch" in self.extensions and len(queries) > 1:
            t0 = time.perf_counter()
            out = self._post_generation("/api/generate/batch", {"queries": queries, **body})
            dt = time.perf_counter() - t0
            if isinstance(out, Generation):  # the whole batch failed: every item carries the failure
                return [Generation(None, dt / len(queries), out.error, out.error_detail) for _ in queries]
            results = out.get("results")
            if not isinstance(results, list) or len(results) != len(queries):
                return [Generation(None, dt / len(queries), "api_error", f"bad batch response: {str(out)[:300]}")
                        for _ in queries]
            # one batch costs dt for all: per-item latency is the amortised share
            return [self._answer(res.get(field), dt / len(queries)) for res in results]
        gens = []
        for q in queries:
            t0 = time.perf_counter()
            out = self._post_generation("/api/generate", {"query": q, **body})
            dt = time.perf_counter() - t0
            gens.append(out if isinstance(out, Generation) else self._answer(out.get(field), dt))
        return gens

    def _post_generation(self, path: str, body: dict) -> dict | Generation:
        t0 = time.perf_counter()
        try:
            r = self._request("POST", path, body)
        except requests.Timeout as e:
            return Generation(None, time.perf_counter() - t0, "timeout", str(e)[:500])
        except requests.RequestException as e:
            return Generation(None, time.perf_counter() - t0, "api_error", str(e)[:500])
        if r.status_code >= 400:
            return Generation(None, time.perf_counter() - t0, "api_error", f"HTTP {r.status_code}: {r.text[:500]}")
        try:
            return r.json()
        except ValueError:
            return Generation(None, time.perf_counter() - t0, "api_error", f"non-JSON answer: {r.text[:200]!r}")

    @staticmethod
    def _answer(text: str | None, latency_s: float) -> Generation:
        kind, detail = classify_answer(text)
        return Generation(None if kind else text, latency_s, kind, detail)
