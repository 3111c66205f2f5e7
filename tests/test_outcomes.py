
"""One vocabulary of outcomes (hookbench/base/outcomes.py): every verdict and failure kind that reaches a tag, a table
or a report is an enum member, and no module spells one by hand."""

import ast
import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.base.outcomes import Agreement, FailureKind, Screen, Verdict
from hookbench.stats import adjusted_verdict, compare_arms
from hookbench.testing.cli import run_cli, stock_args
from hookbench.tracking.sweep import adjust

PKG = Path(__file__).resolve().parents[1] / "hookbench"
WORDS = {str(v) for enum in (Verdict, FailureKind, Agreement, Screen) for v in enum}
# hookbench.testing: the stand-in and the drivers name the faults they inject (an "empty" answer), not verdicts
NOT_SCANNED = ("outcomes.py", "testing")


def test_no_module_spells_a_verdict_or_failure_kind_by_hand():
    found = [f"{p.relative_to(PKG.parent)}:{n.lineno} {n.value!r}" for p in sorted(PKG.rglob("*.py"))
             if not set(p.relative_to(PKG).parts) & set(NOT_SCANNED) for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in WORDS]
    assert found == []


def test_members_equal_the_strings_in_existing_stores():
    assert Verdict("no detectable change") is Verdict.NO_DETECTABLE_CHANGE and Verdict.IMPROVES == "improves"
    assert f"{Verdict.HURTS}: x" == "hurts: x" and json.dumps({"e": FailureKind.EMPTY}) == '{"e": "empty"}'


def test_every_verdict_the_stats_give_is_a_member():
    cases = [([0] * 20, [1] * 20), ([1] * 20, [0] * 20), ([0, 1] * 5, [1, 0] * 5), ([1] * 4, [1] * 4), ([], [])]
    got = {compare_arms(b, p).verdict for b, p in cases}
    assert got == {Verdict.IMPROVES, Verdict.HURTS, Verdict.NO_DETECTABLE_CHANGE, Verdict.NO_CHANGE_OBSERVED,
                   Verdict.NO_DATA}
    assert all(type(v) is Verdict for v in got)
    assert type(adjusted_verdict(0.1, 0.01)) is Verdict and adjusted_verdict(0.1, math.nan) is Verdict.NO_DATA


def test_a_sweep_adjusts_stored_verdict_strings_to_members():
    rows = [{"status": "FINISHED", mlflow_keys.TAG_VERDICT: "improves", mlflow_keys.P_VALUE: 0.001, mlflow_keys.ACC_DELTA: 0.2},
            {"status": "FINISHED", mlflow_keys.TAG_VERDICT: "no change observed", mlflow_keys.P_VALUE: 1.0, mlflow_keys.ACC_DELTA: 0.0},
            {"status": "FAILED", mlflow_keys.TAG_VERDICT: None}]
    adjust(rows, "holm", 0.05)
    assert [r[mlflow_keys.TAG_VERDICT_ADJUSTED] for r in rows] == [Verdict.IMPROVES, Verdict.NO_CHANGE_OBSERVED,
                                                            Verdict.NO_DATA]


@pytest.mark.slow
def test_a_job_writes_only_members_to_its_tags_items_and_report(tmp_path, stock_server):
    from hookbench.evaluation.datasets import arithmetic

    queries = [i.prompt for i in arithmetic(n=6).items]
    stock_server.fail_calls = {1}  # an error text in a 200
    stock_server.empty_for = {queries[3]}
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=6", "patch=none", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("hookbench").experiment_id])
    assert run.data.tags[mlflow_keys.TAG_VERDICT] in set(Verdict)
    rows = [json.loads(x) for x in open(client.download_artifacts(run.info.run_id, mlflow_keys.ITEMS_JSONL, str(tmp_path)))]
    kinds = {r[f"{arm}_error"] for r in rows for arm in mlflow_keys.ARMS} - {None}
    assert {FailureKind.ERROR_TEXT, FailureKind.EMPTY} <= kinds <= set(FailureKind)
    report = Path(client.download_artifacts(run.info.run_id, mlflow_keys.REPORT_MD, str(tmp_path))).read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| verdict (α")]
    assert row.split("|")[2].strip() in set(Verdict)
