"""Run report: the files a user opens to judge a patch — per-item data, a diff table, plots, report.md.

report.md says the verdict in words first; every number that decides it (test, interval, counts,
MDE) follows. Colours (console and plots) follow the verdict only, never the interval alone.

Plots are separate PNG artifacts, named in report.md but not embedded: MLflow 3.17's markdown
preview renders a relative image link as its literal text `[alt](src)` and strips `data:` URLs.
Plots are drawn with `matplotlib.figure.Figure` directly (no pyplot): no global figure state, no GUI
backend, safe to call from worker threads and in headless CI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from rich.table import Table
from rich.text import Text

from hookbench import names
from hookbench.names import ARMS
from hookbench.record import RunRecord
from hookbench.results import ItemResult, Summary
from hookbench.stats import Comparison

NA = "n/a"
CELL_MAX = 200  # characters per diff-table cell before truncation
DIFF_MAX_ROWS = 200  # unchanged, unfailed rows beyond this are left out of the diff table
ARM_COLORS = {"baseline": "#7f7f7f", "patched": "#1f77b4"}
VERDICT_STYLES = {"improves": "green", "hurts": "red"}  # console; any other verdict is uncoloured
VERDICT_COLORS = {"improves": "tab:green", "hurts": "tab:red"}  # plots; any other verdict is grey
NEUTRAL_COLOR = "tab:gray"
BREAKS_GENERATION = "the patch breaks generation"


# ---------------------------------------------------------------- formatting


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_acc(x: float | None) -> str:
    """Accuracy as 0.xxx (xx.x%); n/a when nothing was scored."""
    return NA if _isnan(x) else f"{x:.3f} ({x:.1%})"


def fmt_num(x: float | None, digits: int = 3) -> str:
    return NA if _isnan(x) else f"{x:.{digits}f}"


def fmt_signed(x: float | None) -> str:
    """A signed difference, so a reader sees the direction at a glance."""
    return NA if _isnan(x) else f"{x:+.3f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    return NA if _isnan(lo) or _isnan(hi) else f"[{lo:+.3f}, {hi:+.3f}]"


def fmt_delta(delta, lo, hi) -> str:
    """Delta with its CI: `+0.060 [-0.012, +0.132]`."""
    return f"{fmt_signed(delta)} {fmt_ci(lo, hi)}"


def fmt_p(p: float | None) -> str:
    return NA if _isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3g}")


def p_words(p: float | None) -> str:
    """`p = 0.0625`, `p < 0.001`, `p n/a`: for sentences."""
    return "p n/a" if _isnan(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3g}")


def fmt_mde(mde: float | None) -> str:
    """Smallest change the test detects with 80% power; ≥ 1 means no change in [0, 1] would be."""
    if _isnan(mde):
        return NA
    return f"±{mde:.3f}" if mde < 1 else "≥ ±1 (no change in [0, 1] is detectable)"


def fmt_seconds(x: float | None) -> str:
    return NA if _isnan(x) else f"{x:.2f} s"


def fmt_failures(count: int, kinds: dict[str, int]) -> str:
    """`3 (timeout: 2, empty: 1)` — the kind tells the user what to fix."""
    if not count:
        return "0"
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{count} ({detail})"


def fmt_comparison_delta(c: Comparison) -> str:
    """The delta cell: no zero-width interval when nothing changed, the words instead."""
    if c.verdict == "no change observed":
        return f"no change observed (0 of {c.n} changed)"
    return fmt_delta(c.delta, c.ci_low, c.ci_high)


def _no_nan(value):
    """NaN inside dicts/lists prints as n/a, not as JSON's NaN."""
    if isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def md_cell(value, limit: int | None = CELL_MAX) -> str:
    """Make any value safe inside a markdown table cell: truncate, escape pipes, no raw newlines."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, (dict, list)):
        value = json.dumps(_no_nan(value), ensure_ascii=False, sort_keys=True)
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"  # truncate before escaping, so no escape is cut in half
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plots_sentence(pngs: list[str], where: str = "this run") -> str:
    """Plots are named, not embedded: MLflow's markdown preview cannot show relative images."""
    return f"Plots: {', '.join(f'`{p}`' for p in pngs)} (artifacts of {where}: open them in the artifact list)."


# ---------------------------------------------------------------- per-item data


def write_items(out_dir: Path, records: list[ItemResult]) -> list[Path]:
    """items.jsonl is the lossless record (round-trips via ItemResult.from_flat); items.csv is for sheets."""
    rows = [r.flat() for r in records]
    jsonl = out_dir / names.ITEMS_JSONL
    with jsonl.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    csv = out_dir / names.ITEMS_CSV
    pd.DataFrame(rows, columns=ItemResult.columns()).to_csv(csv, index=False)
    return [jsonl, csv]


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
    """fixed / broken (score changed, both scored), failed (any arm failed), or same."""
    if r.baseline.scored and r.patched.scored and r.baseline.correct != r.patched.correct:
        return "fixed" if r.patched.correct else "broken"
    if r.baseline.error or r.patched.error:
        return "failed"
    return "same"


_ORDER = {"fixed": 0, "broken": 1, "failed": 2, "same": 3}


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
        f"{counts['fixed']} answers fixed by the patch, {counts['broken']} broken by it, "
        f"{counts['failed']} with a failed generation, {counts['same']} unchanged "
        "(✓ correct, ✗ wrong, otherwise the failure kind).",
        "",
        md_table(header, rows),
    ]
    if left_out:
        parts += ["", f"_{left_out} unchanged rows left out; the full data is in {names.ITEMS_JSONL}._"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- plots


def _nan_to_zero(x: float) -> float:
    return 0.0 if _isnan(x) else x


def verdict_color(verdict: str | None) -> str:
    return VERDICT_COLORS.get(verdict or "", NEUTRAL_COLOR)


def plot_accuracy(path: Path, summary: Summary, title: str | None = None) -> Path:
    """Left: accuracy per arm. Right: paired delta with its clustered 95% interval and ±MDE, coloured
    by the verdict."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax_acc, ax_d = fig.subplots(1, 2, width_ratios=[2, 1])
    accs = [summary.accuracy_baseline, summary.accuracy_patched]
    bars = ax_acc.bar(ARMS, [_nan_to_zero(a) for a in accs], color=[ARM_COLORS[a] for a in ARMS])
    for bar, acc in zip(bars, accs):
        ax_acc.text(bar.get_x() + bar.get_width() / 2, _nan_to_zero(acc) + 0.02, fmt_num(acc), ha="center")
    ax_acc.set_ylim(0, 1.1)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(f"accuracy (n = {summary.n_scored} paired / {summary.n_items} items)", fontsize=10)

    c = summary.comparison
    ax_d.axhline(0, color="black", lw=0.8)
    lo, hi = -0.05, 0.05
    if not _isnan(c.mde) and c.mde < 1:
        ax_d.axhspan(-c.mde, c.mde, color="0.9", zorder=0, label="±MDE (80% power)")
        lo, hi = -c.mde, c.mde
    if _isnan(c.delta):
        ax_d.text(0.5, 0.75, "no scored items", ha="center", va="center", transform=ax_d.transAxes)
        lo, hi = -1, 1
    else:
        color = verdict_color(c.verdict)
        no_interval = c.verdict == "no change observed" or _isnan(c.ci_low) or _isnan(c.ci_high)
        yerr = None if no_interval else [[c.delta - c.ci_low], [c.ci_high - c.delta]]
        ax_d.errorbar([0], [c.delta], yerr=yerr, fmt="o", color=color, capsize=8, ms=8)
        label = c.verdict if c.verdict == "no change observed" else f"{fmt_comparison_delta(c)}\n{c.verdict}"
        ax_d.annotate(label, (0, c.delta), xytext=(8, 0), textcoords="offset points", va="center",
                      fontsize=8, color=color)
        lo = min(lo, c.delta if no_interval else c.ci_low)
        hi = max(hi, c.delta if no_interval else c.ci_high)
    pad = max(0.02, 0.25 * (hi - lo))
    ax_d.set_ylim(lo - pad, hi + pad)
    ax_d.set_xlim(-0.5, 2.2)
    ax_d.set_xticks([])
    ax_d.set_ylabel("patched − baseline")
    ax_d.set_title(f"delta, 95% CI ({p_words(c.p_value)})", fontsize=10)
    if not _isnan(c.mde) and c.mde < 1:
        ax_d.legend(loc="lower right", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_latency(path: Path, records: list[ItemResult], summary: Summary, title: str | None = None) -> Path:
    """Box plot per arm of the time per answer (its request's time / batch size), mean (▲) marked;
    only answers generated in this run count. The request mean / p95 are written beside each box."""
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    data = [[r.arm(a).latency_s for r in records if r.arm(a).latency_s is not None] for a in ARMS]
    positions = list(range(1, len(ARMS) + 1))
    with_data = [(pos, d) for pos, d in zip(positions, data) if d]
    if with_data:
        ax.boxplot([d for _, d in with_data], positions=[p for p, _ in with_data], widths=0.5,
                   showfliers=True, flierprops={"markersize": 3})
    for pos, arm, d in zip(positions, ARMS, data):
        if not d:
            ax.text(pos, 0.5, "no latencies", ha="center", transform=ax.get_xaxis_transform())
            continue
        mean = summary.latency_per_item_s[arm]
        ax.plot([pos], [mean], marker="^", color=ARM_COLORS[arm], ms=9, ls="none",
                label="mean per answer" if pos == with_data[0][0] else None)
        ax.annotate(f"per answer {fmt_seconds(mean)}\nrequest mean {fmt_seconds(summary.latency_request_mean_s[arm])}"
                    f"\nrequest p95 {fmt_seconds(summary.latency_request_p95_s[arm])}"
                    f"\nbatch sizes {_batch_sizes(summary.batch_sizes[arm])}",
                    (pos + 0.3, mean), fontsize=7, va="bottom")
    ax.set_xticks(positions, [f"{a}\n(n={len(d)})" for a, d in zip(ARMS, data)])
    ax.set_xlim(0.4, len(ARMS) + 1.1)
    ax.set_ylabel("seconds per answer (request / batch size)")
    values = sorted(x for d in data for x in d)
    if values and values[0] > 0 and values[-1] > 20 * values[len(values) // 2]:
        ax.set_yscale("log")  # a few timeouts would otherwise flatten every box to a line
        ax.set_ylabel("seconds per answer (log scale)")
    if with_data:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title} — latency" if title else "latency", fontsize=10)
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------- report.md


def _batch_sizes(sizes: list[int]) -> str:
    return ", ".join(str(s) for s in sizes) if sizes else NA


def result_rows(summary: Summary) -> list[list[str]]:
    """metric/value rows of the accuracy verdict."""
    c = summary.comparison
    one = c.draws <= 1
    rows = [
        ["accuracy baseline", fmt_acc(summary.accuracy_baseline)],
        ["accuracy patched", fmt_acc(summary.accuracy_patched)],
        ["delta (patched − baseline) [95% CI]", fmt_comparison_delta(c)],
        ["p", fmt_p(c.p_value)],
        [f"verdict (α = {c.alpha:g})", c.verdict],
        ["minimum detectable effect (80% power)", fmt_mde(c.mde)],
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
    """The gold-answer loss comparison; lower is better, so "improves" means the loss went down."""
    c = summary.loss
    return [
        f"Teacher-forced loss of the gold answer (**lower is better**): **{c.verdict}**.", "",
        md_table(["metric", "value"], [
            ["loss baseline", fmt_num(summary.loss_baseline, 4)],
            ["loss patched", fmt_num(summary.loss_patched, 4)],
            ["delta (patched − baseline) [95% CI]", fmt_comparison_delta(c)],
            ["p", fmt_p(c.p_value)],
            ["minimum detectable effect (80% power)", fmt_mde(c.mde)],
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
    return [[arm, fmt_seconds(summary.latency_per_item_s[arm]), _batch_sizes(summary.batch_sizes[arm]),
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


def render_report(records: list[ItemResult], summary: Summary, record: RunRecord | dict, title: str,
                  warnings: list[str], diff_md: str) -> str:
    c = summary.comparison
    parts = [f"# {title or 'hookbench run report'}", "", f"**Accuracy: {c.sentence()}**", ""]
    if summary.loss is not None:
        parts += [f"**Loss (lower is better): {summary.loss.verdict}** "
                  f"({fmt_comparison_delta(summary.loss)}, {p_words(summary.loss.p_value)})", ""]
    parts += [f"Test: {c.test}. 95% interval clustered by query: {c.interval}. "
              f"Verdict at α = {c.alpha:g}: a change is called only when p < α.", ""]
    if warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    parts += ["## Result", "", md_table(["metric", "value"], result_rows(summary)), ""]
    reuse = reuse_lines(summary)
    if reuse:
        parts += [*reuse, ""]
    if summary.per_task:
        parts += ["## Per task", "",
                  md_table(["task", "n", "baseline", "patched", "delta [95% CI]", "p", "verdict"],
                           per_task_rows(summary)), ""]
    if summary.loss is not None:
        parts += ["## Loss", "", *loss_lines(summary), ""]
    parts += ["## Failures", "", *failure_lines(summary), ""]
    parts += ["## Latency", "",
              "Per answer: its request's time divided by the request's batch size (answers generated in this "
              "run only). Per request: the time of each call to the server.", "",
              md_table(["arm", "per answer (mean)", "batch sizes", "per request (mean)", "per request (p95)"],
                       latency_rows(summary)), "",
              "## Plots", "", plots_sentence([names.ACCURACY_PNG, names.LATENCY_PNG]), "",
              "## Run", "", md_table(["key", "value"], record_rows(record)), "",
              "## Items", "", f"Full per-item data: `{names.ITEMS_JSONL}`, `{names.ITEMS_CSV}`.", "",
              diff_md]
    return "\n".join(parts)


def write_run_report(out_dir: Path, records: list[ItemResult], summary: Summary, record: RunRecord | dict,
                     title: str, warnings: list[str]) -> list[Path]:
    """Write every report file of a run into out_dir; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_items(out_dir, records)
    diff_md = diff_table(records)
    diff_path = out_dir / names.DIFF_TABLE
    diff_path.write_text(diff_md, encoding="utf-8")
    paths += [
        diff_path,
        plot_accuracy(out_dir / names.ACCURACY_PNG, summary, title),
        plot_latency(out_dir / names.LATENCY_PNG, records, summary, title),
    ]
    report = out_dir / names.REPORT_MD
    report.write_text(render_report(records, summary, record, title, warnings, diff_md), encoding="utf-8")
    return paths + [report]


# ---------------------------------------------------------------- console


def _verdict_text(text: str, verdict: str | None) -> Text:
    return Text(text, style=VERDICT_STYLES.get(verdict or "", ""))


def summary_table(summary: Summary) -> Table:
    """The run's closing console output: arms side by side, the delta coloured by the verdict only
    (improves green, hurts red), the verdict sentence as the caption."""
    c = summary.comparison
    table = Table(title="hookbench summary", caption=f"accuracy {c.sentence()}")
    table.add_column("metric")
    for arm in ARMS:
        table.add_column(arm, justify="right")
    table.add_column("delta [95% CI]", justify="right")
    table.add_row("accuracy", fmt_acc(summary.accuracy_baseline), fmt_acc(summary.accuracy_patched),
                  _verdict_text(fmt_comparison_delta(c), c.verdict))
    table.add_row("verdict", "", "", _verdict_text(f"{c.verdict} ({p_words(c.p_value)})", c.verdict))
    table.add_row("fixed / broken", "", "", f"{c.fixed} / {c.broken}")
    table.add_row("smallest detectable change", "", "", fmt_mde(c.mde))
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
    return table
