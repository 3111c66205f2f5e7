"""Guard tasks end to end on the stock-server stand-in: a patch that helps the target and damages a
guard reads `improves … but hurts <guard>` and is not confirmed; one without side effects is."""

from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient

from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.mlflow_store import runs
from hookbench.testing.repo import write_jsonl

CLEAN, HARMFUL = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"


def files(tmp_path, n: int = 120) -> dict[str, str]:
    target = write_jsonl(tmp_path / "target.jsonl", [{"id": f"t{i}", "prompt": f"Target question {i}?",
                                                      "answer": "yes"} for i in range(n)])
    guard = write_jsonl(tmp_path / "side.jsonl", [{"id": f"s{i}", "prompt": f"Side question {i}?",
                                                   "answer": "fine"} for i in range(n)])
    out = {"target": str(target), "side": str(guard)}
    for name, tensor in (("clean", CLEAN), ("harmful", HARMFUL)):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps([{"tensor_name": tensor, "operation": "scale", "value": 1.5, "target": "all"}]))
        out[name] = str(f)
    return out


def plant(server) -> None:
    """Any patch makes the target right; only the harmful one makes the guard wrong."""
    def answer(query: str, live: frozenset[str]) -> str | None:
        if "Target question" in query:
            return "yes" if live else "no"
        if "Side question" in query:
            return "broken" if HARMFUL in live else "fine"
        return None
    server.planted = answer


def job_args(server, f: dict, *extra: str) -> list[str]:
    args, _ = stock_args(server)
    return [*args, "dataset=jsonl", f"dataset.path={f['target']}", "dataset.name=target", "scorer=exact",
            f"guards=[{{dataset:jsonl,name:side,path:'{f['side']}',split:dev}}]", "guard.margin=0.1",
            *extra]


@pytest.mark.slow
def test_a_patch_that_damages_a_guard_is_not_confirmed_and_one_without_side_effects_is(stock_server, tmp_path):
    plant(stock_server)
    f = files(tmp_path)
    _, env = stock_args(stock_server)
    p = run_cli(["-m", *job_args(stock_server, f, "patch=file", f"patch.path={f['clean']},{f['harmful']}",
                                 "dataset.split=dev")], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    children = {r.data.params["patch.path"].rsplit("/", 1)[1]: r for r in runs(tmp_path)
                if r.data.params.get("patch.path")}
    harmful, clean = children["harmful.json"], children["clean.json"]
    assert harmful.data.tags["guard_verdict"] == "hurts side"
    assert "improves" in harmful.data.tags["result"] and "but hurts side" in harmful.data.tags["result"]
    assert clean.data.tags["guard_verdict"] == "non-inferior"
    for r in (harmful, clean):
        m = r.data.metrics
        assert m["guard/side/baseline"] == 1.0 and m["guard/side/ci_low"] <= m["guard/side/delta"] <= m["guard/side/ci_high"]
    assert harmful.data.metrics["guard/side/patched"] == 0.0 and clean.data.metrics["guard/side/ci_low"] > -0.1
    log = "".join(x.read_text() for x in tmp_path.glob("multirun/*/*/*/__main__.log"))
    assert "improves target but hurts side" in log

    parent = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.sweep") == "parent"][0]
    c = run_cli(["confirm", parent.info.run_id, "--top", "2"], tmp_path, env)
    assert c.returncode == 1, c.stdout[-2000:] + c.stderr[-2000:]  # not every pick confirmed
    tests = {r.data.tags["hookbench.confirms"]: r for r in runs(tmp_path) if r.data.tags.get("hookbench.confirms")}
    assert tests[harmful.info.run_id].data.tags["verdict"] == "improves"
    assert tests[harmful.info.run_id].data.tags["guard_verdict"] == "hurts side"
    assert tests[clean.info.run_id].data.tags["guard_verdict"] == "non-inferior"
    assert "1 of 2 picks confirmed" in c.stdout
    md = open(MlflowClient().download_artifacts(parent.info.run_id, "confirmation.md", str(tmp_path / "dl"))).read()
    row = {line.split("|")[3].strip(): line for line in md.splitlines() if line.startswith("| ") and "yes" in line or "| no |" in line}
    assert any("hurts side" in line and "| no |" in line for line in row.values())
    assert any("non-inferior" in line and "| yes |" in line for line in row.values())


PROMPT = "Think step by step."


@pytest.mark.slow
def test_a_prompting_arm_is_generated_once_across_a_two_patch_sweep_and_compared_three_ways(stock_server, tmp_path):
    asked: list[str] = []

    def answer(query: str, live: frozenset[str]) -> str:
        asked.append(query)
        if PROMPT in query:  # the prompt change helps half the items; any patch helps them all
            return "yes" if int(re.search(r"question (\d+)", query).group(1)) % 2 else "no"
        return "yes" if live else "no"

    stock_server.planted = answer
    f = files(tmp_path, n=40)
    args, env = stock_args(stock_server)
    p = run_cli(["-m", *args, "dataset=jsonl", f"dataset.path={f['target']}", "dataset.name=target", "scorer=exact",
                 "guards=[]", f"compare.prompt='{PROMPT}'", "patch=file", f"patch.path={f['clean']},{f['harmful']}"],
                tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sum(PROMPT in q for q in asked) == 40, "the prompting arm is generated once, shared by both jobs"
    assert len(asked) == 40 + 40 + 2 * 40  # baseline, prompt, and each job's patched arm
    children = [r for r in runs(tmp_path) if r.data.params.get("patch.path")]
    assert len(children) == 2
    for r in children:
        m = r.data.metrics
        assert m["prompt/baseline/accuracy"] == 0.5 and m["prompt/baseline/delta"] == 0.5
        assert m["prompt/patched/delta"] == 0.5 and m["prompt/patched/ci_low"] > 0
        assert r.data.tags["prompt_verdict"] == "improves"
    log = "".join(x.read_text() for x in tmp_path.glob("multirun/*/*/*/__main__.log"))
    assert log.count("the patch beats prompting (+0.500") == 2
    md = open(MlflowClient().download_artifacts(children[0].info.run_id, "report.md", str(tmp_path / "dl"))).read()
    for row in ("patched − baseline", "prompt − baseline", "patched − prompt"):
        assert f"| {row} |" in md


@pytest.mark.slow
def test_reproduce_reruns_the_guards_and_the_prompting_arm_from_the_logged_config(stock_server, tmp_path):
    plant(stock_server)
    f = files(tmp_path, n=30)
    args, env = stock_args(stock_server)
    p = run_cli([*job_args(stock_server, f, "patch=file", f"patch.path={f['harmful']}",
                           f"compare.prompt='{PROMPT} {{prompt}}'")], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    (first,) = runs(tmp_path)
    assert first.data.tags["mlflow.runColor"] == "#ff7f0e"  # orange: a guard is hurt
    r = run_cli(["reproduce", first.info.run_id], tmp_path, env)
    assert r.returncode in (0, 8), r.stdout[-2000:] + r.stderr[-2000:]
    (rerun,) = [x for x in runs(tmp_path) if x.data.tags.get("hookbench.reproduces")]
    for key in ("guard/side/patched", "guard/side/ci_low", "prompt/patched/delta", "prompt/baseline/accuracy"):
        assert rerun.data.metrics[key] == first.data.metrics[key], key
    assert rerun.data.tags["guard_verdict"] == "hurts side"


@pytest.mark.slow
@pytest.mark.parametrize("layer, confirmed", [(1, False), (0, True)])
def test_a_study_confirms_its_pick_only_when_every_guard_is_non_inferior_on_test(stock_server, tmp_path, layer,
                                                                                  confirmed):
    """The search measures the target alone; the pick's test run adds the guards, and a hurt guard
    (layer 1's up_proj breaks the side task) keeps the study from confirming it."""
    plant(stock_server)
    f = files(tmp_path, n=40)
    args, env = stock_args(stock_server)
    search = ["search.trials=2", "search.rungs=[8,16]", "search.keep=1", "search.compare_to_patch=false",
              f"search.space.layers.choices=[{layer}]", "search.space.tensors=[mlp.up_proj]", "search.space.ops=[scale]",
              "search.space.values.scale.choices=[1.5]", "search.space.targets=[all]"]
    side = f"guards=[{{dataset:jsonl,name:side,path:'{f['side']}'}}]"
    p = run_cli(["study", *args, "dataset=jsonl", f"dataset.path={f['target']}", "dataset.name=target", "scorer=exact", side,
                 "guard.margin=0.1", *search], tmp_path, env)
    assert p.returncode == (0 if confirmed else 1), p.stdout[-2000:] + p.stderr[-3000:]
    children = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.parent")]
    (test_run,) = [r for r in children if r.data.tags.get("hookbench.confirms")]
    search_runs = [r for r in children if not r.data.tags.get("hookbench.confirms")]
    assert search_runs and not any("guard/side/delta" in r.data.metrics for r in search_runs), "search: target only"
    assert test_run.data.tags["verdict"] == "improves"
    assert test_run.data.tags["guard_verdict"] == ("non-inferior" if confirmed else "hurts side")
    assert ("confirmed: patch" if confirmed else "no patch confirmed") in p.stdout


@pytest.mark.slow
def test_the_prompting_arm_is_judged_on_the_guards_too(stock_server, tmp_path):
    """A prompt change that helps the target but breaks the guard is shown as hurting it, like a patch would."""
    def answer(query: str, live: frozenset[str]) -> str | None:
        if "Target question" in query:
            return "yes" if live or PROMPT in query else "no"
        if "Side question" in query:
            return "broken" if PROMPT in query else "fine"
        return None

    stock_server.planted = answer
    f = files(tmp_path, n=30)
    p = run_cli(job_args(stock_server, f, "patch=file", f"patch.path={f['clean']}", f"compare.prompt='{PROMPT}'"),
                tmp_path, stock_args(stock_server)[1])
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    m = run.data.metrics
    assert m["guard/side/delta"] == 0.0 and "hurts" not in run.data.tags["guard_verdict"], "the patch spares it"
    assert m["prompt/guard/side/accuracy"] == 0.0 and m["prompt/guard/side/delta"] == -1.0
    assert "guards under prompting: side hurts" in p.stdout + p.stderr
    md = open(MlflowClient().download_artifacts(run.info.run_id, "report.md", str(tmp_path / "dl"))).read()
    assert "The prompting arm on the guards" in md and "| side |" in md.split("The prompting arm on the guards")[1]
    prompted = [json.loads(line) for line in
                open(MlflowClient().download_artifacts(run.info.run_id, "prompt_items.jsonl", str(tmp_path / "dl2")))]
    side = [r for r in prompted if r["id"].startswith("s")]
    assert side and len(side) == m["guard/side/n"] and all(r["patched_output"] == "broken" for r in side)
