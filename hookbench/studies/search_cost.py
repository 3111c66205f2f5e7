"""What a study will cost, said before it starts: loss requests, generations and a wall estimate.

The counts follow the job loop exactly (hookbench/evaluation/loop.py): a job sends its three probe
texts clean, patched and after restore, and every item's gold answer in both arms; an accuracy job
generates each distinct query once per arm, the baseline only once per split (the reuse store
shares it). The latencies are measured on the server first (one loss request, one generation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from hookbench import names
from hookbench.evaluation.loop import PROBES

LOSS_BATCH = 32  # HookClient.losses' default batch size on a server with the loss_batch extension


def loss_requests(n_items: int, batched: bool) -> int:
    """Loss requests of one job over n items: probes (clean, patched, restored) + both arms."""
    if batched:
        return 3 * math.ceil(len(PROBES) / LOSS_BATCH) + 2 * math.ceil(n_items / LOSS_BATCH)
    return 3 * len(PROBES) + 2 * n_items


@dataclass(frozen=True)
class Latency:
    loss_s: float
    generation_s: float


def measure_latency(client, query: str, gold: str, preset: str, extras: dict, loss_prefix: str) -> Latency:
    """One loss request and one generation on the clean server, timed (both counted in the plan)."""
    client.clean()
    t0 = time.perf_counter()
    client.losses([(query, gold)], answer_prefix=loss_prefix)
    loss_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.generate([query], preset, False, extras)
    return Latency(loss_s, time.perf_counter() - t0)


@dataclass(frozen=True)
class SearchCost:
    trials: int  # still to run (a resumed study counts only the missing ones)
    items: int  # loss items per trial
    reference: bool  # the configured patch measured by loss too
    keep: int
    dev_queries: int  # distinct dev queries x draws
    dev_items: int
    test_queries: int
    test_items: int
    confirm: int  # picks confirmed on test (0 or 1)
    batched_loss: bool
    latency: Latency

    @property
    def loss_requests(self) -> int:
        per = lambda n: loss_requests(n, self.batched_loss)  # noqa: E731
        return (1 + (self.trials + self.reference) * per(self.items) + self.keep * per(self.dev_items)
                + self.confirm * per(self.test_items))

    @property
    def generations(self) -> int:
        dev = self.dev_queries * (1 + self.keep) if self.keep else 0
        return 1 + dev + self.test_queries * 2 * self.confirm

    @property
    def wall_s(self) -> float:
        return self.loss_requests * self.latency.loss_s + self.generations * self.latency.generation_s

    def metrics(self) -> dict[str, float]:
        return {names.PLAN_LOSS_REQUESTS: self.loss_requests, names.PLAN_GENERATIONS: self.generations,
                names.PLAN_WALL_S: self.wall_s, names.PLAN_TRIALS: self.trials, names.PLAN_KEEP: self.keep}

    def text(self) -> str:
        return "\n".join([
            "cost plan:",
            f"  search: {self.trials} trials x {self.items} dev items by loss"
            + (" + the configured patch as reference" if self.reference else ""),
            f"  keep:   up to {self.keep} distinct candidates x {self.dev_items} dev items (accuracy; one shared baseline)",
            f"  confirm: {self.confirm} pick x {self.test_items} test items",
            f"  loss requests: {self.loss_requests}   generations: {self.generations} "
            "(each includes 1 to measure latency; fewer when the search finds fewer distinct candidates than "
            "it keeps or the reuse store already holds answers)",
            f"  wall estimate: {self.wall_s:.0f} s (measured: {self.latency.loss_s * 1e3:.0f} ms per loss request, "
            f"{self.latency.generation_s:.2f} s per generation; batched servers are faster)",
        ])
