"""Item results of a run (`ItemResult`) and the summary numbers computed from them.

An item result is one draw of one item (`generation.samples=k` gives k results per item). The
statistics are computed per item (the mean over its draws) and clustered by the query text: items
that send identical text to the server are not independent evidence.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from hookbench.base import mlflow_keys
from hookbench.base.mlflow_keys import ARMS
from hookbench.base.outcomes import FailureKind

if TYPE_CHECKING:  # hookbench.stats (statsmodels, scipy) is loaded when a job is summarised, not before its first request
    from hookbench.stats import Comparison

INFRA_FAILURES = (FailureKind.API_ERROR, FailureKind.TIMEOUT)  # the server or network failed: missing data
# an answer that is empty or an error text while the baseline of the same item answered is the
# patch's doing (a patch that overflows to inf empties every answer): evidence, not missing data
GENERATION_FAILURES = (FailureKind.EMPTY, FailureKind.ERROR_TEXT, FailureKind.NO_ANSWER)


@dataclass
class ArmResult:
    """One generation of one item in one arm (baseline or patched), and its score."""

    output: str | None = None
    latency_s: float | None = None  # this answer's share of its request's time
    batch_size: int | None = None  # answers made by the request this one came from
    error: str | None = None  # a FailureKind
    error_detail: str | None = None
    correct: bool | None = None  # None when the generation failed or was not scored
    extracted: str | None = None  # what the scorer read as the answer
    source_run: str | None = None  # run id the generation was reused from, None if made in this run
    repeat_of: str | None = None  # id of the item in this run with the same query that was generated
    loss: float | None = None  # teacher-forced loss of the gold answer (draw 0 only)
    patch_caused: bool = False  # failed only under the patch (patched arm)
    score_kind: str | None = None  # the rule a mixed scorer (scorer=auto) graded it by: numeric | text

    @property
    def scored(self) -> bool:
        return self.error is None and self.correct is not None


@dataclass
class ItemResult:
    id: str
    task: str | None
    prompt: str
    query: str  # the exact text sent to the server
    gold: str
    draw: int = 0
    baseline: ArmResult = field(default_factory=ArmResult)
    patched: ArmResult = field(default_factory=ArmResult)

    ITEM_FIELDS = ("id", "task", "prompt", "query", "gold", "draw")

    def arm(self, name: str) -> ArmResult:
        return getattr(self, name)

    def flat(self) -> dict:
        """One flat row for JSONL/CSV: item fields, then `<arm>_<field>` for each arm."""
        row = {k: getattr(self, k) for k in self.ITEM_FIELDS}
        for arm in ARMS:
            for k, v in asdict(self.arm(arm)).items():
                row[f"{arm}_{k}"] = v
        return row

    @classmethod
    def from_flat(cls, row: dict) -> ItemResult:
        known = {f.name for f in fields(ArmResult)}
        arms: dict[str, Any] = {arm: ArmResult(**{k[len(arm) + 1:]: v for k, v in row.items()
                                  if k.startswith(arm + "_") and k[len(arm) + 1:] in known}) for arm in ARMS}
        item: dict[str, Any] = {k: row.get(k, 0 if k == "draw" else None) for k in cls.ITEM_FIELDS}
        return cls(**item, **arms)

    @staticmethod
    def columns() -> list[str]:
        return list(ItemResult(id="", task=None, prompt="", query="", gold="").flat())


@dataclass
class Summary:
    """The numbers a run reports. Accuracy is over items scored in BOTH arms (paired)."""

    n_items: int
    n_draws: int
    accuracy_baseline: float
    accuracy_patched: float
    comparison: Comparison  # the paired delta, its clustered interval, test and verdict
    with_patch_failures: Comparison  # the same with patch-caused failures counted as wrong
    patch_caused: int
    latency_per_item_s: dict[str, float]
    latency_request_mean_s: dict[str, float]
    latency_request_p95_s: dict[str, float]
    batch_sizes: dict[str, list[int]]
    failures: dict[str, int]  # per arm: count of failed generations
    failure_kinds: dict[str, dict[str, int]]  # per arm: kind -> count
    per_task: dict[str, dict]  # task -> {"baseline", "patched": accuracy, "comparison", "loss": compare_losses()}
    reused: dict[str, int]  # per arm: answers taken from earlier runs instead of generated
    repeats: int  # item results answered by another item of this run with the same query
    loss_baseline: float = math.nan
    loss_patched: float = math.nan
    loss: Comparison | None = None
    skipped_items: int = 0

    @property
    def n_scored(self) -> int:
        return self.comparison.n

    def failure_share(self, arm: str) -> float:
        return self.failures[arm] / self.n_draws if self.n_draws else 0.0

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of a job; names from hookbench.base.mlflow_keys."""
        c = self.comparison
        m = {mlflow_keys.ACC_BASELINE: self.accuracy_baseline, mlflow_keys.ACC_PATCHED: self.accuracy_patched,
             mlflow_keys.ACC_DELTA: c.delta, mlflow_keys.ACC_CI_LOW: c.ci_low, mlflow_keys.ACC_CI_HIGH: c.ci_high,
             mlflow_keys.ACC_DELTA_PATCH_FAILURES: self.with_patch_failures.delta,
             mlflow_keys.P_VALUE: c.p_value, mlflow_keys.MDE: c.mde, mlflow_keys.ITEMS_NEEDED: c.items_needed,
             mlflow_keys.N_SCORED: c.n, mlflow_keys.N_ITEMS: self.n_items, mlflow_keys.N_DRAWS: self.n_draws,
             mlflow_keys.N_FIXED: c.fixed, mlflow_keys.N_BROKEN: c.broken, mlflow_keys.N_CLUSTERS: c.n_clusters,
             mlflow_keys.N_SKIPPED_ITEMS: self.skipped_items, mlflow_keys.FAILURES_PATCH_CAUSED: self.patch_caused}
        for arm in ARMS:
            m[mlflow_keys.latency(arm, "per_item_mean")] = self.latency_per_item_s[arm]
            m[mlflow_keys.latency(arm, "request_mean")] = self.latency_request_mean_s[arm]
            m[mlflow_keys.latency(arm, "request_p95")] = self.latency_request_p95_s[arm]
            m[mlflow_keys.failures(arm)] = self.failures[arm]
            m[mlflow_keys.reused(arm)] = self.reused[arm]
        for task, t in self.per_task.items():
            m[mlflow_keys.per_task(mlflow_keys.ACC_BASELINE, task)] = t["baseline"]
            m[mlflow_keys.per_task(mlflow_keys.ACC_PATCHED, task)] = t["patched"]
            m[mlflow_keys.per_task(mlflow_keys.ACC_DELTA, task)] = t["comparison"].delta
            m[mlflow_keys.per_task(mlflow_keys.P_VALUE, task)] = t["comparison"].p_value
            if t.get("loss") is not None:
                m[mlflow_keys.per_task(mlflow_keys.LOSS_DELTA, task)] = t["loss"][2].delta
        if self.loss is not None:
            m |= {mlflow_keys.LOSS_BASELINE: self.loss_baseline, mlflow_keys.LOSS_PATCHED: self.loss_patched,
                  mlflow_keys.LOSS_DELTA: self.loss.delta, mlflow_keys.LOSS_CI_LOW: self.loss.ci_low,
                  mlflow_keys.LOSS_CI_HIGH: self.loss.ci_high, mlflow_keys.LOSS_P_VALUE: self.loss.p_value}
        return {k: float(v) for k, v in m.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}

    def problem(self) -> str | None:
        """Why this job measured nothing (it must then fail), with the likely fix; None when it did."""
        if self.n_draws == 0 or self.with_patch_failures.n > 0:
            return None
        parts = []
        for arm in ARMS:
            kinds = self.failure_kinds[arm]
            if kinds:
                detail = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
                parts.append(f"{arm}: {detail}")
        hint = ""
        if self.failure_kinds["baseline"].get(FailureKind.EMPTY) == self.n_draws:
            hint = (f"; all {self.n_draws} baseline answers were empty: the server may need a prompt template, "
                    "see model.prompt.template (and model.prompt.chat)")
        elif any(k in INFRA_FAILURES for arm in ARMS for k in self.failure_kinds[arm]):
            hint = "; the server failed to answer: check its log and model.server.timeout_s"
        return f"no item was scored in both arms ({'; '.join(parts) or 'nothing scored'}){hint}"

    def breaks_generation(self) -> bool:
        """Most patched answers failed only under the patch."""
        return self.n_draws > 0 and self.patch_caused > self.n_draws / 2


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


def mark_patch_caused(items: list[ItemResult]) -> None:
    """A patched answer that failed as a generation while the same draw's baseline answered."""
    for r in items:
        r.patched.patch_caused = (r.baseline.error is None and r.baseline.output is not None
                                  and r.patched.error in GENERATION_FAILURES)


def per_item(items: list[ItemResult], count_patch_failures: bool) -> tuple[list, list, list, list]:
    """(baseline, patched, cluster, item ids) per item: the mean over its draws scored in both arms."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    query: dict[str, str] = {}
    for r in items:
        b, p = r.baseline, r.patched
        if not b.scored:
            continue
        if p.scored:
            groups[r.id].append((float(b.correct), float(p.correct)))
        elif count_patch_failures and p.patch_caused:
            groups[r.id].append((float(b.correct), 0.0))
        query[r.id] = r.query
    ids = list(groups)
    return ([_mean(x for x, _ in groups[i]) for i in ids], [_mean(y for _, y in groups[i]) for i in ids],
            [query[i] for i in ids], ids)


def compare(items: list[ItemResult], draws: int, alpha: float, count_patch_failures: bool = False,
            target_effect: float | None = None) -> Comparison:
    from hookbench.stats import TARGET_EFFECT, compare_arms

    b, p, clusters, _ = per_item(items, count_patch_failures)
    target_effect = TARGET_EFFECT if target_effect is None else target_effect
    return compare_arms(b, p, clusters=clusters, draws=draws, alpha=alpha, target_effect=target_effect)


def compare_losses(items: list[ItemResult], alpha: float) -> tuple[float, float, Comparison] | None:
    """Mean gold-answer loss per arm and the paired comparison of the losses (lower is better)."""
    from hookbench.stats import compare_arms

    pairs = [(r.baseline.loss, r.patched.loss, r.query) for r in items
             if r.draw == 0 and r.baseline.loss is not None and r.patched.loss is not None]
    if not any(r.baseline.loss is not None for r in items):
        return None
    b, p, q = [x[0] for x in pairs], [x[1] for x in pairs], [x[2] for x in pairs]
    return _mean(b), _mean(p), compare_arms(b, p, clusters=q, alpha=alpha, higher_is_better=False)


def summarize(items: list[ItemResult], draws: int = 1, alpha: float = 0.05,
              request_latency_s: dict[str, list[float]] | None = None, skipped_items: int = 0,
              target_effect: float | None = None) -> Summary:
    from hookbench.stats import TARGET_EFFECT, compare_arms, p95

    target_effect = TARGET_EFFECT if target_effect is None else target_effect
    mark_patch_caused(items)
    b, p, clusters, ids = per_item(items, count_patch_failures=False)
    latency_per_item, req_mean, req_p95, batch_sizes, failures, kinds, reused = {}, {}, {}, {}, {}, {}, {}
    for arm in ARMS:
        made = [r.arm(arm) for r in items if r.arm(arm).latency_s is not None]
        latency_per_item[arm] = _mean(a.latency_s for a in made)
        requests = (request_latency_s or {}).get(arm, [])
        req_mean[arm], req_p95[arm] = _mean(requests), p95(requests)
        batch_sizes[arm] = sorted({a.batch_size for a in made if a.batch_size})
        kinds[arm] = dict(Counter(r.arm(arm).error for r in items if r.arm(arm).error))
        failures[arm] = sum(kinds[arm].values())
        reused[arm] = sum(r.arm(arm).source_run is not None for r in items)
    per_task = {}
    for task in sorted({r.task for r in items if r.task}):
        rs = [r for r in items if r.task == task]
        tb, tp, tc, _ = per_item(rs, count_patch_failures=False)
        per_task[task] = {"baseline": _mean(tb), "patched": _mean(tp),
                          "comparison": compare_arms(tb, tp, clusters=tc, draws=draws, alpha=alpha,
                                                     target_effect=target_effect),
                          "loss": compare_losses(rs, alpha)}
    losses = compare_losses(items, alpha)
    return Summary(
        n_items=len({r.id for r in items}), n_draws=len(items),
        accuracy_baseline=_mean(b), accuracy_patched=_mean(p),
        comparison=compare_arms(b, p, clusters=clusters, draws=draws, alpha=alpha, target_effect=target_effect),
        with_patch_failures=compare(items, draws, alpha, count_patch_failures=True, target_effect=target_effect),
        patch_caused=sum(r.patched.patch_caused for r in items),
        latency_per_item_s=latency_per_item, latency_request_mean_s=req_mean, latency_request_p95_s=req_p95,
        batch_sizes=batch_sizes, failures=failures, failure_kinds=kinds, per_task=per_task, reused=reused,
        repeats=sum(r.baseline.repeat_of is not None for r in items),
        loss_baseline=losses[0] if losses else math.nan, loss_patched=losses[1] if losses else math.nan,
        loss=losses[2] if losses else None, skipped_items=skipped_items,
    )
