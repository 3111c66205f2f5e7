"""The run's closing console table (rich): arms side by side, coloured by the verdict only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from hookbench.base.mlflow_keys import ARMS
from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.evaluation.results import Summary
from hookbench.reports.formatting import (
    SWEEP_OWN_TEST,
    comparison_sentence,
    fmt_acc,
    fmt_comparison_delta,
    fmt_failures,
    fmt_level,
    fmt_mde,
    fmt_num,
    fmt_seconds,
    guard_phrase,
    p_words,
)

if TYPE_CHECKING:
    from hookbench.evaluation.guards import GuardResult
    from hookbench.evaluation.prompting import PromptResult

VERDICT_STYLES: dict[str, str] = {Verdict.IMPROVES: "green", Verdict.HURTS: "red"}  # any other verdict is uncoloured


def _verdict_text(text: str, verdict: str | None) -> Text:
    return Text(text, style=VERDICT_STYLES.get(verdict or "", ""))


def summary_table(summary: Summary, neutral: bool = False, guards: list[GuardResult] | None = None,
                  prompt: PromptResult | None = None) -> Table:
    """The run's closing console output: arms side by side, the delta coloured by the verdict only
    (improves green, hurts red), the verdict sentence as the caption. `neutral` (a sweep's job): no
    colour, and the verdict labelled as the own test before the sweep's correction."""
    c = summary.comparison
    lead = f"{SWEEP_OWN_TEST}: " if neutral else ""
    table = Table(title="hookbench summary", caption=f"accuracy {lead}{comparison_sentence(c)}")
    shown = None if neutral else c.verdict
    table.add_column("metric")
    for arm in ARMS:
        table.add_column(arm, justify="right")
    table.add_column(f"delta [{fmt_level(c.alpha)} CI]", justify="right")
    table.add_row("accuracy", fmt_acc(summary.accuracy_baseline), fmt_acc(summary.accuracy_patched),
                  _verdict_text(fmt_comparison_delta(c), shown))
    table.add_row("verdict", "", "", _verdict_text(f"{c.verdict} ({p_words(c.p_value)})", shown))
    table.add_row("fixed / broken", "", "", f"{c.fixed} / {c.broken}")
    table.add_row("smallest detectable change", "", "", fmt_mde(c.mde))
    if c.items_needed:
        table.add_row(f"items a change of ±{c.target_effect:g} needs", "", "", str(c.items_needed))
    table.add_row("n scored (paired) / items", "", "", f"{summary.n_scored} / {summary.n_items}")
    if summary.loss is not None:
        loss = summary.loss
        table.add_row("loss (lower is better)", fmt_num(summary.loss_baseline, 4), fmt_num(summary.loss_patched, 4),
                      _verdict_text(f"{fmt_comparison_delta(loss)} {loss.verdict}", loss.verdict))
    table.add_row("failures", *(fmt_failures(summary.failures[a], summary.failure_kinds[a]) for a in ARMS),
                  f"{summary.patch_caused} patch-caused" if summary.patch_caused else "")
    table.add_row("latency per answer", *(fmt_seconds(summary.latency_per_item_s[a]) for a in ARMS), "")
    table.add_row("latency per request mean / p95", *(
        f"{fmt_seconds(summary.latency_request_mean_s[a])} / {fmt_seconds(summary.latency_request_p95_s[a])}"
        for a in ARMS), "")
    if summary.repeats:
        table.add_row("repeated queries (answered once)", "", "", str(summary.repeats))
    if any(summary.reused.values()):  # reused answers have no latency in this run
        table.add_row("reused from earlier runs", *(str(summary.reused[a]) for a in ARMS), "")
    if prompt is not None:
        c = prompt.patch_vs_prompt
        table.add_row("prompting arm: accuracy / prompt − baseline", "", fmt_acc(prompt.accuracy),
                      fmt_comparison_delta(prompt.vs_baseline))
        table.add_row("patched − prompt", "", "", _verdict_text(f"{fmt_comparison_delta(c)} {c.verdict}",
                                                                 None if neutral else c.verdict))
    for g in guards or []:
        table.add_row(f"guard {g.name} (margin {g.margin:g})", fmt_acc(g.baseline), fmt_acc(g.patched),
                      Text(guard_phrase(g).removeprefix(g.name + " "), style=GUARD_STYLES.get(g.verdict, "")))
    return table


GUARD_STYLES: dict[str, str] = {GuardVerdict.NON_INFERIOR: "green", GuardVerdict.HURTS: "red"}
