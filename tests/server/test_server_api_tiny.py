"""Contract shapes and patch semantics over HTTP, on the fast deterministic `tiny` model."""

from __future__ import annotations

import math

import pytest

from hookbench.hookapi import contract
from hookbench.testing.servers import start_server, stop_server

MLP = "model.layers.1.mlp.up_proj.weight"
RAW = {"chat": False}  # the random tiny model says nothing useful after a chat template


def patch(server, *suggestions, mode="weights"):
    return server.call("POST", "/api/hooks", {"suggestions": list(suggestions), "apply_mode": mode})


def sug(tensor=MLP, op="scale", value=2.0, target="all"):
    return {"tensor_name": tensor, "operation": op, "value": value, "target": target}


def test_health_shape(tiny):
    h = tiny.ok("GET", "/api/health")
    assert h["status"] == "online" and h["device"] in ("cpu", "cuda") and isinstance(h["hooks_active"], bool)
    assert h["server"]["name"] == "hookbench-reference" and h["server"]["model"] == "tiny"
    assert len(h["server"]["weights_sha256"]) == 64
    assert h["server"]["chat_template"] == "auto" and h["server"]["dtype"] == "float32"
    assert h["server"]["device"] == h["device"]
    assert set(h["extensions"]) == {contract.EXT_GENERATE_BATCH, contract.EXT_SEED, contract.EXT_SKIP_ORIGINAL,
                                    contract.EXT_CHAT, contract.EXT_MAX_NEW_TOKENS, contract.EXT_LOSS_BATCH,
                                    contract.EXT_WEIGHTS_DIGEST}


@pytest.mark.slow
def test_identity_differs_with_the_chat_template_default(tiny):
    """Same weights, different prompting default: different answers, so a different identity."""
    other = start_server("tiny", "--chat-template", "never")
    try:
        never = other.ok("GET", "/api/health")["server"]
    finally:
        stop_server(other)
    auto = tiny.ok("GET", "/api/health")["server"]
    assert never["weights_sha256"] == auto["weights_sha256"] and never != auto
    assert never["chat_template"] == "never"


def test_configs_have_every_contract_field(tiny):
    cfgs = tiny.ok("GET", "/api/configs")
    assert set(cfgs) == {"balanced", "benchmark", "creative", "precise", "greedy"}
    for name, cfg in cfgs.items():
        assert list(cfg) == list(contract.PRESET_FIELDS) and cfg["name"] == name and cfg["thinking_budget"] == 0
    assert cfgs["greedy"]["do_sample"] is False
    assert cfgs["benchmark"] | {"description": ""} == {
        "name": "benchmark", "description": "", "do_sample": True, "temperature": 0.3, "top_p": 0.9,
        "top_k": 30, "max_new_tokens": 512, "repetition_penalty": 1.0, "thinking_budget": 0}


def test_generate_shape_and_known_preset_has_no_fallback_header(tiny_clean):
    r = tiny_clean.call("POST", "/api/generate", {"query": "Hello", "config": "greedy", "max_new_tokens": 4, **RAW})
    assert r.status_code == 200 and "x-hookbench-preset-fallback" not in r.headers
    body = r.json()
    assert set(body) == {"original", "modified", "hook_count"}
    assert isinstance(body["original"], str) and body["original"] and body["modified"] is None and body["hook_count"] == 0


def test_unknown_preset_falls_back_with_header(tiny_clean):
    r = tiny_clean.call("POST", "/api/generate", {"query": "Hello", "config": "no-such", "max_new_tokens": 4, "seed": 1})
    assert r.status_code == 200 and r.headers["X-Hookbench-Preset-Fallback"] == "no-such"


def test_seed_makes_sampling_repeat(tiny_clean):
    body = {"query": "Once upon a time", "config": "creative", "max_new_tokens": 12, "seed": 1234, **RAW}
    first = tiny_clean.ok("POST", "/api/generate", body)["original"]
    assert tiny_clean.ok("POST", "/api/generate", body)["original"] == first
    batch = {"queries": ["a b c", "Once upon a time"], **{k: v for k, v in body.items() if k != "query"}}
    assert tiny_clean.ok("POST", "/api/generate/batch", batch) == tiny_clean.ok("POST", "/api/generate/batch", batch)


def test_missing_field_is_pydantic_422(tiny):
    r = tiny.call("POST", "/api/generate", {"config": "greedy"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)


def test_generation_error_comes_back_as_200_text(tiny_clean):
    r = tiny_clean.call("POST", "/api/generate", {"query": "Hi", "config": "greedy", "max_new_tokens": -1})
    assert r.status_code == 200 and contract.is_error_text(r.json()["original"])


def test_batch_in_order_and_batch_of_one_equals_single(tiny_clean):
    opts = {"config": "greedy", "max_new_tokens": 8, **RAW}
    qs = ["The cat sat on", "Numbers: 1 2 3", "Why is the sky blue?"]
    fwd = tiny_clean.ok("POST", "/api/generate/batch", {"queries": qs, **opts})["results"]
    rev = tiny_clean.ok("POST", "/api/generate/batch", {"queries": qs[::-1], **opts})["results"]
    assert len(fwd) == 3 and fwd == rev[::-1]
    assert all(set(r) == {"original", "modified", "hook_count"} for r in fwd)
    for q in qs[:2]:
        one = tiny_clean.ok("POST", "/api/generate/batch", {"queries": [q], **opts})["results"][0]
        assert one == tiny_clean.greedy(q, 8, **RAW)
    assert tiny_clean.ok("POST", "/api/generate/batch", {"queries": [], **opts}) == {"results": []}


def test_loss_shape(tiny):
    body = tiny.ok("POST", "/api/loss", {"prompt": "What is 7 + 5?", "answer": "12"})
    assert set(body) == {"loss", "prompt_tokens", "answer_tokens", "total_tokens"}
    assert body["loss"] > 0 and body["total_tokens"] == body["prompt_tokens"] + body["answer_tokens"]
    chat = tiny.ok("POST", "/api/loss", {"prompt": "What is 7 + 5?", "answer": "12", "use_chat_template": True})
    assert chat["prompt_tokens"] > body["prompt_tokens"] and chat["answer_tokens"] == body["answer_tokens"]


LOSS_ITEMS = [{"prompt": "What is 7 + 5?", "answer": "12"},
              {"prompt": "Question: A farmer has 3 cows and buys 4 more. How many cows?", "answer": "7 cows"},
              {"prompt": "Hi", "answer": "The answer is forty-two, as everyone knows."}]


@pytest.mark.parametrize("opts", [{}, {"answer_prefix": "\nAnswer: ", "use_chat_template": True}])
def test_loss_batch_equals_single_losses(tiny, opts):
    batch = tiny.ok("POST", contract.LOSS_BATCH_PATH, {"items": LOSS_ITEMS, **opts})["results"]
    singles = [tiny.ok("POST", contract.LOSS, {**item, **opts}) for item in LOSS_ITEMS]
    assert len(batch) == len(singles)
    for got, want in zip(batch, singles):  # right padding: only float rounding may differ
        assert got == want | {"loss": pytest.approx(want["loss"], rel=1e-5, abs=1e-6)}
    assert len({r["loss"] for r in batch}) == 3  # three different items, not one value repeated


def test_loss_batch_item_without_answer_tokens_fails_alone(tiny):
    items = [LOSS_ITEMS[0], {"prompt": "What is 7 + 5?", "answer": ""}]
    first, empty = tiny.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]
    assert first["loss"] == pytest.approx(tiny.ok("POST", contract.LOSS, LOSS_ITEMS[0])["loss"], rel=1e-5)
    assert empty["loss"] is None and "no tokens" in empty["error"] and empty["answer_tokens"] == 0
    assert tiny.call("POST", contract.LOSS, items[1]).status_code == 422  # the single endpoint refuses it
    assert tiny.ok("POST", contract.LOSS_BATCH_PATH, {"items": []}) == {"results": []}


def test_weights_patch_delete_does_not_undo_restore_does(tiny_clean):
    s = tiny_clean
    base_loss, base_gen = s.loss(), s.greedy("The cat sat on", **RAW)
    r = patch(s, sug(MLP, "scale", 8.0), sug("model.layers.0.self_attn.o_proj.weight", "add", 0.05, "top 10%"))
    assert r.status_code == 200, r.text
    assert r.json() == {"hook_count": 2, "mode": "weights",
                        "applied_tensors": [MLP, "model.layers.0.self_attn.o_proj.weight"]}
    assert s.ok("GET", "/api/health")["hooks_active"] is True
    stats = s.ok("GET", "/api/hooks")  # contract §4: weight edits do not show here
    assert stats["active"] is True and stats["stats"]["total_hooks"] == 0 and stats["stats"]["modules"] == []
    patched_loss = s.loss()
    assert patched_loss != base_loss
    gen = s.ok("POST", "/api/generate", {"query": "The cat sat on", "config": "greedy", "max_new_tokens": 12,
                                         "use_hooks": True, **RAW})
    assert gen["hook_count"] == 2 and gen["modified"] == gen["original"]  # §2: both with the patch live
    assert s.ok("DELETE", "/api/hooks") == {"hook_count": 0}
    assert s.ok("GET", "/api/health")["hooks_active"] is False
    assert s.loss() == patched_loss  # §1: DELETE alone leaks the weight edit
    assert s.ok("POST", "/api/restore", {}) == {"restored_params": 2}
    assert s.loss() == base_loss and s.greedy("The cat sat on", **RAW) == base_gen  # bit-exact
    assert s.ok("POST", "/api/restore", {}) == {"restored_params": 0}


def test_weights_patches_compound(tiny_clean):
    s = tiny_clean
    patch(s, sug(value=4.0))
    once4 = s.loss()
    s.clean()
    patch(s, sug(value=2.0))
    once2 = s.loss()
    patch(s, sug(value=2.0))
    assert s.loss() == once4 != once2  # x2 twice is exactly x4 in float


def test_hooks_mode_changes_output_and_delete_removes_it(tiny_clean):
    s = tiny_clean
    base_loss = s.loss()
    r = patch(s, sug("model.layers.1.mlp.down_proj.weight", "scale", 5.0, "top 20%"),
              sug("model.layers.0.self_attn.q_proj.weight", "normalize", 3.0), mode="hooks")
    assert r.status_code == 200, r.text
    assert r.json() == {"hook_count": 2, "modules": ["model.layers.1.mlp", "model.layers.0.self_attn"], "mode": "hooks"}
    assert s.loss() != base_loss
    gen = s.ok("POST", "/api/generate", {"query": "The cat", "config": "greedy", "max_new_tokens": 4,
                                         "use_hooks": True, "skip_original": True, **RAW})
    assert gen["original"] is None and isinstance(gen["modified"], str) and gen["hook_count"] == 2
    stats = s.ok("GET", "/api/hooks")
    assert stats["active"] is True and stats["stats"]["total_hooks"] == 2
    assert stats["stats"]["modules"] == ["model.layers.1.mlp", "model.layers.0.self_attn"]
    per = stats["stats"]["stats"]["model.layers.1.mlp"]
    assert per["activated"] > 0 and per["modifications"] > 0
    assert stats["stats"]["total_modifications"] == sum(v["modifications"] for v in stats["stats"]["stats"].values())
    s.ok("DELETE", "/api/hooks")
    assert s.loss() == base_loss
    assert s.ok("GET", "/api/hooks")["stats"]["total_hooks"] == 0


def test_use_hooks_without_active_patch_gives_no_modified(tiny_clean):
    gen = tiny_clean.ok("POST", "/api/generate", {"query": "Hi", "config": "greedy", "max_new_tokens": 3,
                                                  "use_hooks": True, "skip_original": True, **RAW})
    assert isinstance(gen["original"], str) and gen["modified"] is None and gen["hook_count"] == 0


@pytest.mark.parametrize(("bad", "mode", "words"), [
    (sug("model.layers.99.mlp.up_proj.weight"), "weights", "unknown tensor"),
    (sug(op="multiply"), "weights", "operation"),
    (sug(op="normalize"), "weights", "operation"),
    (sug(value=math.nan), "weights", "finite"),
    (sug(value=math.inf), "hooks", "finite"),
    (sug(value="2"), "weights", "finite"),
    (sug("model.embed_tokens.weight"), "weights", "not patchable"),
    (sug(target="top 150%"), "weights", "target"),
    (sug(target="middle 10%"), "hooks", "target"),
])
def test_strict_rejects_whole_request_naming_the_suggestion(tiny_clean, bad, mode, words):
    s = tiny_clean
    base_loss = s.loss()
    r = patch(s, sug(value=3.0), bad, mode=mode)
    assert r.status_code == 422
    body = r.json()
    assert body["suggestion_index"] == 1 and words in body["detail"]
    assert body["suggestion"]["tensor_name"] == bad["tensor_name"]
    assert s.loss() == base_loss  # the good first suggestion was not applied either
    assert s.ok("GET", "/api/hooks")["active"] is False
    assert s.ok("POST", "/api/restore", {}) == {"restored_params": 0}


def test_bad_apply_mode_is_422(tiny_clean):
    r = patch(tiny_clean, sug(), mode="both")
    assert r.status_code == 422 and "apply_mode" in r.json()["detail"]


def test_suggestions_shape_and_unknown_capability(tiny_clean):
    assert tiny_clean.ok("POST", "/api/suggestions", {"capability": "juggling"}) == {"suggestions": []}
    got = tiny_clean.ok("POST", "/api/suggestions", {"capability": "reasoning"})["suggestions"]
    assert got and got == tiny_clean.ok("POST", "/api/suggestions", {"capability": "reasoning"})["suggestions"]
    for item in got:
        assert set(item) == {"tensor_name", "operation", "value", "target", "confidence", "reason"}
        assert 0 <= item["confidence"] <= 1
    # every suggestion is accepted by the strict patch endpoint
    assert patch(tiny_clean, *got).status_code == 200
