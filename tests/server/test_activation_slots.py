"""Activation slots (the vLLM engine's hooks mode) give the HF engine's hooks-mode outputs bit for bit, and
a compiled forward follows edits written into them without compiling again."""

from __future__ import annotations

import pytest
import torch

from hookbench.server import activation_slots
from hookbench.server.patching import Edit, Patcher

EDITS = [("scale", 1.08, ("top", 20.0)), ("add", 0.0137, ("all", 100.0)), ("clamp_max", -0.05, ("bottom", 10.0)),
         ("clamp_min", -0.11, ("top", 10.0)), ("normalize", 3.3, ("all", 100.0)), ("scale", -0.3, ("bottom", 10.0))]


class PairNorm(torch.nn.Module):
    """(normed, residual), as vLLM's fused add-RMSNorm returns."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(96))

    def forward(self, h, residual):
        s = h + residual
        return s * self.weight / s.norm(dim=-1, keepdim=True), s


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = torch.nn.Linear(96, 96)
        self.norm = PairNorm()

    def forward(self, x):
        out, res = self.norm(self.mlp(x), x)
        return out + res


def model_pair(dtype):
    torch.manual_seed(0)
    ref = Model().to(dtype)
    slotted = Model().to(dtype)
    slotted.load_state_dict(ref.state_dict())
    for m in (slotted.mlp, slotted.norm):
        activation_slots.install(m, torch.device("cpu"))
    return ref, slotted


def edit(mod: str, op, value, target) -> Edit:
    return Edit(f"{mod}.weight", op, value, target)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("op,value,target", EDITS)
def test_one_slot_is_the_hf_hook_bit_for_bit(dtype, op, value, target):
    ref, slotted = model_pair(dtype)
    x = torch.randn(3, 5, 96).to(dtype)
    with torch.no_grad():
        clean = slotted(x)
        Patcher(ref).apply_hooks([edit("mlp", op, value, target), edit("norm", op, value, target)])
        activation_slots.write(slotted.mlp, [(op, value, target)], 96)
        activation_slots.write(slotted.norm, [(op, value, target)], 96)
        want, got = ref(x), slotted(x)
        assert torch.equal(got, want) and not torch.equal(got, clean)
        for m in (slotted.mlp, slotted.norm):
            activation_slots.write(m, [], 96)
        assert torch.equal(slotted(x), clean)  # free slots are the identity


def test_slots_compose_in_order_and_hold_at_most_SLOTS():
    ref, slotted = model_pair(torch.float32)
    x = torch.randn(4, 96)
    chain = EDITS[:activation_slots.SLOTS]
    with torch.no_grad():
        Patcher(ref).apply_hooks([edit("mlp", *e) for e in chain])
        activation_slots.write(slotted.mlp, chain, 96)
        assert torch.equal(slotted(x), ref(x))
    with pytest.raises(ValueError, match="at most"):
        activation_slots.write(slotted.mlp, EDITS[:activation_slots.SLOTS + 1], 96)


def test_a_compiled_forward_reads_the_slots_without_compiling_again():
    """Dynamo traces every slot once (a free slot is the identity); edits only write buffers in place."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    ref, slotted = model_pair(torch.float32)
    compiled = torch.compile(slotted, backend="eager", fullgraph=True)
    x = torch.randn(6, 96)
    with torch.no_grad():
        clean = compiled(x)
        assert torch.equal(clean, ref(x))
        storage = slotted.mlp.hb_scale.data_ptr()
        for e in EDITS[:3]:
            activation_slots.write(slotted.mlp, [e], 96)
            ref_e = Model()
            ref_e.load_state_dict(ref.state_dict())
            Patcher(ref_e).apply_hooks([edit("mlp", *e)])
            assert torch.equal(compiled(x), ref_e(x))
        activation_slots.write(slotted.mlp, [], 96)
        assert torch.equal(compiled(x), clean)
    assert counters["stats"]["unique_graphs"] == 1 and slotted.mlp.hb_scale.data_ptr() == storage
