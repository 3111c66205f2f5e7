"""A guard is asked in its own format and scored by its dataset's own scorer, never dressed in the
target's prompt template (model=qwen72b's chain-of-thought instruction on a capital-city question)."""

from __future__ import annotations

import pytest

from hookbench.base.errors import ConfigError
from hookbench.evaluation.parts import check_inputs
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.config import compose_cfg

QWEN_TEMPLATE_TEXT = "Think step by step"  # conf/model/qwen72b.yaml's task template


@pytest.mark.parametrize(("guard", "scorer"), [("capitals", "contains"), ("gsm8k", "numeric")])
def test_a_guard_named_by_its_dataset_gets_that_datasets_scorer(guard, scorer, monkeypatch, gsm8k_path):
    monkeypatch.setenv("QWEN72B_URL", "http://127.0.0.1:9")
    entry = guard if guard == "capitals" else f"{{dataset:gsm8k,path:'{gsm8k_path}',sample:5}}"
    (g,) = check_inputs(compose_cfg(["model=qwen72b", f"guards=[{entry}]"])).guards
    assert g.scorer.name == scorer


def test_a_named_scorer_still_wins_and_the_guard_keeps_the_models_chat_setting(monkeypatch):
    monkeypatch.setenv("QWEN72B_URL", "http://127.0.0.1:9")
    cfg = compose_cfg(["model=qwen72b", "model.prompt.chat=true", "guards=[{dataset:capitals,scorer:exact}]"])
    (g,) = check_inputs(cfg).guards
    assert g.scorer.name == "exact" and g.generation is not None and g.generation.chat is True
    assert QWEN_TEMPLATE_TEXT not in g.generation.query("What is the capital of France?")


@pytest.mark.slow
def test_guard_queries_at_the_server_carry_none_of_the_targets_template(stock_server, tmp_path):
    sent: list[str] = []
    stock_server.planted = lambda query, live: sent.append(query)  # sees every query; the model answers
    args, env = stock_args(stock_server)
    p = run_cli([*args, "patch=none", "metric=accuracy", "dataset.limit=2",
                 "guards=[{dataset:capitals,limit:3}]"], tmp_path, env)
    assert p.returncode == 0, p.stderr
    guard = [q for q in sent if "capital of" in q]
    target = [q for q in sent if "capital of" not in q]
    assert len(guard) == 2 * 3 and len(target) == 2 * 2, "both arms of the guard and of the target"
    assert all(QWEN_TEMPLATE_TEXT in q for q in target), "positive control: the target is asked in its template"
    assert not any(QWEN_TEMPLATE_TEXT in q for q in guard)


def test_a_guards_format_is_set_per_entry_and_an_unknown_key_is_named(monkeypatch):
    cfg = compose_cfg(["model=tiny", 'guards=[{dataset:capitals,as_guard:{template:"Answer briefly. {prompt}"}}]'])
    (g,) = check_inputs(cfg).guards
    assert g.generation is not None and g.generation.query("Q?") == "Answer briefly. Q?" and g.scorer.name == "contains"
    with pytest.raises(ConfigError, match="Key 'colour' not in 'GuardFormat'"):
        check_inputs(compose_cfg(["model=tiny", "guards=[{dataset:capitals,as_guard:{colour:1}}]"]))


def test_a_studys_cost_plan_counts_the_guards_on_its_confirmation_run():
    from hookbench.studies.search_cost import Latency, RungPlan, SearchCost

    plan = dict(trials=4, items=8, reference=False, keep=1, dev_queries=32, dev_items=32, test_queries=30,
                test_items=30, confirm=1, batched_loss=False, latency=Latency(0.01, 0.1), rungs=(RungPlan(8, 8, 4),))
    without, with_guards = SearchCost(**plan), SearchCost(**plan, guard_queries=106)
    assert with_guards.generations - without.generations == 2 * 106, "the confirmation run: both arms of each guard item"
    assert "the guards' 106 queries" in with_guards.text() and "guards" not in without.text()
