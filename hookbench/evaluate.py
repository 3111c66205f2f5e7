"""One job: one model x one patch set over one dataset — baseline, patch, patched, restore, score.

The server is put into a known-clean state before the baseline and always restored afterwards
(errors and Ctrl-C included), because weight edits outlive DELETE /api/hooks (hook-api.md §1).
Between the two the job holds the server's lease, so parallel jobs never share its patch state.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hookbench.client import Generation, HookClient
from hookbench.config import build
from hookbench.errors import ConfigError, PatchError, ReproductionMismatch, ServerError
from hookbench.items import Dataset
from hookbench.lease import server_lease
from hookbench.patches import PatchSet
from hookbench.results import ItemResult, Summary, summarize
from hookbench.reuse import GenerationStore, generation_key
from hookbench.server_process import ensure_server

log = logging.getLogger(__name__)


@dataclass
class JobOutput:
    records: list[ItemResult]
    summary: Summary
    patch: PatchSet
    dataset: Dataset
    context: dict  # everything a reported number depends on
    phase_s: dict[str, float] = field(default_factory=dict)


def render_query(template: str, prompt: str) -> str:
    """`{prompt}` in the template is replaced by the item's prompt; other braces are left alone."""
    return template.replace("{prompt}", prompt)


def server_identity(health: dict, model_cfg: DictConfig, url: str) -> dict:
    """What makes two servers give the same text. A reference server reports its weights hash;
    for another server the model config's hf_id + revision and the URL stand in for it."""
    if isinstance(health.get("server"), dict):
        return dict(health["server"])
    return {"url": url, "hf_id": model_cfg.hf_id, "revision": model_cfg.get("revision")}


class Evaluation:
    def __init__(self, cfg: DictConfig, run_id: str, store: GenerationStore | None = None,
                 expected_identity: dict | None = None):
        self.cfg, self.run_id, self.store = cfg, run_id, store
        self.expected_identity = expected_identity  # reproduce: the server must be the logged one
        self.phase_s: dict[str, float] = {}
        self.generations = 0  # generations this job asked of the server (reused ones are not)

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phase_s[name] = self.phase_s.get(name, 0.0) + time.perf_counter() - t0

    # -- set-up: everything that can fail on user input fails here, before any generation -----
    def prepare(self) -> None:
        m = self.cfg.model
        with self.phase("data"):
            self.dataset: Dataset = build(self.cfg.dataset, "dataset")
            self.queries = [render_query(m.prompt.template, it.prompt) for it in self.dataset.items]
            self.scorer = build(self.cfg.scorer, "scorer")
            self.patch_source = build(self.cfg.patch, "patch")
        with self.phase("server_start"):
            self.url = ensure_server(OmegaConf.to_container(m.server.launch, resolve=True) if m.server.launch else None,
                                     m.server.url)
        self.scorer.bind_server(self.url)
        token = os.environ.get(m.server.token_env) if m.server.get("token_env") else None
        self.client = HookClient(self.url, token=token, timeout_s=m.server.timeout_s, retries=m.server.retries)
        self.health = self.client.health()
        if self.health.get("status") != "online":
            raise ServerError(f"{self.url}/api/health says status {self.health.get('status')!r}, not 'online'")
        presets = self.client.configs()
        if m.generation.preset not in presets:
            # contract §5: an unknown preset would silently be served as `balanced`
            raise ConfigError(f"model.generation.preset={m.generation.preset!r} is not a preset of {self.url} "
                              f"(it has: {', '.join(sorted(presets))})")
        self.preset = presets[m.generation.preset]
        self.extras = self._extras(self.client.extensions)
        self.identity = server_identity(self.health, m, self.url)
        if self.expected_identity is not None and self.identity != self.expected_identity:
            raise ReproductionMismatch(f"the server at {self.url} is not the one the run was logged with:\n"
                                       f"  logged: {json.dumps(self.expected_identity, sort_keys=True)}\n"
                                       f"  now:    {json.dumps(self.identity, sort_keys=True)}")

    def _extras(self, offered: set[str]) -> dict:
        g, extras = self.cfg.model.generation, {}
        for key in ("seed", "max_new_tokens"):
            if g.get(key) is not None:
                if key not in offered:
                    raise ConfigError(f"model.generation.{key}={g[key]} needs a server offering the '{key}' "
                                      f"extension; {self.url} offers {sorted(offered) or 'none'}")
                extras[key] = g[key]
        chat = self.cfg.model.prompt.get("chat")
        if chat is not None:
            if "chat" in offered:
                extras["chat"] = bool(chat)
            else:
                log.warning("model.prompt.chat is set but %s decides prompting itself (no 'chat' extension)", self.url)
        return extras

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> JobOutput:
        m = self.cfg.model
        self.prepare()
        records = [ItemResult(it.id, it.task, it.prompt, q, it.gold) for it, q in zip(self.dataset.items, self.queries)]
        with server_lease(self.url) as waited:  # the server's patch state is ours until restored
            self.phase_s["server_wait"] = waited
            try:
                with self.phase("patch"):
                    self.patch: PatchSet = self.patch_source.resolve(self.client, m.name, m.apply_mode)
                    self._clean()
                with self.phase("baseline"):
                    self._generate(records, "baseline", use_hooks=False, arm_key={"arm": "baseline"})
                with self.phase("patch"):
                    applied = self._apply_patch()
                with self.phase("patched"):
                    self._generate(records, "patched", use_hooks=True,
                                   arm_key={"arm": "patched", "patch": self.patch.hash, "apply_mode": m.apply_mode})
            finally:
                with self.phase("restore"):
                    self._restore_quietly()
            with self.phase("scoring"):  # still ours: a judge on this server sees no patch live
                self._score(records)
        summary = summarize(records)
        return JobOutput(records, summary, self.patch, self.dataset, self._context(applied), self.phase_s)

    def _clean(self) -> None:
        self.client.clean()
        h, hooks = self.client.health(), self.client.hooks()
        if h.get("hooks_active") or hooks.get("active"):
            raise ServerError(f"{self.url} still reports active hooks after restore + delete; refusing to "
                              f"take a baseline on a patched model")

    def _restore_quietly(self) -> None:
        try:
            self.client.clean()
        except ServerError as e:  # do not hide the error that brought us here
            log.error("could not restore the server after the run: %s", e)

    def _apply_patch(self) -> dict:
        p, mode = self.patch, self.cfg.model.apply_mode
        try:
            resp = self.client.apply_patch(p.suggestions, mode)
        except ServerError as e:
            raise PatchError(f"patch '{p.name}' ({p.hash}) was refused: {e}") from None
        count = int(resp.get("hook_count") or 0)
        names = [s["tensor_name"] for s in p.suggestions]
        applied = resp.get("applied_tensors") if mode == "weights" else resp.get("modules")
        applied = applied or []
        if count == 0:
            raise PatchError(f"patch '{p.name}' ({p.hash}): the server applied none of its {len(names)} edits "
                             f"(contract §4: unknown tensors and operations are skipped): {names}")
        skipped = [n for n in names if not any(n == a or n.startswith(a + ".") for a in applied)]
        if count < len(names):
            log.warning("patch '%s': only %d of %d edits applied; skipped: %s", p.name, count, len(names),
                        skipped or "(server did not say which)")
        return {"response": resp, "hooks": self.client.hooks(), "skipped": skipped, "hook_count": count}

    def _generate(self, records: list[ItemResult], arm: str, use_hooks: bool, arm_key: dict) -> None:
        g = self.cfg.model.generation
        extras = dict(self.extras)
        if use_hooks and "skip_original" in self.client.extensions:
            extras["skip_original"] = True  # §2: `original` would be a wasted generation
        key_extras = {k: v for k, v in extras.items() if k != "skip_original"}
        sampled = bool(self.preset.get("do_sample"))
        reusable = self.store is not None and (not sampled or "seed" in extras)
        size = max(1, int(g.batch_size))
        chunks = [list(range(i, min(i + size, len(records)))) for i in range(0, len(records), size)]
        with _progress() as bar:
            task = bar.add_task(f"{arm:8s}", total=len(records))
            for idx in chunks:
                queries = [records[i].query for i in idx]
                batch = queries if sampled else None
                keys = [generation_key(self.identity, self.preset, key_extras, q, arm_key, batch) for q in queries]
                hits = self.store.get_many(keys) if reusable else {}
                if all(k in hits for k in keys):  # whole chunk known: reuse, keeping batch composition intact
                    for i, k in zip(idx, keys):
                        a = records[i].arm(arm)
                        a.output, a.source_run = hits[k]
                else:
                    gens = self.client.generate(queries, g.preset, use_hooks, extras)
                    # §2: without skip_original a patched request costs two generations
                    self.generations += len(queries) * (2 if use_hooks and "skip_original" not in extras else 1)
                    for i, gen in zip(idx, gens):
                        self._put(records[i].arm(arm), gen)
                    if reusable:
                        self.store.put_many([(k, gen.text, self.run_id, gen.latency_s)
                                             for k, gen in zip(keys, gens) if gen.error is None])
                bar.advance(task, len(idx))

    @staticmethod
    def _put(arm, gen: Generation) -> None:
        arm.output, arm.latency_s, arm.error, arm.error_detail = gen.text, gen.latency_s, gen.error, gen.error_detail

    def _score(self, records: list[ItemResult]) -> None:
        for r in records:
            for name in ("baseline", "patched"):
                a = r.arm(name)
                if a.error is not None:
                    continue  # a failure is counted apart, never scored as wrong
                s = self.scorer.score(a.output, r.gold, question=r.prompt)
                a.correct, a.extracted = s.correct, s.extracted
                if s.error:
                    a.error, a.error_detail, a.correct = s.error, s.detail, None

    def _context(self, applied: dict) -> dict:
        m = self.cfg.model
        return {
            "model": m.name, "model.hf_id": m.hf_id, "server.url": self.url, "server.identity": self.identity,
            "server.device": self.health.get("device"), "server.extensions": sorted(self.client.extensions),
            "generation.preset": m.generation.preset, "generation.preset_config": self.preset,
            "generation.extras": self.extras, "generation.batch_size": m.generation.batch_size,
            "prompt.template": m.prompt.template, "apply_mode": m.apply_mode,
            "patch.name": self.patch.name, "patch.hash": self.patch.hash, "patch.source": self.patch.source,
            "patch.n_suggestions": len(self.patch.suggestions), "patch.hook_count": applied["hook_count"],
            "patch.skipped": applied["skipped"], "patch.apply_response": applied["response"],
            "patch.hooks_state": applied["hooks"],
            "dataset.name": self.dataset.name, "dataset.source": self.dataset.source,
            "dataset.fingerprint": self.dataset.fingerprint, "dataset.n_items": len(self.dataset.items),
            **self.scorer.context(),
            "requests.generations": self.generations,
        }


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=False)
