"""What one job produced (JobOutput): its records, summary, run record and loss screen (its words:
reports.formatting.job_headline). What it became once logged is job.LoggedJob."""

from __future__ import annotations

from dataclasses import dataclass, field

from hookbench import names
from hookbench.evaluation.guards import GuardResult
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.patches import PatchSet
from hookbench.evaluation.prompting import PromptResult
from hookbench.evaluation.record import RunRecord, ScreenResult
from hookbench.evaluation.results import ItemResult, Summary
from hookbench.evaluation.settings import Settings


@dataclass
class JobOutput:
    records: list[ItemResult]
    summary: Summary
    patch: PatchSet
    record: RunRecord  # everything a reported number depends on
    dataset: Dataset
    settings: Settings
    phase_s: dict[str, float] = field(default_factory=dict)
    screen: ScreenResult | None = None  # when the loss screen ran
    guards: list[GuardResult] = field(default_factory=list)  # one per guard task, in the config's order
    guard_records: list[list[ItemResult]] = field(default_factory=list)  # the guards' items, in that order
    prompt: PromptResult | None = None  # the prompting arm's comparisons (compare.prompt)
    prompt_records: list[ItemResult] = field(default_factory=list)  # its answers (target, then guards), `patched` slot

    @property
    def screen_passed(self) -> bool:
        return self.screen is None or self.screen.passed

    def metrics(self) -> dict[str, float]:
        m = self.summary.metrics()
        r = self.record
        m[names.PATCH_HOOK_COUNT] = r.patch.hook_count or 0
        m[names.GENERATIONS] = r.requests.generations
        m[names.LOSS_REQUESTS] = r.requests.loss
        measured = [abs(d) for d in r.patch.probe_loss_delta or [] if d is not None]
        if measured:  # a probe whose loss could not be measured under the patch (NaN) is left out
            m[names.PATCH_PROBE_DELTA] = sum(measured) / len(measured)
        m |= {names.phase(k): v for k, v in self.phase_s.items()}
        for g in self.guards:
            values = (g.baseline, g.patched, g.ni.delta, g.ni.ci_low, g.ni.ci_high, g.ni.p_value)
            m |= {names.guard(g.name, w): v for w, v in zip(names.GUARD_FIELDS, values) if v == v}  # NaN left out
            if g.comparison.p_value == g.comparison.p_value:
                m[names.guard(g.name, "p_paired")] = g.comparison.p_value
            m[names.guard(g.name, "n")] = g.comparison.n  # items scored in both arms: what `plan` prices
            if g.comparison.n:  # the share of its answers the patch changed, and its margin: what `plan` sizes it by
                m[names.guard(g.name, "discordance")] = (g.comparison.fixed + g.comparison.broken) / g.comparison.n
                m[names.guard(g.name, "margin")] = g.margin
            if g.prompting is not None:  # the prompting arm on this guard: prompt − baseline, non-inferiority
                q = g.prompting
                shown = {"accuracy": q.patched, "delta": q.ni.delta, "ci_low": q.ni.ci_low, "ci_high": q.ni.ci_high,
                         "p_value": q.ni.p_value}
                m |= {names.prompt_guard(g.name, w): v for w, v in shown.items()}
        if self.prompt is not None:
            m[names.prompt_arm("baseline", "accuracy")] = self.prompt.accuracy
            for vs, c in (("baseline", self.prompt.vs_baseline), ("patched", self.prompt.patch_vs_prompt)):
                shown = {"delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value}
                m |= {names.prompt_arm(vs, k): v for k, v in shown.items() if v == v}
        return {k: v for k, v in m.items() if v == v}

    def warnings(self) -> list[str]:
        """Failure shares over failures.warn_share, for the console and report.md."""
        out, s = [], self.summary
        for arm in names.ARMS:
            share = s.failure_share(arm)
            if share > self.settings.warn_share:
                kinds = ", ".join(f"{v} {k}" for k, v in sorted(s.failure_kinds[arm].items(), key=lambda kv: -kv[1]))
                out.append(f"{share:.0%} of {arm} answers failed ({kinds}); more than failures.warn_share="
                           f"{self.settings.warn_share:g}")
        return out
