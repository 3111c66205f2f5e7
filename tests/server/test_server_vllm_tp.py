"""Tensor parallelism for real, on CPU: `--tensor-parallel-size 2` on a random Llama whose heads divide
by 2 (the embedded model's 9 cannot be split), with the embedded tokenizer, built here. The engine sets
vLLM's VLLM_CPU_OMP_THREADS_BIND itself (one group of CPUs per rank). Each rank edits its own shard of
a fused qkv part, a fused gate/up share, o_proj and a norm: the probe losses are the HF engine's under
the same patch (1e-4 relative), and restore brings back the losses exactly and every rank's digests.

vLLM-marked: runs in the vLLM venv; skipped with the reason elsewhere (test_server_vllm.py's guard).
"""

from __future__ import annotations

import pytest

from hookbench.hookapi import contract
from hookbench.testing.servers import start_server, stop_server
from hookbench.testing.vllm import LOSS_TOL, MARKS, PROBES

pytestmark = MARKS

EDITS = [{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 3.0, "target": "top 20%"},
         {"tensor_name": "model.layers.0.self_attn.k_proj.weight", "operation": "scale", "value": 0.0},
         {"tensor_name": "model.layers.1.self_attn.o_proj.weight", "operation": "add", "value": 0.05, "target": "bottom 10%"},
         {"tensor_name": "model.layers.0.input_layernorm.weight", "operation": "clamp_max", "value": 0.5}]
NAMES = [e["tensor_name"] for e in EDITS]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A seeded random Llama: 4 heads of 64 (a head size vLLM's CPU attention supports), 2 KV heads."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hookbench.server import models

    tok = AutoTokenizer.from_pretrained(models.resolve("smollm2"))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # norm weights away from 1, so clamp_max 0.5 changes them
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return str(models.save_model_dir(model, tok, tmp_path_factory.mktemp("tp") / "llama-4h"))


def losses(server) -> list[float]:
    items = [{"prompt": p, "answer": a} for p, a in PROBES]
    return [r["loss"] for r in server.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]]


def digests(server) -> dict[str, list[str]]:
    return server.ok("POST", contract.WEIGHTS_DIGEST_PATH, {"tensors": NAMES})["digests"]


def test_tensor_parallel_2_edits_each_rank_s_shard_like_the_hf_engine(model_dir):
    hf = start_server(model_dir)
    try:
        hf_clean = losses(hf)
        assert hf.call("POST", contract.HOOKS, {"suggestions": EDITS, "apply_mode": "weights"}).status_code == 200
        hf_patched = losses(hf)
    finally:
        stop_server(hf)
    v = start_server(model_dir, "--engine", "vllm", "--tensor-parallel-size", "2", timeout_s=900)
    try:
        h = v.ok("GET", contract.HEALTH)
        assert h["server"]["tensor_parallel_size"] == 2 and h["hooks_active"] is False
        assert v.greedy("The cat sat on", 4, chat=False)["original"] is not None
        clean, clean_digests = losses(v), digests(v)
        assert all(len(d) == 2 for d in clean_digests.values())  # one digest per rank
        r = v.call("POST", contract.HOOKS, {"suggestions": EDITS, "apply_mode": "weights"})
        assert r.status_code == 200, r.text
        patched, patched_digests = losses(v), digests(v)
        assert clean == pytest.approx(hf_clean, rel=LOSS_TOL) and patched == pytest.approx(hf_patched, rel=LOSS_TOL)
        assert patched != clean
        for n in NAMES:  # every rank holds a changed shard (the norm is whole on each rank)
            assert all(a != b for a, b in zip(patched_digests[n], clean_digests[n])), n
        v.ok("POST", contract.RESTORE, {})
        assert losses(v) == clean and digests(v) == clean_digests
    finally:
        stop_server(v)
