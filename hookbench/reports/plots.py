"""The run's plots: accuracy per arm with the delta, and latency per arm.

Drawn with `matplotlib.figure.Figure` directly (no pyplot): no global figure state, no GUI backend,
safe to call from worker threads and in headless CI. Colours follow the verdict only.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from hookbench.base.mlflow_keys import ARMS
from hookbench.base.outcomes import Verdict
from hookbench.evaluation.results import ItemResult, Summary
from hookbench.reports.formatting import (
    fmt_batch_sizes,
    fmt_comparison_delta,
    fmt_level,
    fmt_num,
    fmt_seconds,
    is_nan,
    p_words,
)

ARM_COLORS = {"baseline": "#7f7f7f", "patched": "#1f77b4"}
VERDICT_COLORS: dict[str, str] = {Verdict.IMPROVES: "tab:green", Verdict.HURTS: "tab:red"}  # any other verdict is grey
NEUTRAL_COLOR = "tab:gray"


def _nan_to_zero(x: float) -> float:
    return 0.0 if is_nan(x) else x


def verdict_color(verdict: str | None) -> str:
    return VERDICT_COLORS.get(verdict or "", NEUTRAL_COLOR)


GUARD_HURT_COLOR = "tab:orange"  # the target's verdict stands, but a guard task was damaged


def verdict_hex(verdict: str | None, guard_hurt: bool = False) -> str:
    """The verdict's colour as MLflow's UI takes it (tag mlflow.runColor); orange when a guard is hurt."""
    return to_hex(GUARD_HURT_COLOR if guard_hurt else verdict_color(verdict))


def _accuracy_bars(ax, summary: Summary) -> None:
    accs = [summary.accuracy_baseline, summary.accuracy_patched]
    bars = ax.bar(ARMS, [_nan_to_zero(a) for a in accs], color=[ARM_COLORS[a] for a in ARMS])
    for bar, acc in zip(bars, accs):
        ax.text(bar.get_x() + bar.get_width() / 2, _nan_to_zero(acc) + 0.02, fmt_num(acc), ha="center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"accuracy (n = {summary.n_scored} paired / {summary.n_items} items)", fontsize=10)


def plot_accuracy(path: Path, summary: Summary, title: str | None = None,
                  shown: tuple[str, str] | None = None) -> Path:
    """Left: accuracy per arm. Right: paired delta with the (1−α) interval of its test and ±MDE,
    coloured by the verdict. `shown` = (verdict to colour by, its words) overrides the job's own
    test: a sweep's adjusted verdict, or a neutral one while the sweep is still running."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax_acc, ax_d = fig.subplots(1, 2, width_ratios=[2, 1])
    _accuracy_bars(ax_acc, summary)
    c = summary.comparison
    ax_d.axhline(0, color="black", lw=0.8)
    lo, hi = -0.05, 0.05
    if not is_nan(c.mde) and c.mde < 1:
        ax_d.axhspan(-c.mde, c.mde, color="0.9", zorder=0, label="±MDE (80% power)")
        lo, hi = -c.mde, c.mde
    if is_nan(c.delta):
        ax_d.text(0.5, 0.75, "no scored items", ha="center", va="center", transform=ax_d.transAxes)
        lo, hi = -1, 1
    else:
        verdict, words = shown or (c.verdict, c.verdict)
        color = verdict_color(verdict)
        no_interval = c.verdict == Verdict.NO_CHANGE_OBSERVED or is_nan(c.ci_low) or is_nan(c.ci_high)
        yerr = None if no_interval else [[c.delta - c.ci_low], [c.ci_high - c.delta]]
        ax_d.errorbar([0], [c.delta], yerr=yerr, fmt="o", color=color, capsize=8, ms=8)
        label = words if c.verdict == Verdict.NO_CHANGE_OBSERVED else f"{fmt_comparison_delta(c)}\n{words}"
        ax_d.annotate(label, (0, c.delta), xytext=(8, 0), textcoords="offset points", va="center",
                      fontsize=8, color=color)
        lo = min(lo, c.delta if no_interval else c.ci_low)
        hi = max(hi, c.delta if no_interval else c.ci_high)
    pad = max(0.02, 0.25 * (hi - lo))
    ax_d.set_ylim(lo - pad, hi + pad)
    ax_d.set_xlim(-0.5, 2.2)
    ax_d.set_xticks([])
    ax_d.set_ylabel("patched − baseline")
    ax_d.set_title(f"delta, {fmt_level(c.alpha)} CI ({p_words(c.p_value)})", fontsize=10)
    if not is_nan(c.mde) and c.mde < 1:
        ax_d.legend(loc="lower right", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path


def plot_latency(path: Path, records: list[ItemResult], summary: Summary, title: str | None = None) -> Path:
    """Box plot per arm of the time per answer (its request's time / batch size), mean (▲) marked;
    only answers generated in this run count. The request mean / p95 are written beside each box."""
    fig = Figure(figsize=(6.5, 4.4), layout="constrained")
    ax = fig.subplots()
    data = [[r.arm(a).latency_s for r in records if r.arm(a).latency_s is not None] for a in ARMS]
    positions = list(range(1, len(ARMS) + 1))
    with_data = [(pos, d) for pos, d in zip(positions, data) if d]
    if with_data:
        ax.boxplot([d for _, d in with_data], positions=[p for p, _ in with_data], widths=0.5,
                   showfliers=True, flierprops={"markersize": 3})
    labels = []
    for pos, arm, d in zip(positions, ARMS, data):
        labels.append(f"{arm} (n={len(d)})")
        if not d:
            ax.text(pos, 0.5, "no latencies", ha="center", transform=ax.get_xaxis_transform())
            continue
        mean = summary.latency_per_item_s[arm]
        ax.plot([pos], [mean], marker="^", color=ARM_COLORS[arm], ms=9, ls="none",
                label="mean per answer" if pos == with_data[0][0] else None)
        # the numbers go under the axis, never over the boxes or the title
        labels[-1] += (f"\nper answer {fmt_seconds(mean)}\nrequest mean {fmt_seconds(summary.latency_request_mean_s[arm])}"
                       f"\nrequest p95 {fmt_seconds(summary.latency_request_p95_s[arm])}"
                       f"\nbatch sizes {fmt_batch_sizes(summary.batch_sizes[arm])}")
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_xlim(0.4, len(ARMS) + 0.6)
    ax.set_ylabel("seconds per answer (request / batch size)")
    values = sorted(x for d in data for x in d)
    if values and values[0] > 0 and values[-1] > 20 * values[len(values) // 2]:
        ax.set_yscale("log")  # a few timeouts would otherwise flatten every box to a line
        ax.set_ylabel("seconds per answer (log scale)")
    else:
        ax.set_ylim(bottom=0)
    if with_data:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(f"{title} — latency" if title else "latency", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
