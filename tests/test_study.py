
"""`hookbench study` on the stock-server stand-in (tiny model: the edits' effect does not
matter here, the plumbing does): search -> keep -> confirm, counted at the server."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.testing.cli import cli_env, run_cli, stock_args
from hookbench.testing.mlflow_store import runs

SEARCH = ["search.objective=loss", "search.trials=12", "search.items=4", "search.seed=3", "search.space.layers.choices=[0,1]",
          "search.space.tensors=[mlp.up_proj]", "search.space.ops=[scale]", "search.space.values.scale.choices=[0.5,1.5]",
          "search.space.targets=[all]", "dataset.n=12"]


def study(server, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    args, env = stock_args(server)
    return run_cli(["study", *args, *SEARCH, *extra, "guards=[]"], tmp_path, env)


def parent_and_children(tmp_path) -> tuple:
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.study")]
    return parent, [r for r in all_runs if r.data.tags.get("hookbench.parent") == parent.info.run_id]


def phase(children, name: str) -> list:
    return [c for c in children if c.data.tags.get("hookbench.study.phase") == name]


@pytest.mark.slow
def test_a_12_trial_study_costs_its_plan_repeats_with_its_seed_and_leaves_the_server_clean(stock_server, tmp_path):
    before = stock_server.weights_sha256()
    first, again = tmp_path / "a", tmp_path / "b"
    first.mkdir(), again.mkdir()
    tmp_path = first
    p = study(stock_server, tmp_path, "search.keep=2", "patch=math")
    assert p.returncode in (0, 1), p.stderr[-3000:]
    parent, children = parent_and_children(tmp_path)
    m = parent.data.metrics
    assert stock_server.loss_calls == m[mlflow_keys.PLAN_LOSS_REQUESTS], "the plan's loss requests are what reached the server"
    assert stock_server.generations == m[mlflow_keys.PLAN_GENERATIONS], "the plan's generations are what reached the server"
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "cost plan:", "the plan comes first"
    assert "candidates tried" in lines[-4] and lines[-4].split(":")[0] in ("confirmed", "no patch confirmed"), \
        "the answer comes last (then its two context lines)"
    trials = phase(children, "search")
    assert len(trials) == 12 and all(t.info.status == "FINISHED" for t in trials)  # each restored, probes checked
    assert {"trial.e0.layer", "trial.e0.value.scale"} <= set(trials[0].data.params)
    assert all("loss/delta" in t.data.metrics and "accuracy/delta" not in t.data.metrics for t in trials)
    assert stock_server.is_clean() and stock_server.weights_sha256() == before
    assert stock_server.hooks_posts == 12 + 1 + 2 + 1, "each trial, the reference, 2 kept and the pick: applied once"
    kept = sorted(phase(children, "keep"), key=lambda r: r.info.start_time)
    assert len(kept) == 2 and len({k.data.params["patch.hash"] for k in kept}) == 2
    n_dev = int(kept[0].data.metrics["n/items"])
    assert [k.data.metrics["requests/generations"] for k in kept] == [2 * n_dev, n_dev], "one shared dev baseline"
    assert kept[1].data.metrics["n/reused_baseline"] == n_dev and all(k.data.tags["verdict_adjusted"] for k in kept)
    best_trial = min(t.data.metrics["loss/delta"] for t in trials)
    assert {k.data.params["patch.hash"] for k in kept} <= {t.data.params["patch.hash"] for t in trials}
    reference = m[mlflow_keys.STUDY_REFERENCE_LOSS_DELTA]
    assert m[mlflow_keys.STUDY_BEST_LOSS_DELTA] == best_trial
    assert ("; lower than the configured patch" in p.stdout) == (best_trial < reference)
    assert ("none is lower than the configured patch" in p.stdout) == (best_trial >= reference)
    (test_run,) = [c for c in children if c.data.tags.get("hookbench.confirms")]
    assert test_run.data.params["dataset.split"] == "test"
    assert test_run.data.tags["hookbench.confirms"] in {k.info.run_id for k in kept}
    note = parent.data.tags["mlflow.note.content"]
    assert note.splitlines()[0] in p.stdout and test_run.data.params["patch.hash"] in note.splitlines()[0]
    assert "rank correlation" in p.stdout and "undefined" in p.stdout, "2 kept candidates: no correlation claimed"
    files = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"search_loss.png", "search_trials.md", "search_kept.md", "confirmation.md"} <= files
    assert p.returncode == (0 if test_run.data.tags["verdict"] == "improves" else 1)
    # the same seed on the same server: the same trials and the same pick (a fresh store, search only)
    r = study(stock_server, again, "search.keep=0", "search.compare_to_patch=false")
    assert r.returncode == 0 and "search only" in r.stdout, r.stderr[-3000:]
    seq = trial_sequence(first)
    assert len(seq) == 12 and trial_sequence(again) == seq
    assert len({h for h, _ in seq}) > 1, "the sampler explored more than one candidate"
    assert min(seq, key=lambda x: x[1]) == min(trial_sequence(again), key=lambda x: x[1])


ACCURACY = ["search.objective=accuracy", "search.trials=6", "search.rungs=[2,4,8]", "search.eta=2", "search.keep=2",
            "search.seed=3", "search.space.layers.choices=[0,1]", "search.space.tensors=[mlp.up_proj]",
            "search.space.ops=[scale]", "search.space.values.scale.low=0.5", "search.space.values.scale.high=1.5",
            "search.space.targets=[all]", "dataset.n=24", "search.compare_to_patch=false"]


def rung_runs(children, rung: int) -> list:
    return [c for c in children if c.data.tags.get("hookbench.study.rung") == str(rung)]


def score(run) -> tuple:
    """The study's rule: the paired test's signed z (0 when no item changed), the delta, then the earlier trial."""
    from scipy import stats as sps

    m = run.data.metrics
    d, p = m["accuracy/delta"], m.get("stats/p_value", 1.0)
    z = 0.0 if d == 0 else math.copysign(sps.norm.isf(p / 2), d)
    return -z, -d, int(run.data.tags["hookbench.study.trial"])


@pytest.mark.slow
def test_the_accuracy_search_climbs_its_rungs_at_the_planned_cost_and_restores_every_candidate(stock_server, tmp_path):
    before = stock_server.weights_sha256()
    args, env = stock_args(stock_server)
    p = run_cli(["study", *args, *ACCURACY, "guards=[]"], tmp_path, env)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    parent, children = parent_and_children(tmp_path)
    m = parent.data.metrics
    assert stock_server.generations == m[mlflow_keys.PLAN_GENERATIONS], "the plan's generations are what reached the server"
    assert stock_server.loss_calls == m[mlflow_keys.PLAN_LOSS_REQUESTS], "probes only: no loss of any item"
    rungs = [rung_runs(children, r) for r in range(3)]
    assert [len(r) for r in rungs] == [6, 3, 2], "successive halving: 6 candidates, then the best 3, then the best 2"
    for r, runs_r in enumerate(rungs):
        assert sum(c.data.metrics["requests/generations"] for c in runs_r) == m[f"plan/rung{r}_generations"]
        # FINISHED: each job restored its candidate and found the probe losses back at their clean values
        assert all(c.info.status == "FINISHED" and c.data.metrics["n/items"] == [2, 4, 8][r] for c in runs_r)
    for r in (1, 2):  # the promoted are the best of the rung below, by the paired comparison
        below = sorted(rungs[r - 1], key=score)[:len(rungs[r])]
        assert {c.data.params["patch.hash"] for c in rungs[r]} == {c.data.params["patch.hash"] for c in below}
    assert stock_server.is_clean() and stock_server.weights_sha256() == before
    assert "search.trials=6 is below search.sampler.n_startup_trials=10" in p.stdout, "a random search says so"
    assert parent.data.params["search.sampler.multivariate"] == "True"
    (test_run,) = [c for c in children if c.data.tags.get("hookbench.confirms")]
    assert test_run.data.tags["hookbench.confirms"] in {c.info.run_id for c in rungs[2]}
    assert test_run.data.params["dataset.split"] == "test" and test_run.data.metrics["n/items"] > 8, \
        "confirmed on the whole test split, not the last rung's item count"
    files = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"search_rungs.md", "search_kept.md", "confirmation.md"} <= files
    assert p.returncode == (0 if test_run.data.tags["verdict"] == "improves" else 1)


@pytest.mark.slow
def test_sigterm_mid_rung_restores_the_server_and_the_study_resumes_from_its_finished_measurements(stock_server,
                                                                                                   tmp_path):
    args, env = stock_args(stock_server)
    cmd = [sys.executable, "-m", "hookbench", "study", *args, *ACCURACY]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while stock_server.hooks_posts < 7 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # 6 trials at rung 0, then the first candidate of rung 1 is applied
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert stock_server.is_clean(), "SIGTERM mid-rung restored the server"
    parent, children = parent_and_children(tmp_path)
    assert parent.info.status == "KILLED" and len(rung_runs(children, 0)) == 6
    generations_before = stock_server.generations
    p = run_cli(["study", *args, *ACCURACY, "guards=[]"], tmp_path, env)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    parent, children = parent_and_children(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.metrics[mlflow_keys.PLAN_TRIALS] == 0, "no trial is run again"
    assert len(rung_runs(children, 0)) == 6
    done = [[c for c in rung_runs(children, r) if c.info.status == "FINISHED"] for r in range(3)]
    assert [len(d) for d in done] == [6, 3, 2]
    assert stock_server.generations - generations_before <= parent.data.metrics[mlflow_keys.PLAN_GENERATIONS], \
        "the answers stored before the signal are reused"
    assert stock_server.is_clean()


def trial_sequence(tmp_path) -> list[tuple]:
    _, children = parent_and_children(tmp_path)
    trials = sorted(phase(children, "search"), key=lambda r: int(r.data.params["trial.number"]))
    return [(t.data.params["patch.hash"], round(t.data.metrics["loss/delta"], 6)) for t in trials]


@pytest.mark.slow
def test_sigterm_mid_search_restores_the_server_and_the_study_resumes(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    cmd = [sys.executable, "-m", "hookbench", "study", *args, *SEARCH, "search.keep=0", "search.compare_to_patch=false"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while stock_server.hooks_posts < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert stock_server.is_clean(), "SIGTERM mid-trial restored the server"
    parent, children = parent_and_children(tmp_path)
    assert parent.info.status == "KILLED"
    done = [c for c in phase(children, "search") if c.info.status == "FINISHED"]
    assert 3 <= len(done) < 12
    calls_before = stock_server.loss_calls
    p = study(stock_server, tmp_path, "search.keep=0", "search.compare_to_patch=false")
    assert p.returncode == 0, p.stderr[-3000:]
    parent, children = parent_and_children(tmp_path)  # the same parent, reopened
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[mlflow_keys.PLAN_TRIALS] == 12 - len(done), "only the missing trials are run"
    assert stock_server.loss_calls - calls_before == parent.data.metrics[mlflow_keys.PLAN_LOSS_REQUESTS]
    finished = [c for c in phase(children, "search") if c.info.status == "FINISHED"]
    assert len(finished) == 12 and parent.data.metrics[mlflow_keys.STUDY_TRIALS] == 12
    assert not math.isnan(parent.data.metrics[mlflow_keys.STUDY_BEST_LOSS_DELTA])


@pytest.mark.slow
def test_a_bad_search_space_is_refused_by_name_before_anything_runs(tmp_path):
    p = run_cli(["study", "model=qwen72b", "search.space.ops=[clamp_max]", "guards=[]"], tmp_path, {"QWEN72B_URL": "http://127.0.0.1:9"})
    assert p.returncode == 2 and "search.space.ops" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    p = run_cli(["study", "model=qwen72b", "search.space.layers.low=5", "search.space.layers.high=2", "guards=[]"], tmp_path,
                {"QWEN72B_URL": "http://127.0.0.1:9"})
    assert p.returncode == 2 and "search.space.layers" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    for bad, key in [("search.rungs=[8,4]", "search.rungs"), ("search.rungs=[8,100000]", "search.rungs"),
                     ("search.trials=0", "search.trials"), ("search.objective=bleu", "search.objective"),
                     ("search.eta=1", "search.eta")]:
        p = run_cli(["study", "model=qwen72b", bad, "guards=[]"], tmp_path, {"QWEN72B_URL": "http://127.0.0.1:9"})
        assert p.returncode == 2 and key in p.stderr and "Traceback" not in p.stderr, (bad, p.stderr[-2000:])
    assert not (tmp_path / "mlruns").exists(), "nothing was created"


def test_the_rank_correlation_says_when_it_is_uninformative():
    from hookbench.studies.search_report import rank_correlation

    few = rank_correlation([0.1, 0.2, 0.3], [0.0, -0.1, -0.2])
    assert math.isnan(few.rho) and "undefined" in few.sentence()
    loss = [0.01 * i for i in range(12)]
    good = rank_correlation(loss, [-x for x in loss])  # a screen that predicts: lower loss, higher accuracy
    assert good.rho == -1.0 and good.high < 0 and "uninformative" not in good.sentence()
    five = rank_correlation(loss[:5], [0.0, -0.2, -0.1, -0.4, -0.3])
    assert five.low < five.rho < five.high and "uninformative" in five.sentence()


def test_a_candidate_is_an_ordinary_hashed_patch_set_rebuilt_from_its_parameters():
    from omegaconf import OmegaConf
    from optuna.trial import FixedTrial

    from hookbench.studies.search_space import SearchSpace

    space = SearchSpace.from_config(OmegaConf.create({
        "layers": {"low": 0, "high": 3, "choices": None}, "tensors": ["mlp.up_proj", "input_layernorm"],
        "ops": ["scale", "add"], "values": {"scale": {"choices": [0.9, 1.1]}, "add": {"low": -0.1, "high": 0.1}},
        "targets": ["all", "top 10%"], "edits": 2}), "weights")
    assert math.isinf(space.size)
    params = {"e0.layer": 2, "e0.tensor": "input_layernorm", "e0.op": "scale", "e0.value.scale": 1.1,
              "e0.target": "top 10%", "e1.layer": 0, "e1.tensor": "mlp.up_proj", "e1.op": "add",
              "e1.value.add": 0.05, "e1.target": "all"}
    a, b = (space.suggest(FixedTrial(params, 7), "search-t7", 7) for _ in range(2))
    assert a.hash == b.hash and len(a.suggestions) == 2
    assert a.suggestions[0] == {"tensor_name": "model.layers.2.input_layernorm.weight", "operation": "scale",
                                "value": 1.1, "target": "top 10%"}
    other = space.suggest(FixedTrial({**params, "e1.value.add": 0.06}, 8), "search-t8", 8)
    assert other.hash != a.hash


def search_cfg(**sampler):
    from omegaconf import OmegaConf

    base = {"n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": True, "group": True, "constant_liar": False}
    return OmegaConf.create({"search": {"seed": 5, "sampler": base | sampler}})


def test_the_sampler_is_built_from_explicit_arguments_and_repeats_its_proposals(tmp_path):
    from hookbench.studies.search import open_study, random_note, sampler_args

    args = sampler_args(search_cfg(n_startup_trials=3))
    assert args == {"n_startup_trials": 3, "n_ei_candidates": 24, "multivariate": True, "group": True,
                    "constant_liar": False, "seed": 5}

    def proposals(name: str) -> list[float]:
        study = open_study(name, f"sqlite:///{tmp_path / 'o.sqlite'}", args)
        for _ in range(6):
            t = study.ask()
            study.tell(t, (t.suggest_float("x", 0, 1) - 0.3) ** 2)
        return [t.params["x"] for t in study.trials]

    a, b = proposals("a"), proposals("b")
    assert a == b, "the same explicit arguments and seed: the same trials"
    assert "random" in random_note(2, 3) and "search.sampler.n_startup_trials=3" in random_note(2, 3)
    assert random_note(3, 3) is None


@pytest.mark.parametrize("key,value,words", [("n_startup_trials", -1, "search.sampler.n_startup_trials"),
                                              ("multivariate", "yes", "search.sampler.multivariate"),
                                              ("multivariate", False, "search.sampler.group")])
def test_a_bad_sampler_argument_is_refused_by_name(key, value, words):
    from hookbench.base.errors import ConfigError
    from hookbench.studies.search import sampler_args

    with pytest.raises(ConfigError, match=words):
        sampler_args(search_cfg(**{key: value}))


def test_successive_halving_counts_and_the_planned_generations_per_rung():
    from hookbench.studies.rungs import Schedule
    from hookbench.studies.search_cost import Latency, RungPlan, SearchCost

    assert Schedule((8, 16, 32), 2, 2, 10).counts() == [10, 5, 3]
    assert Schedule((8, 16, 32), 3, 4, 10).counts() == [10, 4, 4], "never fewer than keep"
    rungs = tuple(RungPlan(n, n, c) for n, c in zip((8, 16, 32), (10, 5, 3)))
    cost = SearchCost(trials=10, items=16, reference=False, keep=2, dev_queries=50, dev_items=50, test_queries=40,
                      test_items=40, confirm=1, batched_loss=False, latency=Latency(0.01, 0.1), rungs=rungs)
    # each rung: its candidates' new items, plus the shared baseline's new items
    assert cost.rung_generations() == [10 * 8 + 8, 5 * 8 + 8, 3 * 16 + 16]
    assert cost.generations == 1 + sum(cost.rung_generations()) + 2 * 40


def test_the_agreement_of_loss_and_accuracy_counts_pairs_as_kendall_does():
    import numpy as np
    from scipy import stats as sps

    from hookbench.studies.search_report import agreement

    rng = np.random.default_rng(4)
    loss = rng.normal(size=12)
    acc = -loss + rng.normal(scale=0.3, size=12)  # a loss that predicts accuracy
    a = agreement(list(loss), list(acc))
    tau = sps.kendalltau(loss, acc).statistic  # no ties: concordant share of (loss, -acc) = (1 - tau) / 2
    assert a.concordant == pytest.approx((1 - tau) / 2)
    assert a.agree and a.correlation.high < 0 and "they agree: the loss chose rung 1" in a.sentence()
    assert "chose" not in a.sentence(later_rungs=False) and "one rung" in a.sentence(later_rungs=False)
    noise = agreement(list(loss), list(rng.normal(size=12)))
    assert not noise.agree and "do not agree" in noise.sentence()
    assert not agreement([0.1, 0.2, 0.3], [0.0, -0.1, -0.2]).agree, "3 candidates: no interval, no agreement"


@pytest.mark.slow
def test_auto_measures_loss_and_accuracy_on_rung_0_and_reports_their_agreement(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    p = run_cli(["study", *args, *ACCURACY, "search.objective=auto", "search.trials=5", "search.rungs=[2,4]", "search.keep=1", "guards=[]"],
                tmp_path, env)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    parent, children = parent_and_children(tmp_path)
    m = parent.data.metrics
    assert stock_server.generations == m[mlflow_keys.PLAN_GENERATIONS] and stock_server.loss_calls == m[mlflow_keys.PLAN_LOSS_REQUESTS]
    first, second = rung_runs(children, 0), rung_runs(children, 1)
    assert len(first) == 5 and all("loss/delta" in c.data.metrics and "accuracy/delta" in c.data.metrics for c in first)
    assert len(second) == 3 and all("loss/delta" not in c.data.metrics for c in second), "only rung 0 measures loss"
    assert "loss vs accuracy on rung 0 (5 candidates): Spearman" in p.stdout and "pairs ordered the same way" in p.stdout


def within_2x_of_the_wall(run, tmp_path) -> tuple[float, float]:
    """(plan's wall estimate, the command's measured wall) of one small accuracy study."""
    t0 = time.perf_counter()
    p = run()
    wall = time.perf_counter() - t0
    assert p.returncode in (0, 1), p.stderr[-3000:]
    parent, _ = parent_and_children(tmp_path)
    assert "s per answer from" in p.stdout, "the plan prints the per-answer figure it used"
    return parent.data.metrics[mlflow_keys.PLAN_WALL_S], wall


@pytest.mark.slow
def test_the_wall_estimate_is_within_2x_of_the_wall_on_the_stock_stand_in(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    estimate, wall = within_2x_of_the_wall(lambda: run_cli(["study", *args, *ACCURACY, "guards=[]"], tmp_path, env),
                                           tmp_path)
    assert wall / 2 <= estimate <= 2 * wall, (estimate, wall)


def test_a_candidate_that_changed_nothing_does_not_outrank_a_gain():
    from hookbench.studies.rungs import Measured, best

    def m(h, delta, low, p, trial):
        return Measured(h, trial, 0, 8, delta, low, math.nan if low != low else 0.5, p, "", "")
    gain = m("gain", 3 / 8, -0.02, 0.08, 2)  # 3 fixed, none broken: its interval still reaches below 0
    nothing = m("nothing", 0.0, math.nan, 1.0, 0)
    loss = m("loss", -2 / 8, -0.5, 0.15, 1)
    assert [x.hash for x in best([nothing, loss, gain], 3)] == ["gain", "nothing", "loss"]
