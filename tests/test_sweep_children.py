"""A sweep child never claims more than its sweep: after Holm its description, report.md and plot
lead with the adjusted verdict (own p in brackets), on a real MLflow store."""

import json

import mlflow
from mlflow.tracking import MlflowClient

from hookbench.evaluation.results import ArmResult, ItemResult
from hookbench.reports.formatting import SWEEP_OWN_TEST
from hookbench.tracking.sweep_children import lead_children


def test_a_hurting_child_leads_with_no_detectable_change_after_holm(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    client = MlflowClient()
    exp = client.create_experiment("sweep", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp, run_name="tiny / math / arithmetic")
    rid = run.info.run_id
    own = "accuracy hurts: -0.250 95% [-0.40, -0.05], p = 0.039 (exact McNemar, 1 fixed / 9 broken)"
    client.set_tag(rid, "mlflow.note.content", f"**tiny / math / arithmetic**: {SWEEP_OWN_TEST}: {own}")
    client.log_text(rid, f"# tiny / math / arithmetic\n\n**Accuracy: {SWEEP_OWN_TEST}: {own[9:]}**\n\nOwn test: x\n",
                    "report.md")
    items = [ItemResult(f"q{i}", None, "p", f"query {i}", "1", baseline=ArmResult(output="1", correct=i < 12),
                        patched=ArmResult(output="1", correct=i < 3 or 11 < i < 13)) for i in range(40)]
    client.log_text(rid, "".join(json.dumps(r.flat()) + "\n" for r in items), "items.jsonl")
    client.set_terminated(rid, "FINISHED")
    row = {"run_id": rid, "status": "FINISHED", "verdict": "hurts", "verdict_adjusted": "no detectable change",
           "stats/p_value": 0.039, "stats/p_adjusted": 0.117}

    (line,) = lead_children(client, [row, {"run_id": "x", "status": "FAILED"}, {"run_id": "y", "status": "FINISHED"}],
                            "holm", 0.05)

    lead = "no detectable change after Holm over 3 jobs, p_adj = 0.117 (own p = 0.039)"
    assert line.endswith(lead)
    note = client.get_run(rid).data.tags["mlflow.note.content"]
    assert note == f"**tiny / math / arithmetic**: {lead}; own test: {own}"
    report = client.download_artifacts(rid, "report.md", str(tmp_path / "dl"))
    assert open(report).read().splitlines()[2] == f"**Accuracy: {lead}**"
    assert "accuracy.png" in {a.path for a in client.list_artifacts(rid)}
    page = open(client.download_artifacts(rid, "report.html", str(tmp_path / "dl"))).read()  # made again
    assert f"Accuracy: {lead}" in page and 'alt="accuracy.png" src="data:image/png;base64,' in page
