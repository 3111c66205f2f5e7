"""How hookbench writes numbers and tables: one spelling for accuracy, deltas, p, MDE and n/a,
shared by the run report, the sweep summary and the confirmation table."""

from __future__ import annotations

import json
import math

from hookbench.stats import Comparison
from hookbench.vocabulary import Verdict

NA = "n/a"
CELL_MAX = 200  # characters per markdown table cell before truncation


def is_nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_acc(x: float | None) -> str:
    """Accuracy as 0.xxx (xx.x%); n/a when nothing was scored."""
    return NA if is_nan(x) else f"{x:.3f} ({x:.1%})"


def fmt_num(x: float | None, digits: int = 3) -> str:
    return NA if is_nan(x) else f"{x:.{digits}f}"


def fmt_signed(x: float | None) -> str:
    """A signed difference, so a reader sees the direction at a glance."""
    return NA if is_nan(x) else f"{x:+.3f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    return NA if is_nan(lo) or is_nan(hi) else f"[{lo:+.3f}, {hi:+.3f}]"


def fmt_delta(delta, lo, hi) -> str:
    """Delta with its CI: `+0.060 [-0.012, +0.132]`."""
    return f"{fmt_signed(delta)} {fmt_ci(lo, hi)}"


def fmt_p(p: float | None) -> str:
    return NA if is_nan(p) else ("< 0.001" if p < 0.001 else f"{p:.3g}")


def p_words(p: float | None) -> str:
    """`p = 0.0625`, `p < 0.001`, `p n/a`: for sentences."""
    return "p n/a" if is_nan(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3g}")


def fmt_mde(mde: float | None) -> str:
    """Smallest change the test detects with 80% power; ≥ 1 means no change in [0, 1] would be."""
    if is_nan(mde):
        return NA
    return f"±{mde:.3f}" if mde < 1 else "≥ ±1 (no change in [0, 1] is detectable)"


def fmt_seconds(x: float | None) -> str:
    return NA if is_nan(x) else f"{x:.2f} s"


def fmt_failures(count: int, kinds: dict[str, int]) -> str:
    """`3 (timeout: 2, empty: 1)` — the kind tells the user what to fix."""
    if not count:
        return "0"
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{count} ({detail})"


def fmt_comparison_delta(c: Comparison) -> str:
    """The delta cell: no zero-width interval when nothing changed, the words instead."""
    if c.verdict == Verdict.NO_CHANGE_OBSERVED:
        return f"{Verdict.NO_CHANGE_OBSERVED} (0 of {c.n} changed)"
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


def fmt_batch_sizes(sizes: list[int]) -> str:
    return ", ".join(str(s) for s in sizes) if sizes else NA


def fmt_metric(x: float | None) -> str:
    """Any logged metric in a comparison table (4 significant digits)."""
    return NA if is_nan(x) else f"{x:.4g}"
