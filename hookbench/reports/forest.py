"""forest.png: the run's answer in one picture, the first a report shows.

One row per comparison against the baseline, on one delta axis: the target (patched − baseline) with
its (1−α) interval, the prompting arm (prompt − baseline) where there is one, and each guard with its
(1−α) interval and its margin drawn at −margin (the guard holds when its one-sided (1−2α) lower bound,
marked ▸, lies above that line). Colours follow the verdicts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from hookbench.evaluation.results import Summary
from hookbench.reports.formatting import fmt_comparison_delta, fmt_level, is_nan
from hookbench.reports.plots import NEUTRAL_COLOR, verdict_color
from hookbench.vocabulary import GuardVerdict

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
    bound: float | None = None  # a guard's one-sided lower bound


def _comparison_row(label: str, c, color: str, words: str) -> Row:
    delta = fmt_comparison_delta(c)
    return Row(label, c.delta, c.ci_low, c.ci_high, color, delta if words in delta else f"{delta} {words}")


def forest_rows(summary: Summary, guards: list | None = None, prompt=None,
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
    for g in guards or []:
        row = _comparison_row(f"guard {g.name}", g.comparison, GUARD_COLORS.get(g.verdict, NEUTRAL_COLOR),
                              f"{g.verdict} (margin {g.margin:g})")
        rows.append(Row(**{**row.__dict__, "margin": g.margin, "bound": g.ni.ci_low}))
    return rows


def _draw(ax, y: int, row: Row, first_guard: bool) -> None:
    if is_nan(row.delta):
        ax.text(0, y, "  nothing scored", va="center", fontsize=8, color=NEUTRAL_COLOR)
        return
    has_interval = not (is_nan(row.low) or is_nan(row.high))
    xerr = [[row.delta - row.low], [row.high - row.delta]] if has_interval else None
    ax.errorbar([row.delta], [y], xerr=xerr, fmt="o", color=row.color, capsize=5, ms=7)
    if row.margin is not None:
        ax.plot([-row.margin] * 2, [y - 0.35, y + 0.35], color=MARGIN_COLOR, ls="--", lw=1.5,
                label="guard margin (−margin)" if first_guard else None)
    if row.bound is not None and not is_nan(row.bound):
        ax.plot([row.bound], [y], marker=">", color=row.color, ms=6, ls="none")


def plot_forest(path: Path, summary: Summary, guards: list | None = None, prompt=None, title: str | None = None,
                shown: tuple[str, str] | None = None) -> Path:
    """Every delta against the baseline on one axis, its words to the right of the plot."""
    rows = forest_rows(summary, guards, prompt, shown)
    fig = Figure(figsize=(9, 1.2 + 0.55 * len(rows)), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="black", lw=0.8)
    guard_rows = [y for y, r in enumerate(rows) if r.margin is not None]
    for y, row in enumerate(rows):
        _draw(ax, y, row, first_guard=bool(guard_rows) and y == guard_rows[0])
    values = [v for r in rows for v in (r.low, r.high, r.delta, -(r.margin or 0)) if not is_nan(v)] or [-0.1, 0.1]
    lo, hi = min(*values, -0.05), max(*values, 0.05)
    pad = 0.1 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=9)
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(rows)), [r.words for r in rows], fontsize=8)
    for label, row in zip(right.get_yticklabels(), rows):
        label.set_color(row.color)
    ax.set_xlabel(f"accuracy delta against the baseline, {fmt_level(summary.comparison.alpha)} CI"
                  + ("; ▸ a guard's one-sided lower bound" if guards else ""))
    if guards:
        ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{title} — the answer" if title else "the answer", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
