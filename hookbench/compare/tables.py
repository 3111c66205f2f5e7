"""What `compare` says: the verdict table (stdout and report.md), the guards, the tests behind each
row, what was left out; and the same as JSON for scripts. A is the baseline, B the patched arm:
every delta is B − A on the items both logs scored."""

from __future__ import annotations

import math
from dataclasses import asdict

from hookbench.compare.logs import Log
from hookbench.compare.pairing import Pairing, first_ids
from hookbench.compare.verdicts import Row, compared_rows, guard_rows
from hookbench.reports.formatting import (
    comparison_sentence,
    correction_name,
    fmt_ci,
    fmt_level,
    fmt_num,
    fmt_p,
    fmt_signed,
    guard_rule,
    guards_sentence,
    md_table,
)


def verdict_table(rows: list[Row], alpha: float, correction: str) -> str:
    words = correction_name(correction)
    header = ["task", "metric", "items", "A", "B", f"B − A [{fmt_level(alpha)} CI]", "p", f"p ({words})",
              f"verdict ({words})"]
    return md_table(header, [[r.task, r.metric, r.comparison.n, fmt_num(r.baseline), fmt_num(r.patched),
                              f"{fmt_signed(r.comparison.delta)} {fmt_ci(r.comparison.ci_low, r.comparison.ci_high)}",
                              fmt_p(r.comparison.p_value), fmt_p(r.p_adjusted), r.verdict_adjusted]
                             for r in compared_rows(rows)])


def guard_table(rows: list[Row], alpha: float) -> str:
    header = ["guard", "metric", "items", "A", "B", f"B − A [{fmt_level(2 * alpha)} CI]", "margin",
              "p (one-sided, δ ≤ −margin)", "verdict"]
    return md_table(header, [[r.task, r.metric, r.comparison.n, fmt_num(r.baseline), fmt_num(r.patched),
                              f"{fmt_signed(r.ni.delta)} {fmt_ci(r.ni.ci_low, r.ni.ci_high)}", f"{r.ni.margin:g}",
                              fmt_p(r.ni.p_value), r.ni.verdict]
                             for r in guard_rows(rows) if r.ni is not None])


def left_out(a: Log, b: Log, pairing: Pairing) -> list[str]:
    """What --intersect dropped and which metrics were not compared, one line each."""
    lines = []
    for log, only in ((a, pairing.only_a), (b, pairing.only_b)):
        for task, ids in only.items():
            lines.append(f"--intersect: {len(ids)} of task {task} only in {log.source} left out ({first_ids(ids)})"
                         if ids != ["(whole task)"] else f"--intersect: task {task} only in {log.source}, left out")
    lines += [f"not compared: {task} {metric}: {why}" for (task, metric), why in sorted(pairing.skipped.items())]
    return lines


def console_text(a: Log, b: Log, pairing: Pairing, rows: list[Row], alpha: float, correction: str) -> str:
    """The stdout of `compare`: the tables and the lines saying what was left out."""
    parts = [f"A: {a.source} ({a.kind})", f"B: {b.source} ({b.kind})", "B − A per task and metric, paired by item id:"]
    if compared_rows(rows):
        parts += ["", verdict_table(rows, alpha, correction)]
    if guard_rows(rows):
        parts += ["", guard_table(rows, alpha), "", guards_sentence(guard_rows(rows))]
    return "\n".join(parts + [""] + left_out(a, b, pairing)).rstrip() + "\n"


def markdown(a: Log, b: Log, pairing: Pairing, rows: list[Row], alpha: float, correction: str) -> str:
    """report.md: the sentence per row first, then the tables, the tests and what was left out."""
    lines = [f"# compare: {b.source} against {a.source}", "",
             f"A (baseline): `{a.source}` ({a.kind}); B (patched): `{b.source}` ({b.kind}). Every delta is B − A "
             "on the items both logs scored, paired by the log's own item id.", ""]
    lines += [f"- **{r.name}**: {comparison_sentence(r.comparison)}" for r in compared_rows(rows)]
    if guard_rows(rows):
        lines += ["", guards_sentence(guard_rows(rows))]
    if compared_rows(rows):
        lines += ["", f"## Verdicts ({correction_name(correction)} across {len(compared_rows(rows))} compared metrics)",
                  "", verdict_table(rows, alpha, correction)]
    if guard_rows(rows):
        lines += ["", "## Guards (non-inferiority)", "", guard_table(rows, alpha), "", guard_rule(alpha) + "."]
    lines += ["", "## Tests", ""]
    lines += [f"- {r.name}: {r.comparison.test}; interval {r.comparison.interval}" for r in rows]
    extra = left_out(a, b, pairing)
    if extra:
        lines += ["", "## Left out", ""] + [f"- {x}" for x in extra]
    return "\n".join(lines) + "\n"


def _plain(x: object) -> object:
    return None if isinstance(x, float) and math.isnan(x) else x


def as_json(a: Log, b: Log, pairing: Pairing, rows: list[Row], alpha: float, correction: str) -> dict:
    """Everything the tables show, as plain JSON (NaN as null)."""
    out = []
    for r in rows:
        c = asdict(r.comparison)
        row = {"task": r.task, "metric": r.metric, "baseline": r.baseline, "patched": r.patched,
               **{k: c[k] for k in ("n", "n_clusters", "draws", "fixed", "broken", "delta", "ci_low", "ci_high",
                                    "p_value", "verdict", "test", "interval", "higher_is_better")},
               "ci_level": 1 - alpha, "p_adjusted": r.p_adjusted, "verdict_adjusted": r.verdict_adjusted}
        if r.ni is not None:
            row["guard"] = {"margin": r.ni.margin, "ci_low": r.ni.ci_low, "ci_high": r.ni.ci_high,
                            "ci_level": 1 - 2 * alpha, "p_value": r.ni.p_value, "verdict": r.ni.verdict}
            del row["p_adjusted"], row["verdict_adjusted"]
        out.append({k: _plain(v) for k, v in row.items()})
    return {"a": a.source, "b": b.source, "alpha": alpha, "correction": correction, "rows": out,
            "left_out": left_out(a, b, pairing)}
