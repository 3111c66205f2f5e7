"""What a tensor-hook server offers, asked without changing it: `hookbench check URL` probes with this.

Only requests that leave a server as it is are sent: GET /api/health, /api/configs and /api/hooks,
generations without hooks and teacher-forced losses. No patch is applied, restored or deleted, so
a server found patched stays patched (and is reported so). The probe loss is asked twice at the start
(is it deterministic?) and once at the end (is the server as found?).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

from hookbench.base.errors import ContractViolation, ServerError, TokenRefused
from hookbench.base.outcomes import FailureKind
from hookbench.hookapi import contract
from hookbench.hookapi.client import Generation, HookClient, LossUnavailable
from hookbench.hookapi.transport import ServerUnreachable

BARE_QUESTION = "What is the capital of France?"  # asked as is: an empty answer means a template or chat is needed
LOSS_DIGITS = 5  # as the job's probes: rounding absorbs float noise across batch shapes


@dataclass
class Probe:
    """What the probing found; `notes` are the findings a user should act on."""

    url: str
    token_sent: bool
    health: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    extensions: list[str] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)  # "GET /api/health" -> "ok" | what went wrong
    loss_before: list[float | None] = field(default_factory=list)  # the probe loss, asked twice
    loss_after: float | None = None
    bare_answer: str | None = None
    chat_answer: str | None = None  # asked again with chat=true, where the server offers the chat extension
    notes: list[str] = field(default_factory=list)

    @property
    def has_loss(self) -> bool:
        return bool(self.loss_before)

    @property
    def deterministic(self) -> bool | None:
        a, b = (self.loss_before + [None, None])[:2]
        return None if a is None or b is None else round(a, LOSS_DIGITS) == round(b, LOSS_DIGITS)

    @property
    def unchanged(self) -> bool | None:
        a = self.loss_before[0] if self.loss_before else None
        return None if a is None or self.loss_after is None else round(a, LOSS_DIGITS) == round(self.loss_after, LOSS_DIGITS)

    @property
    def bare_empty(self) -> bool:
        return not (self.bare_answer or "").strip()


def _get(client: HookClient, path: str) -> dict:
    """GET `path`: TokenRefused on 401/403, ServerUnreachable when nothing answers, ContractViolation
    for any other status or a body that is not a JSON object."""
    url = client.base_url + path
    try:
        r = client.session.get(url, timeout=client.timeout)
    except requests.ConnectionError as e:
        raise ServerUnreachable(f"{url}: nothing answers there ({str(e)[:200]}); is the server running "
                                "and the address right?") from None
    except requests.RequestException as e:
        raise ServerError(f"GET {url} failed: {str(e)[:300]}") from None
    return _body(r, f"GET {url}")


def _body(r: requests.Response, where: str) -> dict:
    if r.status_code in (401, 403):
        raise TokenRefused(f"{where} -> HTTP {r.status_code}: the server refuses this request's token "
                           "(set the variable --token-env names, e.g. --token-env MY_TOKEN)")
    if r.status_code >= 400:
        raise ContractViolation(f"{where} -> HTTP {r.status_code}: {r.text[:300]}")
    try:
        body = r.json()
    except ValueError:
        raise ContractViolation(f"{where} returned non-JSON: {r.text[:200]!r}") from None
    if not isinstance(body, dict):
        raise ContractViolation(f"{where} returned {type(body).__name__}, not a JSON object")
    return body


def control_plane(client: HookClient, probe: Probe) -> None:
    """Health, presets and hooks: the read-only endpoints, each one checked against the contract."""
    probe.health = _get(client, contract.HEALTH)
    if "status" not in probe.health:
        raise ContractViolation(f"GET {client.base_url}{contract.HEALTH}: no 'status' in {str(probe.health)[:200]}")
    probe.endpoints[f"GET {contract.HEALTH}"] = f"ok (status {probe.health['status']!r})"
    probe.extensions = sorted(set(probe.health.get("extensions") or []))
    client._health = probe.health
    probe.presets = _get(client, contract.CONFIGS)
    bad = [name for name, p in probe.presets.items() if not isinstance(p, dict)]
    if not probe.presets or bad:
        raise ContractViolation(f"GET {client.base_url}{contract.CONFIGS}: expected presets by name, got "
                                f"{str(probe.presets)[:200]}")
    probe.endpoints[f"GET {contract.CONFIGS}"] = f"ok ({len(probe.presets)} presets)"
    hooks = _get(client, contract.HOOKS)
    probe.endpoints[f"GET {contract.HOOKS}"] = "ok" if isinstance(hooks, dict) else "unexpected body"
    if probe.health.get("hooks_active"):
        probe.notes.append("a patch is live on this server now (hooks_active): check leaves it; a job restores "
                           "the server before it measures")


def probe_loss(client: HookClient, text: tuple[str, str]) -> float | None:
    """The loss of `text` (prompt, answer) as the job's probes ask it; ContractViolation for a bad answer."""
    try:
        (value,) = client.losses([text])
    except (LossUnavailable, ServerUnreachable):
        raise
    except ServerError as e:
        raise ContractViolation(str(e)) from None
    return value


def loss_plane(client: HookClient, probe: Probe, text: tuple[str, str]) -> None:
    """The probe loss twice: is /api/loss there, and deterministic (§10)?"""
    where = f"POST {contract.LOSS}"
    try:
        probe.loss_before = [probe_loss(client, text), probe_loss(client, text)]
    except LossUnavailable:
        probe.endpoints[where] = "absent: metric=accuracy only (no loss, no probe of the patch's effect)"
        probe.notes.append("no /api/loss: run jobs with metric=accuracy")
        return
    if probe.loss_before[0] is None:
        raise ContractViolation(f"POST {client.base_url}{contract.LOSS} gave no loss for the probe text {text}")
    probe.endpoints[where] = f"ok (probe loss {probe.loss_before[0]:.4f})"
    if not probe.deterministic:
        probe.notes.append(f"the probe loss differs between two asks ({probe.loss_before}): a job's check that "
                           "its patch is live or gone will fail here")


def _text(gen: Generation, where: str) -> str:
    if gen.error == FailureKind.API_ERROR:
        raise ContractViolation(f"{where}: {gen.error_detail}")
    if gen.error in (FailureKind.ERROR_TEXT, FailureKind.TIMEOUT):
        raise ServerError(f"{where}: the server could not answer ({gen.error}: {gen.error_detail})")
    return gen.text or ""


def answer_plane(client: HookClient, probe: Probe, preset: str) -> None:
    """A bare question, as is: an empty answer means the model needs a prompt template or chat."""
    where = f"POST {client.base_url}{contract.GENERATE}"
    (gen,) = client.generate([BARE_QUESTION], preset, False, {})
    if gen.error == FailureKind.API_ERROR and any(f"HTTP {c}" in str(gen.error_detail) for c in (401, 403)):
        raise TokenRefused(f"{where}: {gen.error_detail}")
    probe.bare_answer = _text(gen, where)
    probe.endpoints[f"POST {contract.GENERATE}"] = f"ok ({gen.latency_s:.2f} s)"
    if contract.EXT_CHAT in client.extensions:
        (chat,) = client.generate([BARE_QUESTION], preset, False, {contract.EXT_CHAT: True})
        probe.chat_answer = _text(chat, where)
    if probe.bare_empty:
        probe.notes.append("a bare question comes back empty: the model needs its chat template "
                           "(model.prompt.chat=true) or a prompt template (model.prompt.template)")


def probe_server(url: str, token: str | None, timeout_s: float, preset: str | None,
                 loss_text: tuple[str, str]) -> tuple[Probe, HookClient]:
    """Everything but the timings: endpoints, token, extensions, bare answers, loss determinism."""
    client = HookClient(url, token=token, timeout_s=timeout_s, retries=1, max_connection_failures=1)
    probe = Probe(client.base_url, token is not None)
    control_plane(client, probe)
    loss_plane(client, probe, loss_text)
    answer_plane(client, probe, preset or pick_preset(probe.presets))
    return probe, client


def pick_preset(presets: dict) -> str:
    """The preset a job on this server should use: greedy when offered, else the lowest temperature."""
    if "greedy" in presets:
        return "greedy"
    return min(presets, key=lambda name: float(presets[name].get("temperature") or 0.0))


def finish(client: HookClient, probe: Probe, loss_text: tuple[str, str]) -> None:
    """The probe loss once more and the health's patch flag: is the server as check found it?"""
    if probe.has_loss:
        probe.loss_after = probe_loss(client, loss_text)
    after = _get(client, contract.HEALTH)
    if bool(after.get("hooks_active")) != bool(probe.health.get("hooks_active")):
        raise ServerError(f"{probe.url}: hooks_active changed during check ({probe.health.get('hooks_active')} -> "
                          f"{after.get('hooks_active')}): someone else is using this server")
    if probe.unchanged is False:
        probe.notes.append(f"the probe loss moved during check ({probe.loss_before[0]} -> {probe.loss_after}): "
                           "someone else patched this server meanwhile")
