"""Per-item records of a run and the summary numbers computed from them."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from hookbench.stats import PairedDelta, p95, paired_delta_ci

ARMS = ("baseline", "patched")


@dataclass
class ArmResult:
    """One generation of one item in one arm (baseline or patched), and its score."""

    output: str | None = None
    latency_s: float | None = None
    error: str | None = None  # failure kind: api_error, timeout, error_text, empty, no_modified, judge_error
    error_detail: str | None = None
    correct: bool | None = None  # None when the generation failed or was not scored
    extracted: str | None = None  # what the scorer read as the answer
    source_run: str | None = None  # run id the generation was reused from, None if made in this run

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
    baseline: ArmResult = field(default_factory=ArmResult)
    patched: ArmResult = field(default_factory=ArmResult)

    def arm(self, name: str) -> ArmResult:
        return getattr(self, name)

    def flat(self) -> dict:
        """One flat row for JSONL/CSV: item fields, then `<arm>_<field>` for each arm."""
        row = {k: getattr(self, k) for k in ("id", "task", "prompt", "query", "gold")}
        for arm in ARMS:
            for k, v in asdict(self.arm(arm)).items():
                row[f"{arm}_{k}"] = v
        return row

    @classmethod
    def from_flat(cls, row: dict) -> "ItemResult":
        arms = {
            arm: ArmResult(**{k[len(arm) + 1 :]: v for k, v in row.items() if k.startswith(arm + "_")})
            for arm in ARMS
        }
        return cls(**{k: row[k] for k in ("id", "task", "prompt", "query", "gold")}, **arms)


@dataclass
class Summary:
    """The numbers a run reports. Accuracy is over items scored in BOTH arms (paired)."""

    n_items: int
    n_scored: int
    accuracy_baseline: float
    accuracy_patched: float
    delta: PairedDelta
    latency_mean_s: dict[str, float]
    latency_p95_s: dict[str, float]
    failures: dict[str, int]  # per arm: count of failed generations
    failure_kinds: dict[str, dict[str, int]]  # per arm: kind -> count
    per_task: dict[str, dict[str, float]]  # task -> {"baseline": acc, "patched": acc, "n": n}
    reused: dict[str, int]  # per arm: answers taken from earlier runs instead of generated

    def metrics(self) -> dict[str, float]:
        """The MLflow metric names users compare runs by; keep them stable."""
        m = {
            "accuracy/baseline": self.accuracy_baseline,
            "accuracy/patched": self.accuracy_patched,
            "accuracy/delta": self.delta.delta,
            "accuracy/delta_ci_low": self.delta.ci_low,
            "accuracy/delta_ci_high": self.delta.ci_high,
            "n/scored": self.n_scored,
            "n/items": self.n_items,
        }
        for arm in ARMS:
            m[f"latency/{arm}_mean_s"] = self.latency_mean_s[arm]
            m[f"latency/{arm}_p95_s"] = self.latency_p95_s[arm]
            m[f"failures/{arm}"] = self.failures[arm]
            m[f"n/reused_{arm}"] = self.reused[arm]
        for task, accs in self.per_task.items():
            m[f"accuracy/baseline/{task}"] = accs["baseline"]
            m[f"accuracy/patched/{task}"] = accs["patched"]
        return {k: v for k, v in m.items() if not (isinstance(v, float) and math.isnan(v))}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def summarize(records: list[ItemResult]) -> Summary:
    paired = [r for r in records if r.baseline.scored and r.patched.scored]
    b = [float(r.baseline.correct) for r in paired]
    p = [float(r.patched.correct) for r in paired]
    latency_mean, latency_p95, failures, kinds, reused = {}, {}, {}, {}, {}
    for arm in ARMS:
        # latency only of generations made in this run: a reused answer has no latency here
        lat = [r.arm(arm).latency_s for r in records if r.arm(arm).latency_s is not None]
        latency_mean[arm], latency_p95[arm] = _mean(lat), p95(lat)
        kinds[arm] = dict(Counter(r.arm(arm).error for r in records if r.arm(arm).error))
        failures[arm] = sum(kinds[arm].values())
        reused[arm] = sum(r.arm(arm).source_run is not None for r in records)
    per_task: dict[str, dict[str, float]] = {}
    for task in sorted({r.task for r in paired if r.task}):
        rs = [r for r in paired if r.task == task]
        per_task[task] = {
            "baseline": _mean([float(r.baseline.correct) for r in rs]),
            "patched": _mean([float(r.patched.correct) for r in rs]),
            "n": len(rs),
        }
    return Summary(
        n_items=len(records),
        n_scored=len(paired),
        accuracy_baseline=_mean(b),
        accuracy_patched=_mean(p),
        delta=paired_delta_ci(b, p),
        latency_mean_s=latency_mean,
        latency_p95_s=latency_p95,
        failures=failures,
        failure_kinds=kinds,
        per_task=per_task,
        reused=reused,
    )
