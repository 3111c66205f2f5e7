"""The HF and vLLM engines of the reference server side by side: same model, dtype and prompts.

Starts `python -m hookbench.server --engine hf` and then `--engine vllm` on the same model, and
prints one table: load time, tokens/s at batch sizes 1, 8, 32, 64 (greedy), patch + restore time
of one weight edit, /api/loss latency, the clean probe loss on both, and the wall time of one
hookbench job (N generated sums, one patch: `patch=math`, no guard task) against each. Needs vLLM importable
(the vLLM venv: make vllm, docs/development.md); on CPU it measures vLLM's CPU backend, not a GPU.

Usage: python benchmarks/engine_compare.py [--model smollm2] [--new-tokens 16] [--job-items 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import requests
from gpu_check import PROBE, PROMPTS, Check

from hookbench.hookapi.launcher import start_server
from hookbench.reports.formatting import md_table

ENGINES = ("hf", "vllm")
EDIT = "model.layers.1.mlp.up_proj.weight"


def engine_column(url: str, load_s: float, args, batch_sizes) -> list[str]:
    """One engine's numbers, in the order of ROWS."""
    c = Check(url)
    c.greedy(PROMPTS[:1], 2)  # warm-up
    col = [f"{load_s:.1f} s"]
    for bs in batch_sizes:
        _, s = c.greedy((PROMPTS * 2)[:bs], args.new_tokens)
        col.append(f"{bs * args.new_tokens / s:.1f} ({s:.2f} s)")
    patch_s = c.patch(EDIT, "weights")
    restore_s = c.post("/api/restore", {})[1]
    col.append(f"{patch_s * 1e3:.0f} + {restore_s * 1e3:.0f} ms")
    times = [c.post("/api/loss", PROBE)[1] for _ in range(5)]
    col.append(f"{sum(times) / len(times) * 1e3:.1f} ms")
    col.append(f"{c.loss():.6f}")
    col.append(job_wall(url, args.job_items))
    return col


def job_wall(url: str, n: int) -> str:
    """Wall of `python -m hookbench` against the running server: n items, baseline + one patch, no guard."""
    with tempfile.TemporaryDirectory(prefix="engine-compare-") as cwd:
        cmd = [sys.executable, "-m", "hookbench", "model=smollm2", "model.server.launch.enabled=false",
               f"model.server.url={url}", f"dataset.n={n}", "patch=math", "reuse.enabled=false", "guards=[]"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ})
        wall = time.perf_counter() - t
    return f"{wall:.1f} s" if proc.returncode == 0 else f"failed (exit {proc.returncode}): {proc.stderr[-300:]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--job-items", type=int, default=20)
    ap.add_argument("--start-timeout-s", type=float, default=1800)
    args = ap.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    columns = {}
    for engine in ENGINES:
        cmd = [sys.executable, "-m", "hookbench.server", "--model", args.model, "--dtype", args.dtype,
               "--engine", engine, "--port", "{port}"]
        t = time.perf_counter()
        server = start_server(cmd, {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=args.start_timeout_s)
        try:
            dtype = requests.get(server.url + "/api/health", timeout=60).json()["server"]["dtype"]
            columns[engine] = engine_column(server.url, time.perf_counter() - t, args, batch_sizes)
        finally:
            server.stop()
        print(f"{engine}: {columns[engine]}", flush=True)  # kept even if a later engine fails
    rows = (["load time (start to healthy)"] + [f"tokens/s at batch size {bs} (greedy, {args.new_tokens} new)"
                                                for bs in batch_sizes]
            + [f"patch + restore ({EDIT}, top 20%)", "/api/loss latency (mean of 5)", "probe loss (clean)",
               f"hookbench job wall ({args.job_items} items, patch=math, no guard)"])
    print(f"engine_compare: {args.model} in {dtype}")
    print(md_table(["what", *ENGINES], [[r, *(columns[e][i] for e in ENGINES)] for i, r in enumerate(rows)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
