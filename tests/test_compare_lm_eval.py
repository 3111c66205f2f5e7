"""The real round trip: lm-eval (its own CLI and HF backend, offline) runs a small local task twice on
the embedded SmolLM2-135M, once as shipped and once with one tensor scaled, with --log_samples;
`hookbench compare` reads those files and records its verdict in an MLflow store."""

from __future__ import annotations

import json

import pytest

from hookbench.server.models import cached_gguf_dir, smollm2_gguf_path
from hookbench.testing.cli import run_cli
from hookbench.testing.lm_eval_runs import TASK, run_lm_eval, scaled_copy
from hookbench.testing.mlflow_store import runs

EDIT = ("model.layers.15.mlp.down_proj.weight", 4.0)  # flips about a third of the answers
LIMIT = 16


@pytest.mark.slow
def test_compare_reads_two_real_lm_eval_logs_and_records_the_verdict(tmp_path):
    model = cached_gguf_dir(smollm2_gguf_path(), "smollm2")
    a = run_lm_eval(model, tmp_path / "a", limit=LIMIT)
    b = run_lm_eval(scaled_copy(model, tmp_path / "edited", *EDIT), tmp_path / "b", limit=LIMIT)
    p = run_cli(["compare", str(a), str(b), "--json"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    rows = {r["metric"]: r for r in report["rows"]}
    assert set(rows) == {"acc", "acc_norm"} and all(r["task"] == TASK and r["n"] == LIMIT for r in rows.values())
    # the per-document scores compare pairs reproduce lm-eval's own aggregate of each run
    for folder, arm in ((a, "baseline"), (b, "patched")):
        (results,) = folder.glob("results_*.json")
        assert rows["acc"][arm] == pytest.approx(json.loads(results.read_text())["results"][TASK]["acc,none"])
    assert rows["acc"]["fixed"] + rows["acc"]["broken"] > 0  # the edit changed answers: a real comparison
    parent, *children = runs(tmp_path)
    assert parent.info.run_id == report["mlflow_run"] and len(children) == 2
    assert {c.data.tags["verdict_adjusted"] for c in children} <= {"improves", "hurts", "no detectable change"}
