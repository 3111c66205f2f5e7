"""The stock-server stand-in (hookbench/testing/stock_server.py) behaves as hook-api.md says the users' server does.

Direct HTTP against the stand-in on the real tiny model (one smollm2 check is marked slow); the
test hooks (counters, knobs) are read on the object, everything else goes over HTTP.
"""

from __future__ import annotations

import json
import math

import pytest
import requests

from hookbench.hookapi import contract
from hookbench.server.identity import weights_sha256
from hookbench.testing.stock_server import StockServer, load_model, perturbed_copy

UP = "model.layers.1.mlp.up_proj.weight"
PROMPT, ANSWER = "Question: What is 7 + 5?\nAnswer:", "12"


def call(server, method, path, body=None):
    """json.dumps, unlike requests' json=, lets NaN through: clients do send it."""
    return requests.request(method, server.url + path, data=None if body is None else json.dumps(body),
                            headers={"Content-Type": "application/json"}, timeout=300)


def ok(server, method, path, body=None) -> dict:
    r = call(server, method, path, body)
    assert r.status_code == 200, r.text
    return r.json()


def sug(tensor=UP, value=1.5, op="scale", target="all"):
    return {"tensor_name": tensor, "operation": op, "value": value, "target": target}


def patch(server, *suggestions, mode="weights"):
    return ok(server, "POST", contract.HOOKS, {"suggestions": list(suggestions), "apply_mode": mode})


def loss(server) -> float:
    return ok(server, "POST", contract.LOSS, {"prompt": PROMPT, "answer": ANSWER})["loss"]


def gen(server, query="Once upon a time", config="benchmark", use_hooks=False) -> dict:
    return ok(server, "POST", contract.GENERATE, {"query": query, "config": config, "use_hooks": use_hooks})


def test_health_is_stock_only_and_configs_all_sample(stock_server):
    h = ok(stock_server, "GET", contract.HEALTH)
    assert h == {"status": "online", "device": "cpu", "hooks_active": False}  # no extensions, identity, counters
    cfgs = ok(stock_server, "GET", contract.CONFIGS)
    assert {"balanced", "benchmark", "creative", "precise"} <= set(cfgs)
    assert all(set(c) == set(contract.PRESET_FIELDS) and c["name"] == n and contract.is_sampled(c)
               for n, c in cfgs.items())


def test_identical_requests_can_differ(stock_server):
    answers = {gen(stock_server)["original"] for _ in range(3)}
    assert len(answers) > 1, "sampling without a seed gave the same text three times"


def test_loss_moves_with_weight_patch_survives_delete_and_returns_exactly_after_restore(stock_server):
    base = loss(stock_server)
    assert loss(stock_server) == base  # deterministic
    sha = stock_server.weights_sha256()
    assert patch(stock_server, sug())["applied_tensors"] == [UP]
    once = loss(stock_server)
    assert once != base and ok(stock_server, "GET", contract.HEALTH)["hooks_active"]
    assert ok(stock_server, "GET", contract.HOOKS)["stats"]["total_hooks"] == 0  # weight edits do not show
    assert ok(stock_server, "DELETE", contract.HOOKS) == {"hook_count": 0}
    assert loss(stock_server) == once, "DELETE must not undo a weight edit"
    patch(stock_server, sug())
    assert loss(stock_server) not in (base, once), "a second application must compound"
    assert ok(stock_server, "POST", contract.RESTORE, {}) == {"restored_params": 1}
    assert loss(stock_server) == base and stock_server.weights_sha256() == sha
    ok(stock_server, "DELETE", contract.HOOKS)
    assert stock_server.is_clean()


def test_hooks_mode_registers_hooks_and_delete_removes_them(stock_server):
    base = loss(stock_server)
    body = patch(stock_server, sug(value=3.0), mode="hooks")
    assert body == {"hook_count": 1, "modules": ["model.layers.1.mlp"], "mode": "hooks"}
    assert loss(stock_server) != base
    assert ok(stock_server, "GET", contract.HOOKS)["stats"]["total_hooks"] == 1
    ok(stock_server, "DELETE", contract.HOOKS)
    assert loss(stock_server) == base and stock_server.is_clean()


def test_use_hooks_generates_twice_only_while_a_patch_is_active(stock_server):
    r = gen(stock_server, use_hooks=True)
    assert r["modified"] is None and stock_server.generations == 1
    patch(stock_server, sug())
    r = gen(stock_server, use_hooks=True)
    assert isinstance(r["original"], str) and isinstance(r["modified"], str) and r["hook_count"] == 1
    assert stock_server.generations == 3 and stock_server.generate_calls == 2
    gen(stock_server)
    assert stock_server.generations == 4


def test_unknown_tensor_and_op_are_skipped_silently_nan_is_applied(stock_server):
    base = loss(stock_server)
    body = patch(stock_server, sug(), sug("model.layers.9.mlp.nope.weight"), sug(op="normalize"),
                 sug("model.embed_tokens.weight"))
    assert body == {"hook_count": 1, "applied_tensors": [UP], "mode": "weights"}
    ok(stock_server, "POST", contract.RESTORE, {})
    assert patch(stock_server, sug(value=math.nan))["hook_count"] == 1
    text = gen(stock_server)["original"]
    assert contract.is_error_text(text), f"a NaN-wrecked model answered {text!r}"
    ok(stock_server, "POST", contract.RESTORE, {})
    assert loss(stock_server) == base


def test_unknown_preset_is_served_as_balanced_and_missing_field_is_422(stock_server):
    assert isinstance(gen(stock_server, config="fastest")["original"], str)
    assert stock_server.last_preset == contract.FALLBACK_PRESET
    r = call(stock_server, "POST", contract.GENERATE, {"config": "benchmark"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "query"]


def test_suggestions_fallback_set_applies_in_full(stock_server):
    general = ok(stock_server, "POST", contract.SUGGESTIONS, {"capability": "general"})["suggestions"]
    math_ = ok(stock_server, "POST", contract.SUGGESTIONS, {"capability": "math"})["suggestions"]
    assert len(general) == 2 and len(math_) == 1
    assert patch(stock_server, *general)["hook_count"] == 2
    stock_server.suggestions = {"math": []}
    assert ok(stock_server, "POST", contract.SUGGESTIONS, {"capability": "math"}) == {"suggestions": []}


def test_fault_knobs(stock_server):
    s = stock_server
    s.fail_calls, s.http_error_calls, s.empty_for = {1}, {2: 503}, {"stop here"}
    assert gen(s)["original"].startswith(contract.ERROR_TEXT_PREFIXES)
    assert call(s, "POST", contract.GENERATE, {"query": "x", "config": "benchmark"}).status_code == 503
    assert gen(s, "please stop here")["original"] == ""
    s.hooks_fail_after_apply = True
    base = loss(s)
    assert call(s, "POST", contract.HOOKS, {"suggestions": [sug()]}).status_code == 502
    assert loss(s) != base, "the patch behind the 502 must be live"
    s.down_after_call = 4
    gen(s)
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + contract.HEALTH, timeout=5)


def test_swapped_weights_behind_the_same_url(stock_server):
    base = loss(stock_server)
    stock_server.swap_model(perturbed_copy(load_model("tiny"), scale=0.01))
    assert ok(stock_server, "GET", contract.HEALTH) == {"status": "online", "device": "cpu", "hooks_active": False}
    assert loss(stock_server) != base and stock_server.weights_sha256() != weights_sha256(load_model("tiny").model)


def test_server_exit_leaves_the_cached_model_unpatched():
    with StockServer("tiny") as s:
        patch(s, sug())
        patch(s, sug(value=2.0), mode="hooks")
    with StockServer("tiny") as s:
        assert s.is_clean()


@pytest.mark.slow
def test_smollm2_samples_differently_and_loss_probe_round_trips(stock_smol):
    answers = {gen(stock_smol, "The capital of France is", config="creative")["original"] for _ in range(3)}
    assert len(answers) > 1
    base = loss(stock_smol)
    patch(stock_smol, sug("model.layers.15.mlp.down_proj.weight", 1.2, target="top 20%"))
    assert loss(stock_smol) != base
    ok(stock_smol, "POST", contract.RESTORE, {})
    assert loss(stock_smol) == base
