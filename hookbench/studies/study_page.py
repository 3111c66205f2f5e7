"""A study's own report.html: the answer first (the pick, its delta on test with its interval, its guards),
then the rung chart (every candidate's paired delta per rung, the kept ones marked, the pick, its
confirmation on test, the reference patch), then the study's tables, each row linked to its run.

Links are relative to the study's output folder, where each rung job wrote its report
(`rung<r>/report-<run id[:8]>/report.html`), so the page reads from `outputs/…` with no MLflow and no
network; the run id beside each link finds the run in MLflow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hookbench.base import mlflow_keys
from hookbench.base.outcomes import GuardVerdict
from hookbench.reports.formatting import fmt_delta, fmt_level, md_table
from hookbench.reports.html import write_page
from hookbench.reports.plots import verdict_hex
from hookbench.studies import confirm as confirm_study
from hookbench.studies.rungs import Measured
from hookbench.studies.search_report import RANKING, kept_markdown
from hookbench.tracking import naming

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

RUNGS_PNG = "search_rungs.png"
KEPT_COLOR, OTHER_COLOR, PICK_COLOR, REFERENCE_COLOR, TEST_COLOR = "tab:green", "tab:gray", "tab:purple", "tab:blue", "black"


def report_link(m: Measured) -> str:
    """The rung job's own report, relative to the study's folder; its run id for MLflow."""
    return f"[report](rung{m.rung}/report-{m.run_id[:8]}/{mlflow_keys.REPORT_HTML}) `{m.run_id}`"


def _point(ax: Axes, x: float, m: Measured | tuple[float, float, float], color: str, marker: str = "o", size: float = 6,
           label: str | None = None) -> None:
    delta, low, high = (m.delta, m.ci_low, m.ci_high) if isinstance(m, Measured) else m
    if not math.isfinite(delta):
        return
    err = [[delta - low], [high - delta]] if math.isfinite(low) and math.isfinite(high) else None
    ax.errorbar([x], [delta], yerr=err, fmt=marker, color=color, ms=size, capsize=3, lw=1, label=label)


def plot_rungs(path: Path, measured: list[Measured], kept: set[str], pick: str | None,
               reference: Measured | None, test: tuple[float, float, float] | None) -> Path:
    """Per rung, every candidate's paired delta with its interval (sorted by delta, spread across the
    rung's column); green: kept after the last rung, purple star: the pick; then the pick on test."""
    rungs = sorted({m.rung for m in measured})
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="black", lw=0.8)
    labelled: set[str] = set()
    for r in rungs:
        ms = sorted((m for m in measured if m.rung == r), key=lambda m: m.delta if math.isfinite(m.delta) else -9)
        for i, m in enumerate(ms):
            x = r - 0.35 + 0.7 * (i + 0.5) / len(ms)
            kind = "pick" if m.hash == pick else "kept" if m.hash in kept and r == rungs[-1] else "candidate"
            color, marker, size = {"pick": (PICK_COLOR, "*", 12), "kept": (KEPT_COLOR, "o", 7),
                                   "candidate": (OTHER_COLOR, "o", 5)}[kind]
            _point(ax, x, m, color, marker, size, label=None if kind in labelled else kind)
            labelled.add(kind)
    if reference is not None:
        _point(ax, reference.rung + 0.42, reference, REFERENCE_COLOR, "D", 7, label="configured patch (reference)")
    ticks = [f"rung {r}\n{next(m.items for m in measured if m.rung == r)} dev items" for r in rungs]
    if test is not None:
        _point(ax, len(rungs), test, TEST_COLOR, "*", 14, label="the pick on test (confirmation)")
        ticks.append("test\n(confirmation)")
    ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
    ax.set_xlim(-0.6, len(ticks) - 0.4)
    ax.set_ylabel("accuracy delta (candidate − baseline)")
    ax.set_title("Candidates rung by rung: paired delta with its interval", fontsize=10)
    ax.legend(loc="best", fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def rung_table(measured: list[Measured], kept: set[str], pick: str | None, reference: Measured | None,
               alpha: float) -> str:
    """Every measurement, rung by rung, each row linked to its run."""
    def row(m: Measured, label: str) -> list[object]:
        mark = "pick" if m.hash == pick and label != "reference" else "kept" if m.hash in kept and label != "reference" else ""
        return [m.rung, m.items, label, m.hash, fmt_delta(m.delta, m.ci_low, m.ci_high), f"{m.p:.3g}", m.verdict,
                mark, report_link(m)]
    body = [row(m, str(m.trial)) for m in sorted(measured, key=lambda m: (m.rung, m.trial))]
    if reference is not None:
        body.append(row(reference, "reference"))
    return md_table(["rung", "items", "trial", "hash", f"paired delta [{fmt_level(alpha)} CI]", "p", "verdict", "",
                     "run"], body)


def write_study_page(out: Path, name: str, lead: list[str], sections: list[str], images: list[Path]) -> Path:
    """report.html in the study's folder: `lead` (the answer, the guards) before the pictures, then `sections`."""
    text = "\n".join([f"# study {name}", "", *(f"**{line}**\n" if i == 0 else f"{line}\n" for i, line in enumerate(lead)),
                      *sections])
    return write_page(out / mlflow_keys.REPORT_HTML, f"study {name}", text, images)


def rung_page(out: Path, name: str, alpha: float, lines: list[str], measured: list[Measured], rows: list[dict[str, Any]],
              test: Run | None, reference: Measured | None) -> list[Path]:
    """The study's report.html (the answer and guards, the rung chart, then every rung's table, linked) and the
    chart, search_rungs.png."""
    kept = {r["hash"] for r in rows}
    pick = test.data.params.get(mlflow_keys.PATCH_HASH) if test is not None else None
    confirmed = None
    if test is not None:
        tm = test.data.metrics
        confirmed = (tm.get(mlflow_keys.ACC_DELTA, math.nan), tm.get(mlflow_keys.ACC_CI_LOW, math.nan), tm.get(mlflow_keys.ACC_CI_HIGH, math.nan))
    chart = plot_rungs(out / RUNGS_PNG, measured, kept, pick, reference, confirmed)
    guards = test.data.tags.get(mlflow_keys.TAG_GUARD_VERDICT, "none run") if test is not None else "no confirmation"
    lead = [answer_text(test) if test is not None else lines[0],
            f"Guards on test: {guards}." + (f" Test run: `{test.info.run_id}`." if test is not None else ""),
            *[line for line in lines[int(test is None):] if line]]
    sections = ["## Search rungs", "", RANKING, "", rung_table(measured, kept, pick, reference, alpha), ""]
    if rows:
        sections += [kept_markdown(rows, alpha).replace("# Kept", "## Kept"), ""]
    return [write_study_page(out, name, lead, sections, [chart]), chart]


def answer_text(test: Run) -> str:
    """The study's answer in one line: confirmed or not, the pick, its rounded test delta with interval and p,
    its verdict, its guards."""
    m, tags = test.data.metrics, test.data.tags
    guards = tags.get(mlflow_keys.TAG_GUARD_VERDICT)
    result = naming.result_text(m.get(mlflow_keys.ACC_DELTA, math.nan), m.get(mlflow_keys.ACC_CI_LOW, math.nan),
                                m.get(mlflow_keys.ACC_CI_HIGH, math.nan), m.get(mlflow_keys.P_VALUE, math.nan),
                                tags.get(mlflow_keys.TAG_VERDICT))
    head = "confirmed" if confirm_study.is_confirmed(test) else "not confirmed"
    return f"{head}: patch {test.data.params.get(mlflow_keys.PATCH_HASH, '?')} on test {result}" + \
        (f" · guards {guards}" if guards else "")


def answer_row(client: MlflowClient, parent_id: str, name: str, test: Run | None) -> str | None:
    """The parent's row in MLflow's runs table says the study's answer: its name and tag `result`
    (answer_text), the test run's delta and interval as its metrics, the verdict's colour. The study's own
    jobs are nested under it (studies.search.nested)."""
    if test is None:
        return None
    m, tags = test.data.metrics, test.data.tags
    verdict, guards = tags.get(mlflow_keys.TAG_VERDICT), tags.get(mlflow_keys.TAG_GUARD_VERDICT)
    text = answer_text(test)
    client.update_run(parent_id, name=f"{text} (study {name})")
    for key, value in {mlflow_keys.TAG_RESULT: text, mlflow_keys.TAG_VERDICT: verdict, mlflow_keys.TAG_GUARD_VERDICT: guards,
                       mlflow_keys.TAG_RUN_COLOR: verdict_hex(verdict, bool(guards and guards.startswith(GuardVerdict.HURTS)))
                       }.items():
        if value:
            client.set_tag(parent_id, key, value)
    for key in (mlflow_keys.ACC_DELTA, mlflow_keys.ACC_CI_LOW, mlflow_keys.ACC_CI_HIGH):
        if not math.isnan(m.get(key, math.nan)):
            client.log_metric(parent_id, key, m[key])
    return text
