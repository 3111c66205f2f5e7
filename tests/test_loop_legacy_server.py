"""The loop end to end through the CLI, against the users' stock server (hookbench/testing/stock_server.py).

The stand-in runs the real tiny model with the stock semantics of hook-api.md (sampling, no seed,
no extensions, silent skips, DELETE keeps weight edits); its fault knobs produce what a real model
cannot on demand: error text in a 200, an empty answer, a 500 on one call. Accuracy on the random
tiny model is noise, so these tests assert counts and failure kinds, never accuracy values.
"""

import json

import pytest
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.repo import write_jsonl

GOOD = [{"tensor_name": "model.layers.0.mlp.up_proj.weight", "operation": "scale", "value": 1.1, "target": "all"},
        {"tensor_name": "model.layers.1.mlp.down_proj.weight", "operation": "scale", "value": 0.9, "target": "top 20%"}]


def store(tmp_path) -> MlflowClient:
    """The run's store, without mlflow.set_tracking_uri: that exports MLFLOW_TRACKING_URI, which the
    next test's CLI would inherit and log to."""
    return MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")


def runs(tmp_path):
    client = store(tmp_path)
    return client.search_runs([client.get_experiment_by_name("hookbench").experiment_id])


def patch_file(tmp_path, suggestions=GOOD):
    f = tmp_path / "patch.json"
    f.write_text(json.dumps(suggestions))
    return f


@pytest.mark.slow
def test_run_counts_failures_apart_and_restores_the_server(tmp_path, stock_server):
    from hookbench.evaluation.datasets import arithmetic

    queries = [i.prompt for i in arithmetic(n=12).items]
    st = stock_server
    st.fail_calls = {2}  # "Generation error: ..." inside a 200 (contract §3)
    st.http_error_calls = {7: 500}  # retried with backoff, then answered
    st.empty_for = {queries[5]}  # the model stops at once (contract §9)
    empty = queries.count(queries[5])
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=12", "patch=file", f"patch.path={patch_file(tmp_path)}", "guards=[]"],
                tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert st.is_clean(), "the patch leaked past the run (weights not restored, or hooks still active)"
    (run,) = runs(tmp_path)
    m = run.data.metrics
    # baseline: call 2 is an error text, item 5 is empty; patched: only item 5
    assert m[mlflow_keys.failures("baseline")] == 1 + empty
    assert m[mlflow_keys.failures("patched")] == empty
    assert m[mlflow_keys.N_SCORED] == 12 - 1 - empty
    assert m[mlflow_keys.PATCH_HOOK_COUNT] == 2
    # one request per item and arm, plus the one retry of the 500
    assert st.generate_calls == 2 * 12 + 1
    # no delta interval here: the random tiny model is never right, so it is undefined and not logged
    assert {mlflow_keys.ACC_BASELINE, mlflow_keys.ACC_PATCHED, mlflow_keys.ACC_DELTA} <= set(m)
    items = store(tmp_path).download_artifacts(run.info.run_id, "items.jsonl", str(tmp_path))
    rows = [json.loads(x) for x in open(items)]
    failed = [r for r in rows if r["baseline_error"]]
    assert {r["baseline_error"] for r in failed} == {"error_text", "empty"}
    assert all(r["baseline_correct"] is None for r in failed), "a failure was scored"


@pytest.mark.slow
def test_partial_application_warns_and_names_the_skipped_tensor(tmp_path, stock_server):
    args, env = stock_args(stock_server)
    bad = GOOD + [{"tensor_name": "model.layers.9.mlp.nope.weight", "operation": "scale", "value": 1.2}]
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=4", "patch=file", f"patch.path={patch_file(tmp_path, bad)}", "guards=[]"],
                tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "only 2 of 3 edits applied" in p.stderr + p.stdout and "model.layers.9.mlp.nope.weight" in p.stderr + p.stdout
    assert runs(tmp_path)[0].data.metrics[mlflow_keys.PATCH_HOOK_COUNT] == 2


@pytest.mark.slow
def test_nothing_applied_fails_the_run_with_the_error_attached(tmp_path, stock_server):
    args, env = stock_args(stock_server)
    bad = [{"tensor_name": "model.layers.9.mlp.nope.weight", "operation": "scale", "value": 1.2}]
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=4", "patch=file", f"patch.path={patch_file(tmp_path, bad)}", "guards=[]"],
                tmp_path, env)
    assert p.returncode == 5
    assert "applied none of its 1 edits" in p.stderr and "Traceback" not in p.stdout + p.stderr
    (run,) = runs(tmp_path)
    assert run.info.status == "FAILED" and "applied none" in run.data.tags["error"]
    assert stock_server.is_clean()


@pytest.mark.parametrize("case, overrides, code, message", [
    ("unknown preset", ["dataset.n=4", "model.generation.preset=fastest"], 2,
     "model.generation.preset='fastest' is not a preset of http://127.0.0.1:\\d+ "
     "\\(it has: balanced, benchmark, creative, precise\\)"),
    ("missing dataset file", ["dataset=jsonl", "dataset.path=/nonexistent/data.jsonl"], 3, "/nonexistent/data.jsonl"),
    ("jsonl without a path", ["dataset=jsonl"], 2, "dataset.path"),
    ("extension the server lacks", ["dataset.n=4", "model.generation.seed=3"], 2,
     "model.generation.seed=3 needs a server offering the 'seed' extension"),
])
@pytest.mark.slow
def test_bad_input_gives_a_clear_error_and_exit_code(tmp_path, stock_server, case, overrides, code, message):
    import re
    args, env = stock_args(stock_server)
    p = run_cli([*args, "patch=file", f"patch.path={patch_file(tmp_path)}", *overrides, "guards=[]"], tmp_path, env)
    out = p.stdout + p.stderr
    assert p.returncode == code, out[-3000:]
    assert re.search(message, out), out[-3000:]
    assert "Traceback" not in out
    assert stock_server.generate_calls == stock_server.hooks_posts == 0, "work started before the input was checked"


@pytest.mark.slow
def test_malformed_jsonl_names_file_and_line(tmp_path, stock_server):
    f = tmp_path / "data.jsonl"
    f.write_text('{"prompt": "What is 1 + 1?", "answer": "2"}\n{"prompt": "What is 2 + 2?", "answer": \n')
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=jsonl", f"dataset.path={f}", "patch=file", f"patch.path={patch_file(tmp_path)}", "guards=[]"],
                tmp_path, env)
    assert p.returncode == 3 and f"{f}:2" in p.stderr and "Traceback" not in p.stdout + p.stderr


@pytest.mark.slow
def test_nan_in_patch_file_is_refused_before_any_generation(tmp_path, stock_server):
    f = tmp_path / "nan.json"
    f.write_text('[{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": NaN}]')
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=arithmetic", "dataset.n=4", "patch=file", f"patch.path={f}", "guards=[]"], tmp_path, env)
    assert p.returncode == 5 and "value: nan is not a finite number" in p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert stock_server.hooks_posts == 0, "the stock server would have applied the NaN"
    assert stock_server.generate_calls == 0


@pytest.mark.slow
def test_unreachable_server(tmp_path):
    from hookbench.hookapi.launcher import free_port
    p = run_cli(["model=qwen72b", "dataset=arithmetic", "dataset.n=2", "model.server.retries=0", "guards=[]"], tmp_path,
                {"QWEN72B_URL": f"http://127.0.0.1:{free_port()}"})
    assert p.returncode == 4 and "/api/health failed" in p.stderr and "Traceback" not in p.stdout + p.stderr


@pytest.mark.slow
def test_jsonl_dataset_with_tasks_logs_per_task_accuracy(tmp_path, stock_server):
    f = write_jsonl(tmp_path / "d.jsonl", [{"q": f"What is {i} + {i}?", "a": str(2 * i), "t": "even" if i % 2 else "odd"}
                                             for i in range(8)])
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=jsonl", f"dataset.path={f}", "dataset.prompt_field=q", "dataset.answer_field=a",
                 "dataset.task_field=t", "patch=file", f"patch.path={patch_file(tmp_path)}", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    m = runs(tmp_path)[0].data.metrics
    assert {mlflow_keys.per_task(mlflow_keys.ACC_BASELINE, "even"), mlflow_keys.per_task(mlflow_keys.ACC_PATCHED, "odd")} <= set(m)
