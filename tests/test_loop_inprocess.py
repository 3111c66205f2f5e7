"""The loop in-process: `EvaluationLoop` driven with parts built by hand, against the stock-server stand-in
(sampled presets only, no extensions, `use_hooks` generating twice, weight edits surviving DELETE) and
the reference server. Counts are read at the server; accuracy on the tiny model is noise, so the
tests assert costs, states and failure accounting, not accuracy."""

from __future__ import annotations

import pytest

from hookbench.base.errors import NothingMeasured, PatchError, ServerError
from hookbench.evaluation.loop import PROBES, EvaluationLoop
from hookbench.evaluation.patches import NoPatch
from hookbench.evaluation.reuse import GenerationStore
from hookbench.hookapi.client import HookClient
from hookbench.reports.formatting import job_headline
from hookbench.testing.inprocess import MLP, parts, patch_file


def probe_losses(server):
    return HookClient(server.url).losses(PROBES, answer_prefix="")


@pytest.mark.slow
def test_stock_server_one_generation_per_answer_and_weights_restored(stock_server, tmp_path):
    before = probe_losses(stock_server)
    out = EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-1").run()
    n = out.summary.n_draws
    assert stock_server.generations == 2 * n, "the patched arm must cost one generation per answer"
    assert out.run_record.requests.generations == 2 * n
    assert "one generation per answer" in out.run_record.generation.patched_path
    assert out.run_record.patch.probe_loss_delta and any(d != 0 for d in out.run_record.patch.probe_loss_delta)
    assert stock_server.is_clean() and probe_losses(stock_server) == before


def test_a_patch_that_changes_nothing_is_not_live(stock_server, tmp_path):
    source = patch_file(tmp_path, [{"tensor_name": MLP, "operation": "scale", "value": 1.0, "target": "all"}])
    with pytest.raises(PatchError, match="the patch is not live"):
        EvaluationLoop(parts(stock_server.url, source), "run-1").run()
    assert stock_server.generations == 6, "only the baseline was generated"
    assert stock_server.is_clean()


@pytest.mark.slow
def test_sampled_baseline_is_generated_once_per_store(stock_server, tmp_path):
    store = GenerationStore(tmp_path / "g.sqlite")
    first = EvaluationLoop(parts(stock_server.url, patch_file(tmp_path, name="a")), "run-a", store).run()
    source_b = patch_file(tmp_path, [{"tensor_name": MLP, "operation": "scale", "value": 0.5, "target": "all"}], "b")
    second = EvaluationLoop(parts(stock_server.url, source_b), "run-b", store).run()
    assert stock_server.generations == 6 * 3  # one baseline, two patched arms
    assert second.summary.reused["baseline"] == 6 and second.summary.reused["patched"] == 0
    assert {r.baseline.source_run for r in second.items} == {"run-a"}
    assert first.summary.reused["baseline"] == 0


@pytest.mark.slow
def test_swapped_weights_behind_one_url_are_not_reused(stock_server, tmp_path):
    from hookbench.testing.stock_server import load_model, perturbed_copy

    store = GenerationStore(tmp_path / "g.sqlite")
    EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-a", store).run()
    stock_server.swap_model(perturbed_copy(load_model("tiny"), scale=0.05))
    out = EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-b", store).run()
    assert out.summary.reused == {"baseline": 0, "patched": 0}, "another model's answers were served as this one's"
    assert stock_server.generations == 4 * 6


def test_loss_metric_and_loss_only_job(stock_server, tmp_path):
    out = EvaluationLoop(parts(stock_server.url, patch_file(tmp_path), metric="loss"), "run-1").run()
    assert stock_server.generations == 0, "a loss-only job generates nothing"
    # a stock server scores one text a request: probes clean, patched and after restore, and each item per arm
    assert out.run_record.requests.loss == stock_server.loss_calls == 3 * len(PROBES) + 2 * 6
    m = out.metrics()
    assert {"loss/baseline", "loss/patched", "loss/delta"} <= set(m)
    assert m["loss/delta"] == pytest.approx(m["loss/patched"] - m["loss/baseline"])
    assert stock_server.is_clean()


def test_loss_screen_rejects_before_any_generation(stock_server, tmp_path):
    harmful = patch_file(tmp_path, [{"tensor_name": MLP, "operation": "scale", "value": 8.0, "target": "all"}])
    out = EvaluationLoop(parts(stock_server.url, harmful, metric="both", screen_size=3, screen_threshold=-1.0),
                     "run-1").run()
    assert out.screen.passed is False and out.screen.size == 3
    assert stock_server.generations == 0
    assert "loss/delta" in out.metrics() and "accuracy/delta" not in out.metrics()
    assert stock_server.is_clean()


def test_a_patch_that_breaks_generation_is_the_patch_s_effect(stock_server, tmp_path):
    # scaling an MLP's projections by 1e38 overflows float32 to inf: every patched answer fails, only under the patch
    broken = patch_file(tmp_path, [{"tensor_name": f"model.layers.1.mlp.{t}_proj.weight", "operation": "scale",
                                    "value": 1e38, "target": "all"} for t in ("up", "down")])
    out = EvaluationLoop(parts(stock_server.url, broken, preset="benchmark"), "run-1").run()
    s = out.summary
    assert s.patch_caused > s.n_draws / 2 and s.failures["baseline"] == 0
    assert all(r.patched.patch_caused for r in out.items if r.patched.error), s.failure_kinds
    assert s.breaks_generation() and job_headline(out).startswith("the patch breaks generation")
    assert s.with_patch_failures.n > 0 and s.problem() is None, "evidence against the patch, not missing data"
    assert stock_server.is_clean()


def test_all_answers_empty_is_a_failure_with_a_hint(stock_server, tmp_path):
    stock_server.empty_for = {"What is"}
    with pytest.raises(NothingMeasured, match=r"no baseline answer can be scored \(6 empty\).*model.prompt.template"):
        EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-1").run()
    assert stock_server.generations == 6, "the patched arm is not generated after a baseline with nothing scoreable"
    assert stock_server.hooks_posts == 0 and stock_server.is_clean()


def test_a_server_killed_mid_run_stops_the_job_and_says_it_may_be_patched(stock_server, tmp_path):
    stock_server.down_after_call = 8  # dies in the patched phase (6 baseline calls, then patched)
    with pytest.raises(ServerError, match="may still be patched"):
        EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-1").run()
    assert stock_server.generate_calls <= 8 + 3


def test_a_502_after_applying_is_never_retried(stock_server, tmp_path):
    stock_server.hooks_fail_after_apply = True
    with pytest.raises(PatchError, match="not applied cleanly"):
        EvaluationLoop(parts(stock_server.url, patch_file(tmp_path)), "run-1").run()
    assert stock_server.hooks_posts == 1, "POST /api/hooks was retried: the patch compounded"
    assert stock_server.is_clean()


def test_a_a_job_on_the_reference_server_is_no_change(tiny_clean):
    out = EvaluationLoop(parts(tiny_clean.url, NoPatch(), preset="greedy", max_new_tokens=4, chat=False), "run-1").run()
    c = out.summary.comparison
    assert c.delta == 0 and c.verdict == "no change observed" and c.mde > 0
    assert out.run_record.patch.hook_count == 0 and "A/A" in out.run_record.generation.patched_path


def test_samples_draws_k_seeded_answers_per_item_per_arm(tiny_clean, tmp_path):
    def run():
        return EvaluationLoop(parts(tiny_clean.url, patch_file(tmp_path), preset="benchmark", samples=3, seed=7,
                                max_new_tokens=4, chat=False), "run-1").run()

    out = run()
    assert len(out.items) == 3 * 6 and sorted({r.draw for r in out.items}) == [0, 1, 2]
    # 6 items are 6 query clusters: too few for the cluster score test to reject, so no test is claimed
    assert out.summary.comparison.draws == 3 and "too few query clusters to test (G = 6)" in out.summary.comparison.test
    draws = {d: [r.baseline.output for r in out.items if r.draw == d] for d in range(3)}
    assert draws[0] != draws[1] or draws[1] != draws[2], "every draw gave the same answers: one seed for all?"
    again = run()  # seeded per draw: the same draws again
    assert [r.baseline.output for r in again.items] == [r.baseline.output for r in out.items]


def test_samples_with_a_greedy_preset_is_refused(tiny_clean, tmp_path):
    from hookbench.base.errors import ConfigError

    with pytest.raises(ConfigError, match="generation.samples=3"):
        EvaluationLoop(parts(tiny_clean.url, patch_file(tmp_path), preset="greedy", samples=3), "run-1").run()


def test_repeated_queries_are_one_cluster_and_generated_once(tiny_clean, tmp_path):
    from hookbench.evaluation.datasets import arithmetic as make

    p = parts(tiny_clean.url, patch_file(tmp_path), preset="greedy", max_new_tokens=4, chat=False)
    p.dataset = make(n=30, max_value=3, allow_repeats=True)  # 16 distinct sums: repeats, as real data has
    distinct = len({it.prompt for it in p.dataset.items})
    before = tiny_clean.ok("GET", "/api/health")["counters"]["generated_sequences"]
    out = EvaluationLoop(p, "run-1").run()
    made = tiny_clean.ok("GET", "/api/health")["counters"]["generated_sequences"] - before
    assert made == 2 * distinct, "a repeated query was generated again"
    assert out.summary.repeats == 30 - distinct and out.summary.reused == {"baseline": 0, "patched": 0}
    assert out.summary.comparison.n_clusters == distinct < out.summary.comparison.n == 30


def test_loss_metric_and_screen_on_the_reference_server_are_batched(tiny_clean, tmp_path):
    harmful = patch_file(tmp_path, [{"tensor_name": MLP, "operation": "scale", "value": 8.0, "target": "all"}])
    out = EvaluationLoop(parts(tiny_clean.url, harmful, preset="greedy", metric="both", screen_size=4,
                           screen_threshold=-1.0, max_new_tokens=4, chat=False), "run-1").run()
    assert out.screen.passed is False and "loss/delta" in out.metrics()
    # probes and item losses go in a few batch requests, not one request per item
    assert out.run_record.requests.loss <= 5 and out.run_record.requests.generations == 0
