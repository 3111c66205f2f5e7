"""What a user sees in MLflow's UI: a hookbench run's experiment page, rendered by headless Chromium.

MLflow 3.17 opens an experiment on the page of its global workflow type (the sidebar's
"GenAI" / "Model training" switch, carried in the URL as `workflowType` and remembered by the
browser; a fresh browser starts on GenAI's Overview, whatever the experiment's
`mlflow.experimentKind` tag says). The root with `workflowType=machine_learning` is what a user
sees after the one click on "Model training": a sweep's jobs each in a row of their own (they are
not MLflow-nested), beside the parent's. The link hookbench prints also names hookbench's shared
view (sorted by delta, with the result columns).
"""

import html
import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from PIL import Image, ImageColor

from hookbench.base import mlflow_keys
from hookbench.reports.plots import ARM_COLORS, verdict_hex
from hookbench.testing.browser import GENAI_OVERVIEW, RUNS_TABLE, rendered
from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import mlflow_server
from hookbench.tracking import naming


def patched_colour_pixels(png: Path) -> int:
    """Pixels of the patched arm's colour in the plots (ARM_COLORS, exact) in a screenshot: MLflow's own UI has
    no such colour (its nearest, the selection blue #2272b4, is 5 levels away)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    want = np.array(ImageColor.getrgb(ARM_COLORS["patched"]))
    return int((np.abs(rgb - want).max(axis=2) <= 2).sum())


@pytest.mark.slow
def test_a_sweep_reads_as_results_in_the_default_runs_table(chromium, tiny_clean, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri in-process exports it
    p = run_cli(["-m", "model=tiny", "model.server.launch.enabled=false", f"model.server.url={tiny_clean.url}",
                 "patch=general,math", "dataset.n=4", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("hookbench")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in runs if r is not parent and r.info.run_id != parent.info.run_id]
    assert len(children) == 2
    pages = set(re.findall(r"http://127\.0\.0\.1:5000/(#/experiments/\S+)", p.stderr))
    assert pages == {f"#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
                     f"&viewStateShareKey=hookbench-results"}
    assert 'click "Model training" in the sidebar once' in p.stderr
    for c in children:  # the name a user sees: what differs first, then the rounded, adjusted result
        result = c.data.tags["result"]
        assert c.info.run_name == f"{c.data.params['patch.name']} · tiny: {result} · arithmetic"
        assert c.data.tags["mlflow.runColor"] == verdict_hex(c.data.tags["verdict_adjusted"])  # the dot beside it
        assert (result.endswith(f"→ {c.data.tags['verdict_adjusted']} after Holm")
                or result == f"no change observed (0 of {int(c.data.metrics['n/scored'])} changed)")
    answer, swept = parent.info.run_name.split(" (sweep ")
    assert swept == "patch=general,math)"  # the parent's name: the sweep's answer, then what it swept
    assert answer.startswith("Best: ") and parent.data.tags["mlflow.note.content"].startswith(answer + "\n")
    assert parent.data.tags["result"] == answer  # the view's result column on the parent's row
    root = f"#/experiments/{exp.experiment_id}?workflowType=machine_learning"  # after the one click
    with mlflow_server(store, tmp_path / "ui", command="ui") as url:
        at_root = rendered(chromium, f"{url}/{root}", tmp_path / "root", tmp_path / "root.png")
        linked = rendered(chromium, f"{url}/{pages.pop()}", tmp_path / "link", tmp_path / "link.png")
        charts = rendered(chromium, f"{url}/{root.replace('?', '/runs?')}&compareRunsMode=CHART", tmp_path / "charts",
                          tmp_path / "charts.png")
        parent_page = rendered(chromium, f"{url}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}",
                               tmp_path / "parent", tmp_path / "parent.png")
        # a job's report.html in MLflow's artifact view: its own HTML viewer (an iframe), the plots inline
        report = rendered(chromium, f"{url}/#/experiments/{exp.experiment_id}/runs/{children[0].info.run_id}"
                          f"/artifacts/{mlflow_keys.REPORT_HTML}", tmp_path / "report", tmp_path / "report.png", budget_ms=60000,
                          drawn=lambda png: patched_colour_pixels(png) > 50, window="1600,2200")  # plots after the verdict
    assert RUNS_TABLE in at_root and GENAI_OVERVIEW not in at_root
    assert html.escape(parent.info.run_name) in at_root  # the parent's row names the sweep's answer
    assert RUNS_TABLE in linked
    for c in children:  # no column picked, no row expanded: each job's rounded result and adjusted verdict
        assert html.escape(c.info.run_name) in at_root and html.escape(c.info.run_name) in linked
    assert html.escape(answer) in parent_page  # the parent's page leads with its answer
    assert 'class="mlflow-html-iframe"' in report  # rendered as a page, not shown as text
    assert patched_colour_pixels(tmp_path / "report.png") > 50  # the plots, drawn inside the artifact view (blank: 0)
    images = [f.path for f in client.list_artifacts(parent.info.run_id, "images")]  # MLflow's image log
    assert parent.data.tags.get("mlflow.loggedImages") and any(a.startswith("images/ Sweep answer~sweep_delta") for a in images)
    assert charts.index("Sweep answer") < charts.index("accuracy")  # the chart view opens on the sweep's chart


def test_run_names_put_what_differs_first_and_say_what_a_rerun_is():
    cfg = OmegaConf.create({"patch": {"name": "math", "strength": 0.5}, "model": {"name": "smollm2"},
                            "dataset": {"name": "gsm8k"}})
    assert naming.base_name(cfg) == "math ×0.5 · smollm2 · gsm8k"
    assert naming.base_name(cfg, {"hookbench.reproduces": "1a2b3c4d5e6f"}) == "reproduce of 1a2b3c4d: math ×0.5 · smollm2 · gsm8k"
    assert naming.base_name(cfg, {"hookbench.confirms": "x"}) == "confirm on test: math ×0.5 · smollm2 · gsm8k"
    assert naming.result_text(-0.175, -0.3218, -0.0312, 0.0412, "hurts") == "−0.175 [−0.32, −0.03] p=0.041 → hurts"
    row = {"status": "FINISHED", "accuracy/delta": 0.02, "accuracy/delta_ci_low": -0.01, "accuracy/delta_ci_high": 0.05,
           "stats/p_adjusted": 0.3, "verdict_adjusted": "no detectable change"}
    assert naming.sweep_result(row, "holm") == "+0.020 [−0.01, +0.05] p_adj=0.3 → no detectable change after Holm"
    assert naming.sweep_result({**row, "status": "FAILED"}, "holm") == "failed"
    assert naming.with_result("math ×0.5 · smollm2 · gsm8k", "−0.175 → hurts") == "math ×0.5 · smollm2: −0.175 → hurts · gsm8k"
    assert verdict_hex("improves") == "#2ca02c" and verdict_hex("hurts") == "#d62728" and verdict_hex("no detectable change") == "#7f7f7f"
    unchanged = {**row, "verdict_adjusted": "no change observed", "n/scored": 4}
    assert naming.sweep_result(unchanged, "holm") == "no change observed (0 of 4 changed)"  # nothing to correct
