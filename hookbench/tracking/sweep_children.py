"""After a sweep's correction, every child leads with the sweep's claim, not its own test.

While a job runs inside a sweep its description, report.md, console line and accuracy.png are
neutral and labelled "own test, before the sweep's correction". When the sweep ends, each finished
child's description and report.md are rewritten to lead with "adjusted verdict after <correction>
over K jobs, p_adj (own p)", accuracy.png is redrawn coloured by the adjusted verdict, and
report.html is made again from both.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.errors import HookbenchError
from hookbench.evaluation.config_schema import schema_default
from hookbench.evaluation.results import summarize
from hookbench.reports.formatting import SWEEP_OWN_TEST, adjusted_lead, correction_name
from hookbench.reports.html import write_page
from hookbench.reports.plots import plot_accuracy


def child_lead(row: dict, correction: str, jobs: int) -> str:
    return adjusted_lead(row[mlflow_keys.TAG_VERDICT_ADJUSTED], row[mlflow_keys.P_ADJUSTED], row.get(mlflow_keys.P_VALUE, math.nan),
                         correction_name(correction), jobs)


def lead_children(client: MlflowClient, rows: list[dict], correction: str, alpha: float) -> list[str]:
    """Rewrite every finished, measured child; return the console line of each."""
    lines = []
    for row in rows:
        if row["status"] != "FINISHED" or math.isnan(row.get(mlflow_keys.P_ADJUSTED, math.nan)):
            continue
        lead = child_lead(row, correction, len(rows))
        run = client.get_run(row["run_id"])
        with tempfile.TemporaryDirectory(prefix="hookbench-sweep-child-") as tmp:
            _rewrite_note(client, run, lead)
            _rewrite_report(client, run, lead, Path(tmp))
            _redraw_accuracy(client, run, row, lead, alpha, Path(tmp))
            _rewrite_page(client, run, Path(tmp))
        lines.append(f"{run.info.run_name} (run {run.info.run_id}): {lead}")
    return lines


def _rewrite_note(client: MlflowClient, run: Run, lead: str) -> None:
    note = run.data.tags.get(mlflow_keys.TAG_NOTE, "")
    title, _, rest = note.partition(": ")
    own = rest.removeprefix(f"{SWEEP_OWN_TEST}: ")
    client.set_tag(run.info.run_id, mlflow_keys.TAG_NOTE, f"{title}: {lead}; own test: {own}")


def _rewrite_report(client: MlflowClient, run: Run, lead: str, tmp: Path) -> None:
    try:
        text = tracking.download(client, run.info.run_id, mlflow_keys.REPORT_MD, tmp).read_text(encoding="utf-8")
    except HookbenchError:
        return
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("**Accuracy: "):
            lines[i] = f"**Accuracy: {lead}**"
            break
    client.log_text(run.info.run_id, "\n".join(lines) + "\n", mlflow_keys.REPORT_MD)


def _redraw_accuracy(client: MlflowClient, run: Run, row: dict, lead: str, alpha: float, tmp: Path) -> None:
    try:
        items = tracking.logged_items(client, run.info.run_id, tmp / "items")
    except HookbenchError:
        return
    draws = max(1, round(len(items) / max(1, len({r.id for r in items}))))
    target_effect = float(run.data.params.get(mlflow_keys.STATS_TARGET_EFFECT,
                                              schema_default(mlflow_keys.STATS_TARGET_EFFECT)))
    summary = summarize(items, draws, alpha, target_effect)
    path = plot_accuracy(tmp / mlflow_keys.ACCURACY_PNG, summary, run.info.run_name,
                         shown=(row[mlflow_keys.TAG_VERDICT_ADJUSTED], lead.replace(", p_adj", "\np_adj")))
    client.log_artifact(run.info.run_id, str(path))


def _rewrite_page(client: MlflowClient, run: Run, tmp: Path) -> None:
    """report.html again, from the rewritten report.md and the redrawn accuracy.png (as logged)."""
    rid, into = run.info.run_id, tmp / "page"
    try:
        text = tracking.download(client, rid, mlflow_keys.REPORT_MD, into).read_text(encoding="utf-8")
    except HookbenchError:
        return
    images = []
    for name in (mlflow_keys.FOREST_PNG, mlflow_keys.ACCURACY_PNG, mlflow_keys.LATENCY_PNG):
        try:
            images.append(tracking.download(client, rid, name, into))
        except HookbenchError:
            pass  # a plot the job did not log: the page goes without it
    title = text.splitlines()[0].removeprefix("# ") if text else run.info.run_name
    client.log_artifact(rid, str(write_page(into / mlflow_keys.REPORT_HTML, title, text, images)))
