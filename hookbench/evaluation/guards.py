"""Guard tasks: datasets a patch must not damage, each judged by non-inferiority at its margin.

A `Guard` is built from the config by evaluation.parts (`compose_guards`, `build_guards`); here are what
a job holds of one and how it is judged: `summarize_guard` gives its `GuardResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hookbench.base.outcomes import GuardVerdict
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.prompting import paired
from hookbench.evaluation.results import ItemResult, per_item
from hookbench.evaluation.scorers import Scorer

if TYPE_CHECKING:  # statsmodels and scipy load when a job is summarised, not before its first request
    from hookbench.stats import Comparison
    from hookbench.stats.noninferiority import NonInferiority


@dataclass
class Guard:
    """One guard as a job runs it: its name, dataset, scorer and margin, and its item results once generated."""

    name: str
    dataset: Dataset
    scorer: Scorer
    margin: float
    items: list[ItemResult]
    prompts: list[ItemResult] = field(default_factory=list)  # the prompting arm's answers, in the `patched` slot


@dataclass(frozen=True)
class GuardResult:
    """One guard's outcome: accuracy per arm, its paired comparison (the target's test) and non-inferiority."""

    name: str
    margin: float
    baseline: float
    patched: float
    comparison: Comparison
    ni: NonInferiority
    prompting: GuardResult | None = None  # the prompting arm judged on this guard (prompt − baseline)

    @property
    def verdict(self) -> GuardVerdict:
        return self.ni.verdict


def summarize_guard(guard: Guard, draws: int, alpha: float, target_effect: float,
                    items: list[ItemResult] | None = None) -> GuardResult:
    """The guard's two tests on the items scored in both arms (`items`: other arms paired, as the
    prompting arm's against the baseline); with a prompting arm, the same two tests for it."""
    import numpy as np

    from hookbench.stats import cluster_codes, compare_arms
    from hookbench.stats.noninferiority import non_inferiority

    b, p, clusters, _ = per_item(guard.items if items is None else items, count_patch_failures=False)
    c = compare_arms(b, p, clusters=clusters, draws=draws, alpha=alpha, target_effect=target_effect)
    d = np.asarray(p, float) - np.asarray(b, float)
    binary = draws == 1 and bool(np.isin(b, (0, 1)).all() and np.isin(p, (0, 1)).all())
    ni = non_inferiority(d, cluster_codes(clusters) if clusters else np.zeros(0, int), guard.margin, alpha,
                         binary, c.verdict)
    prompting = None
    if items is None and guard.prompts:
        prompting = summarize_guard(guard, draws, alpha, target_effect,
                                    paired([r.baseline for r in guard.items], [q.patched for q in guard.prompts],
                                           guard.items))
    return GuardResult(guard.name, guard.margin, _mean(b), _mean(p), c, ni, prompting)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan
