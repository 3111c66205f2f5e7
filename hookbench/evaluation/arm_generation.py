"""One arm's generations: chunking, a seed per draw, reuse keys and the store, HTTP, latency, counting.

Each distinct query is generated once per draw; a chunk never mixes draws. Every answer is stored as
it arrives, so an interrupted chunk keeps its finished answers; a rerun reuses them and asks only the
rest, except for a seeded sampled chunk (keyed by its batch), which is reused whole or asked whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hookbench.base.signals import checkpoint
from hookbench.evaluation.results import ItemResult
from hookbench.evaluation.reuse import GenerationStore, generation_key
from hookbench.hookapi import contract
from hookbench.hookapi.client import Generation, HookClient

Chunk = list[tuple[int, str, list[ItemResult]]]  # (draw, query, the items asking that query)


@dataclass(frozen=True)
class Arm:
    """What one arm asks of the server, and what its answers are stored under."""

    name: str  # "baseline" or "patched"
    use_hooks: bool
    key: dict  # the arm's part of the reuse key


@dataclass(frozen=True)
class Served:
    """What makes two answers the same answer: the server, its preset and the request's extras."""

    identity: dict
    preset_name: str
    preset: dict
    extras: dict


def chunks(items: list[ItemResult], samples: int, batch_size: int) -> list[Chunk]:
    """Per draw, each distinct query once, cut into requests of at most `batch_size` queries."""
    out: list[Chunk] = []
    for draw in range(samples):
        by_query: dict[str, list[ItemResult]] = {}
        for r in (r for r in items if r.draw == draw):
            by_query.setdefault(r.query, []).append(r)
        todo = [(draw, q, rs) for q, rs in by_query.items()]
        out += [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    return out


def seeded(extras: dict, draw: int) -> dict:
    """The request's extras for this draw: one seed per draw, so the draws differ but repeat."""
    out = dict(extras)
    if contract.EXT_SEED in extras:
        out[contract.EXT_SEED] = extras[contract.EXT_SEED] + draw
    return out


def fill(rs: list[ItemResult], arm: str, gen: Generation, source_run: str | None = None,
         batch_size: int | None = None) -> None:
    """The first item with this query holds the generation; the others are repeats of it."""
    for i, r in enumerate(rs):
        a = r.arm(arm)
        a.output, a.error, a.error_detail, a.source_run = gen.text, gen.error, gen.error_detail, source_run
        if i == 0:
            a.latency_s, a.batch_size = gen.latency_s, batch_size
        else:
            a.repeat_of = rs[0].id


class Generator:
    """Generates arms for one job, counting what it asked of the server and how long requests took."""

    def __init__(self, client: HookClient, store: GenerationStore | None, run_id: str):
        self.client, self.store, self.run_id = client, store, run_id
        self.generations = 0  # generations this job asked of the server (reused ones are not)
        self.request_latency: dict[str, list[float]] = {"baseline": [], "patched": []}

    def run(self, items: list[ItemResult], arm: Arm, served: Served, samples: int, batch_size: int) -> None:
        """Generate every draw of every record in `arm`, reusing what the store holds."""
        extras = dict(served.extras)
        if arm.use_hooks and contract.EXT_SKIP_ORIGINAL in self.client.extensions:
            extras[contract.EXT_SKIP_ORIGINAL] = True  # §2: `original` would be a wasted generation
        with _progress() as bar:
            task = bar.add_task(f"{arm.name:8s}", total=len(items))
            for chunk in chunks(items, samples, batch_size):
                self._chunk(chunk, arm, served, extras)
                bar.advance(task, sum(len(rs) for _, _, rs in chunk))

    def _chunk(self, chunk: Chunk, arm: Arm, served: Served, extras: dict) -> None:
        draw_extras = seeded(extras, chunk[0][0])
        keys = self._keys(chunk, arm, served, extras, draw_extras)
        hits = self.store.get_many(keys) if self.store is not None else {}
        by_batch = contract.is_sampled(served.preset) and contract.EXT_SEED in extras
        if by_batch and not all(k in hits for k in keys):
            hits = {}  # a seeded batch's answers depend on its composition: reused whole or not at all
        for (_, _, rs), k in zip(chunk, keys):
            if k in hits:
                fill(rs, arm.name, Generation(hits[k][0], None), source_run=hits[k][1])
        todo = [(c, k) for c, k in zip(chunk, keys) if k not in hits]
        if todo:
            self._ask([c for c, _ in todo], arm, served, draw_extras, [k for _, k in todo])

    @staticmethod
    def _keys(chunk: Chunk, arm: Arm, served: Served, extras: dict, draw_extras: dict) -> list[str]:
        """Reuse keys: identity, preset, extras (bar skip_original), query, arm, and the draw when sampled."""
        sampled = contract.is_sampled(served.preset)
        key_extras = {k: v for k, v in draw_extras.items() if k != contract.EXT_SKIP_ORIGINAL}
        # a seeded batch's samples depend on what else is in it, so seeded sampled answers are keyed by batch
        batch = [q for _, q, _ in chunk] if sampled and contract.EXT_SEED in extras else None
        return [generation_key(served.identity, served.preset, key_extras, q,
                               {**arm.key, "draw": draw} if sampled else arm.key, batch) for draw, q, _ in chunk]

    def _ask(self, chunk: Chunk, arm: Arm, served: Served, draw_extras: dict, keys: list[str]) -> None:
        """One request for the chunk; each answer is filled in and stored the moment it arrives."""
        queries = [q for _, q, _ in chunk]
        batched = len(queries) > 1 and contract.EXT_GENERATE_BATCH in self.client.extensions

        def arrived(i: int, gen: Generation) -> None:
            fill(chunk[i][2], arm.name, gen, batch_size=len(queries) if batched else 1)
            if self.store is not None and gen.error is None:
                self.store.put_many([(keys[i], gen.text, self.run_id, gen.latency_s)])
            # §2: without skip_original a use_hooks request costs two generations
            self.generations += 2 if arm.use_hooks and contract.EXT_SKIP_ORIGINAL not in draw_extras else 1
            checkpoint()  # this answer is stored: a swallowed Ctrl-C stops the job here

        t0 = time.perf_counter()
        gens = self.client.generate(queries, served.preset_name, arm.use_hooks, draw_extras, on_answer=arrived)
        self.request_latency[arm.name] += [time.perf_counter() - t0] if batched else [g.latency_s for g in gens]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=False)
