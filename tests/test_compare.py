"""`hookbench compare A B` on lm-eval-format and hookbench logs written here with known counts: the
delta and Tango interval against an independent root-finding of Tango's statistic, Holm and guards,
the MLflow record, and every input that must be refused with exit 3 before a run is created."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from hookbench.__main__ import main
from hookbench.testing.mlflow_store import runs

STAMP = "2026-12-07T10-00-00.000000"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_samples(folder: Path, task: str, scores: dict[str, list[float]], ids: list[int] | None = None,
                  prompts: dict[int, str] | None = None, extra_rows: int = 0) -> Path:
    """An lm-eval `samples_<task>_<date>.jsonl` as `--log_samples` writes it: one row per doc, its
    metrics' names and values, and lm-eval's three hashes."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(scores.values())))
    ids = list(range(n)) if ids is None else ids
    path = folder / f"samples_{task}_{STAMP}.jsonl"
    with path.open("w") as f:
        for k, doc_id in enumerate(ids + ids[:extra_rows]):
            prompt = (prompts or {}).get(doc_id, f"{task} question {doc_id}")
            row = {"doc_id": doc_id, "doc": {"q": prompt}, "target": "1", "resps": [],
                   "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": {"until": ["\n"]}}},
                   "filtered_resps": [], "filter": "none", "metrics": list(scores),
                   "doc_hash": _sha(f"doc {task} {doc_id}"), "prompt_hash": _sha(prompt), "target_hash": _sha("1"),
                   **{m: v[k % n] for m, v in scores.items()}}
            f.write(json.dumps(row) + "\n")
    return path


def paired_scores(fixed: int, broken: int, both_right: int, both_wrong: int) -> tuple[list[float], list[float]]:
    a = [0.0] * fixed + [1.0] * broken + [1.0] * both_right + [0.0] * both_wrong
    b = [1.0] * fixed + [0.0] * broken + [1.0] * both_right + [0.0] * both_wrong
    return a, b


def tango_interval(f: int, g: int, n: int, alpha: float = 0.05, cc: float = 0.5) -> tuple[float, float]:
    """Tango (1998)'s score interval for P(fixed) − P(broken), written from the paper: the nuisance
    share of broken pairs maximises the multinomial likelihood under δ (numerically, not the closed
    form), Var(f − g) = n(2q + δ(1 − δ)), with ½ continuity correction on f − g."""
    def q_tilde(d: float) -> float:
        lo, hi = max(0.0, -d) + 1e-12, (1 - d) / 2 - 1e-12
        nll = lambda q: -(f * math.log(q + d) if f else 0) - (g * math.log(q) if g else 0) - (  # noqa: E731
            (n - f - g) * math.log(1 - 2 * q - d) if n - f - g else 0)
        return float(minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x)

    def z(d: float) -> float:
        x = f - g - n * d
        x = math.copysign(max(abs(x) - cc, 0.0), x)
        return x / math.sqrt(n * (2 * q_tilde(d) + d * (1 - d)))

    crit, est = norm.ppf(1 - alpha / 2), (f - g) / n
    return (brentq(lambda d: z(d) - crit, -1 + 1e-9, est), brentq(lambda d: z(d) + crit, est, 1 - 1e-9))


def compare(tmp_path: Path, *args: str) -> int:
    return main(["compare", *args, "--tracking-uri", f"sqlite:///{tmp_path}/mlruns/mlflow.db"])


def test_delta_and_tango_interval_match_an_independent_implementation(tmp_path, capsys):
    a, b = paired_scores(fixed=14, broken=4, both_right=30, both_wrong=22)
    write_samples(tmp_path / "a", "arith", {"acc": a})
    write_samples(tmp_path / "b", "arith", {"acc": b})
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--no-record") == 0
    low, high = tango_interval(14, 4, 70)
    out = capsys.readouterr().out
    assert f"{10 / 70:+.3f} [{low:+.3f}, {high:+.3f}]" in out
    assert "| arith | acc | 70 | 0.486 | 0.629 |" in out


@pytest.mark.slow
def test_the_comparison_is_recorded_as_a_parent_run_with_a_child_per_metric(tmp_path, capsys):
    a, b = paired_scores(fixed=14, broken=4, both_right=30, both_wrong=22)
    write_samples(tmp_path / "a", "arith", {"acc": a})
    write_samples(tmp_path / "b", "arith", {"acc": b})
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--guard", "arith:0.2") == 0
    low, high = tango_interval(14, 4, 70, alpha=0.1)  # a guard's (1 − 2α) interval
    out = capsys.readouterr().out
    parent, child = runs(tmp_path)
    assert child.data.metrics["guard/arith/ci_low"] == pytest.approx(low, abs=5e-4)
    assert child.data.metrics["guard/arith/ci_high"] == pytest.approx(high, abs=5e-4)
    assert child.data.tags["guard_verdict"] == "non-inferior" and child.data.tags["verdict"] == "improves"
    assert child.data.tags["hookbench.parent"] == parent.info.run_id
    assert parent.data.tags["guard_verdict"] == "non-inferior"
    assert parent.data.metrics["guard/arith/delta/arith/acc"] == pytest.approx(10 / 70)  # child metric/task/metric
    assert f"MLflow run {parent.info.run_id}" in out
    from mlflow.tracking import MlflowClient

    files = {f.path for f in MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.html", "compare.json"} <= files


def test_documents_asking_the_same_are_one_cluster(tmp_path, capsys):
    a, b = paired_scores(fixed=14, broken=4, both_right=30, both_wrong=22)
    same = {0: "one question", 1: "one question", 2: "one question"}  # three documents, one request
    write_samples(tmp_path / "a", "arith", {"acc": a}, prompts=same)
    write_samples(tmp_path / "b", "arith", {"acc": b}, prompts=same)
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--json", "--no-record") == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["n"], row["n_clusters"]) == (70, 68) and "design effect of 68 query clusters" in row["test"]


def test_holm_across_tasks_and_a_guard_judged_by_non_inferiority(tmp_path, capsys):
    strong, weak = paired_scores(20, 2, 30, 28), paired_scores(8, 1, 40, 30)
    same = paired_scores(3, 3, 50, 24)
    for side, k in (("a", 0), ("b", 1)):
        for task, scores in (("strong", strong), ("weak", weak), ("weak2", weak), ("kept", same)):
            write_samples(tmp_path / side, task, {"acc": scores[k]})
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--guard", "kept:0.1", "--json",
                   "--no-record") == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    compared = ["strong", "weak", "weak2"]
    holm = multipletests([rows[t]["p_value"] for t in compared], method="holm")[1]
    assert [rows[t]["p_adjusted"] for t in compared] == pytest.approx(list(holm))
    # planted: each weak gain passes alone (p < 0.05) but not after Holm over the three compared tasks
    assert rows["weak"]["verdict"] == "improves" and rows["weak"]["verdict_adjusted"] == "no detectable change"
    assert rows["strong"]["verdict_adjusted"] == "improves"
    guard = rows["kept"]["guard"]
    assert guard["verdict"] == "non-inferior" and guard["ci_low"] > -0.1 and guard["ci_level"] == pytest.approx(0.9)
    assert "p_adjusted" not in rows["kept"]  # a guard is not in the corrected family


def test_a_guard_that_drops_beyond_its_margin_hurts(tmp_path, capsys):
    a, b = paired_scores(1, 15, 30, 14)
    write_samples(tmp_path / "a", "kept", {"acc": a})
    write_samples(tmp_path / "b", "kept", {"acc": b})
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--guard", "kept:0.01", "--no-record") == 0
    out = capsys.readouterr().out
    assert "kept acc hurts" in out and "| kept | acc | 60 |" in out
    assert not (tmp_path / "mlruns").exists()  # --no-record


def test_ids_in_one_log_only_exit_3_naming_them_and_intersect_proceeds(tmp_path, capsys, caplog):
    a, b = paired_scores(5, 2, 10, 3)
    write_samples(tmp_path / "a", "t", {"acc": a})
    write_samples(tmp_path / "b", "t", {"acc": b}, ids=[*range(17), 97, 98, 99])
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b")) == 3
    assert f"3 item ids only in {tmp_path / 'a'} (first: 17, 18, 19)" in caplog.text
    assert f"3 item ids only in {tmp_path / 'b'} (first: 97, 98, 99)" in caplog.text
    assert not (tmp_path / "mlruns").exists()  # refused before a store or run was created
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b"), "--intersect", "--no-record") == 0
    out = capsys.readouterr().out
    assert "| t | acc | 17 |" in out and "--intersect: 3 of task t only in" in out


@pytest.mark.parametrize("case, words", [
    ("prompt", "prompt_hash differs for 1 (first: 4)"),
    ("duplicate", "2 item ids appear more than once (first: 0, 1)"),
    ("metric", "has no metric acc_norm"),
    ("task", "tasks in one log only: u only in"),
])
def test_logs_that_do_not_pair_exit_3_naming_file_and_ids(tmp_path, caplog, case, words):
    a, b = paired_scores(5, 2, 10, 3)
    write_samples(tmp_path / "a", "t", {"acc": a, "acc_norm": a})
    if case == "prompt":
        write_samples(tmp_path / "b", "t", {"acc": b, "acc_norm": b}, prompts={4: "another question"})
    elif case == "duplicate":
        write_samples(tmp_path / "b", "t", {"acc": b, "acc_norm": b}, extra_rows=2)
    elif case == "metric":
        write_samples(tmp_path / "b", "t", {"acc": b})
    else:
        write_samples(tmp_path / "b", "t", {"acc": b, "acc_norm": b})
        write_samples(tmp_path / "b", "u", {"acc": b, "acc_norm": b})
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b")) == 3
    assert words in caplog.text
    assert not (tmp_path / "mlruns").exists()


def test_a_file_that_is_no_known_log_exits_3(tmp_path, caplog):
    (tmp_path / "notes.jsonl").write_text('{"hello": 1}\n')
    write_samples(tmp_path / "b", "t", {"acc": [1.0, 0.0]})
    assert compare(tmp_path, str(tmp_path / "notes.jsonl"), str(tmp_path / "b")) == 3
    assert f"{tmp_path / 'notes.jsonl'}: not a log of a known kind" in caplog.text


def test_a_log_with_a_broken_line_exits_3_naming_the_file_and_line(tmp_path, caplog):
    write_samples(tmp_path / "a", "t", {"acc": [1.0, 0.0]})
    write_samples(tmp_path / "b", "t", {"acc": [1.0, 1.0]})
    (bad,) = (tmp_path / "b").glob("samples_*.jsonl")
    bad.write_text(bad.read_text() + '{"doc_id": 9, "acc": \n')
    assert compare(tmp_path, str(tmp_path / "a"), str(tmp_path / "b")) == 3
    assert f"{bad}:3: not valid JSON" in caplog.text and "not a log compare can read" in caplog.text


def test_hookbench_items_with_draws_use_the_cluster_score_test(tmp_path, capsys):
    """A job's items.jsonl, one arm per log: two draws per item are averaged, and the test is the
    cluster score test over items, as in the job's own verdict."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(30):
        for draw in range(2):
            base, patched = bool(rng.random() < 0.4), bool(rng.random() < 0.7)
            rows.append({"id": f"q{i}", "task": None, "query": f"Q{i}", "gold": "1", "draw": draw,
                         "baseline_correct": base, "patched_correct": patched, "baseline_error": None,
                         "patched_error": None})
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert compare(tmp_path, f"{items}#baseline", f"{items}#patched", "--json", "--no-record") == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    per_item = np.array([[r["patched_correct"] - r["baseline_correct"] for r in rows[2 * i:2 * i + 2]] for i in range(30)])
    assert row["n"] == 30 and row["draws"] == 2 and row["test"].startswith("cluster score test")
    assert row["delta"] == pytest.approx(per_item.mean())


@pytest.mark.slow
def test_a_logged_runs_two_arms_give_the_jobs_own_verdict(tmp_path, capsys, caplog):
    """`compare RUN#baseline RUN#patched` reads the run's items.jsonl from the store; a patched-arm failure
    leaves its item in one log only (refused, then --intersect), and the result is the job's own test."""
    import mlflow

    from hookbench.evaluation.results import compare as job_compare
    from hookbench.reports.item_files import write_items
    from hookbench.testing.config import STATS
    from hookbench.testing.records import failed, item, ok

    rng = np.random.default_rng(5)
    records = [item(i, ok("4", bool(rng.random() < 0.4)), ok("4", bool(rng.random() < 0.8)), task=None)
               for i in range(40)] + [item(40, ok("4", True), failed("timeout"), task=None)]
    (tmp_path / "out").mkdir()
    write_items(tmp_path / "out", records)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    with mlflow.start_run(experiment_id=mlflow.create_experiment("hookbench")) as run:
        mlflow.log_artifact(str(tmp_path / "out" / "items.jsonl"))
    run_id = run.info.run_id
    assert compare(tmp_path, f"{run_id}#baseline", f"{run_id}#patched", "--no-record") == 3
    assert f"1 item ids only in {run_id}#baseline (first: q40)" in caplog.text
    assert compare(tmp_path, f"{run_id}#baseline", f"{run_id}#patched", "--no-record", "--intersect", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    own = job_compare(records, draws=1, **STATS)
    assert (row["n"], row["fixed"], row["broken"], row["verdict"]) == (own.n, own.fixed, own.broken, own.verdict)
    assert (row["delta"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (own.delta, own.ci_low, own.ci_high, own.p_value))


def test_too_few_query_clusters_or_no_spread_give_no_p_in_compare_as_in_a_job():
    """The few-cluster rules reach compare: draws over 5 requests are too few clusters for the paired
    test (no p, no interval, so nothing to correct); an unbounded metric that every item moves by
    the same amount gets no non-inferiority p beside its missing interval."""
    from hookbench.compare.pairing import Paired
    from hookbench.compare.verdicts import judge

    rng = np.random.default_rng(0)
    a = [float(x) for x in rng.uniform(0, 1, 40)]
    b = [x - 0.01 + float(rng.normal(0, 0.02)) for x in a]
    ids, few = [str(i) for i in range(40)], [f"q{i // 8}" for i in range(40)]
    pairs = [Paired("t", "acc", ids, a, b, few, 3, True), Paired("u", "score", ids, [2.0] * 40, [2.5] * 40, ids, 1, True)]
    rows = {r.task: r for r in judge(pairs, 0.05, "holm", {"u": 0.05})}
    t, u = rows["t"], rows["u"]
    assert t.comparison.test == "too few query clusters to test (G = 5)" and math.isnan(t.comparison.p_value)
    assert math.isnan(t.p_adjusted) and t.verdict_adjusted == "no detectable change"
    assert u.ni is not None and math.isnan(u.ni.p_value) and math.isnan(u.ni.ci_low) and u.ni.verdict == "inconclusive"
