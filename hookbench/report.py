"""Run report: the files a user opens to judge a patch — per-item data, a diff table, plots, report.md.

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

from hookbench.results import ARMS, ItemResult, Summary

NA = "n/a"
CELL_MAX = 200  # characters per diff-table cell before truncation
DIFF_MAX_ROWS = 200  # unchanged, unfailed rows beyond this are left out of the diff table
ARM_COLORS = {"baseline": "#7f7f7f", "patched": "#1f77b4"}


# ---------------------------------------------------------------- formatting


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_acc(x: float | None) -> str:
    """Accuracy as 0.xxx (xx.x%); n/a when nothing was scored."""
    return NA if _isnan(x) else f"{x:.3f} ({x:.1%})"


def fmt_signed(x: float | None) -> str:
    """A signed difference, so a reader sees the direction at a glance."""
    return NA if _isnan(x) else f"{x:+.3f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    return NA if _isnan(lo) or _isnan(hi) else f"[{lo:+.3f}, {hi:+.3f}]"


def fmt_delta(delta, lo, hi) -> str:
    """Delta with its CI: `+0.060 [-0.012, +0.132]`."""
    return f"{fmt_signed(delta)} {fmt_ci(lo, hi)}"


def fmt_seconds(x: float | None) -> str:
    return NA if _isnan(x) else f"{x:.2f} s"


def fmt_failures(count: int, kinds: dict[str, int]) -> str:
    """`3 (timeout: 2, empty: 1)` — the kind tells the user what to fix."""
    if not count:
        return "0"
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{count} ({detail})"


def md_cell(value, limit: int | None = CELL_MAX) -> str:
    """Make any value safe inside a markdown table cell: truncate, escape pipes, no raw newlines."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"  # truncate before escaping, so no escape is cut in half
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- per-item data


def write_items(out_dir: Path, records: list[ItemResult]) -> list[Path]:
    """items.jsonl is the lossless record (round-trips via ItemResult.from_flat); items.csv is for sheets."""
    rows = [r.flat() for r in records]
    jsonl = out_dir / "items.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    csv = out_dir / "items.csv"
    columns = list(ItemResult(id="", task=None, prompt="", query="", gold="").flat())
    pd.DataFrame(rows, columns=columns).to_csv(csv, index=False)
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
    """
    ordered = sorted(records, key=lambda r: _ORDER[change_kind(r)])  # stable: input order within group
    keep = [r for r in ordered if change_kind(r) != "same"]
    rest = [r for r in ordered if change_kind(r) == "same"]
    room = max(0, max_rows - len(keep))
    left_out = max(0, len(rest) - room)
    keep += rest[:room]
    counts = {k: sum(change_kind(r) == k for r in records) for k in _ORDER}
    header = ["id", "task", "prompt", "gold", "baseline answer", "patched answer", "baseline", "patched"]
    rows = [
        [r.id, r.task, r.prompt, r.gold, arm_answer(r.baseline), arm_answer(r.patched),
         arm_status(r.baseline), arm_status(r.patched)]
        for r in keep
    ]
    parts = [
        f"{counts['fixed']} fixed by the patch, {counts['broken']} broken by it, "
        f"{counts['failed']} with a failed generation, {counts['same']} unchanged "
        "(✓ correct, ✗ wrong, otherwise the failure kind).",
        "",
        md_table(header, rows),
    ]
    if left_out:
        parts += ["", f"_{left_out} unchanged rows left out; the full data is in items.jsonl._"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- plots


def _nan_to_zero(x: float) -> float:
    return 0.0 if _isnan(x) else x


def plot_accuracy(path: Path, summary: Summary, title: str | None = None) -> Path:
    """Left: accuracy per arm. Right: paired delta with its 95% CI — the number that decides."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax_acc, ax_d = fig.subplots(1, 2, width_ratios=[2, 1])
    accs = [summary.accuracy_baseline, summary.accuracy_patched]
    bars = ax_acc.bar(ARMS, [_nan_to_zero(a) for a in accs], color=[ARM_COLORS[a] for a in ARMS])
    for bar, acc in zip(bars, accs):
        label = NA if _isnan(acc) else f"{acc:.3f}"
        ax_acc.text(bar.get_x() + bar.get_width() / 2, _nan_to_zero(acc) + 0.02, label, ha="center")
    ax_acc.set_ylim(0, 1.1)
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title(f"accuracy (n = {summary.n_scored} paired / {summary.n_items} items)", fontsize=10)

    d = summary.delta
    ax_d.axhline(0, color="black", lw=0.8)
    if _isnan(d.delta):
        ax_d.text(0.5, 0.75, "no scored items", ha="center", va="center", transform=ax_d.transAxes)
        ax_d.set_ylim(-1, 1)
    else:
        yerr = None if _isnan(d.ci_low) else [[d.delta - d.ci_low], [d.ci_high - d.delta]]
        color = "tab:green" if not _isnan(d.ci_low) and d.ci_low > 0 else (
            "tab:red" if not _isnan(d.ci_high) and d.ci_high < 0 else "tab:blue")
        ax_d.errorbar([0], [d.delta], yerr=yerr, fmt="o", color=color, capsize=8, ms=8)
        ax_d.annotate(fmt_delta(d.delta, d.ci_low, d.ci_high), (0, d.delta), xytext=(8, 0),
                      textcoords="offset points", va="center", fontsize=8)
        lo = min(0.0, d.delta if _isnan(d.ci_low) else d.ci_low)
        hi = max(0.0, d.delta if _isnan(d.ci_high) else d.ci_high)
        pad = max(0.02, 0.25 * (hi - lo))
        ax_d.set_ylim(lo - pad, hi + pad)
    ax_d.set_xlim(-0.5, 2.2)
    ax_d.set_xticks([])
    ax_d.set_ylabel("patched − baseline")
    ax_d.set_title("delta, 95% CI", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_latency(path: Path, records: list[ItemResult], summary: Summary, title: str | None = None) -> Path:
    """Box plot per arm with mean (▲) and p95 (—) marked; only generations made in this run count."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
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
        mean, p95 = summary.latency_mean_s[arm], summary.latency_p95_s[arm]
        ax.plot([pos], [mean], marker="^", color=ARM_COLORS[arm], ms=9, ls="none",
                label="mean" if pos == with_data[0][0] else None)
        ax.hlines(p95, pos - 0.3, pos + 0.3, colors="tab:red", linestyles="--",
                  label="p95" if pos == with_data[0][0] else None)
        ax.annotate(f"mean {mean:.2f} s\np95 {p95:.2f} s", (pos + 0.3, p95), fontsize=8, va="bottom")
    ax.set_xticks(positions, [f"{a}\n(n={len(d)})" for a, d in zip(ARMS, data)])
    ax.set_xlim(0.4, len(ARMS) + 0.9)
    ax.set_ylabel("latency per generation (s)")
    values = sorted(x for d in data for x in d)
    if values and values[0] > 0 and values[-1] > 20 * values[len(values) // 2]:
        ax.set_yscale("log")  # a few timeouts would otherwise flatten every box to a line
        ax.set_ylabel("latency per generation (s, log scale)")
    if with_data:
        ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title} — latency" if title else "latency", fontsize=10)
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------- report.md


def summary_rows(summary: Summary) -> list[list[str]]:
    """metric/value rows shared by report.md; one place decides how the summary is worded."""
    d = summary.delta
    rows = [
        ["accuracy baseline", fmt_acc(summary.accuracy_baseline)],
        ["accuracy patched", fmt_acc(summary.accuracy_patched)],
        ["delta (patched − baseline) [95% CI]", fmt_delta(d.delta, d.ci_low, d.ci_high)],
        ["scored in both arms / items", f"{summary.n_scored} / {summary.n_items}"],
    ]
    for arm in ARMS:
        rows.append([f"failures {arm}", fmt_failures(summary.failures[arm], summary.failure_kinds[arm])])
    for arm in ARMS:
        rows.append([f"latency {arm} mean / p95",
                     f"{fmt_seconds(summary.latency_mean_s[arm])} / {fmt_seconds(summary.latency_p95_s[arm])}"])
    for arm in ARMS:
        if summary.reused[arm]:
            rows.append([f"{arm} generations reused from earlier runs", str(summary.reused[arm])])
    return rows


def per_task_rows(summary: Summary) -> list[list[str]]:
    return [
        [task, int(a["n"]), fmt_acc(a["baseline"]), fmt_acc(a["patched"]),
         fmt_signed(a["patched"] - a["baseline"])]
        for task, a in summary.per_task.items()
    ]


def render_report(records: list[ItemResult], summary: Summary, context: dict, diff_md: str) -> str:
    title = context.get("title") or "hookbench run report"
    d = summary.delta
    parts = [
        f"# {title}",
        "",
        f"**Delta (patched − baseline): {fmt_delta(d.delta, d.ci_low, d.ci_high)}** "
        f"— paired over {summary.n_scored} of {summary.n_items} items scored in both arms.",
        "",
        "## Run",
        "",
        md_table(["key", "value"], [[k, v] for k, v in context.items()]),
        "",
        "## Summary",
        "",
        md_table(["metric", "value"], summary_rows(summary)),
        "",
    ]
    if summary.per_task:
        parts += ["## Per task", "",
                  md_table(["task", "n", "baseline", "patched", "delta"], per_task_rows(summary)), ""]
    parts += [
        "## Plots", "", "![accuracy](accuracy.png)", "", "![latency](latency.png)", "",
        "## Items", "", "Full per-item data: [items.jsonl](items.jsonl), [items.csv](items.csv).", "",
        diff_md,
    ]
    return "\n".join(parts)


def write_run_report(out_dir: Path, records: list[ItemResult], summary: Summary, context: dict) -> list[Path]:
    """Write every report file of a run into out_dir; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_items(out_dir, records)
    diff_md = diff_table(records)
    diff_path = out_dir / "diff_table.md"
    diff_path.write_text(diff_md, encoding="utf-8")
    title = context.get("title")
    paths += [
        diff_path,
        plot_accuracy(out_dir / "accuracy.png", summary, title),
        plot_latency(out_dir / "latency.png", records, summary, title),
    ]
    report = out_dir / "report.md"
    report.write_text(render_report(records, summary, context, diff_md), encoding="utf-8")
    return paths + [report]


# ---------------------------------------------------------------- console


def summary_table(summary: Summary) -> Table:
    """The run's closing console output: arms side by side, delta coloured when its CI excludes 0."""
    d = summary.delta
    table = Table(title="hookbench summary", caption=(
        f"{summary.n_scored} / {summary.n_items} items scored in both arms; delta is patched − baseline, "
        "95% paired CI"))
    table.add_column("metric")
    for arm in ARMS:
        table.add_column(arm, justify="right")
    table.add_column("delta [95% CI]", justify="right")
    style = "green" if not _isnan(d.ci_low) and d.ci_low > 0 else (
        "red" if not _isnan(d.ci_high) and d.ci_high < 0 else "")
    table.add_row("accuracy", fmt_acc(summary.accuracy_baseline), fmt_acc(summary.accuracy_patched),
                  Text(fmt_delta(d.delta, d.ci_low, d.ci_high), style=style))
    table.add_row("n scored (paired) / items", "", "", f"{summary.n_scored} / {summary.n_items}")
    table.add_row("failures", *(fmt_failures(summary.failures[a], summary.failure_kinds[a]) for a in ARMS), "")
    table.add_row("latency mean", *(fmt_seconds(summary.latency_mean_s[a]) for a in ARMS), "")
    if any(summary.reused.values()):  # reused answers have no latency in this run
        table.add_row("reused from earlier runs", *(str(summary.reused[a]) for a in ARMS), "")
    return table
