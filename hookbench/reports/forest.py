"""forest.png: the run's answer in one picture, the first a report shows.

One row per comparison against the baseline, on one delta axis: the target (patched − baseline) with
its (1−α) interval, the prompting arm (prompt − baseline) where there is one, and each guard with the
(1−2α) interval that decides it and its margin drawn at −margin (the guard holds when that interval's
lower end, its one-sided bound, lies above the line). Colours follow the verdicts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hookbench.base.outcomes import GuardVerdict
from hookbench.evaluation.results import Summary
from hookbench.reports.formatting import fmt_comparison_delta, fmt_delta, fmt_level, is_nan
from hookbench.reports.plots import NEUTRAL_COLOR, verdict_color

if TYPE_CHECKING:
    from hookbench.evaluation.guards import GuardResult
    from hookbench.evaluation.prompting import PromptResult
    from hookbench.stats import Comparison

GUARD_COLORS: dict[str, str] = {GuardVerdict.NON_INFERIOR: "tab:green", GuardVerdict.HURTS: "tab:red"}
MARGIN_COLOR = "tab:red"


@dataclass(frozen=True)
class Row:
    """One line of the plot: a delta with its interval, what it is called, its colour and words."""

    label: str
    delta: float
    low: float
    high: float
    color: str
    words: str
    margin: float | None = None  # a guard's: drawn at −margin


def _comparison_row(label: str, c: Comparison, color: str, words: str) -> Row:
    delta = fmt_comparison_delta(c)
    return Row(label, c.delta, c.ci_low, c.ci_high, color, delta if words in delta else f"{delta} {words}")


def forest_rows(summary: Summary, guards: list[GuardResult] | None = None, prompt: PromptResult | None = None,
                shown: tuple[str, str] | None = None) -> list[Row]:
    """Target first, then the prompting arm, then the guards. `shown` = (verdict to colour by, its words)
    as plot_accuracy takes it (a sweep's neutral or adjusted verdict)."""
    c = summary.comparison
    verdict, words = shown or (c.verdict, c.verdict)
    rows = [_comparison_row("target: patched − baseline", c, verdict_color(verdict) if verdict else NEUTRAL_COLOR,
                            words)]
    if prompt is not None:
        v = prompt.vs_baseline
        rows.append(_comparison_row("prompting arm: prompt − baseline", v, verdict_color(v.verdict), v.verdict))
    for g in guards or []:  # the interval that decides a guard: (1 − 2α), its lower end against −margin
        ni = g.ni
        rows.append(Row(f"guard {g.name}", ni.delta, ni.ci_low, ni.ci_high, GUARD_COLORS.get(g.verdict, NEUTRAL_COLOR),
                        f"{fmt_delta(ni.delta, ni.ci_low, ni.ci_high)} ({fmt_level(2 * ni.alpha)}) {g.verdict} "
                        f"(margin {g.margin:g})", margin=g.margin))
    return rows


def _draw(ax: Axes, y: int, row: Row, first_guard: bool) -> None:
    if is_nan(row.delta):
        ax.text(0, y, "  nothing scored", va="center", fontsize=8, color=NEUTRAL_COLOR)
        return
    has_interval = not (is_nan(row.low) or is_nan(row.high))
    xerr = [[row.delta - row.low], [row.high - row.delta]] if has_interval else None
    ax.errorbar([row.delta], [y], xerr=xerr, fmt="o", color=row.color, capsize=5, ms=7)
    if row.margin is not None:
        ax.plot([-row.margin] * 2, [y - 0.35, y + 0.35], color=MARGIN_COLOR, ls="--", lw=1.5,
                label="guard margin (−margin)" if first_guard else None)


def plot_forest(path: Path, summary: Summary, guards: list[GuardResult] | None = None,
                prompt: PromptResult | None = None, title: str | None = None,
                shown: tuple[str, str] | None = None) -> Path:
    """Every delta against the baseline on one axis, its words to the right of the plot."""
    rows = forest_rows(summary, guards, prompt, shown)
    fig = Figure(figsize=(9, 1.2 + 0.55 * len(rows)), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="black", lw=0.8)
    guard_rows = [y for y, r in enumerate(rows) if r.margin is not None]
    for y, row in enumerate(rows):
        _draw(ax, y, row, first_guard=bool(guard_rows) and y == guard_rows[0])
    values = [v for r in rows for v in (r.low, r.high, r.delta, *(() if r.margin is None else (-r.margin,))) if not is_nan(v)] or [-0.1, 0.1]
    lo, hi = min(*values, -0.05), max(*values, 0.05)
    pad = 0.1 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=9)
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(rows)), [r.words for r in rows], fontsize=8)
    for label, row in zip(right.get_yticklabels(), rows):
        label.set_color(row.color)
    alpha = summary.comparison.alpha
    ax.set_xlabel(f"accuracy delta against the baseline, {fmt_level(alpha)} CI" + (
        f"; guards: {fmt_level(2 * alpha)} CI, holding when it lies above −margin" if guards else ""))
    if guards:
        ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{title} — the answer" if title else "the answer", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
