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
