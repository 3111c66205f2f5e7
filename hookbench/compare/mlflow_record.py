"""The record of a comparison beside hookbench's runs: a parent run (report.md, report.html, the JSON)
with one child per compared task and metric, under the same metric, tag and artifact names as a
job and a sweep (accuracy/delta, stats/p_adjusted, verdict, verdict_adjusted, guard/<task>/...)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import mlflow
from omegaconf import OmegaConf

from hookbench import __version__
from hookbench.base import mlflow_keys
from hookbench.base.paths import sqlite_path
from hookbench.compare.verdicts import Row, compared_rows, guard_rows
from hookbench.reports.formatting import CORRECTIONS, guard_tag
from hookbench.reports.html import write_page
from hookbench.reports.plots import verdict_hex
from hookbench.tracking import naming
from hookbench.tracking.store import configure, git_info

COMPARE_JSON = "compare.json"
PARAM_A, PARAM_B, PARAM_CORRECTION = "compare.a", "compare.b", "stats.correction"


def metric_key(text: str) -> str:
    """A task/metric as an MLflow metric-name part (lm-eval's `metric,filter` comma is not allowed there)."""
    return re.sub(r"[^\w.\- /]", "_", text)


def row_metrics(r: Row) -> dict[str, float]:
    """A child's metrics, named as a job's (a guard's as a job's guard); the parent has them all as
    <metric>/<task>/<metric of the log>."""
    c = r.comparison
    if r.ni is not None:
        ni = r.ni
        values = (r.baseline, r.patched, ni.delta, ni.ci_low, ni.ci_high, ni.p_value)
        m = {mlflow_keys.guard(metric_key(r.task), w): v for w, v in zip(mlflow_keys.GUARD_FIELDS, values)}
        m |= {mlflow_keys.guard(metric_key(r.task), "p_paired"): c.p_value, mlflow_keys.guard(metric_key(r.task), "n"): c.n}
    else:
        m = {mlflow_keys.ACC_BASELINE: r.baseline, mlflow_keys.ACC_PATCHED: r.patched, mlflow_keys.ACC_DELTA: c.delta,
             mlflow_keys.ACC_CI_LOW: c.ci_low, mlflow_keys.ACC_CI_HIGH: c.ci_high, mlflow_keys.P_VALUE: c.p_value,
             mlflow_keys.P_ADJUSTED: r.p_adjusted, mlflow_keys.MDE: c.mde}
    m |= {mlflow_keys.N_ITEMS: c.n, mlflow_keys.N_SCORED: c.n, mlflow_keys.N_FIXED: c.fixed, mlflow_keys.N_BROKEN: c.broken,
          mlflow_keys.N_CLUSTERS: c.n_clusters, mlflow_keys.N_DRAWS: c.draws}
    return {k: float(v) for k, v in m.items() if v == v}  # NaN left out, as a job does


def row_tags(r: Row, correction: str) -> dict[str, str]:
    c = r.comparison
    if r.ni is not None:
        result = f"guard {r.ni.verdict} (margin {r.ni.margin:g}): " + naming.result_text(
            r.ni.delta, r.ni.ci_low, r.ni.ci_high, r.ni.p_value, c.verdict, p_label="p_ni")
        return {mlflow_keys.TAG_VERDICT: c.verdict, mlflow_keys.TAG_GUARD_VERDICT: r.ni.verdict, mlflow_keys.TAG_RESULT: result,
                mlflow_keys.TAG_RUN_COLOR: verdict_hex(c.verdict, r.ni.verdict == "hurts")}
    words = CORRECTIONS.get(correction)
    result = naming.result_text(c.delta, c.ci_low, c.ci_high, r.p_adjusted, r.verdict_adjusted,
                                p_label="p_adj" if words else "p", after=words.short if words else None)
    return {mlflow_keys.TAG_VERDICT: c.verdict, mlflow_keys.TAG_VERDICT_ADJUSTED: r.verdict_adjusted,
            mlflow_keys.TAG_RESULT: result, mlflow_keys.TAG_RUN_COLOR: verdict_hex(r.verdict_adjusted)}


def _mlflow_cfg(uri: str, experiment: str):
    db = sqlite_path(uri)
    location = str(db.parent / "artifacts") if db is not None else None
    return OmegaConf.create({"tracking_uri": uri, "experiment": experiment, "artifact_location": location})


def log_comparison(uri: str, experiment: str, title: str, rows: list[Row], params: dict[str, str],
                   report_md: str, report_json: dict) -> str:
    """The parent run (its id returned) and its children, each FINISHED."""
    experiment_id = configure(_mlflow_cfg(uri, experiment))
    base = {mlflow_keys.TAG_VERSION: __version__, **git_info()}
    with mlflow.start_run(experiment_id=experiment_id, run_name=title,
                          tags={**base, mlflow_keys.TAG_NAME: title, mlflow_keys.TAG_NOTE: report_md}) as parent:
        mlflow.log_params(params)
        mlflow.set_tags(_parent_tags(rows, params[PARAM_CORRECTION]))
        mlflow.log_metrics({mlflow_keys.per_task(k, metric_key(r.key)): v for r in rows for k, v in row_metrics(r).items()})
        _log_reports(title, report_md, report_json)
        for r in rows:
            name = f"{title} · {r.name}"
            tags = {**base, mlflow_keys.TAG_PARENT: parent.info.run_id, mlflow_keys.TAG_NAME: name, **row_tags(r, params[PARAM_CORRECTION])}
            with mlflow.start_run(experiment_id=experiment_id, run_name=naming.with_result(name, tags[mlflow_keys.TAG_RESULT]),
                                  tags=tags, nested=True):
                mlflow.log_params(params)
                mlflow.log_metrics(row_metrics(r))
        return parent.info.run_id


def _parent_tags(rows: list[Row], correction: str) -> dict[str, str]:
    """One compared metric: its verdict tags on the parent too; guards: the guard_verdict a job carries."""
    tags: dict[str, str] = {}
    compared = compared_rows(rows)
    if len(compared) == 1:
        tags = {k: v for k, v in row_tags(compared[0], correction).items() if k != mlflow_keys.TAG_RUN_COLOR}
    if guard_rows(rows):
        tags[mlflow_keys.TAG_GUARD_VERDICT] = guard_tag(guard_rows(rows))
    return tags


def _log_reports(title: str, report_md: str, report_json: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        html = write_page(Path(tmp) / mlflow_keys.REPORT_HTML, title, report_md, [])
        mlflow.log_artifact(str(html))
    mlflow.log_text(report_md, mlflow_keys.REPORT_MD)
    mlflow.log_text(json.dumps(report_json, indent=2, ensure_ascii=False), COMPARE_JSON)
