"""The users' own path, end to end through the CLI: the shipped `model=qwen72b` config against the
stock-server stand-in (sampled presets only, no seed, no extensions, `use_hooks` generating twice,
weight edits surviving DELETE) on a real model, counted at the server."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from hookbench.stats import adjust_p_values
from hookbench.testing.cli import cli_env, run_cli, stock_args
from hookbench.testing.mlflow_store import runs

EDITS = {"a": 1.5, "b": 0.5, "c": 2.0}


def patch_files(tmp_path) -> dict[str, str]:
    paths = {}
    for name, value in EDITS.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps([{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale",
                                  "value": value, "target": "all"}]))
        paths[name] = str(f)
    return paths


def sweep_over(tmp_path, names: list[str]) -> list[str]:
    """Overrides of a sweep over patch files: `patch=file patch.path=a.json,b.json` (after `-m`)."""
    paths = patch_files(tmp_path)
    return ["patch=file", "patch.path=" + ",".join(paths[n] for n in names)]


@pytest.mark.slow
def test_a_1x2_sweep_costs_3n_generations_and_restores_the_weights(stock_server, tmp_path):
    n = 6
    args, env = stock_args(stock_server)
    before = stock_server.weights_sha256()
    p = run_cli(["-m", *args, *sweep_over(tmp_path, ["a", "b"]), f"dataset.n={n}", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert stock_server.generations == 3 * n, "one baseline shared by both jobs, one generation per patched answer"
    assert stock_server.is_clean() and stock_server.weights_sha256() == before
    children = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.parent")]
    assert len(children) == 2
    for log in tmp_path.glob("multirun/*/*/*/__main__.log"):  # Hydra's job log holds the job's messages
        assert "MLflow run" in log.read_text() and "accuracy" in log.read_text()
    assert len(list(tmp_path.glob("multirun/*/*/*/__main__.log"))) == 2
    for c in children:
        assert "one generation per answer" in c.data.params["generation.patched_path"]
        assert c.data.metrics["patch/probe_loss_delta"] > 0
        assert c.data.tags["verdict"] in ("improves", "hurts", "no detectable change", "no change observed")


@pytest.mark.slow
def test_a_3_job_sweep_adjusts_p_values_by_holm(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    p = run_cli(["-m", *args, *sweep_over(tmp_path, ["a", "b", "c"]), "dataset.n=8", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r is not parent]
    raw = [c.data.metrics["stats/p_value"] for c in children]
    m = len(raw)  # Holm by hand: sorted p_(i) times (m - i), running maximum, capped at 1
    order = sorted(range(m), key=lambda i: raw[i])
    expected, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * raw[i]))
        expected[i] = running
    assert [c.data.metrics["stats/p_adjusted"] for c in children] == pytest.approx(expected)
    assert expected == pytest.approx(adjust_p_values(raw, "holm"))
    assert all(c.data.tags["verdict_adjusted"] for c in children)
    summary = MlflowClient().download_artifacts(parent.info.run_id, "sweep_summary.md", str(tmp_path / "dl"))
    assert "3 jobs" in open(summary).read() and "olm" in open(summary).read()
    for c in children:  # every child leads with the sweep's claim, its own test after it
        note = MlflowClient().get_run(c.info.run_id).data.tags["mlflow.note.content"]
        assert note.startswith(f"{c.data.tags['hookbench.name']}: {c.data.tags['verdict_adjusted']} after Holm over 3 jobs, "
                               "p_adj")  # plain text: MLflow's runs table and tooltips show it raw
        assert "own test: accuracy" in note
    assert p.stderr.count("after Holm over 3 jobs, p_adj") == 3
    assert "sweep/largest_delta" in parent.data.metrics and "sweep/best_delta" not in parent.data.metrics
    assert parent.data.tags["sweep.largest_delta_job"].endswith(")") and "(run " in parent.data.tags["sweep.largest_delta_job"]


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_restore_the_server_kill_the_run_and_a_rerun_resumes(stock_server, tmp_path, sig, code):
    n = 30
    args, env = stock_args(stock_server)
    f = patch_files(tmp_path)["a"]
    cmd = [*args, "model.generation.batch_size=1", f"dataset.n={n}", "patch=file", f"patch.path={f}", "guards=[]"]
    proc = subprocess.Popen([sys.executable, "-m", "hookbench", *cmd], cwd=tmp_path, text=True,
                            env=cli_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (stock_server.hooks_posts and stock_server.generations >= n + 4):  # into the patched phase
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    assert stock_server.is_clean(), f"{signal.Signals(sig).name} left the server patched"
    (run,) = runs(tmp_path)
    assert run.info.status == "KILLED" and signal.Signals(sig).name in run.data.tags["error"]
    made = stock_server.generations
    with sqlite3.connect(tmp_path / "mlruns" / "generations.sqlite") as db:  # answers finished before the signal
        (finished,) = db.execute("SELECT count(*) FROM generations WHERE run_id = ?", (run.info.run_id,)).fetchone()
    again = run_cli(cmd, tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = runs(tmp_path)[-1].data.metrics
    assert rerun["n/reused_baseline"] + rerun["n/reused_patched"] == finished, "a finished answer was not reused"
    assert 0 < rerun["n/reused_patched"] < n
    assert stock_server.generations - made == 2 * n - finished, "a finished answer was generated again"


@pytest.mark.slow
def test_a_gold_without_a_number_fails_before_any_generation(stock_server, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "Name a colour.", "answer": "blue"}\n{"prompt": "What is 1 + 1?", "answer": "2"}\n')
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=jsonl", f"dataset.path={data}", "scorer=numeric", "guards=[]"], tmp_path, env)
    assert p.returncode == 3 and "have no number" in p.stderr and "scorer=exact" in p.stderr
    assert stock_server.generations == 0 and "Traceback" not in p.stderr


@pytest.mark.slow
def test_upstream_prompt_file_with_null_answers(stock_server, tmp_path):
    rows = [{"prompt": f"What is {i} + 1?", "answer": None if i % 3 == 0 else str(i + 1), "task": "add"}
            for i in range(6)]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset=jsonl", f"dataset.path={data}", "patch=none", "guards=[]"], tmp_path, env)
    assert p.returncode == 3 and f"{data}:1" in p.stderr and "skip_missing" in p.stderr
    p = run_cli([*args, "dataset=jsonl", f"dataset.path={data}", "dataset.skip_missing=true", "patch=none", "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    run = runs(tmp_path)[-1]
    assert run.data.metrics["n/skipped_items"] == 2
    # the run names what it ran on: python and package versions, in context.json and as tags
    import importlib.metadata
    import platform
    context = json.loads(open(MlflowClient().download_artifacts(run.info.run_id, "context.json", str(tmp_path))).read())
    assert context["versions"]["python"] == platform.python_version() == run.data.tags["version.python"]
    for dist in ("mlflow", "hydra-core", "omegaconf", "statsmodels", "hookbench", "transformers"):
        assert context["versions"][dist] == importlib.metadata.version(dist) == run.data.tags[f"version.{dist}"]
    assert not any(k.startswith("version.server.") for k in run.data.tags)  # the stock server reports none


@pytest.mark.slow
def test_a_job_where_every_answer_is_empty_fails_with_the_likely_fix(stock_server, tmp_path):
    stock_server.empty_for = {"What is"}
    args, env = stock_args(stock_server)
    p = run_cli([*args, "dataset.n=4", "patch=file", f"patch.path={patch_files(tmp_path)['a']}", "guards=[]"], tmp_path, env)
    assert p.returncode == 7, p.stderr[-3000:]
    assert "all 4 baseline answers were empty" in p.stderr and "model.prompt.template" in p.stderr
    (run,) = runs(tmp_path)
    assert run.info.status == "FAILED" and "no baseline answer can be scored (4 empty)" in run.data.tags["error"]
    assert stock_server.generations == 4 and stock_server.is_clean(), "failed right after the baseline"
    assert stock_server.is_clean()
    generations = stock_server.generations
    r = run_cli(["reproduce", run.info.run_id], tmp_path, env)
    assert r.returncode == 7 and "is FAILED" in r.stderr and "nothing to compare" in r.stderr, r.stderr[-2000:]
    assert stock_server.generations == generations and len(runs(tmp_path)) == 1  # no rerun was started


@pytest.mark.slow
def test_reproduce_a_run_on_the_stock_server(stock_server, tmp_path):
    """Unseeded sampling, three outcomes: six items are too few to show the rerun agrees (inconclusive,
    exit 8), a faithful rerun of a big enough run reproduces within the margin, and a rerun on other
    weights behind the URL does not reproduce (exit 6)."""
    from hookbench.testing.stock_server import load_model, perturbed_copy

    args, env = stock_args(stock_server)
    patch = f"patch.path={patch_files(tmp_path)['a']}"
    p = run_cli([*args, "dataset.n=6", "patch=file", patch, "guards=[]"], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    r = run_cli(["reproduce", run.info.run_id], tmp_path, env)
    assert r.returncode == 8, r.stdout[-2000:] + r.stderr[-2000:]
    assert "inconclusive (sampled)" in r.stderr and "TOST" in r.stdout and "margin ±0.030" in r.stdout
    needed = int(r.stderr.split("a rerun on about ")[1].split()[0])  # what would decide, at 80% power
    assert needed > 6 and "would show equivalence within ±0.03 with 80% power" in r.stderr
    (rerun,) = [x for x in runs(tmp_path) if x.data.tags.get("hookbench.reproduces") == run.info.run_id]
    assert rerun.data.tags["hookbench.reproduced"] == "inconclusive"
    r = run_cli(["reproduce", run.info.run_id, "--margin", "0.9"], tmp_path, env)
    assert r.returncode == 0 and "reproduced (sampled)" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    stock_server.swap_model(perturbed_copy(load_model("tiny"), scale=0.05))
    r = run_cli(["reproduce", run.info.run_id], tmp_path, env)
    assert r.returncode == 6 and "not the one the run was logged with" in r.stderr and "weights_probe" in r.stderr
