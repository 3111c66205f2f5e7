"""One job: one model x one patch set over one dataset — baseline, patch, patched, restore, score.

The server is put into a known-clean state before the baseline and always restored afterwards
(errors, Ctrl-C and SIGTERM included), because weight edits outlive DELETE /api/hooks (hook-api.md
§1). Between the two the job holds the server's lease, so parallel jobs never share its patch state.

Cost on the stock server: with a patch live, its `original` answer is already made with the patch
(§2), so the patched arm asks `use_hooks: false` and reads `original`: one generation per answer.
That is trusted only after proof that the patch is live: teacher-forced /api/loss on fixed probe
texts must differ from the clean state. The clean probe losses double as a fingerprint of the
weights, part of the server's identity, so answers are never reused across swapped weights.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager

from hookbench.base.background import Background
from hookbench.base.errors import ConfigError, NothingMeasured, ReproductionMismatch, ServerError
from hookbench.base.outcomes import FailureKind, Screen
from hookbench.base.signals import checkpoint
from hookbench.evaluation.arm_generation import Arm, Generator, Served
from hookbench.evaluation.guards import summarize_guard
from hookbench.evaluation.job_output import JobOutput
from hookbench.evaluation.patches import PatchSet
from hookbench.evaluation.prompting import prompted_items, summarize_prompt
from hookbench.evaluation.record import (
    DatasetRecord,
    GenerationRecord,
    ModelRecord,
    PatchRecord,
    RequestCounts,
    RunRecord,
    ScreenResult,
    ServerRecord,
    StatsRecord,
)
from hookbench.evaluation.results import ItemResult, summarize
from hookbench.evaluation.reuse import GenerationStore
from hookbench.evaluation.scope import PROBES, ServerScope
from hookbench.evaluation.settings import Parts
from hookbench.hookapi import contract
from hookbench.hookapi.client import LossUnavailable

log = logging.getLogger(__name__)

__all__ = ["PROBES", "EvaluationLoop", "server_identity"]


def server_identity(health: dict, model, url: str, probes: list[float] | None) -> dict:
    """What makes two servers give the same text. A reference server reports its own (weights hash,
    prompting defaults, dtype, device); for another server the URL, hf_id and revision stand in,
    and the clean probe losses fingerprint the weights behind the URL."""
    identity = dict(health["server"]) if isinstance(health.get("server"), dict) else {
        "url": url, "hf_id": model.hf_id, "revision": model.revision}
    if probes is not None:
        identity["weights_probe"] = probes
    return identity


def nothing_scoreable(items: list[ItemResult], arm: str) -> None:
    """Raise when every answer of `arm` failed, naming the failure kinds (the job then measures nothing)."""
    kinds: dict[str, int] = {}
    for r in items:
        a = r.arm(arm)
        if a.error is None and a.output is not None:
            return
        kinds[a.error or "missing"] = kinds.get(a.error or "missing", 0) + 1
    if kinds:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        hint = (f"; all {kinds[FailureKind.EMPTY]} {arm} answers were empty: the server may need a prompt "
                "template, see model.prompt.template (and model.prompt.chat)") if set(kinds) == {FailureKind.EMPTY} else ""
        raise NothingMeasured(f"no {arm} answer can be scored ({detail}): nothing to compare a patch with, "
                              f"so the patched arm was not generated{hint}")


def generation_extras(g, client) -> dict:
    """The request fields beyond the contract (seed, max_new_tokens, chat) the config asks for; an
    extension the server does not offer is a config error, except chat (the server then decides)."""
    offered, extras = client.extensions, {}
    for ext in (contract.EXT_SEED, contract.EXT_MAX_NEW_TOKENS):  # the extension's name is its field's
        value = getattr(g, ext)
        if value is not None:
            if ext not in offered:
                raise ConfigError(f"model.generation.{ext}={value} needs a server offering the '{ext}' "
                                  f"extension; {client.base_url} offers {sorted(offered) or 'none'}")
            extras[ext] = value
    if g.chat is not None:
        if contract.EXT_CHAT in offered:
            extras[contract.EXT_CHAT] = bool(g.chat)
        else:
            log.warning("model.prompt.chat is set but %s decides prompting itself (no 'chat' extension)",
                        client.base_url)
    return extras


def unanswered_items(dataset, g) -> list[ItemResult]:
    """One item result per item and draw, not yet answered, with the exact query the server is sent."""
    return [ItemResult(it.id, it.task, it.prompt, g.query(it.prompt), it.gold, draw=d)
            for it in dataset.items for d in range(g.samples)]


class EvaluationLoop:
    """One job: checks the server, then runs the arms inside a `ServerScope` and scores them."""

    def __init__(self, parts: Parts, run_id: str | Callable[[], str], store: GenerationStore | None = None,
                 expected_identity: dict | None = None, holder: dict | None = None,
                 on_takeover: Callable[[dict, str | None], None] | None = None):
        # run_id may be a callable: the run is then made once the server is set up (its store is
        # created meanwhile, see hookbench.job), before any generation
        self.parts, self._open_run = parts, run_id if callable(run_id) else (lambda: run_id)
        self.run_id = None if callable(run_id) else run_id
        self.client, self.settings = parts.client, parts.settings
        self.expected_identity = expected_identity  # reproduce: the server must be the logged one
        self.phase_s: dict[str, float] = dict(parts.phase_s)
        self.loss_requests_before = parts.client.loss_requests  # the client counts what it sends
        self.scope = ServerScope(parts.client, parts.settings.model.apply_mode,
                                 {**({"run_id": run_id} if self.run_id else {}), **(holder or {})}, on_takeover)
        self.generator = Generator(parts.client, store, self.run_id)
        self.side = Generator(parts.client, store, self.run_id)  # guards and the prompting arm: their own latency
        self.prompts: list[ItemResult] = []  # the prompting arm's items (compare.prompt)
        self.health: dict = {}
        self.preset: dict = {}
        self.extras: dict = {}
        self.patch: PatchSet | None = None
        self.identity: dict = {}

    @contextmanager
    def phase(self, name: str):
        checkpoint()  # a signal swallowed in the last phase stops the job before this one
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phase_s[name] = self.phase_s.get(name, 0.0) + time.perf_counter() - t0

    # -- set-up: everything that can fail on user input fails here, before any generation -----
    def _check_server(self) -> None:
        url, g = self.client.base_url, self.settings.generation
        self.health = self.client.health()
        if self.health.get("status") != "online":
            raise ServerError(f"{url}/api/health says status {self.health.get('status')!r}, not 'online'")
        presets = self.client.configs()
        if g.preset not in presets:  # §5: an unknown preset would silently be served as `balanced`
            raise ConfigError(f"model.generation.preset={g.preset!r} is not a preset of {url} "
                              f"(it has: {', '.join(sorted(presets))})")
        self.preset = presets[g.preset]
        if g.samples > 1 and not contract.is_sampled(self.preset):
            raise ConfigError(f"generation.samples={g.samples} with the greedy preset {g.preset!r}: every draw "
                              "would be the same answer; use a sampled preset or generation.samples=1")
        self.extras = generation_extras(self.settings.generation, self.client)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> JobOutput:
        s = self.settings
        self._check_server()
        items = unanswered_items(self.parts.dataset, s.generation)
        for g in self.parts.guards:
            g.items = unanswered_items(g.dataset, s.generation)
        if s.compare_prompt is not None:
            self.prompts = prompted_items(items, s.compare_prompt, s.generation.query)
            for g in self.parts.guards:  # the prompting arm on the guards too: does asking differently hurt them?
                g.prompts = prompted_items(g.items, s.compare_prompt, s.generation.query)
        with self.scope:  # the server's patch state is ours until restored, whatever happens
            self.phase_s["server_wait"] = self.scope.waited
            screen = self._measure(items)
            if screen is None or screen.passed:
                with self.phase("restore"):
                    self.scope.restore()
                with self.phase("scoring"):  # still ours: a judge on this server sees no patch live
                    self._score(items)
        return self._output(items, screen)

    def _measure(self, items: list[ItemResult]) -> ScreenResult | None:
        """Clean, fingerprint, baseline loss, the screen; then both arms unless the screen rejects."""
        s = self.settings
        with self.phase("patch"):  # suggestions take the stock server seconds (§7) but no model time
            source, twin = self.parts.patch_source, self.client.twin()
            patch = Background(lambda: source.resolve(twin, s.model.name, s.model.apply_mode), "hookbench-patch")
            self.scope.begin()
        self.identity = server_identity(self.health, s.model, self.client.base_url, self.scope.probes["clean"])
        self._check_identity()
        if s.measures_loss or s.screen_size:
            with self.phase("loss"):
                self._losses(items, "baseline")
        with self.phase("patch"):
            self.patch = patch.result()  # a bad patch still fails before any generation
        self._run_opened()
        screen = self._screen(items) if s.screen_size else None
        if screen is None or screen.passed:
            self._arms(items, screen)
        return screen

    def _run_opened(self) -> None:
        """The job's run exists from here on: the generation store and the lease record name it."""
        self.run_id = self.generator.run_id = self.side.run_id = self._open_run()
        self.scope.note(run_id=self.run_id)

    def _arms(self, items: list[ItemResult], screen: ScreenResult | None) -> None:
        s = self.settings
        if s.generates:
            with self.phase("baseline"):
                self._generate(items, Arm("baseline", False, {"arm": "baseline"}))
            nothing_scoreable(items, "baseline")  # before the patched arm costs a whole generation pass
            self._guards(Arm("baseline", False, {"arm": "baseline"}))  # reused like the target's baseline
            if self.prompts:  # the clean server with the prompt change: shared by every job of a sweep
                prompt_arm = Arm("patched", False, {"arm": "prompt", "prompt": s.compare_prompt})
                with self.phase("prompt"):
                    for prompted in (self.prompts, *(g.prompts for g in self.parts.guards)):
                        self._generate(prompted, prompt_arm, self.side)
        with self.phase("patch"):
            self.scope.apply(self.patch)
        if s.measures_loss and not screen:
            with self.phase("loss"):
                self._losses(items, "patched")
        if s.generates:
            with self.phase("patched"):
                self._generate(items, self._patched_arm())
            self._guards(self._patched_arm())

    def _output(self, items: list[ItemResult], screen: ScreenResult | None) -> JobOutput:
        s = self.settings
        summary = summarize(items, s.generation.samples, s.alpha, self.generator.request_latency,
                            self.parts.dataset.skipped, target_effect=s.target_effect)
        passed = screen is None or screen.passed
        guards = [summarize_guard(g, s.generation.samples, s.alpha, s.target_effect)
                  for g in self.parts.guards] if passed and s.generates else []
        prompt = summarize_prompt(items, self.prompts, s.compare_prompt, s.generation.samples, s.alpha,
                                  s.target_effect) if passed and self.prompts and s.compare_prompt else None
        return JobOutput(items, summary, self.patch, run_record(self, screen), self.parts.dataset, s, self.phase_s, screen,
                         guards, [g.items for g in self.parts.guards] if guards else [], prompt,
                         self.prompts + [q for g in self.parts.guards for q in g.prompts] if prompt else [])

    def _check_identity(self) -> None:
        if self.expected_identity is not None and self.identity != self.expected_identity:
            raise ReproductionMismatch(f"the server at {self.client.base_url} is not the one the run was logged with:\n"
                                       f"  logged: {json.dumps(self.expected_identity, sort_keys=True)}\n"
                                       f"  now:    {json.dumps(self.identity, sort_keys=True)}")

    # -- loss -------------------------------------------------------------------------------
    def _losses(self, items: list[ItemResult], arm: str, first: int | None = None) -> None:
        """Teacher-forced loss of each item's gold answer in this arm (draw 0 only; the loss has no draws)."""
        rows = [r for r in items if r.draw == 0][:first]
        rows = [r for r in rows if r.arm(arm).loss is None]
        if not rows:
            return
        try:
            answer = self.settings.loss_answer
            losses = self.client.losses([(r.query, answer.replace("{gold}", r.gold)) for r in rows],
                                        answer_prefix=self.settings.loss_prefix,
                                        chat=self.settings.loss_chat)
        except LossUnavailable as e:
            if self.settings.metric == "loss" or self.settings.screen_size:
                raise ConfigError(f"metric={self.settings.metric} / screen.size need POST /api/loss: {e}") from None
            log.warning("no loss metric: %s", e)
            return
        for r, loss in zip(rows, losses):
            r.arm(arm).loss = loss
        if (self.settings.metric == "loss" or self.settings.screen_size) and all(x is None for x in losses):
            raise NothingMeasured(f"every /api/loss request of the {arm} arm failed ({len(rows)} items): "
                                  f"nothing was measured; check {self.client.base_url}'s log")

    def _screen(self, items: list[ItemResult]) -> ScreenResult:
        """The loss delta on the first N items decides whether the patch earns generations."""
        s = self.settings
        with self.phase("screen"):
            self.scope.apply(self.patch)
            self._losses(items, "patched", first=None if s.measures_loss else s.screen_size)
            head = [r for r in items if r.draw == 0][: s.screen_size]
            pairs = [(r.baseline.loss, r.patched.loss) for r in head if None not in (r.baseline.loss, r.patched.loss)]
            delta = sum(p - b for b, p in pairs) / len(pairs) if pairs else float("nan")
            passed = bool(pairs) and delta <= s.screen_threshold
            log.info("loss screen on %d items: delta %+.4f vs threshold %+.4f: %s", len(pairs), delta,
                     s.screen_threshold, Screen.PASSED if passed else Screen.REJECTED)
            self.scope.restore()
        return ScreenResult(len(pairs), s.screen_threshold, delta, passed)

    # -- generation -------------------------------------------------------------------------
    def _patched_arm(self) -> Arm:
        if not self.patch.suggestions:  # A/A: a fresh second baseline, never the first one
            return Arm("patched", False, {"arm": "baseline", "replicate": 1})
        return Arm("patched", self.scope.probes.get("patched") is None,
                   {"arm": "patched", "patch": self.patch.hash, "apply_mode": self.settings.model.apply_mode})

    def _guards(self, arm: Arm) -> None:
        with self.phase("guards"):  # the same server and state as the target's arm
            for g in self.parts.guards:
                self._generate(g.items, arm, self.side)

    def _generate(self, items: list[ItemResult], arm: Arm, generator: Generator | None = None) -> None:
        g = self.settings.generation
        served = Served(self.identity, g.preset, self.preset, self.extras)
        (generator or self.generator).run(items, arm, served, g.samples, g.batch_size)

    def _score(self, items: list[ItemResult]) -> None:
        _score_with(self.parts.scorer, items + self.prompts)
        for g in self.parts.guards:
            _score_with(g.scorer, g.items + g.prompts)


def _score_with(scorer, items: list[ItemResult]) -> None:
    todo = [(r, r.arm(name)) for r in items for name in ("baseline", "patched")
            if r.arm(name).error is None and r.arm(name).output is not None]  # failures are never scored
    scores = scorer.score_many([(a.output, r.gold, r.prompt) for r, a in todo])
    for (_r, a), s in zip(todo, scores):
        a.correct, a.extracted, a.score_kind = s.correct, s.extracted, s.kind
        if s.error:
            a.error, a.error_detail, a.correct = s.error, s.detail, None


def run_record(ev: EvaluationLoop, screen: ScreenResult | None) -> RunRecord:
    """Everything a reported number depends on: model, server, generation, patch, dataset, scorer, counts."""
    s, ds, p = ev.settings, ev.parts.dataset, ev.patch
    probes = ev.scope.probes
    delta = None
    if probes.get("clean") and probes.get("patched"):
        delta = [None if None in (a, b) else b - a for a, b in zip(probes["clean"], probes["patched"])]
    applied = ev.scope.applied
    return RunRecord(
        model=ModelRecord(s.model.name, s.model.hf_id, s.model.revision),
        server=ServerRecord(ev.client.base_url, ev.identity, ev.health.get("device"), sorted(ev.client.extensions)),
        generation=GenerationRecord(s.generation.preset, ev.preset, ev.extras, s.generation.batch_size,
                                    s.generation.samples, s.generation.template, s.model.apply_mode,
                                    ev.scope.patched_path, s.metric),
        patch=PatchRecord(p.name, p.hash, p.source, len(p.suggestions), p.metadata.get("strength", 1.0),
                          applied.get("hook_count"), applied.get("skipped"), applied.get("response"),
                          applied.get("hooks"), probes.get("clean"), probes.get("patched"), delta,
                          ev.scope.digests or None),
        dataset=DatasetRecord(ds.name, ds.source, ds.fingerprint, len(ds.items), ds.skipped, ds.split, ds.holdout),
        scorer=ev.parts.scorer.context(),
        requests=RequestCounts(ev.generator.generations + ev.side.generations, ev.client.loss_requests - ev.loss_requests_before),
        stats=StatsRecord(s.alpha), screen=screen,
    )
