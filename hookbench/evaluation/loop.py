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
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hookbench.errors import ConfigError, PatchError, ReproductionMismatch, ServerError
from hookbench.evaluation.outcome import JobOutput
from hookbench.evaluation.patches import PatchSet
from hookbench.evaluation.record import RunRecord
from hookbench.evaluation.results import ItemResult, summarize
from hookbench.evaluation.reuse import GenerationStore, generation_key
from hookbench.evaluation.settings import Parts
from hookbench.hookapi import contract
from hookbench.hookapi.client import Generation, LossUnavailable
from hookbench.hookapi.lease import server_lease

log = logging.getLogger(__name__)

# Fixed probe texts: their teacher-forced losses show whether a patch is live, and fingerprint the weights.
PROBES = [("The capital of France is", " Paris, a city on the Seine."),
          ("Question: What is 12 + 7?\nAnswer:", " 19"),
          ("def add(a, b):\n    return", " a + b")]
PROBE_DIGITS = 5  # /api/loss is deterministic (§10); rounding absorbs float noise across batch shapes


def server_identity(health: dict, model, url: str, probes: list[float] | None) -> dict:
    """What makes two servers give the same text. A reference server reports its own (weights hash,
    prompting defaults, dtype, device); for another server the URL, hf_id and revision stand in,
    and the clean probe losses fingerprint the weights behind the URL."""
    identity = dict(health["server"]) if isinstance(health.get("server"), dict) else {
        "url": url, "hf_id": model.hf_id, "revision": model.revision}
    if probes is not None:
        identity["weights_probe"] = probes
    return identity


class Evaluation:
    def __init__(self, parts: Parts, run_id: str, store: GenerationStore | None = None,
                 expected_identity: dict | None = None):
        self.parts, self.run_id, self.store = parts, run_id, store
        self.client, self.settings = parts.client, parts.settings
        self.expected_identity = expected_identity  # reproduce: the server must be the logged one
        self.phase_s: dict[str, float] = dict(parts.phase_s)
        self.generations = 0  # generations this job asked of the server (reused ones are not)
        self.loss_requests_before = parts.client.loss_requests  # the client counts what it sends
        self.request_latency: dict[str, list[float]] = {"baseline": [], "patched": []}
        self.probes: dict[str, list[float] | None] = {}
        self.patched_path = "not generated"
        self.applied: dict = {}

    @contextmanager
    def phase(self, name: str):
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
        self.extras = self._extras(self.client.extensions)

    def _extras(self, offered: set[str]) -> dict:
        g, extras = self.settings.generation, {}
        for ext in (contract.EXT_SEED, contract.EXT_MAX_NEW_TOKENS):  # the extension's name is its field's
            value = getattr(g, ext)
            if value is not None:
                if ext not in offered:
                    raise ConfigError(f"model.generation.{ext}={value} needs a server offering the '{ext}' "
                                      f"extension; {self.client.base_url} offers {sorted(offered) or 'none'}")
                extras[ext] = value
        if g.chat is not None:
            if contract.EXT_CHAT in offered:
                extras[contract.EXT_CHAT] = bool(g.chat)
            else:
                log.warning("model.prompt.chat is set but %s decides prompting itself (no 'chat' extension)",
                            self.client.base_url)
        return extras

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> JobOutput:
        s, items = self.settings, self.parts.dataset.items
        self._check_server()
        records = [ItemResult(it.id, it.task, it.prompt, s.generation.query(it.prompt), it.gold, draw=d)
                   for it in items for d in range(s.generation.samples)]
        screen = None
        with server_lease(self.client.base_url) as waited:  # the server's patch state is ours until restored
            self.phase_s["server_wait"] = waited
            try:
                with self.phase("patch"):
                    self.patch: PatchSet = self.parts.patch_source.resolve(self.client, s.model.name, s.model.apply_mode)
                    self._clean()
                    self.probes["clean"] = self._probe()
                self.identity = server_identity(self.health, s.model, self.client.base_url, self.probes["clean"])
                self._check_identity()
                if s.measures_loss or s.screen_size:
                    with self.phase("loss"):
                        self._losses(records, "baseline")
                if s.screen_size:
                    screen = self._screen(records)
                    if not screen["passed"]:
                        return self._output(records, screen)
                if s.generates:
                    with self.phase("baseline"):
                        self._generate(records, "baseline", use_hooks=False, arm_key={"arm": "baseline"})
                with self.phase("patch"):
                    self._apply_and_prove()
                if s.measures_loss and not screen:
                    with self.phase("loss"):
                        self._losses(records, "patched")
                if s.generates:
                    with self.phase("patched"):
                        self._generate_patched(records)
            except BaseException as e:
                with self.phase("restore"):
                    note = self._restore(raise_on_failure=False)
                if note and isinstance(e, Exception):
                    raise ServerError(f"{e}\n{note}") from None
                raise
            with self.phase("restore"):
                self._restore(raise_on_failure=True)
            with self.phase("scoring"):  # still ours: a judge on this server sees no patch live
                self._score(records)
        return self._output(records, screen)

    def _output(self, records: list[ItemResult], screen: dict | None) -> JobOutput:
        s = self.settings
        summary = summarize(records, s.generation.samples, s.alpha, self.request_latency, self.parts.dataset.skipped,
                            target_effect=s.target_effect)
        return JobOutput(records, summary, self.patch, self._record(screen), self.parts.dataset, s, self.phase_s, screen)

    # -- server state -----------------------------------------------------------------------
    def _clean(self) -> None:
        self.client.clean()
        h, hooks = self.client.health(), self.client.hooks()
        if h.get("hooks_active") or hooks.get("active"):
            raise ServerError(f"{self.client.base_url} still reports active hooks after restore + delete; "
                              "refusing to take a baseline on a patched model")

    def _restore(self, raise_on_failure: bool) -> str | None:
        """Restore + delete, then prove it with the probes. On failure: raise, or return the note."""
        try:
            self.client.clean()
            after = self._probe() if self.probes.get("clean") is not None else None
            if after is not None and after != self.probes["clean"]:
                raise ServerError(f"after restore the probe losses {after} differ from the clean state "
                                  f"{self.probes['clean']}")
            return None
        except ServerError as e:
            note = f"restoring {self.client.base_url} failed ({e}): the server may still be patched"
            if raise_on_failure:
                raise ServerError(note) from None
            log.error(note)
            return note

    def _probe(self) -> list[float] | None:
        """Probe losses, or None when the server has no /api/loss."""
        try:
            losses = self.client.losses(PROBES, answer_prefix="")
        except LossUnavailable:
            return None
        return [round(x, PROBE_DIGITS) if x is not None else None for x in losses]

    def _check_identity(self) -> None:
        if self.expected_identity is not None and self.identity != self.expected_identity:
            raise ReproductionMismatch(f"the server at {self.client.base_url} is not the one the run was logged with:\n"
                                       f"  logged: {json.dumps(self.expected_identity, sort_keys=True)}\n"
                                       f"  now:    {json.dumps(self.identity, sort_keys=True)}")

    def _apply_and_prove(self) -> None:
        """Apply the patch once (never retried: §1 compounding), then prove it live with the probes."""
        p, mode = self.patch, self.settings.model.apply_mode
        if not p.suggestions:  # patch=none: the A/A job; the patched arm is a second fresh baseline
            self.applied = {"hook_count": 0, "skipped": [], "response": None, "hooks": None}
            self.patched_path = "A/A: a second baseline generation, nothing applied"
            return
        try:
            resp = self.client.apply_patch(p.suggestions, mode)
        except ServerError as e:
            raise PatchError(f"patch '{p.name}' ({p.hash}) was not applied cleanly: {e}") from None
        count = int(resp.get("hook_count") or 0)
        names_ = [s["tensor_name"] for s in p.suggestions]
        applied = resp.get("applied_tensors") if mode == "weights" else resp.get("modules")
        applied = applied or []
        if count == 0:
            raise PatchError(f"patch '{p.name}' ({p.hash}): the server applied none of its {len(names_)} edits "
                             f"(contract §4: unknown tensors and operations are skipped): {names_}")
        skipped = [n for n in names_ if not any(n == a or n.startswith(a + ".") for a in applied)]
        if count < len(names_):
            log.warning("patch '%s': only %d of %d edits applied; skipped: %s", p.name, count, len(names_),
                        skipped or "(server did not say which)")
        self.applied = {"response": resp, "hooks": self.client.hooks(), "skipped": skipped, "hook_count": count}
        if self.probes.get("clean") is None:
            log.warning("%s has no /api/loss, so the patch cannot be proven live: the patched arm asks "
                        "use_hooks=true, which costs two generations per answer on a stock server (§2)",
                        self.client.base_url)
            self.patched_path = "use_hooks=true (no /api/loss to prove the patch live)"
            return
        self.probes["patched"] = self._probe()
        if self.probes["patched"] == self.probes["clean"]:
            raise PatchError(f"the patch is not live: after POST /api/hooks the probe losses {self.probes['clean']} "
                             f"did not change (patch '{p.name}', {p.hash})")
        self.patched_path = "use_hooks=false, `original` read with the patch proven live (one generation per answer)"

    # -- loss -------------------------------------------------------------------------------
    def _losses(self, records: list[ItemResult], arm: str, first: int | None = None) -> None:
        """Teacher-forced loss of each item's gold answer in this arm (draw 0 only; the loss has no draws)."""
        rows = [r for r in records if r.draw == 0][:first]
        rows = [r for r in rows if r.arm(arm).loss is None]
        if not rows:
            return
        try:
            losses = self.client.losses([(r.query, r.gold) for r in rows], answer_prefix=self.settings.loss_prefix,
                                        chat=self.settings.loss_chat)
        except LossUnavailable as e:
            if self.settings.metric == "loss" or self.settings.screen_size:
                raise ConfigError(f"metric={self.settings.metric} / screen.size need POST /api/loss: {e}") from None
            log.warning("no loss metric: %s", e)
            return
        for r, loss in zip(rows, losses):
            r.arm(arm).loss = loss

    def _screen(self, records: list[ItemResult]) -> dict:
        """The loss delta on the first N items decides whether the patch earns generations."""
        s = self.settings
        with self.phase("screen"):
            self._apply_and_prove()
            self._losses(records, "patched", first=None if s.measures_loss else s.screen_size)
            head = [r for r in records if r.draw == 0][: s.screen_size]
            pairs = [(r.baseline.loss, r.patched.loss) for r in head if None not in (r.baseline.loss, r.patched.loss)]
            delta = sum(p - b for b, p in pairs) / len(pairs) if pairs else float("nan")
            passed = bool(pairs) and delta <= s.screen_threshold
            log.info("loss screen on %d items: delta %+.4f vs threshold %+.4f: %s", len(pairs), delta,
                     s.screen_threshold, "passed" if passed else "rejected")
            self._restore(raise_on_failure=True)
        return {"size": len(pairs), "threshold": s.screen_threshold, "delta": delta, "passed": passed}

    # -- generation -------------------------------------------------------------------------
    def _generate_patched(self, records: list[ItemResult]) -> None:
        s = self.settings
        if not self.patch.suggestions:
            arm_key = {"arm": "baseline", "replicate": 1}  # A/A: a fresh second baseline, never the first one
            use_hooks = False
        else:
            arm_key = {"arm": "patched", "patch": self.patch.hash, "apply_mode": s.model.apply_mode}
            use_hooks = self.probes.get("patched") is None
        self._generate(records, "patched", use_hooks=use_hooks, arm_key=arm_key)

    def _generate(self, records: list[ItemResult], arm: str, use_hooks: bool, arm_key: dict) -> None:
        """Generate every draw of every item in `arm`: each distinct query once per draw, reusing
        what the store already holds for the same identity, settings, query, arm and draw."""
        g, extras = self.settings.generation, dict(self.extras)
        if use_hooks and contract.EXT_SKIP_ORIGINAL in self.client.extensions:
            extras[contract.EXT_SKIP_ORIGINAL] = True  # §2: `original` would be a wasted generation
        sampled = contract.is_sampled(self.preset)
        chunks = []  # of (draw, query, records with that query): a chunk never mixes draws
        for draw in range(g.samples):
            by_query: dict[str, list[ItemResult]] = {}
            for r in (r for r in records if r.draw == draw):
                by_query.setdefault(r.query, []).append(r)
            todo = [(draw, q, rs) for q, rs in by_query.items()]
            chunks += [todo[i:i + g.batch_size] for i in range(0, len(todo), g.batch_size)]
        with _progress() as bar:
            task = bar.add_task(f"{arm:8s}", total=len(records))
            for chunk in chunks:
                self._generate_chunk(chunk, arm, use_hooks, arm_key, extras, sampled)
                bar.advance(task, sum(len(rs) for _, _, rs in chunk))

    def _generate_chunk(self, chunk, arm, use_hooks, arm_key, extras, sampled) -> None:
        draw, draw_extras = chunk[0][0], dict(extras)
        if contract.EXT_SEED in extras:
            draw_extras[contract.EXT_SEED] = extras[contract.EXT_SEED] + draw  # one seed per draw
        queries = [q for _, q, _ in chunk]
        key_extras = {k: v for k, v in draw_extras.items() if k != contract.EXT_SKIP_ORIGINAL}
        # a seeded batch's samples depend on what else is in it, so seeded sampled answers are keyed by batch
        batch = queries if sampled and contract.EXT_SEED in extras else None
        keys = [generation_key(self.identity, self.preset, key_extras, q,
                               {**arm_key, "draw": draw} if sampled else arm_key, batch) for _, q, _ in chunk]
        hits = self.store.get_many(keys) if self.store is not None else {}
        if all(k in hits for k in keys):  # whole chunk known: reuse, keeping batch composition intact
            for (_, _, rs), k in zip(chunk, keys):
                self._fill(rs, arm, Generation(hits[k][0], None), source_run=hits[k][1])
            return
        t0 = time.perf_counter()
        gens = self.client.generate(queries, self.settings.generation.preset, use_hooks, draw_extras)
        batched = len(queries) > 1 and contract.EXT_GENERATE_BATCH in self.client.extensions
        self.request_latency[arm] += [time.perf_counter() - t0] if batched else [g.latency_s for g in gens]
        # §2: without skip_original a use_hooks request costs two generations
        self.generations += len(queries) * (2 if use_hooks and contract.EXT_SKIP_ORIGINAL not in draw_extras else 1)
        for (_, _, rs), gen in zip(chunk, gens):
            self._fill(rs, arm, gen, batch_size=len(queries) if batched else 1)
        if self.store is not None:
            self.store.put_many([(k, gen.text, self.run_id, gen.latency_s)
                                 for k, gen in zip(keys, gens) if gen.error is None])

    @staticmethod
    def _fill(rs: list[ItemResult], arm: str, gen: Generation, source_run: str | None = None,
              batch_size: int | None = None) -> None:
        """The first item with this query holds the generation; the others are repeats of it."""
        for i, r in enumerate(rs):
            a = r.arm(arm)
            a.output, a.error, a.error_detail, a.source_run = gen.text, gen.error, gen.error_detail, source_run
            if i == 0:
                a.latency_s, a.batch_size = gen.latency_s, batch_size
            else:
                a.repeat_of = rs[0].id

    def _score(self, records: list[ItemResult]) -> None:
        todo = [(r, r.arm(name)) for r in records for name in ("baseline", "patched")
                if r.arm(name).error is None and r.arm(name).output is not None]  # failures are never scored
        scores = self.parts.scorer.score_many([(a.output, r.gold, r.prompt) for r, a in todo])
        for (r, a), s in zip(todo, scores):
            a.correct, a.extracted, a.score_kind = s.correct, s.extracted, s.kind
            if s.error:
                a.error, a.error_detail, a.correct = s.error, s.detail, None

    def _record(self, screen: dict | None) -> RunRecord:
        s, ds, p = self.settings, self.parts.dataset, self.patch
        probes = self.probes
        delta = None
        if probes.get("clean") and probes.get("patched"):
            delta = [None if None in (a, b) else b - a for a, b in zip(probes["clean"], probes["patched"])]
        return RunRecord(
            model={"name": s.model.name, "hf_id": s.model.hf_id, "revision": s.model.revision},
            server={"url": self.client.base_url, "identity": self.identity,
                    "device": self.health.get("device"), "extensions": sorted(self.client.extensions)},
            generation={"preset": s.generation.preset, "preset_config": self.preset, "extras": self.extras,
                        "batch_size": s.generation.batch_size, "samples": s.generation.samples,
                        "template": s.generation.template, "apply_mode": s.model.apply_mode,
                        "patched_path": self.patched_path, "metric": s.metric},
            patch={"name": p.name, "hash": p.hash, "source": p.source, "n_suggestions": len(p.suggestions),
                   "strength": p.metadata.get("strength", 1.0), "hook_count": self.applied.get("hook_count"),
                   "skipped": self.applied.get("skipped"), "apply_response": self.applied.get("response"),
                   "hooks_state": self.applied.get("hooks"), "probe_loss_clean": probes.get("clean"),
                   "probe_loss_patched": probes.get("patched"), "probe_loss_delta": delta},
            dataset={"name": ds.name, "source": ds.source, "fingerprint": ds.fingerprint, "n_items": len(ds.items),
                     "skipped": ds.skipped, "split": ds.split, "holdout": ds.holdout},
            scorer=self.parts.scorer.context(),
            requests={"generations": self.generations,
                      "loss": self.client.loss_requests - self.loss_requests_before},
            stats={"alpha": s.alpha}, screen=screen,
        )


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=False)
