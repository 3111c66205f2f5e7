"""Tensor parallelism for real, on CPU: `--tensor-parallel-size 2` on a random Llama whose heads divide
by 2 (the embedded model's 9 cannot be split), with the embedded tokenizer, built here. The engine sets
vLLM's VLLM_CPU_OMP_THREADS_BIND itself (one group of CPUs per rank). Each rank edits its own shard of
a fused qkv part, a fused gate/up share, o_proj and a norm, and hooks mode edits MLP and attention
outputs on every rank: the probe losses are those of the HF engine and of vLLM at TP=1 under the same
patch (1e-4 relative); restore brings back the losses exactly and every rank's digests, DELETE the losses.

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
HOOKS = [{"tensor_name": "model.layers.1.mlp.down_proj.weight", "operation": "scale", "value": 1.5, "target": "top 20%"},
         {"tensor_name": "model.layers.0.self_attn.o_proj.weight", "operation": "add", "value": 0.05},
         {"tensor_name": "model.layers.1.self_attn.q_proj.weight", "operation": "clamp_max", "value": 0.02},
         {"tensor_name": "model.layers.0.mlp.gate_proj.weight", "operation": "clamp_min", "value": -0.01,
          "target": "bottom 10%"}]


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


def contract_probe(s) -> None:
    """The contract's shapes and rules §1 (DELETE leaves a weight edit) and §10 (restore, DELETE undo exactly)."""
    h = s.ok("GET", contract.HEALTH)
    assert h["status"] == "online" and h["device"] == "cpu" and h["hooks_active"] is False
    assert all(list(c) == list(contract.PRESET_FIELDS) for c in s.ok("GET", contract.CONFIGS).values())
    one = s.greedy("The cat sat on", 4, chat=False)
    assert set(one) == {"original", "modified", "hook_count"} and isinstance(one["original"], str)
    assert one["modified"] is None
    shape = s.ok("POST", contract.LOSS, {"prompt": "What is 7 + 5?", "answer": "12"})
    assert set(shape) == {"loss", "prompt_tokens", "answer_tokens", "total_tokens"} and shape["loss"] > 0
    base = s.loss()
    s.ok("POST", contract.HOOKS, {"suggestions": EDITS[:1], "apply_mode": "weights"})
    patched = s.loss()
    s.ok("DELETE", contract.HOOKS)
    assert s.loss() == patched != base
    assert s.ok("POST", contract.RESTORE, {}) == {"restored_params": 1} and s.loss() == base
    s.ok("POST", contract.HOOKS, {"suggestions": HOOKS[:1], "apply_mode": "hooks"})
    hooked = s.greedy("The cat sat on", 4, chat=False, use_hooks=True)
    assert isinstance(hooked["modified"], str) and s.loss() != base
    s.ok("DELETE", contract.HOOKS)
    assert s.loss() == base and s.ok("GET", contract.HEALTH)["hooks_active"] is False


def measure(server, check_digests: bool) -> dict[str, list[float]]:
    """Probe losses clean, under the weights patch and under the hooks; each undo brings back the clean ones."""
    clean = losses(server)
    before = digests(server) if check_digests else {}
    r = server.call("POST", contract.HOOKS, {"suggestions": EDITS, "apply_mode": "weights"})
    assert r.status_code == 200, r.text
    patched = losses(server)
    if check_digests:
        after = digests(server)
        assert all(len(d) == 2 for d in before.values())  # one digest per rank
        for n in NAMES:  # every rank holds a changed shard (the norm is whole on each rank)
            assert all(a != b for a, b in zip(after[n], before[n])), n
    server.ok("POST", contract.RESTORE, {})
    assert losses(server) == clean
    if check_digests:
        assert digests(server) == before
    r = server.call("POST", contract.HOOKS, {"suggestions": HOOKS, "apply_mode": "hooks"})
    assert r.status_code == 200, r.text
    hooked = losses(server)
    server.ok("DELETE", contract.HOOKS)
    assert losses(server) == clean and patched != clean and hooked != clean
    return {"clean": clean, "weights": patched, "hooks": hooked}


def test_tensor_parallel_2_edits_each_rank_like_tp_1_and_the_hf_engine(model_dir):
    seen = {}
    for name, args in [("hf", ()), ("vllm tp=1", ("--engine", "vllm")),
                       ("vllm tp=2", ("--engine", "vllm", "--tensor-parallel-size", "2"))]:
        server = start_server(model_dir, *args, timeout_s=900)
        try:
            if name == "vllm tp=2":
                assert server.ok("GET", contract.HEALTH)["server"]["tensor_parallel_size"] == 2
                contract_probe(server)
            seen[name] = measure(server, check_digests=name == "vllm tp=2")
        finally:
            stop_server(server)
    print("probe losses:", seen)
    for kind in ("clean", "weights", "hooks"):
        for name in ("vllm tp=1", "vllm tp=2"):
            assert seen[name][kind] == pytest.approx(seen["hf"][kind], rel=LOSS_TOL), (name, kind)
        assert seen["vllm tp=2"][kind] == pytest.approx(seen["vllm tp=1"][kind], rel=LOSS_TOL), kind
