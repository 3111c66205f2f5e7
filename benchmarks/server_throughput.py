"""One-at-a-time vs batched generation throughput of the reference hook server on the embedded model.

Starts `python -m hookbench.server --model smollm2` on a free local port, sends N=32 short prompts
one request each to /api/generate, then once to /api/generate/batch (greedy, fixed max_new_tokens),
and prints req/s, items/s and the speed-up.  Usage: python benchmarks/server_throughput.py [--n 32]
"""

from __future__ import annotations

import argparse
import sys
import time

import requests

from hookbench.hookapi.launcher import reference_server_command, start_server

PROMPTS = [f"What is {a} + {b}? Answer with a number." for a, b in zip(range(3, 99, 3), range(7, 999, 11))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()
    prompts = (PROMPTS * (args.n // len(PROMPTS) + 1))[: args.n]
    t0 = time.perf_counter()
    server = start_server(reference_server_command(args.model), {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=600)
    url = server.url
    try:
        print(f"server start: {time.perf_counter() - t0:.1f} s")
        body = {"config": "greedy", "max_new_tokens": args.max_new_tokens}
        requests.post(url + "/api/generate", json={"query": "warm up", **body}, timeout=600)

        t = time.perf_counter()
        for q in prompts:
            requests.post(url + "/api/generate", json={"query": q, **body}, timeout=600).raise_for_status()
        single = time.perf_counter() - t

        t = time.perf_counter()
        r = requests.post(url + "/api/generate/batch", json={"queries": prompts, **body}, timeout=600)
        r.raise_for_status()
        assert len(r.json()["results"]) == len(prompts)
        batched = time.perf_counter() - t

        n = len(prompts)
        print(f"one-by-one: {single:.2f} s  {n / single:.2f} req/s  {n / single:.2f} items/s")
        print(f"batched:    {batched:.2f} s  {1 / batched:.3f} req/s  {n / batched:.2f} items/s")
        print(f"speed-up:   {single / batched:.2f}x  (N={n}, max_new_tokens={args.max_new_tokens}, greedy)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
