"""Run report: the files a user opens to judge a patch — per-item data, a diff table, plots, report.md.

report.md says the verdict in words first; every number that decides it (test, interval, counts,
MDE) follows. Colours (console and plots) follow the verdict only, never the interval alone.

Plots (hookbench.reports.plots) are separate PNG artifacts, named in report.md but not embedded: MLflow
3.17's markdown preview renders a relative image link as its literal text `[alt](src)` and strips
`data:` URLs. report.html is the same report with the plots inline (hookbench.reports.html).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.table import Table
from rich.text import Text

from hookbench.base import mlflow_keys
from hookbench.base.mlflow_keys import ARMS
from hookbench.base.outcomes import GuardVerdict, Verdict
from hookbench.evaluation.record import RunRecord
from hookbench.evaluation.results import ItemResult, Summary
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
    plural,
    prompt_sentence,
)
from hookbench.reports.html import write_page
from hookbench.reports.plots import plot_accuracy, plot_latency

DIFF_MAX_ROWS = 200  # unchanged, unfailed rows beyond this are left out of the diff table
VERDICT_STYLES: dict[str, str] = {Verdict.IMPROVES: "green", Verdict.HURTS: "red"}  # console; any other verdict is uncoloured
BREAKS_GENERATION = "the patch breaks generation"


# ---------------------------------------------------------------- per-item data


# results first, so a preview (MLflow's artifact view shows the first columns) shows outcomes, not prompts
ITEMS_FIRST = ["id", "gold", "baseline_correct", "patched_correct", "baseline_extracted", "patched_extracted",
               "baseline_output", "patched_output", "baseline_error", "patched_error", "task", "draw"]


def item_columns() -> list[str]:
    return ITEMS_FIRST + [c for c in ItemResult.columns() if c not in ITEMS_FIRST]


def write_items(out_dir: Path, records: list[ItemResult]) -> list[Path]:
    """items.jsonl is the lossless record (round-trips via ItemResult.from_flat); items.csv is for sheets."""
    columns = item_columns()
    rows = [{c: flat.get(c) for c in columns} for flat in (r.flat() for r in records)]
    jsonl = out_dir / mlflow_keys.ITEMS_JSONL
    with jsonl.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    csv = out_dir / mlflow_keys.ITEMS_CSV
    pd.DataFrame(rows, columns=columns).to_csv(csv, index=False)
    return [jsonl, csv]


def write_guard_items(out_dir: Path, guards: list, guard_records: list[list[ItemResult]]) -> Path:
    """guard_items.jsonl: each guard's items as items.jsonl has them, with the guard's name first."""
    path = out_dir / mlflow_keys.GUARDS_JSONL
    with path.open("w", encoding="utf-8") as f:
        for g, records in zip(guards, guard_records):
            for r in records:
                f.write(json.dumps({"guard": g.name, **r.flat()}, ensure_ascii=False) + "\n")
    return path


# ---------------------------------------------------------------- diff table


def arm_status(arm) -> str:
    """✓ / ✗ when scored, else the failure kind (a failure is not a wrong answer), else '–'."""
    if arm.error:
        return arm.error
    if arm.correct is None:
        return "–"
    return "✓" if arm.correct else "✗"


def arm_answer(arm) -> str | None:
    """What the scorer read as the answer; the raw output when nothing was extracted."""
    return arm.extracted if arm.extracted is not None else arm.output


def change_kind(r: ItemResult) -> str:
    """fixed / broken (score changed, both scored), failed (any arm failed), changed (another wrong
    answer), or same (the answer did not change)."""
    if r.baseline.scored and r.patched.scored and r.baseline.correct != r.patched.correct:
        return "fixed" if r.patched.correct else "broken"
    if r.baseline.error or r.patched.error:
        return "failed"
    if arm_answer(r.baseline) != arm_answer(r.patched):
        return "changed"
    return "same"


_ORDER = {"fixed": 0, "broken": 1, "failed": 2, "changed": 3, "same": 4}


def diff_table(records: list[ItemResult], max_rows: int = DIFF_MAX_ROWS) -> str:
    """Markdown diff table: changed rows first (fixed, then broken), then failures, then the rest.

    All changed and failed rows are always kept; only unchanged rows are cut beyond max_rows.
    Rows are answers (one per draw); a draw column appears when there is more than one draw.
    """
    ordered = sorted(records, key=lambda r: _ORDER[change_kind(r)])  # stable: input order within group
    keep = [r for r in ordered if change_kind(r) != "same"]
    rest = [r for r in ordered if change_kind(r) == "same"]
    room = max(0, max_rows - len(keep))
    left_out = max(0, len(rest) - room)
    keep += rest[:room]
    counts = {k: sum(change_kind(r) == k for r in records) for k in _ORDER}
    draws = any(r.draw for r in records)
    header = ["id", *(["draw"] if draws else []), "task", "prompt", "gold", "baseline answer", "patched answer",
              "baseline", "patched"]
    rows = [
        [r.id, *([r.draw] if draws else []), r.task, r.prompt, r.gold, arm_answer(r.baseline),
         arm_answer(r.patched), arm_status(r.baseline), arm_status(r.patched)]
        for r in keep
    ]
    parts = [
        f"{plural(counts['fixed'], 'answer')} fixed by the patch, {counts['broken']} broken by it, "
        f"{counts['changed']} changed but still wrong, {counts['failed']} with a failed generation, "
        f"{counts['same']} unchanged (✓ correct, ✗ wrong, otherwise the failure kind).",
        "",
        md_table(header, rows),
    ]
    if left_out:
        parts += ["", f"_{left_out} unchanged rows left out; the full data is in {mlflow_keys.ITEMS_JSONL}._"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- report.md


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


def loss_lines(summary: Summary) -> list[str]:
    """The gold-answer loss comparison; lower is better, so `Verdict.IMPROVES` means the loss went down."""
    c = summary.loss
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


def record_rows(record: RunRecord | dict) -> list[list]:
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


def guard_lines(guards: list, second: str = "patched") -> list[str]:
    """The guards section: one row per guard, the interval beside each word being the one that decides it
    (`second`: the arm compared with the baseline)."""
    rows = [[g.name, g.comparison.n, fmt_acc(g.baseline), fmt_acc(g.patched), f"{g.margin:g}",
             f"{fmt_comparison_delta(g.comparison)}, {p_words(g.comparison.p_value)}",
             f"{fmt_num(g.ni.ci_low)} ({p_words(g.ni.p_value)})", guard_phrase(g)] for g in guards]
    alpha = guards[0].ni.alpha
    return [md_table(["guard", "n", "baseline", second, "margin", f"delta [{fmt_level(alpha)} CI], two-sided p",
                      f"{fmt_level(2 * alpha)} lower bound (one-sided p at −margin)", "verdict"], rows), "",
            guard_rule(alpha) + f". Items: `{mlflow_keys.GUARDS_JSONL}`."]


def prompt_section(p, summary: Summary, guards: list) -> list[str]:
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


def render_report(records: list[ItemResult], summary: Summary, record: RunRecord | dict, title: str,
                  warnings: list[str], diff_md: str, lead: str | None = None, guards: list | None = None,
                  verdict_lead: str = "", prompt=None) -> str:
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
        parts += ["## Loss", "", *loss_lines(summary), ""]
    parts += ["## Failures", "", *failure_lines(summary), ""]
    parts += ["## Latency", "",
              "Per answer: its request's time divided by the request's batch size (answers generated in this "
              "run only). Per request: the time of each call to the server.", "",
              md_table(["arm", "per answer (mean)", "batch sizes", "per request (mean)", "per request (p95)"],
                       latency_rows(summary)), "",
              "## Plots", "", plots_sentence([mlflow_keys.ACCURACY_PNG, mlflow_keys.LATENCY_PNG]), "",
              "## Run", "", md_table(["key", "value"], record_rows(record)), "",
              "## Items", "", f"Full per-item data: `{mlflow_keys.ITEMS_JSONL}`, `{mlflow_keys.ITEMS_CSV}`.", "",
              diff_md]
    return "\n".join(parts)


def write_run_report(out_dir: Path, records: list[ItemResult], summary: Summary, record: RunRecord | dict,
                     title: str, warnings: list[str], in_sweep: bool = False, guards: list | None = None,
                     guard_records: list | None = None, verdict_lead: str = "", prompt=None,
                     prompt_records: list[ItemResult] | None = None) -> list[Path]:
    """Write every report file of a run into out_dir; return the paths written. Inside a sweep the
    verdict is shown neutral and labelled the own test until the sweep's correction rewrites it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_items(out_dir, records)
    diff_md = diff_table(records)
    diff_path = out_dir / mlflow_keys.DIFF_TABLE
    diff_path.write_text(diff_md, encoding="utf-8")
    paths += [
        diff_path,
        plot_accuracy(out_dir / mlflow_keys.ACCURACY_PNG, summary, title, shown=_sweep_shown(summary) if in_sweep else None),
        plot_latency(out_dir / mlflow_keys.LATENCY_PNG, records, summary, title),
    ]
    report = out_dir / mlflow_keys.REPORT_MD
    lead = f"{SWEEP_OWN_TEST}: {comparison_sentence(summary.comparison)}" if in_sweep else None
    text = render_report(records, summary, record, title, warnings, diff_md, lead, guards, verdict_lead, prompt)
    report.write_text(text, encoding="utf-8")
    if guards:
        paths.append(write_guard_items(out_dir, guards, guard_records or []))
    if prompt is not None:
        path = out_dir / mlflow_keys.PROMPT_JSONL
        path.write_text("".join(json.dumps(r.flat(), ensure_ascii=False) + "\n" for r in prompt_records or []),
                        encoding="utf-8")
        paths.append(path)
    page = write_page(out_dir / mlflow_keys.REPORT_HTML, title, text, [out_dir / mlflow_keys.ACCURACY_PNG, out_dir / mlflow_keys.LATENCY_PNG])
    return paths + [report, page]


def _sweep_shown(summary: Summary) -> tuple[str, str]:
    return "", f"{summary.comparison.verdict} ({SWEEP_OWN_TEST})"


# ---------------------------------------------------------------- console


def _verdict_text(text: str, verdict: str | None) -> Text:
    return Text(text, style=VERDICT_STYLES.get(verdict or "", ""))


def summary_table(summary: Summary, neutral: bool = False, guards: list | None = None, prompt=None) -> Table:
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
