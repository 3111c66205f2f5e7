"""The verdict on each paired task and metric: hookbench's paired test, Holm (or --correction) across
the compared metrics, and non-inferiority for the tasks named as guards, exactly as a job's guard.

A guard is judged by its one-sided non-inferiority test at −margin and is not part of the corrected
family (a family of guards is an intersection–union test: no adjustment, as for a job's guards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hookbench.base.errors import ConfigError
from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.compare.pairing import Paired
from hookbench.stats import Comparison, adjust_p_values, adjusted_verdict, cluster_codes, compare_arms
from hookbench.stats.noninferiority import DEFAULT_MARGIN, NonInferiority, non_inferiority


@dataclass(frozen=True)
class Row:
    """One task's metric: A's and B's mean, the paired comparison (B − A), and either the corrected
    verdict (a compared metric) or the non-inferiority test (a guard)."""

    task: str
    metric: str
    baseline: float  # A's mean over the paired items
    patched: float  # B's
    comparison: Comparison
    p_adjusted: float = math.nan
    verdict_adjusted: Verdict = Verdict.NO_DATA
    ni: NonInferiority | None = None  # set for a guard

    @property
    def name(self) -> str:
        return f"{self.task} {self.metric}"

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"

    @property
    def verdict(self) -> str:
        """A guard's non-inferiority verdict, else the corrected verdict (what the row is judged by)."""
        return self.ni.verdict if self.ni is not None else self.verdict_adjusted


def parse_guards(specs: list[str]) -> dict[str, float]:
    """`TASK[:MARGIN]` -> {task: margin}; the margin defaults to a job's guard.margin (0.05)."""
    guards: dict[str, float] = {}
    for spec in specs:
        task, _, margin = spec.partition(":")
        try:
            value = float(margin) if margin else DEFAULT_MARGIN
        except ValueError:
            raise ConfigError(f"--guard {spec}: the margin after ':' must be a number, e.g. {task}:0.01") from None
        if not task or not 0 < value < 1:
            raise ConfigError(f"--guard {spec}: expected TASK[:MARGIN] with a margin in (0, 1)")
        guards[task] = value
    return guards


def judge(pairs: list[Paired], alpha: float, correction: str, guards: dict[str, float]) -> list[Row]:
    """The rows, compared metrics first: each metric's paired test, corrected across the compared ones."""
    tasks = {p.task for p in pairs}
    unknown = sorted(set(guards) - tasks)
    if unknown:
        raise ConfigError(f"--guard {', '.join(unknown)}: no such task in both logs (tasks: {', '.join(sorted(tasks))})")
    compared = [p for p in pairs if p.task not in guards]
    comparisons = [_compare(p, alpha) for p in compared]
    adjusted = adjust_p_values([c.p_value for c in comparisons], correction)
    rows = [Row(p.task, p.metric, _mean(p.a), _mean(p.b), c, q, _corrected(c, q))
            for p, c, q in zip(compared, comparisons, adjusted)]
    return rows + [_guard(p, alpha, guards[p.task]) for p in pairs if p.task in guards]


def _compare(p: Paired, alpha: float) -> Comparison:
    return compare_arms(p.a, p.b, clusters=p.clusters, draws=p.draws, alpha=alpha, higher_is_better=p.higher_is_better)


def _corrected(c: Comparison, p_adjusted: float) -> Verdict:
    if c.verdict in (Verdict.NO_CHANGE_OBSERVED, Verdict.NO_DATA):
        return c.verdict
    return adjusted_verdict(c.delta, p_adjusted, c.alpha, c.higher_is_better)


def _guard(p: Paired, alpha: float, margin: float) -> Row:
    """Non-inferiority of B to A at −margin with the job's guard test (evaluation.guards.summarize_guard)."""
    if not p.higher_is_better:
        raise ConfigError(f"--guard {p.task}: {p.metric} is lower-is-better; a guard's margin is on a "
                          "higher-is-better score")
    c = _compare(p, alpha)
    a, b = np.asarray(p.a, float), np.asarray(p.b, float)
    binary = p.draws == 1 and bool(np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all())
    bounded = bool(((a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)).all())
    ni = non_inferiority(b - a, cluster_codes(p.clusters), margin, alpha, binary, c.verdict, bounded)
    return Row(p.task, p.metric, _mean(p.a), _mean(p.b), c, ni=ni)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def guard_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.ni is not None]


def compared_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.ni is None]


def any_hurt(rows: list[Row]) -> bool:
    return any(r.verdict in (Verdict.HURTS, GuardVerdict.HURTS) for r in rows)
