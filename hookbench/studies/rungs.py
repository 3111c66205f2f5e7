"""The accuracy search at rising fidelity: synchronous successive halving over dev items, an explicit schedule.

Rung 0 measures every trial by an accuracy job on the first `rungs[0]` dev items (Optuna is told its
score, so TPE learns from answers, not from a proxy); each later rung measures the best 1/`eta` of
the previous rung's distinct candidates (never fewer than `keep`) on the first `rungs[r]` items. The
jobs share one baseline and each candidate's earlier answers through the reuse store, so a rung
costs only its new items, and the cost is known before the search starts (Optuna's pruners decide
as trials arrive, which makes the count of generations depend on the order of results).
Candidates are ranked by the paired comparison against the shared baseline: the paired test's
signed z (the evidence of a gain on these items) first, then the delta.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig
from scipy import stats as sps

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError, PatchError
from hookbench.evaluation.patches import PatchSet
from hookbench.job import run_job
from hookbench.studies.search import Search, job_config, nested
from hookbench.studies.search_report import LossAccuracyAgreement, agreement

if TYPE_CHECKING:
    import optuna

    from hookbench.evaluation.job_output import LoggedOutput

log = logging.getLogger("hookbench")

OBJECTIVES = ("accuracy", "loss", "auto")


@dataclass(frozen=True)
class Schedule:
    rungs: tuple[int, ...]  # dev items per rung, strictly increasing
    eta: int  # each rung passes on the best 1/eta of its candidates
    keep: int  # candidates after the last rung (adjusted p over them; the best is confirmed)
    trials: int  # candidates at rung 0

    def counts(self, trials: int | None = None) -> list[int]:
        """Candidates measured per rung."""
        c = [self.trials if trials is None else trials]
        for _ in self.rungs[1:]:
            c.append(min(c[-1], max(self.keep, math.ceil(c[-1] / self.eta))))
        return c


def _ints(v: Any) -> list | None:
    try:
        values = list(v)
    except TypeError:
        return None
    return values if values and all(isinstance(x, int) and not isinstance(x, bool) for x in values) else None


def schedule(cfg: DictConfig, trials: int, keep: int, dev_items: int) -> Schedule:
    """The rung schedule, every mistake named by its key before any server is asked anything."""
    rungs = _ints(cfg.search.get("rungs"))
    if rungs is None or rungs[0] < 1:
        raise ConfigError(f"search.rungs must be a list of positive integers (dev items per rung), "
                          f"got {cfg.search.get('rungs')!r}")
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise ConfigError(f"search.rungs must increase strictly (each rung measures more items), got {rungs}")
    if rungs[-1] > dev_items:
        raise ConfigError(f"search.rungs: the last rung needs {rungs[-1]} dev items; the dev split has "
                          f"{dev_items} (raise dataset.n or lower the rungs)")
    eta = cfg.search.get("eta")
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ConfigError(f"search.eta must be an integer >= 2, got {eta!r}")
    return Schedule(tuple(rungs), eta, keep, trials)


def objective(cfg: DictConfig) -> str:
    value = cfg.search.get("objective", "accuracy")
    if value not in OBJECTIVES:
        raise ConfigError(f"search.objective must be one of {', '.join(OBJECTIVES)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Measured:
    """One candidate at one rung: its paired comparison with the shared baseline."""

    hash: str
    trial: int
    rung: int
    items: int
    delta: float
    ci_low: float
    ci_high: float
    p: float
    verdict: str
    run_id: str
    loss_delta: float = math.nan  # auto: the same job's loss delta

    @property
    def score(self) -> tuple[float, float]:
        """Higher is better: the paired test's signed z (from its two-sided p and the delta's sign: the
        evidence of a gain against the baseline on these items; 0 when no item changed), then the delta;
        nothing scored: last. Not the interval's lower bound: with no discordant item there is no
        interval, and a candidate that changed nothing must not outrank a gain of 3 of 8 items."""
        if not math.isfinite(self.delta):
            return -math.inf, -math.inf
        if not math.isfinite(self.p) or self.delta == 0:
            return 0.0, self.delta
        return math.copysign(float(sps.norm.isf(max(self.p, 1e-300) / 2)), self.delta), self.delta

    def attrs(self) -> dict:
        return asdict(self)

    @classmethod
    def from_result(cls, result: LoggedOutput, patch_hash: str, trial: int, rung: int, items: int) -> Measured:
        m = result.metrics
        return cls(patch_hash, trial, rung, items, m.get(mlflow_keys.ACC_DELTA, math.nan), m.get(mlflow_keys.ACC_CI_LOW, math.nan),
                   m.get(mlflow_keys.ACC_CI_HIGH, math.nan), m.get(mlflow_keys.P_VALUE, math.nan),
                   str(result.output.summary.comparison.verdict), result.run_id, m.get(mlflow_keys.LOSS_DELTA, math.nan))


def best(measured: list[Measured], n: int) -> list[Measured]:
    """The n best distinct candidates by score (a repeated proposal counts once: its first trial)."""
    out: dict[str, Measured] = {}
    for m in sorted(measured, key=lambda m: (tuple(-x for x in m.score), m.trial)):
        out.setdefault(m.hash, m)
    return list(out.values())[:n]


class RungSearch:
    """Runs the schedule: rung 0 through the Optuna search (ask, accuracy job, tell), then each later
    rung over the best distinct candidates of the one before. Every finished measurement is stored in
    the Optuna study (trial or study user attributes), so a stopped study resumes where it stopped."""

    def __init__(self, search: Search, sched: Schedule, metric: str):
        self.search, self.schedule, self.metric = search, sched, metric

    def agreement(self) -> LossAccuracyAgreement | None:
        """objective=auto: loss and accuracy over rung 0's distinct candidates."""
        if self.metric != "both":
            return None
        first = best(self.measured(0), len(self.measured(0)))
        return agreement([m.loss_delta for m in first], [m.delta for m in first])

    def _promote(self, rung: int, n: int) -> list[Measured]:
        """The best n distinct of the rung below: by loss delta when auto found loss and accuracy agree
        on rung 0 (for rung 1), else by the paired accuracy comparison."""
        below = self.measured(rung - 1)
        agreed = self.agreement()
        if rung == 1 and agreed is not None and agreed.agree:
            out: dict[str, Measured] = {}
            for m in sorted(below, key=lambda m: (m.loss_delta if math.isfinite(m.loss_delta) else math.inf, m.trial)):
                out.setdefault(m.hash, m)
            return list(out.values())[:n]
        return best(below, n)

    def _job(self, patch: PatchSet | None, trial: int, rung: int, parent_id: str, phase: str = "search") -> Measured:
        items = self.schedule.rungs[rung]
        path = self.search.out / "candidates" / f"{patch.hash}.json" if patch is not None else None
        cfg = job_config(self.search.base, patch, path, metric=self.metric if rung == 0 and phase == "search" else "accuracy",
                         **{"dataset.limit": items, "reuse.enabled": True})
        if patch is None:
            cfg.patch = self.reference_patch
        result = run_job(cfg, extra_tags=nested(parent_id, {mlflow_keys.TAG_STUDY_PHASE: phase, mlflow_keys.TAG_STUDY_TRIAL: str(trial),
                                                            mlflow_keys.TAG_STUDY_RUNG: str(rung)}),
                         out_dir=self.search.out / f"rung{rung}", parent_id=parent_id)
        return Measured.from_result(result, patch.hash if patch is not None else "reference", trial, rung, items)

    def first(self, trial: optuna.trial.Trial, patch: PatchSet, parent_id: str) -> tuple[float, str]:
        """Rung 0 of one trial (Search.run's measure): Optuna is told the paired test's signed z."""
        m = self._job(patch, trial.number, 0, parent_id)
        trial.set_user_attr("rung0", m.attrs())
        return m.score[0], m.run_id  # -inf (nothing scored): the trial fails

    def measured(self, rung: int) -> list[Measured]:
        if rung == 0:
            return [Measured(**t.user_attrs["rung0"]) for t in self.search.completed() if "rung0" in t.user_attrs]
        prefix = f"rung{rung}:"
        return [Measured(**v) for k, v in self.search.study.user_attrs.items() if k.startswith(prefix)]

    def pending(self) -> list[int]:
        """Candidates still to measure per rung from 1 on (what a resumed study still owes)."""
        counts = self.schedule.counts()
        return [max(0, counts[r] - len(self.measured(r))) for r in range(1, len(self.schedule.rungs))]

    def later_rungs(self, parent_id: str) -> list[Measured]:
        """Rungs 1.. over the best distinct candidates; the `keep` best of the last rung."""
        counts = self.schedule.counts()
        for r in range(1, len(self.schedule.rungs)):
            done = {m.hash for m in self.measured(r)}
            for m in self._promote(r, counts[r]):
                if m.hash in done:
                    continue
                patch = self.search.candidate(self._params(m.trial), m.trial)
                out = self._job(patch, m.trial, r, parent_id)
                self.search.study.set_user_attr(f"rung{r}:{m.hash}", out.attrs())
                log.info("rung %d (%d items): trial %d delta %+.3f [%+.3f, %+.3f]", r, out.items, m.trial,
                         out.delta, out.ci_low, out.ci_high)
        return best(self.measured(len(self.schedule.rungs) - 1), self.schedule.keep)

    def _params(self, number: int) -> dict:
        return next(t.params for t in self.search.completed() if t.number == number)

    reference_patch = None  # the configured patch (a DictConfig), measured at the last rung as the bar to beat

    def reference(self, parent_id: str) -> Measured | None:
        attrs = self.search.study.user_attrs
        if "reference_rung" in attrs:
            return Measured(**attrs["reference_rung"])
        if self.reference_patch is None or self.reference_patch.get("name") == "none":
            return None
        try:
            m = self._job(None, -1, len(self.schedule.rungs) - 1, parent_id, phase="reference")
        except PatchError as e:  # e.g. a server with no suggestions: the search still runs, with no bar
            log.warning("the configured patch could not be measured as the reference: %s", e)
            return None
        self.search.study.set_user_attr("reference_rung", m.attrs())
        return m
