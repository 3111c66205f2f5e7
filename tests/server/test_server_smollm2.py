
"""What needs the real embedded model: useful suggestions, restore bit-exactness, batch equality."""

from __future__ import annotations

import time

import pytest

QUESTION = "What is 7 + 5?"


def test_health_names_the_model(smol):
    assert smol.ok("GET", "/api/health")["server"]["model"] == "smollm2"


@pytest.mark.slow
def test_suggestions_for_math_are_real_deterministic_and_leave_the_model_alone(smol_clean):
    s = smol_clean
    base_loss = s.loss()
    t = time.perf_counter()
    got = s.ok("POST", "/api/suggestions", {"capability": "math"})["suggestions"]
    elapsed = time.perf_counter() - t
    print(f"\n/api/suggestions math on smollm2: {elapsed:.1f} s")
    assert got, "expected at least one math suggestion"
    for item in got:
        assert 0 < item["confidence"] <= 1 and "calibration loss" in item["reason"] and "math" in item["reason"]
        assert item["operation"] == "scale" and item["tensor_name"].startswith("model.layers.")
    assert s.ok("POST", "/api/suggestions", {"capability": "math"})["suggestions"] == got
    assert s.loss() == base_loss
    assert s.ok("POST", "/api/restore", {}) == {"restored_params": 0}


@pytest.mark.slow
def test_greedy_is_bit_exact_after_patch_and_restore(smol_clean):
    s = smol_clean
    before = s.greedy(QUESTION, 16)
    assert before["original"]  # the chat template (auto) makes the model answer
    base_loss = s.loss()
    r = s.call("POST", "/api/hooks", {"suggestions": [
        {"tensor_name": "model.layers.10.mlp.down_proj.weight", "operation": "scale", "value": 3.0, "target": "top 20%"},
        {"tensor_name": "model.layers.20.self_attn.o_proj.weight", "operation": "scale", "value": 0.5, "target": "all"},
    ]})
    assert r.status_code == 200, r.text
    assert s.loss() != base_loss
    s.ok("DELETE", "/api/hooks")
    assert s.loss() != base_loss  # DELETE alone does not undo weights
    assert s.ok("POST", "/api/restore", {})["restored_params"] == 2
    assert s.loss() == base_loss
    assert s.greedy(QUESTION, 16) == before


def test_batch_of_one_equals_single_greedy(smol_clean):
    single = smol_clean.greedy(QUESTION, 16)
    batch = smol_clean.ok("POST", "/api/generate/batch", {"queries": [QUESTION], "config": "greedy",
                                                          "max_new_tokens": 16})["results"]
    assert batch == [single]
