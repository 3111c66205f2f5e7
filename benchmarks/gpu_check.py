"""The reference server at scale: load, placement, memory, throughput, patch cost and the contract.

Runs anywhere; meaningful on a GPU node.  Starts `python -m hookbench.server` on a model directory
(`--model DIR`) or on a random Llama of a given shape (`--shape tiny|7b|70b-2layers`: 70b-2layers
has a 70B's hidden sizes and 2 of its 80 layers, for its per-layer memory and cost without its
weights; random shapes use the embedded SmolLM2 tokenizer and its 49k vocabulary), and prints one
table: load time, dtype, device map, memory per device, tokens/s at batch sizes 1, 8, 32, 64,
patch and restore time, /api/loss latency, and the contract probe (a weights patch and a hook each
change greedy outputs or the loss, restore / DELETE bring every output and the loss back exactly).

It also times `POST /api/weights/digest` (SHA-256 of a tensor as the server holds it, the check a job
makes before apply, after apply and after restore) on the largest tensor of a layer, down_proj
(8192 x 28672 at 70B: 448 MiB in bf16). `--shrink N` divides a shape's widths and head counts by N
(head size kept): CI runs `--shape 70b-2layers --shrink 16` on CPU.

Usage: python benchmarks/gpu_check.py --shape 7b [--dtype auto] [--device-map auto] [--new-tokens 32] [--shrink N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

from hookbench.hookapi.launcher import start_server
from hookbench.reports.formatting import md_table

SHAPES = {  # LlamaConfig fields; vocabulary from the tokenizer
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32),
    "70b-2layers": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=2, num_attention_heads=64,
                        num_key_value_heads=8),
}
BATCH_SIZES = (1, 8, 32, 64)
PROMPTS = [f"Question: What is {a} plus {b}?\nAnswer:" for a, b in zip(range(3, 999, 7), range(5, 999, 13))]
PROBE = {"prompt": "Question: What is 7 + 5?\nAnswer:", "answer": "12"}


def shrunk(shape: str, n: int) -> dict:
    """`shape` with hidden/intermediate sizes and head counts divided by n (head size kept, at least one KV head)."""
    cfg = dict(SHAPES[shape])
    if n == 1:
        return cfg
    heads = cfg["num_attention_heads"] // n
    if heads < 1 or cfg["hidden_size"] % n or cfg["intermediate_size"] % n:
        raise ValueError(f"--shrink {n}: {shape} cannot be divided by {n}")
    kv = max(1, cfg["num_key_value_heads"] // n)
    return cfg | dict(hidden_size=cfg["hidden_size"] // n, intermediate_size=cfg["intermediate_size"] // n,
                      num_attention_heads=heads, num_key_value_heads=kv if heads % kv == 0 else 1)


def random_model_dir(shape: str, target: Path, shrink: int = 1) -> Path:
    """A seeded random Llama of `shape`, saved as an HF directory (built on the GPU when there is one)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    from hookbench.server import models

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(models.resolve("smollm2"))
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **shrunk(shape, shrink))
    torch.manual_seed(0)
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(dtype)
    return models.save_model_dir(model, tok, target)


class Check:
    """Calls to one running server, timed."""

    def __init__(self, url: str):
        self.url = url

    def post(self, path: str, body: dict) -> tuple[dict, float]:
        t = time.perf_counter()
        r = requests.post(self.url + path, json=body, timeout=3600)
        r.raise_for_status()
        return r.json(), time.perf_counter() - t

    def greedy(self, prompts: list[str], n: int) -> tuple[list[str], float]:
        body, s = self.post("/api/generate/batch", {"queries": prompts, "config": "greedy", "max_new_tokens": n,
                                                    "chat": False})
        return [r["original"] for r in body["results"]], s

    def loss(self) -> float:
        return self.post("/api/loss", PROBE)[0]["loss"]

    def patch(self, tensor: str, mode: str) -> float:
        s = {"tensor_name": tensor, "operation": "scale", "value": 1.5, "target": "top 20%"}
        return self.post("/api/hooks", {"suggestions": [s], "apply_mode": mode})[1]


def probe(c: Check, tensor: str, n: int) -> str:
    """pass, or what failed: each patch must change something, each undo must bring everything back."""
    prompts = PROMPTS[:8]
    outs, loss = c.greedy(prompts, n)[0], c.loss()
    c.patch(tensor, "weights")
    changed = c.greedy(prompts, n)[0] != outs or c.loss() != loss
    c.post("/api/restore", {})
    if not changed:
        return "FAIL: a weights patch changed neither outputs nor loss"
    if c.greedy(prompts, n)[0] != outs or c.loss() != loss:
        return "FAIL: restore did not bring the outputs and loss back"
    c.patch(tensor, "hooks")
    hooked = c.loss() != loss
    requests.delete(c.url + "/api/hooks", timeout=600).raise_for_status()
    if not hooked or c.greedy(prompts, n)[0] != outs or c.loss() != loss:
        return "FAIL: hooks mode (the hook changed nothing, or DELETE left a change)"
    return f"pass ({len(prompts)}/{len(prompts)} greedy outputs and the loss identical after restore; hooks mode)"


def digest_row(c: Check, tensor: str) -> list:
    """Time of one SHA-256 digest of `tensor` on the server (mean of 3), with its size as served."""
    ident = requests.get(c.url + "/api/health", timeout=60).json()["server"]
    times = [c.post("/api/weights/digest", {"tensors": [tensor]})[1] for _ in range(3)]
    return [f"weights digest ({tensor}, mean of 3)", f"{sum(times) / 3 * 1e3:.1f} ms in {ident['dtype']}"]


def gib(x) -> str:
    return "-" if x is None else f"{x / 2**30:.2f} GiB"


def measure(url: str, load_s: float, new_tokens: int, batch_sizes) -> list[list]:
    c = Check(url)
    h = requests.get(url + "/api/health", timeout=60).json()
    ident = h["server"]
    rows = [["load time (start to healthy)", f"{load_s:.1f} s"], ["dtype", ident["dtype"]],
            ["device map", f"{ident['device_map']} over {', '.join(ident['devices'])}"]]
    for dev, m in h["memory"].items():
        rows.append([f"memory {dev}", f"weights {gib(m['weights_bytes'])}, allocated {gib(m['allocated_bytes'])}"])
    c.greedy(PROMPTS[:1], 2)  # warm-up
    for bs in batch_sizes:
        _, s = c.greedy((PROMPTS * 2)[:bs], new_tokens)
        rows.append([f"tokens/s at batch size {bs}", f"{bs * new_tokens / s:.1f} ({s:.2f} s for {bs}x{new_tokens})"])
    tensor = "model.layers.1.mlp.up_proj.weight"
    patch_s = c.patch(tensor, "weights")
    restore_s = c.post("/api/restore", {})[1]
    rows.append([f"patch + restore ({tensor}, top 20%)", f"{patch_s * 1e3:.1f} ms + {restore_s * 1e3:.1f} ms"])
    rows.append(digest_row(c, "model.layers.1.mlp.down_proj.weight"))
    times = [c.post("/api/loss", PROBE)[1] for _ in range(5)]
    rows.append(["/api/loss latency (mean of 5)", f"{sum(times) / len(times) * 1e3:.1f} ms"])
    rows.append(["contract probe", probe(c, tensor, min(new_tokens, 16))])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="an HF model directory")
    src.add_argument("--shape", choices=sorted(SHAPES), help="a random Llama of this shape")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device-map", default="auto")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    ap.add_argument("--start-timeout-s", type=float, default=3600)
    ap.add_argument("--shrink", type=int, default=1, help="divide the shape's widths and head counts by N (CI: 16)")
    args = ap.parse_args(argv)
    if args.shape:
        try:
            shrunk(args.shape, args.shrink)
        except ValueError as e:
            ap.error(str(e))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        model = args.model or str(random_model_dir(args.shape, Path(tmp) / args.shape, args.shrink))
        if args.model and not Path(args.model).is_dir():
            ap.error(f"--model {args.model!r} is not a directory")
        cmd = [sys.executable, "-m", "hookbench.server", "--model", model, "--dtype", args.dtype,
               "--device-map", args.device_map, "--port", "{port}"]
        t = time.perf_counter()
        server = start_server(cmd, {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=args.start_timeout_s)
        try:
            rows = measure(server.url, time.perf_counter() - t, args.new_tokens, batch_sizes)
        finally:
            server.stop()
    shrink = f" shrunk {args.shrink}x ({shrunk(args.shape, args.shrink)})" if args.shape and args.shrink > 1 else ""
    print(f"gpu_check: {args.model or 'random ' + args.shape}{shrink}")
    print(md_table(["what", "seen"], rows))
    return 0 if rows[-1][1].startswith("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
