"""The whole loop for real: CLI -> reference server over HTTP -> MLflow store, on real models."""

import json
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.repo import REPO
from hookbench.testing.servers import external, fingerprint, generated, start_server, stop_server, write_external_models

METRICS = ["accuracy/baseline", "accuracy/patched", "accuracy/delta", "accuracy/delta_ci_low", "accuracy/delta_ci_high",
           "n/scored", "n/fixed", "n/broken", "n/clusters", "stats/p_value", "stats/mde",
           "latency/baseline_per_item_mean_s", "latency/patched_request_p95_s", "failures/baseline", "failures/patched",
           "failures/patch_caused", "patch/hook_count", "patch/probe_loss_delta", "loss/baseline", "loss/patched",
           "loss/delta", "accuracy/baseline/add2", "accuracy/patched/add2", "loss/delta/add2"]
ARTIFACTS = ["patch.json", "items.jsonl", "items.csv", "diff_table.md", "forest.png", "accuracy.png", "latency.png", "report.md",
             "config_resolved.yaml", "context.json", ".hydra"]


@pytest.mark.slow
def test_default_run_logs_everything_and_leaves_the_weights_original(smol_clean, tmp_path):
    before = fingerprint(smol_clean)
    p = run_cli([*external(smol_clean), "dataset.n=40", "model.server.token_env=HB_TOKEN", "guards=[]"], tmp_path,
                {"HB_TOKEN": "s3cret-token"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert fingerprint(smol_clean) == before, "the patch outlived the run"
    (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.info.run_id in p.stderr
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlruns/mlflow.db" in p.stderr
    assert "accuracy" in p.stdout and "delta" in p.stdout  # the summary table
    assert run.data.tags["verdict"] in p.stdout + p.stderr  # the verdict, in words
    m = run.data.metrics
    assert not set(METRICS) - set(m)
    assert m["n/scored"] + max(m["failures/baseline"], m["failures/patched"]) >= 40
    assert m["accuracy/delta_ci_low"] <= m["accuracy/delta"] <= m["accuracy/delta_ci_high"]
    assert 0.2 <= m["accuracy/baseline"] <= 0.8, "the embedded default should sit mid-range"
    assert m["n/clusters"] == m["n/scored"], "the default data has no repeated question"
    client = MlflowClient()
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert not set(ARTIFACTS) - logged
    hydra = {a.path for a in client.list_artifacts(run.info.run_id, ".hydra")}
    assert ".hydra/config.yaml" in hydra and ".hydra/overrides.yaml" in hydra
    t, params = run.data.tags, run.data.params
    patch = json.loads(Path(client.download_artifacts(run.info.run_id, "patch.json", str(tmp_path))).read_text())
    assert t["patch.hash"] == params["patch.hash"] == patch["hash"] and patch["suggestions"]
    assert params["model.name"] == "smollm2" and params["patch.name"] == "math" and params["dataset.name"] == "arithmetic"
    assert json.loads(t["server.identity"])["weights_sha256"] and t["git.commit"] and t["server.device"] == "cpu"
    assert t["version.server.version"] == t["version.hookbench"]  # the reference server's /api/health version
    assert json.loads(params["generation.preset_config"])["do_sample"] is False
    resolved = Path(client.download_artifacts(run.info.run_id, "config_resolved.yaml", str(tmp_path))).read_text()
    assert "s3cret-token" not in " ".join([*params.values(), *t.values(), resolved]), "the API token was logged"
    (ds,) = run.inputs.dataset_inputs
    assert ds.dataset.name == "arithmetic" and ds.dataset.digest == t["dataset.fingerprint"]
    assert (tmp_path / "patches" / "smollm2" / "math.json").exists(), "the suggestions were not frozen"


@pytest.mark.slow
def test_the_judge_grades_with_the_evaluated_server_by_default(smol_clean, tmp_path):
    requests_before = generated(smol_clean, "generate_requests")
    n = 6
    p = run_cli([*external(smol_clean), "scorer=judge", "scorer.preset=greedy", f"dataset.n={n}",
                 "model.generation.batch_size=6", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    client = MlflowClient()
    context = json.loads(Path(client.download_artifacts(run.info.run_id, "context.json", str(tmp_path))).read_text())
    assert context["scorer"]["name"] == "judge" and context["scorer"]["base_url"] == smol_clean.url
    # two batched generation requests, then the judge's prompts batched through the job's client (8 a request)
    assert generated(smol_clean, "generate_requests") - requests_before == 2 + -(-2 * n // 8)
    rows = [json.loads(x) for x in Path(client.download_artifacts(run.info.run_id, "items.jsonl", str(tmp_path / "dl")))
            .read_text().splitlines()]
    for r in rows:
        for arm in ("baseline", "patched"):
            graded = r[f"{arm}_correct"] is not None and r[f"{arm}_extracted"] in ("CORRECT", "INCORRECT")
            assert graded or r[f"{arm}_error"] == "judge_error", r


@pytest.mark.slow
def test_2x2_sweep_one_parent_four_children_baseline_generated_once(smol_clean, tiny_clean, tmp_path):
    servers = {"ext_smol": ("smollm2", smol_clean), "ext_tiny": ("tiny", tiny_clean)}
    searchpath = write_external_models(tmp_path / "conf", servers)
    before = {name: generated(s) for name, (_, s) in servers.items()}
    n = 16
    p = run_cli(["-m", "model=ext_smol,ext_tiny", "patch=math,general", f"dataset.n={n}", searchpath, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("hookbench.parent") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(children) == 4 and len(all_runs) == 5
    assert {(c.data.params["model.name"], c.data.params["patch.name"]) for c in children} == \
        {(m, p) for m in ("smollm2", "tiny") for p in ("math", "general")}
    for c in children:
        assert c.info.status == "FINISHED" and not {"accuracy/delta", "n/scored"} - set(c.data.metrics)
        assert c.info.run_name == (f"{c.data.params['patch.name']} · {c.data.params['model.name']}: "
                                   f"{c.data.tags['result']} · arithmetic")
    for name, (_, server) in servers.items():
        model = name.replace("ext_smol", "smollm2").replace("ext_tiny", "tiny")
        hashes = {c.data.params["patch.hash"] for c in children if c.data.params["model.name"] == model}
        # counted at the server: one baseline per model, one patched pass per distinct patch
        assert generated(server) - before[name] == n + n * len(hashes)
    client = MlflowClient()
    sweep_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_summary.md", "sweep_summary.csv", "sweep_delta.png", "sweep_summary.json"} <= sweep_files
    sweep_dir = next((tmp_path / "multirun").glob("*/*"))
    rows = [line for line in (sweep_dir / "sweep_summary.md").read_text().splitlines() if line.startswith("| ")]
    assert sum("smollm2" in line for line in rows) == 2  # one table row per smollm2 job
    # the second job on a model reused the first job's baseline and says so
    smol_children = [c for c in children if c.data.params["model.name"] == "smollm2"]
    second = smol_children[1]
    rows = [json.loads(x) for x in Path(client.download_artifacts(second.info.run_id, "items.jsonl", str(tmp_path / "dl")))
            .read_text().splitlines()]
    assert {r["baseline_source_run"] for r in rows} == {smol_children[0].info.run_id}
    assert second.data.metrics["n/reused_baseline"] == n and second.data.metrics["n/reused_patched"] == 0


@pytest.mark.slow
def test_a_failing_job_fails_the_parent_and_leaves_the_others(tiny_clean, tmp_path):
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    p = run_cli(["-m", "model=ext_tiny", "model.generation.preset=greedy,no_such_preset", "dataset.n=4", searchpath, "guards=[]"],
                tmp_path)
    assert p.returncode == 1 and "no_such_preset" in p.stderr and "Traceback" not in p.stderr
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = {r.data.params["model.generation.preset"]: r for r in all_runs if r is not parent}
    assert parent.info.status == "FAILED"
    assert children["greedy"].info.status == "FINISHED" and "accuracy/baseline" in children["greedy"].data.metrics
    failed = children["no_such_preset"]
    assert failed.info.status == "FAILED" and "no_such_preset" in failed.data.tags["error"]
    # the sweep names the failed job and its reason, even when the job ran in another process
    (line,) = [x for x in p.stderr.splitlines() if f"FAILED: tiny / math (run {failed.info.run_id})" in x]
    assert "model.generation.preset='no_such_preset'" in line
    summary = next((tmp_path / "multirun").glob("*/*/sweep_summary.md")).read_text()
    assert "## Failed jobs" in summary and "no_such_preset" in summary.split("## Failed jobs")[1]


@pytest.mark.slow
def test_a_crashing_job_in_a_sweep_still_closes_the_parent_and_restores_the_server(tiny_clean, tmp_path):
    """A bug in user code (here a custom scorer) is not a user mistake: it shows its traceback.
    Hydra runs the other jobs, then re-raises and skips on_multirun_end; the parent is closed at exit."""
    (tmp_path / "buggy_scorer.py").write_text(
        "from hookbench.evaluation.scorers import Scorer\n\n"
        "class Buggy(Scorer):\n"
        "    def _score(self, answer, gold, question):\n"
        "        raise RuntimeError('bug in my scorer')\n")
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    p = run_cli(["-m", "model=ext_tiny", "patch=math,general", "dataset.n=2", "scorer._target_=buggy_scorer.Buggy",
                 searchpath, "guards=[]"], tmp_path, env={"PYTHONPATH": f"{tmp_path}:{REPO}"})
    assert p.returncode != 0 and "RuntimeError: bug in my scorer" in p.stderr
    assert "sweep parent run" in p.stderr and ": FAILED," in p.stderr
    assert [x for x in p.stderr.splitlines() if "FAILED: tiny / general" in x and x.endswith("RuntimeError: bug in my scorer")]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r is not parent]
    assert parent.info.status == "FAILED" and [c.info.status for c in children] == ["FAILED", "FAILED"]
    assert all("bug in my scorer" in c.data.tags["error"] for c in children)
    assert not requests.get(tiny_clean.url + "/api/health").json()["hooks_active"]


@pytest.mark.slow
def test_reproduce_a_default_run_then_refuse_another_server(tmp_path):
    # the default config as shipped: hookbench starts its own embedded server, and stops it at exit
    p = run_cli(["dataset.n=16", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    url = run.data.tags["server.url"]
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/api/health", timeout=5)  # the started server was stopped at exit
    r = run_cli(["reproduce", run.info.run_id], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reproduced (greedy)" in r.stdout and "rule: greedy" in r.stdout
    rerun = [x for x in runs(tmp_path) if x.data.tags.get("hookbench.reproduces") == run.info.run_id]
    assert len(rerun) == 1 and rerun[0].data.metrics["accuracy/delta"] == run.data.metrics["accuracy/delta"]
    assert rerun[0].data.tags["hookbench.reproduced"] == "agrees"


@pytest.mark.slow
def test_reproduce_a_sampled_run_tests_the_difference_of_deltas(smol_clean, tmp_path):
    p = run_cli([*external(smol_clean), "model.generation.preset=benchmark", "model.generation.seed=11",
                 "dataset.n=12", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    assert json.loads(run.data.params["generation.preset_config"])["do_sample"] is True
    r = run_cli(["reproduce", run.info.run_id], tmp_path)
    assert r.returncode in (0, 8), r.stdout[-2000:] + r.stderr[-2000:]  # 12 items: reproduces or inconclusive
    assert ("reproduced (sampled)" in r.stdout) == (r.returncode == 0) and "TOST" in r.stdout
    assert "accuracy/delta_ci_low" in r.stdout  # the side-by-side table


@pytest.mark.slow
def test_reproduce_of_a_greedy_run_whose_gold_answers_changed_does_not_reproduce(tiny_clean, tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = run_cli(["model=tiny", "model.server.launch.enabled=false", f"model.server.url={tiny_clean.url}",
                 "dataset=jsonl", f"dataset.path={data}", "patch=none", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    data.write_text("".join(json.dumps({**r, "answer": "0"}) + "\n" for r in rows))  # the file was edited
    r = run_cli(["reproduce", run.info.run_id], tmp_path)
    assert r.returncode == 6, r.stdout[-2000:] + r.stderr[-2000:]
    assert "not reproduced" in r.stderr and "gold answers changed" in r.stderr and "dataset changed" in r.stderr
    (rerun,) = [x for x in runs(tmp_path) if x.data.tags.get("hookbench.reproduces") == run.info.run_id]
    assert rerun.data.tags["hookbench.reproduced"] == "disagrees"


def test_sampled_agreement_compares_the_delta_and_each_arm():
    from hookbench.evaluation.results import ArmResult, ItemResult
    from hookbench.studies.reproduce import sampled_agreement

    def records(patched_right: int, baseline_right: int = 400, n: int = 800):
        return [ItemResult(f"q{i}", None, "p", f"query {i}", "1",
                           baseline=ArmResult(output="x", correct=i < baseline_right),
                           patched=ArmResult(output="x", correct=i < patched_right)) for i in range(n)]

    same = sampled_agreement(records(450), records(450), alpha=0.05, equivalence_margin=0.03)
    assert {e.outcome for e in same.values()} == {"agrees"}  # 800 identical items: within ±0.03
    far = sampled_agreement(records(700), records(100), alpha=0.05, equivalence_margin=0.03)
    assert far["delta"].outcome == "disagrees" and far["patched"].outcome == "disagrees"
    assert far["baseline"].outcome == "agrees"
    few = sampled_agreement(records(3, 2, n=6), records(3, 2, n=6), alpha=0.05, equivalence_margin=0.03)
    assert few["delta"].outcome == "inconclusive"  # six identical items prove nothing


@pytest.mark.slow
def test_reproduce_fails_when_the_server_changed_model(tmp_path):
    tiny = start_server("tiny")
    port = tiny.url.rsplit(":", 1)[1]
    try:
        p = run_cli(["model=tiny", "model.server.launch.enabled=false", f"model.server.url={tiny.url}", "dataset.n=4", "guards=[]"],
                    tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
    finally:
        stop_server(tiny)
    (run,) = runs(tmp_path)
    other = start_server("smollm2", port=port)  # same address, another model
    try:
        r = run_cli(["reproduce", run.info.run_id], tmp_path)
    finally:
        stop_server(other)
    assert r.returncode == 6, r.stdout[-2000:] + r.stderr[-2000:]
    assert "not the one the run was logged with" in r.stderr and '"model": "tiny"' in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_upstream_mixed_sample_format_runs_with_scorer_auto(tiny_clean, tmp_path):
    """Numeric and sentence answers mixed, one null: skipped with dataset.skip_missing, each item graded
    by the rule its gold needs, the rule recorded per item."""
    data = Path(__file__).parent / "data" / "mixed_sample.jsonl"
    p = run_cli(["model=tiny", "model.server.launch.enabled=false", f"model.server.url={tiny_clean.url}",
                 "dataset=jsonl", f"dataset.path={data}", "dataset.skip_missing=true", "scorer=auto", "patch=none", "guards=[]"],
                tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    assert run.data.metrics["n/skipped_items"] == 1 and run.data.metrics["n/items"] == 5
    path = MlflowClient().download_artifacts(run.info.run_id, "items.jsonl", str(tmp_path))
    kinds = {r["id"]: r["baseline_score_kind"] for r in map(json.loads, Path(path).read_text().splitlines())}
    assert kinds == {"s0": "numeric", "s1": "text", "s2": "numeric", "s4": "text", "s5": "numeric"}
