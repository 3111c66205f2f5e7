"""report.md and report.html: the run's report, the verdict in words first, then every number that
decides it (test, interval, counts, MDE). Colours (plots) follow the verdict only, never the interval alone.

This module writes every report file of a run: the item files (hookbench.reports.item_files), the diff
table (hookbench.reports.diff_table), the plots (hookbench.reports.plots) and the report itself; the
console table is hookbench.reports.console. Plots are separate PNG artifacts, named in report.md but not
embedded: MLflow 3.17's markdown preview renders a relative image link as its literal text `[alt](src)`
and strips `data:` URLs. report.html is the same report with the plots inline (hookbench.reports.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hookbench.base import mlflow_keys
from hookbench.base.mlflow_keys import ARMS
from hookbench.evaluation.record import RunRecord
from hookbench.evaluation.results import ItemResult, Summary
from hookbench.reports.diff_table import diff_table
from hookbench.reports.forest import plot_forest
from hookbench.reports.formatting import (
    SWEEP_OWN_TEST,
    comparison_sentence,
    fmt_acc,
    fmt_batch_sizes,
    fmt_comparison_delta,
    fmt_failures,
    fmt_level,
    fmt_mde,
    fmt_num,
    fmt_p,
    fmt_seconds,
    guard_phrase,
    guard_rule,
    guards_sentence,
    md_table,
    p_words,
    plots_sentence,
    prompt_sentence,
)
from hookbench.reports.html import write_page
from hookbench.reports.item_files import write_guard_items, write_items, write_prompt_items
from hookbench.reports.plots import plot_accuracy, plot_latency

if TYPE_CHECKING:
    from hookbench.evaluation.guards import GuardResult
    from hookbench.evaluation.prompting import PromptResult
    from hookbench.stats import Comparison

BREAKS_GENERATION = "the patch breaks generation"
PLOTS = (mlflow_keys.FOREST_PNG, mlflow_keys.ACCURACY_PNG, mlflow_keys.LATENCY_PNG)  # in the order report.html shows them


def result_rows(summary: Summary) -> list[list[str]]:
    """metric/value rows of the accuracy verdict."""
    c = summary.comparison
    one = c.draws <= 1
    rows = [
        ["accuracy baseline", fmt_acc(summary.accuracy_baseline)],
        ["accuracy patched", fmt_acc(summary.accuracy_patched)],
        [f"delta (patched − baseline) [{fmt_level(c.alpha)} CI]", fmt_comparison_delta(c)],
        ["p", fmt_p(c.p_value)],
        [f"verdict (α = {c.alpha:g})", c.verdict],
        ["minimum detectable effect (80% power)", fmt_mde(c.mde)],
        [f"items a change of ±{c.target_effect:g} needs (80% power)", str(c.items_needed or "n/a")],
        ["fixed (✗→✓)" if one else "fixed (higher under the patch)", str(c.fixed)],
        ["broken (✓→✗)" if one else "broken (lower under the patch)", str(c.broken)],
        ["right in both", str(c.both_right)],
        ["wrong in both", str(c.both_wrong)],
        ["scored in both arms / items", f"{summary.n_scored} / {summary.n_items}"],
        ["query clusters", str(c.n_clusters)],
    ]
    if c.draws > 1:
        rows.append(["draws per item and arm", str(c.draws)])
    if summary.skipped_items:
        rows.append(["items skipped (not run)", str(summary.skipped_items)])
    return rows


def reuse_lines(summary: Summary) -> list[str]:
    """Repeats within this run and answers reused from earlier runs are different things: say both."""
    lines = []
    if summary.repeats:
        lines.append(f"- {summary.repeats} items repeat a query of another item and were answered once "
                     "(their answers are copies, so they form one cluster with it).")
    for arm in ARMS:
        if summary.reused[arm]:
            lines.append(f"- {summary.reused[arm]} {arm} answers were reused from earlier runs (not generated now; "
                         "no latency in this run).")
    return lines


def failure_lines(summary: Summary) -> list[str]:
    w = summary.with_patch_failures
    lines = [md_table(["arm", "failed generations"],
                      [[arm, fmt_failures(summary.failures[arm], summary.failure_kinds[arm])] for arm in ARMS]), "",
             f"Patch-caused failures (the baseline answered, the patched generation failed): {summary.patch_caused}."]
    if summary.patch_caused:
        lines.append(f"Counting them as wrong answers: delta {fmt_comparison_delta(w)}, {p_words(w.p_value)}, "
                     f"{w.verdict} (over {w.n} items).")
    if summary.breaks_generation():
        lines += ["", f"**{BREAKS_GENERATION}: {summary.patch_caused} of {summary.n_draws} patched answers failed "
                      "only under the patch.**"]
    return lines


def loss_lines(summary: Summary, c: Comparison) -> list[str]:
    """The gold-answer loss comparison `c` (summary.loss); lower is better, so `Verdict.IMPROVES` means the loss went down."""
    return [
        f"Teacher-forced loss of the gold answer (**lower is better**): **{c.verdict}**.", "",
        md_table(["metric", "value"], [
            ["loss baseline", fmt_num(summary.loss_baseline, 4)],
            ["loss patched", fmt_num(summary.loss_patched, 4)],
            [f"delta (patched − baseline) [{fmt_level(c.alpha)} CI]", fmt_comparison_delta(c)],
            ["p", fmt_p(c.p_value)],
            ["minimum detectable effect (80% power)", fmt_mde(c.mde, bounded=False)],
            ["items with lower / higher loss under the patch", f"{c.broken} / {c.fixed}"],
            ["items / query clusters", f"{c.n} / {c.n_clusters}"],
            ["test", c.test],
            ["interval", c.interval],
        ]),
    ]


def per_task_rows(summary: Summary) -> list[list[str]]:
    return [
        [task, t["comparison"].n, fmt_acc(t["baseline"]), fmt_acc(t["patched"]),
         fmt_comparison_delta(t["comparison"]), fmt_p(t["comparison"].p_value), t["comparison"].verdict]
        for task, t in summary.per_task.items()
    ]


def latency_rows(summary: Summary) -> list[list[str]]:
    return [[arm, fmt_seconds(summary.latency_per_item_s[arm]), fmt_batch_sizes(summary.batch_sizes[arm]),
             fmt_seconds(summary.latency_request_mean_s[arm]), fmt_seconds(summary.latency_request_p95_s[arm])]
            for arm in ARMS]


def record_rows(record: RunRecord | dict[str, object]) -> list[list[object]]:
    """The run's settings as key/value rows (sections flattened one level)."""
    if isinstance(record, RunRecord):
        return [[k, v] for k, v in record.rows()]
    rows = []
    for key, value in record.items():
        if isinstance(value, dict):
            rows += [[f"{key}.{k}", v] for k, v in value.items()]
        elif value is not None:
            rows.append([key, value])
    return rows


def guard_lines(guards: list[GuardResult], second: str = "patched") -> list[str]:
    """The guards section: one row per guard, the interval beside each word being the one that decides it
    (`second`: the arm compared with the baseline)."""
    rows = [[g.name, g.comparison.n, fmt_acc(g.baseline), fmt_acc(g.patched), f"{g.margin:g}",
             f"{fmt_comparison_delta(g.comparison)}, {p_words(g.comparison.p_value)}",
             f"{fmt_num(g.ni.ci_low)} ({p_words(g.ni.p_value)})", guard_phrase(g)] for g in guards]
    alpha = guards[0].ni.alpha
    return [md_table(["guard", "n", "baseline", second, "margin", f"delta [{fmt_level(alpha)} CI], two-sided p",
                      f"{fmt_level(2 * alpha)} lower bound (one-sided p at −margin)", "verdict"], rows), "",
            guard_rule(alpha) + f". Items: `{mlflow_keys.GUARDS_JSONL}`."]


def prompt_section(p: PromptResult, summary: Summary, guards: list[GuardResult]) -> list[str]:
    """The prompting arm: three paired comparisons on the same items, each with the job's own test;
    then the arm on each guard, judged by the guards' rule."""
    prompted = [g.prompting for g in guards if g.prompting is not None]
    on_guards = ["", "The prompting arm on the guards (prompt − baseline, the guards' rule):", "",
                 *guard_lines(prompted, second="prompt")[:1]] if prompted else []
    rows = [["patched − baseline", fmt_acc(summary.accuracy_baseline), fmt_acc(summary.accuracy_patched),
             fmt_comparison_delta(summary.comparison), fmt_p(summary.comparison.p_value), summary.comparison.verdict],
            ["prompt − baseline", fmt_acc(summary.accuracy_baseline), fmt_acc(p.accuracy),
             fmt_comparison_delta(p.vs_baseline), fmt_p(p.vs_baseline.p_value), p.vs_baseline.verdict],
            ["patched − prompt", fmt_acc(p.accuracy), fmt_acc(summary.accuracy_patched),
             fmt_comparison_delta(p.patch_vs_prompt), fmt_p(p.patch_vs_prompt.p_value), p.patch_vs_prompt.verdict]]
    return [f"**{prompt_sentence(p)}**", "", f"Prompt change (`compare.prompt`): `{p.prompt}`", "",
            md_table(["comparison", "first", "second", f"delta [{fmt_level(summary.comparison.alpha)} CI]", "p",
                      "verdict"], rows), "",
            f"The prompting arm is the unpatched model with the prompt change; answers: `{mlflow_keys.PROMPT_JSONL}`.",
            *on_guards]


def render_report(records: list[ItemResult], summary: Summary, record: RunRecord | dict[str, object], title: str,
                  warnings: list[str], diff_md: str, lead: str | None = None,
                  guards: list[GuardResult] | None = None, verdict_lead: str = "",
                  prompt: PromptResult | None = None) -> str:
    """report.md; `lead` (a sweep's adjusted verdict, or the own-test label inside a sweep) goes first."""
    c = summary.comparison
    parts = [f"# {title or 'hookbench run report'}", "", *([f"**{verdict_lead}**", ""] if verdict_lead else []),
             f"**Accuracy: {lead or comparison_sentence(c)}**", ""]
    if guards:
        parts += [f"**{guards_sentence(guards)}**", ""]
    if lead:
        parts += [f"Own test: {comparison_sentence(c)}", ""]
    if summary.loss is not None:
        parts += [f"**Loss (lower is better): {summary.loss.verdict}** "
                  f"({fmt_comparison_delta(summary.loss)}, {p_words(summary.loss.p_value)})", ""]
    parts += [f"Test: {c.test}. {fmt_level(c.alpha)} interval: {c.interval}; it excludes 0 exactly when "
              f"p < α. Verdict at α = {c.alpha:g}: a change is called only when p < α.", ""]
    if warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    parts += ["## Result", "", md_table(["metric", "value"], result_rows(summary)), ""]
    reuse = reuse_lines(summary)
    if reuse:
        parts += [*reuse, ""]
    if summary.per_task:
        parts += ["## Per task", "",
                  md_table(["task", "n", "baseline", "patched", f"delta [{fmt_level(summary.comparison.alpha)} CI]",
                            "p", "verdict"],
                           per_task_rows(summary)), ""]
    if guards:
        parts += ["## Guards", "", *guard_lines(guards), ""]
    if prompt is not None:
        parts += ["## Prompting arm", "", *prompt_section(prompt, summary, guards or []), ""]
    if summary.loss is not None:
        parts += ["## Loss", "", *loss_lines(summary, summary.loss), ""]
    parts += ["## Failures", "", *failure_lines(summary), ""]
    parts += ["## Latency", "",
              "Per answer: its request's time divided by the request's batch size (answers generated in this "
              "run only). Per request: the time of each call to the server.", "",
              md_table(["arm", "per answer (mean)", "batch sizes", "per request (mean)", "per request (p95)"],
                       latency_rows(summary)), "",
              "## Plots", "", plots_sentence(list(PLOTS)), "",
              "## Run", "", md_table(["key", "value"], record_rows(record)), "",
              "## Items", "", f"Full per-item data: `{mlflow_keys.ITEMS_JSONL}`, `{mlflow_keys.ITEMS_CSV}`.", "",
              diff_md]
    return "\n".join(parts)


def write_run_report(out_dir: Path, records: list[ItemResult], summary: Summary, record: RunRecord | dict[str, object],
                     title: str, warnings: list[str], in_sweep: bool = False,
                     guards: list[GuardResult] | None = None, guard_records: list[list[ItemResult]] | None = None,
                     verdict_lead: str = "", prompt: PromptResult | None = None,
                     prompt_records: list[ItemResult] | None = None) -> list[Path]:
    """Write every report file of a run into out_dir; return the paths written. Inside a sweep the
    verdict is shown neutral and labelled the own test until the sweep's correction rewrites it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_items(out_dir, records)
    diff_md = diff_table(records)
    diff_path = out_dir / mlflow_keys.DIFF_TABLE
    diff_path.write_text(diff_md, encoding="utf-8")
    shown = _sweep_shown(summary) if in_sweep else None
    paths += [
        diff_path,
        plot_forest(out_dir / mlflow_keys.FOREST_PNG, summary, guards, prompt, title, shown),
        plot_accuracy(out_dir / mlflow_keys.ACCURACY_PNG, summary, title, shown=shown),
        plot_latency(out_dir / mlflow_keys.LATENCY_PNG, records, summary, title),
    ]
    report = out_dir / mlflow_keys.REPORT_MD
    lead = f"{SWEEP_OWN_TEST}: {comparison_sentence(summary.comparison)}" if in_sweep else None
    text = render_report(records, summary, record, title, warnings, diff_md, lead, guards, verdict_lead, prompt)
    report.write_text(text, encoding="utf-8")
    if guards:
        paths.append(write_guard_items(out_dir, guards, guard_records or []))
    if prompt is not None:
        paths.append(write_prompt_items(out_dir, prompt_records or []))
    page = write_page(out_dir / mlflow_keys.REPORT_HTML, title, text, [out_dir / n for n in PLOTS])
    return paths + [report, page]


def _sweep_shown(summary: Summary) -> tuple[str, str]:
    return "", f"{summary.comparison.verdict} ({SWEEP_OWN_TEST})"
