"""What one job produced: JobOutput (its item results, summary, run record and loss screen; its words:
reports.formatting.job_headline) and, once logged by hookbench.job, LoggedOutput."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hookbench.base import mlflow_keys
from hookbench.evaluation.guards import GuardResult
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.patches import PatchSet
from hookbench.evaluation.prompting import PromptResult
from hookbench.evaluation.record import RunRecord, ScreenResult
from hookbench.evaluation.results import ItemResult, Summary
from hookbench.evaluation.settings import Settings


@dataclass
class JobOutput:
    items: list[ItemResult]
    summary: Summary
    patch: PatchSet
    run_record: RunRecord  # everything a reported number depends on
    dataset: Dataset
    settings: Settings
    phase_s: dict[str, float] = field(default_factory=dict)
    screen: ScreenResult | None = None  # when the loss screen ran
    guards: list[GuardResult] = field(default_factory=list)  # one per guard task, in the config's order
    guard_items: list[list[ItemResult]] = field(default_factory=list)  # the guards' items, in that order
    prompt: PromptResult | None = None  # the prompting arm's comparisons (compare.prompt)
    prompt_items: list[ItemResult] = field(default_factory=list)  # its answers (target, then guards), `patched` slot

    @property
    def screen_passed(self) -> bool:
        return self.screen is None or self.screen.passed

    def metrics(self) -> dict[str, float]:
        m = self.summary.metrics()
        r = self.run_record
        m[mlflow_keys.PATCH_HOOK_COUNT] = r.patch.hook_count or 0
        m[mlflow_keys.GENERATIONS] = r.requests.generations
        m[mlflow_keys.LOSS_REQUESTS] = r.requests.loss
        measured = [abs(d) for d in r.patch.probe_loss_delta or [] if d is not None]
        if measured:  # a probe whose loss could not be measured under the patch (NaN) is left out
            m[mlflow_keys.PATCH_PROBE_DELTA] = sum(measured) / len(measured)
        m |= {mlflow_keys.phase(k): v for k, v in self.phase_s.items()}
        for g in self.guards:
            values = (g.baseline, g.patched, g.ni.delta, g.ni.ci_low, g.ni.ci_high, g.ni.p_value)
            m |= {mlflow_keys.guard(g.name, w): v for w, v in zip(mlflow_keys.GUARD_FIELDS, values) if v == v}  # NaN left out
            if g.comparison.p_value == g.comparison.p_value:
                m[mlflow_keys.guard(g.name, "p_paired")] = g.comparison.p_value
            m[mlflow_keys.guard(g.name, "n")] = g.comparison.n  # items scored in both arms: what `plan` prices
            if g.prompting is not None:  # the prompting arm on this guard: prompt − baseline, non-inferiority
                q = g.prompting
                shown = {"accuracy": q.patched, "delta": q.ni.delta, "ci_low": q.ni.ci_low, "ci_high": q.ni.ci_high,
                         "p_value": q.ni.p_value}
                m |= {mlflow_keys.prompt_guard(g.name, w): v for w, v in shown.items()}
        if self.prompt is not None:
            m[mlflow_keys.prompt_arm("baseline", "accuracy")] = self.prompt.accuracy
            for vs, c in (("baseline", self.prompt.vs_baseline), ("patched", self.prompt.patch_vs_prompt)):
                shown = {"delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value}
                m |= {mlflow_keys.prompt_arm(vs, k): v for k, v in shown.items() if v == v}
        return {k: v for k, v in m.items() if v == v}

    def warnings(self) -> list[str]:
        """Failure shares over failures.warn_share, for the console and report.md."""
        out, s = [], self.summary
        for arm in mlflow_keys.ARMS:
            share = s.failure_share(arm)
            if share > self.settings.warn_share:
                kinds = ", ".join(f"{v} {k}" for k, v in sorted(s.failure_kinds[arm].items(), key=lambda kv: -kv[1]))
                out.append(f"{share:.0%} of {arm} answers failed ({kinds}); more than failures.warn_share="
                           f"{self.settings.warn_share:g}")
        return out


@dataclass
class LoggedOutput:
    """A job's output once logged: its run, the metrics logged, and where its report was written."""

    run_id: str
    metrics: dict
    output: JobOutput
    report_dir: Path

    def as_dict(self) -> dict:
        return {"status": "FINISHED", "run_id": self.run_id, **self.metrics}
