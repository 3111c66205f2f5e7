"""--dtype and --device-map: the choice, the CLI's errors, and patch/restore bit-exact in bf16 and
under an explicit per-layer device map loaded through accelerate (CPU here; GPUs in gpu_check)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from hookbench.server import models, placement
from hookbench.server.engine import HFEngine
from hookbench.server.identity import weights_sha256
from hookbench.testing.cli import cli_env

EDITS = [{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 1.37, "target": "top 20%"},
         {"tensor_name": "model.layers.0.self_attn.o_proj.weight", "operation": "add", "value": 0.01, "target": "bottom 10%"},
         {"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "clamp_max", "value": 0.02, "target": "all"},
         {"tensor_name": "model.layers.0.input_layernorm.weight", "operation": "scale", "value": 0.9, "target": "all"}]
PROBE = ("Question: What is 7 + 5?\nAnswer:", " 12")


def test_dtype_choice():
    assert placement.choose_dtype("auto", "cpu") is torch.float32
    assert placement.choose_dtype("bfloat16", "cpu") is torch.bfloat16
    assert placement.choose_dtype("float16", "cuda:0") is torch.float16
    with pytest.raises(ValueError, match="'fp8'"):
        placement.choose_dtype("fp8", "cpu")


@pytest.mark.parametrize("args, named", [(["--device-map", "gpu7"], "gpu7"), (["--dtype", "fp8"], "fp8")])
def test_bad_placement_is_refused_before_loading(args, named):
    r = subprocess.run([sys.executable, "-m", "hookbench.server", "--model", "tiny", "--port", "1", *args],
                       capture_output=True, text=True, timeout=120, env=cli_env())
    assert r.returncode == 2 and named in r.stderr and "Traceback" not in r.stderr and "loaded" not in r.stderr


def roundtrip(engine: HFEngine) -> None:
    """Weights and hooks patches change the loss; restore / DELETE bring the exact weights and loss back."""
    loaded, base = weights_sha256(engine.lm.model), engine.losses([PROBE], "", False)[0]["loss"]
    engine.apply_weights(engine.validate(EDITS, "weights"))
    assert weights_sha256(engine.lm.model) != loaded
    assert engine.losses([PROBE], "", False)[0]["loss"] != base
    assert engine.restore() == 3
    assert weights_sha256(engine.lm.model) == loaded and engine.losses([PROBE], "", False)[0]["loss"] == base
    engine.apply_hooks(engine.validate(EDITS[:2], "hooks"))
    assert engine.losses([PROBE], "", False)[0]["loss"] != base
    engine.remove_hooks()
    assert engine.losses([PROBE], "", False)[0]["loss"] == base and weights_sha256(engine.lm.model) == loaded


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["tiny", "smollm2"])
def test_bf16_patch_and_restore_are_bit_exact(spec):
    lm = models.load(spec, "bfloat16", "cpu")
    assert lm.dtype == "bfloat16" and HFEngine(lm).identity()["dtype"] == "bfloat16"
    assert lm.weights_sha256 != models.load(spec, "float32", "cpu").weights_sha256  # other weights, other identity
    roundtrip(HFEngine(lm))


def test_explicit_per_layer_device_map_patches_and_restores_exactly():
    layer_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu",
                 "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    lm = models.load("tiny", "bfloat16", layer_map)
    assert lm.model.hf_device_map == layer_map and lm.device_map == "explicit" and lm.devices == ["cpu"]
    assert hasattr(lm.model.model.layers[1], "_hf_hook")  # accelerate's per-module device hook is in the path
    same = models.load("tiny", "bfloat16", "cpu")
    assert HFEngine(lm).losses([PROBE], "", False) == HFEngine(same).losses([PROBE], "", False)
    roundtrip(HFEngine(lm))
