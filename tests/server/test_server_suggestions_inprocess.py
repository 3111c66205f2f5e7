"""Suggestion determinism without the server's per-capability cache, on the tiny model in-process."""

from __future__ import annotations

import pytest
import torch

from hookbench.server import models, suggestions
from hookbench.server.patching import Patcher


@pytest.fixture(scope="module")
def tiny_lm():
    return models.load("tiny")


def test_compute_is_deterministic_and_ignores_a_live_patch(tiny_lm):
    loaded = models.weights_sha256(tiny_lm.model)
    patcher = Patcher(tiny_lm.model)
    clean = suggestions.compute(tiny_lm, patcher, "math")
    assert clean and clean == suggestions.compute(tiny_lm, patcher, "math")
    assert models.weights_sha256(tiny_lm.model) == loaded  # left exactly as found

    name = "model.layers.0.mlp.up_proj.weight"
    patcher.apply_weights(patcher.validate([{"tensor_name": name, "operation": "scale", "value": 3.0}], "weights"))
    patcher.apply_hooks(patcher.validate([{"tensor_name": name, "operation": "add", "value": 1.0}], "hooks"))
    edited = patcher.params[name].detach().clone()
    assert suggestions.compute(tiny_lm, patcher, "math") == clean
    assert torch.equal(patcher.params[name], edited) and patcher.hooks_enabled  # the patch is live again
    patcher.restore()
    patcher.remove_hooks()
    assert models.weights_sha256(tiny_lm.model) == loaded


def test_batched_candidate_scores_are_those_of_the_patched_model(tiny_lm):
    """Each suggestion's loss, scored in a batched pass with the edit seen through a hook, is the loss the
    model has when that suggestion is applied as a weights patch."""
    from hookbench.server.calibration import CALIBRATION
    from hookbench.server.generation import answer_losses

    items = [(p, " " + a) for p, a in CALIBRATION["math"]]
    patcher = Patcher(tiny_lm.model)
    for s in suggestions.compute(tiny_lm, patcher, "math"):
        patcher.apply_weights(patcher.validate([s], "weights"))
        rows = answer_losses(tiny_lm, items, suggestions.ANSWER_PREFIX)
        patcher.restore()
        assert s["reason"].split(" on ")[0].endswith(f"-> {sum(r['loss'] for r in rows) / len(rows):.4f}")
