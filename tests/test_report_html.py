"""report.html: the run's report with its plots inline (base64 PNG), no network, no markup from model
outputs; logged by a job to a real MLflow store, rewritten for a sweep's children, one for the sweep."""

import base64
import re

from mlflow.tracking import MlflowClient

from hookbench.evaluation.results import summarize
from hookbench.reports.report import write_run_report
from hookbench.testing.browser import Sources
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.config import STATS
from hookbench.testing.records import PNG_MAGIC, failed, item, ok, run_record

DATA_PNG = re.compile(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def inline_plots(text: str) -> dict[str, bytes]:
    return {name: base64.b64decode(data) for name, data in DATA_PNG.findall(text)}


def test_the_page_holds_the_report_and_its_plots_and_fetches_nothing(tmp_path):
    records = [item(0, ok("4", True), ok("<script>alert(1)</script> 4", True)),
               item(1, ok("4", True), ok("3", False)), item(2, ok("3", False), failed("timeout", 3.0))]
    write_run_report(tmp_path, records, summarize(records, 1, **STATS), run_record(), "tiny + scale_mlp", [])
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    plots = inline_plots(text)
    assert set(plots) == {"forest.png", "accuracy.png", "latency.png"}
    assert plots["accuracy.png"] == (tmp_path / "accuracy.png").read_bytes() and plots["accuracy.png"].startswith(PNG_MAGIC)
    page = Sources(text)
    assert page.scripts == 0 and [u for u in page.urls if not u.startswith("data:image/png;base64,")] == []
    assert "&lt;script&gt;alert(1)" in text  # a model's output is shown as text, never run
    assert "<table>" in text and "tiny + scale_mlp" in text  # the report's tables, rendered


def test_a_job_logs_report_html_to_its_mlflow_run(tmp_path, stock_server):
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=4", "patch=none", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("hookbench").experiment_id])
    assert {"report.html", "forest.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    text = open(client.download_artifacts(run.info.run_id, "report.html", str(tmp_path / "dl"))).read()
    plots = inline_plots(text)
    assert set(plots) == {"forest.png", "accuracy.png", "latency.png"} and all(v.startswith(PNG_MAGIC) for v in plots.values())
    assert run.data.tags["result"].split(" · ")[0] in text or run.data.tags["verdict"] in text
