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

from hookbench.base import mlflow_keys
from hookbench.evaluation.loop import PROBES
from hookbench.hookapi import contract

LOSS_BATCH = 32  # HookClient.losses' default batch size on a server with the loss_batch extension


def loss_requests(n_items: int, batched: bool) -> int:
    """Loss requests of one job over n items: probes (clean, patched, restored) + both arms."""
    if batched:
        return 3 * math.ceil(len(PROBES) / LOSS_BATCH) + 2 * math.ceil(n_items / LOSS_BATCH)
    return 3 * len(PROBES) + 2 * n_items


JOB_S = 2.0  # a study job's cost outside its requests (run, store, report), seen on the stock stand-in's tests


@dataclass(frozen=True)
class Latency:
    loss_s: float
    generation_s: float  # per answer
    probe_answers: int = 1  # the answers the probe generated (counted in the plan)


def measure_latency(client, queries: list[str], gold: str, preset: str, extras: dict, loss_prefix: str,
                    batch: int) -> Latency:
    """One loss request and one generation request as the jobs send it, timed on the clean server:
    `batch` queries in one request on a server with batched generation (the job's batch size, its
    max_new_tokens in `extras`), else one query (a stock server answers one at a time)."""
    client.clean()
    t0 = time.perf_counter()
    client.losses([(queries[0], gold)], answer_prefix=loss_prefix)
    loss_s = time.perf_counter() - t0
    sent = queries[:max(1, batch)] if contract.EXT_GENERATE_BATCH in client.extensions else queries[:1]
    t0 = time.perf_counter()
    client.generate(sent, preset, False, extras)
    return Latency(loss_s, (time.perf_counter() - t0) / len(sent), len(sent))


@dataclass(frozen=True)
class RungPlan:
    """One rung of the accuracy search: its dev items, their distinct queries x draws, the candidates to measure."""

    items: int
    queries: int
    candidates: int


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
    rungs: tuple[RungPlan, ...] = ()  # the accuracy search (search.objective=accuracy|auto); empty: the loss search
    rung_loss_items: int = 0  # auto: rung-0 jobs also measure the loss of their items

    @property
    def loss_requests(self) -> int:
        per = lambda n: loss_requests(n, self.batched_loss)  # noqa: E731
        if self.rungs:
            jobs = sum(r.candidates for r in self.rungs) + self.reference + self.confirm
            return 1 + jobs * per(0) + self.rungs[0].candidates * (per(self.rung_loss_items) - per(0))
        return (1 + (self.trials + self.reference) * per(self.items) + self.keep * per(self.dev_items)
                + self.confirm * per(self.test_items))

    def rung_generations(self) -> list[int]:
        """Generations per rung: each candidate's new items (its earlier rungs' answers are reused), plus the
        shared baseline's new items when no reference job generated them all first."""
        out, before = [], 0
        for r in self.rungs:
            new = r.queries - before
            out.append(r.candidates * new + (0 if self.reference else new))
            before = r.queries
        return out

    @property
    def reference_generations(self) -> int:
        return 2 * self.rungs[-1].queries if self.rungs and self.reference else 0

    @property
    def generations(self) -> int:
        probe = self.latency.probe_answers
        if self.rungs:
            return probe + self.reference_generations + sum(self.rung_generations()) + self.test_queries * 2 * self.confirm
        dev = self.dev_queries * (1 + self.keep) if self.keep else 0
        return probe + dev + self.test_queries * 2 * self.confirm

    @property
    def jobs(self) -> int:
        if self.rungs:
            return sum(r.candidates for r in self.rungs) + self.reference + self.confirm
        return self.trials + self.reference + self.keep + self.confirm

    @property
    def wall_s(self) -> float:
        return (self.loss_requests * self.latency.loss_s + self.generations * self.latency.generation_s
                + self.jobs * JOB_S)

    def metrics(self) -> dict[str, float]:
        out = {mlflow_keys.PLAN_LOSS_REQUESTS: self.loss_requests, mlflow_keys.PLAN_GENERATIONS: self.generations,
               mlflow_keys.PLAN_WALL_S: self.wall_s, mlflow_keys.PLAN_TRIALS: self.trials, mlflow_keys.PLAN_KEEP: self.keep}
        return out | {mlflow_keys.PLAN_RUNG_GENERATIONS.format(i): g for i, g in enumerate(self.rung_generations())}

    def _rung_lines(self) -> list[str]:
        lines = ["cost plan:", "  accuracy search: successive halving over dev items, one shared baseline, "
                 "each candidate's earlier answers reused"]
        if self.reference:
            lines.append(f"  reference: the configured patch x {self.rungs[-1].items} dev items: "
                         f"{self.reference_generations} generations (both arms: the baseline of every rung)")
        before = 0
        for i, (r, g) in enumerate(zip(self.rungs, self.rung_generations())):
            lines.append(f"  rung {i}: {r.candidates} candidates x {r.items} dev items ({r.items - before} new each): "
                         f"{g} generations")
            before = r.items
        return lines + [
            f"  keep:   the {self.keep} best of the last rung (p adjusted over them)",
            f"  confirm: {self.confirm} pick x {self.test_items} test items: {self.test_queries * 2 * self.confirm} generations",
            f"  loss requests: {self.loss_requests}   generations: {self.generations} "
            f"(each includes {self.latency.probe_answers} to measure latency; fewer when the search proposes a candidate twice or the reuse "
            "store already holds answers)",
            self._wall_line()]

    def _wall_line(self) -> str:
        probe = f"a batch of {self.latency.probe_answers}" if self.latency.probe_answers > 1 else "one request"
        return (f"  wall estimate: {self.wall_s:.0f} s (measured: {self.latency.loss_s * 1e3:.0f} ms per loss request, "
                f"{self.latency.generation_s:.3f} s per answer from {probe}; {JOB_S:g} s per job besides, "
                f"{self.jobs} jobs)")

    def text(self) -> str:
        if self.rungs:
            return "\n".join(self._rung_lines())
        return "\n".join([
            "cost plan:",
            f"  search: {self.trials} trials x {self.items} dev items by loss"
            + (" + the configured patch as reference" if self.reference else ""),
            f"  keep:   up to {self.keep} distinct candidates x {self.dev_items} dev items (accuracy; one shared baseline)",
            f"  confirm: {self.confirm} pick x {self.test_items} test items",
            f"  loss requests: {self.loss_requests}   generations: {self.generations} "
            f"(each includes {self.latency.probe_answers} to measure latency; fewer when the search finds fewer distinct candidates than "
            "it keeps or the reuse store already holds answers)",
            self._wall_line(),
        ])
