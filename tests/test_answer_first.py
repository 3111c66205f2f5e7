"""The answer where the eye lands: a study's answer on the first screen of the link `hookbench ui` prints
(its jobs nested under it: at most 5 run rows, no click), and every report's verdict before its first
picture, read by headless Chromium from MLflow and from the output folder with no network."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from mlflow.tracking import MlflowClient

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.evaluation.results import summarize
from hookbench.reports.html import page
from hookbench.reports.report import write_run_report
from hookbench.testing.browser import FLAGS, Sources, rendered
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.config import STATS
from hookbench.testing.mlflow_store import mlflow_server
from hookbench.testing.records import item, ok, run_record

# the smallest accuracy study the study tests run: 4 candidates, rungs of 2 and 4 dev items, 1 kept
SMALL_STUDY = ["search.objective=accuracy", "search.trials=4", "search.rungs=[2,4]", "search.eta=2", "search.keep=1",
               "search.seed=3", "search.space.layers.choices=[0,1]", "search.space.tensors=[mlp.up_proj]",
               "search.space.ops=[scale]", "search.space.values.scale.low=0.5", "search.space.values.scale.high=1.5",
               "search.space.targets=[all]", "dataset.n=12", "search.compare_to_patch=false"]
VERDICT_MARKS = ("<strong>Accuracy: ", "<strong>confirmed: ", "<strong>not confirmed: ", "<strong>no patch confirmed")


def inline_plots(text: str) -> list[str]:
    """The names of the page's inline pictures, in page order."""
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)


def run_rows(dom: str) -> set[str]:
    """The runs table's rows as drawn (ag-grid's row-id is the run id)."""
    return set(re.findall(r'role="row" row-index="\d+" row-id="([0-9a-f]{32})"', dom))


def answer_shown(dom: str, parent) -> bool:
    """The study parent's row is drawn and its name, the answer, is in it."""
    return parent.info.run_id in run_rows(dom) and html.escape(parent.info.run_name) in dom


def verdict_first(text: str) -> bool:
    """The verdict sentence comes before the page's first picture (and there is a picture)."""
    first_picture = text.find("<img")
    verdicts = [i for i in (text.find(m) for m in VERDICT_MARKS) if i >= 0]
    return first_picture > 0 and bool(verdicts) and min(verdicts) < first_picture


def file_dom(chromium_path: str, path: Path, profile: Path, screenshot: Path) -> str:
    """A page opened from disk (file://) by Chromium with no network at all; its DOM, and a screenshot."""
    offline = [*FLAGS, "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", f"--user-data-dir={profile}"]
    subprocess.run([chromium_path, *offline, "--window-size=1400,1000", f"--screenshot={screenshot}", path.as_uri()],
                   capture_output=True, timeout=240)
    print(f"screenshot: {screenshot}")
    return subprocess.run([chromium_path, *offline, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                          timeout=240).stdout


def test_a_report_page_states_its_verdict_before_its_first_picture(tmp_path):
    records = [item(i, ok("3", i % 3 == 0), ok("4", i % 2 == 0)) for i in range(30)]
    write_run_report(tmp_path, records, summarize(records, 1, **STATS), run_record(), "tiny + scale_mlp", [])
    text = (tmp_path / mlflow_keys.REPORT_HTML).read_text(encoding="utf-8")
    assert verdict_first(text)
    assert list(inline_plots(text)) == [mlflow_keys.FOREST_PNG, mlflow_keys.ACCURACY_PNG, mlflow_keys.LATENCY_PNG]  # the answer first
    assert text.index("<h2>Result</h2>") > text.index("<img")  # the tables after the pictures
    # positive control: the same report with no lead before its sections shows a picture first
    report = (tmp_path / mlflow_keys.REPORT_MD).read_text(encoding="utf-8")
    sections = report[report.index("\n## "):]
    assert not verdict_first(page("t", sections + "\n" + report[:report.index("\n## ")],
                                  [tmp_path / mlflow_keys.FOREST_PNG]))


@pytest.mark.slow
def test_a_study_answers_first_in_mlflow_and_in_its_own_pages(chromium, stock_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args, env = stock_args(stock_server)
    p = run_cli(["study", *args, *SMALL_STUDY, "guards=[]"], tmp_path, env)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("hookbench").experiment_id
    runs = client.search_runs([exp])
    (parent,) = [r for r in runs if r.data.tags.get(mlflow_keys.TAG_STUDY)]
    assert len(runs) > 5  # 4 + 2 rung jobs, the confirmation and the parent: more than a first screen holds
    answer = parent.data.tags[mlflow_keys.TAG_RESULT]
    assert re.match(r"(not )?confirmed: patch [0-9a-f]{16} on test ", answer) and parent.info.run_name.startswith(answer)
    assert {mlflow_keys.REPORT_HTML, "search_rungs.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    (study_page,) = tmp_path.glob(f"outputs/*/*/study/{mlflow_keys.REPORT_HTML}")
    text = study_page.read_text(encoding="utf-8")
    assert verdict_first(text) and list(inline_plots(text)) == ["search_rungs.png"]  # the rung chart
    assert [u for u in Sources(text).urls if not u.startswith("data:image/png;base64,")] == [
        f"rung{r.data.tags[mlflow_keys.TAG_STUDY_RUNG]}/report-{r.info.run_id[:8]}/{mlflow_keys.REPORT_HTML}"
        for r in sorted((r for r in runs if r.data.tags.get(mlflow_keys.TAG_STUDY_RUNG)),
                        key=lambda r: (int(r.data.tags[mlflow_keys.TAG_STUDY_RUNG]), int(r.data.tags[mlflow_keys.TAG_STUDY_TRIAL])))]
    for link in Sources(text).urls[1:]:
        assert (study_page.parent / link).exists()  # each row's link opens its job's report from the folder
    job_page = study_page.parent / Sources(text).urls[1]
    offline = file_dom(chromium, study_page, tmp_path / "study-page", tmp_path / "study_page.png")
    assert verdict_first(offline) and html.escape(answer) in offline
    job = file_dom(chromium, job_page, tmp_path / "job-page", tmp_path / "job_page.png")
    assert verdict_first(job)

    link = f"{tracking.ui_page(exp)}"
    # the positive control: only the confirmation run (not nested, so MLflow fetches no parent for it)
    hide = quote(f"tags.`{mlflow_keys.TAG_CONFIRMS}` LIKE '%'")
    with mlflow_server(store, tmp_path / "ui", command="ui") as url:
        first = rendered(chromium, f"{url}/{link}", tmp_path / "link", tmp_path / "study_link.png")
        hidden = rendered(chromium, f"{url}/{link}&searchFilter={hide}", tmp_path / "hidden", tmp_path / "hidden.png")
    assert answer_shown(first, parent)
    assert 1 <= len(run_rows(first)) <= 5, run_rows(first)
    assert len(run_rows(hidden)) == 1 and not answer_shown(hidden, parent)  # the check sees a missing answer row


def test_the_forest_plot_holds_the_target_the_prompting_arm_and_each_guard_with_its_margin(tmp_path):
    from hookbench.evaluation.guards import Guard, summarize_guard
    from hookbench.evaluation.prompting import summarize_prompt
    from hookbench.reports.forest import forest_rows, plot_forest

    records = [item(i, ok("3", i % 3 == 0), ok("4", i % 3 == 0 or i % 2 == 0)) for i in range(60)]
    prompts = [item(i, ok("3", False), ok("4", i % 3 == 0 or i % 7 == 0)) for i in range(60)]
    kept = [item(i, ok("4", i % 4 != 0), ok("4", i % 4 != 0), task="capitals") for i in range(60)]
    broken = [item(i, ok("4", True), ok("4", i % 2 == 0), task="spelling") for i in range(60)]  # planted: half lost
    guards = [summarize_guard(Guard(name, None, None, 0.05, recs), 1, 0.05, 0.1)  # type: ignore[arg-type]
              for name, recs in (("capitals", kept), ("spelling", broken))]
    prompt = summarize_prompt(records, prompts, "Think step by step.", 1, 0.05, 0.1)
    rows = forest_rows(summarize(records, 1, **STATS), guards, prompt)
    assert [r.label for r in rows] == ["target: patched − baseline", "prompting arm: prompt − baseline",
                                       "guard capitals", "guard spelling"]
    assert [r.margin for r in rows] == [None, None, 0.05, 0.05]
    spelling = rows[3]
    assert spelling.high < -0.05 and spelling.color == "tab:red" and "hurts" in spelling.words  # the planted damage
    assert (spelling.low, spelling.high) == (guards[1].ni.ci_low, guards[1].ni.ci_high)  # the interval that decides it
    assert rows[2].color != "tab:red"
    assert plot_forest(tmp_path / "forest.png", summarize(records, 1, **STATS), guards, prompt).read_bytes()[:4] == b"\x89PNG"
