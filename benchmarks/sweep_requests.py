"""Generations a sweep of 1 model x 3 patch sets (general, math, reasoning) over N items costs,
counted at the server, on hookbench's reference server and on a stock-behaving server (the
tests' stand-in for the users' server, hook-api.md: sampled presets, no seed, no extensions,
`use_hooks: true` generating twice), next to the minimum N·(1+K) (one baseline, one patched
answer per patch set) and the seed harness's plan N·(1+2K) (baseline once, `use_hooks: true`
per patch set). Both servers run the same patch sets: the ones the reference server suggests,
frozen by the first sweep and copied to the second.

Usage, from the repo root: python benchmarks/sweep_requests.py [--items 16] [--model tiny|smollm2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.hookapi import contract
from hookbench.hookapi.launcher import reference_server_command, start_server

REPO = Path(__file__).resolve().parents[1]

CAPABILITIES = ("general", "math", "reasoning")


def sweep(work: Path, overrides: list[str], env: dict | None = None) -> None:
    """`python -m hookbench -m ...` in `work`; exits with its stderr when it or any job failed."""
    work.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the store stays in `work`
    p = subprocess.run([sys.executable, "-m", "hookbench", "-m", f"patch={','.join(CAPABILITIES)}", *overrides],
                       check=False, cwd=work, capture_output=True, text=True, env={**base, **(env or {})})
    client = MlflowClient(tracking_uri=f"sqlite:///{work}/mlruns/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    jobs = [r for r in runs if r.data.tags.get(mlflow_keys.TAG_SWEEP) != "parent" and r.info.status == "FINISHED"]
    if p.returncode != 0 or len(jobs) != len(CAPABILITIES):
        sys.exit(f"the sweep in {work} failed (exit {p.returncode}, {len(jobs)} jobs finished):\n{p.stderr[-3000:]}")


def on_reference(model: str, n: int, work: Path) -> int:
    server = start_server(reference_server_command(model), {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=600)
    try:
        def made() -> int:
            return requests.get(server.url + contract.HEALTH, timeout=30).json()["counters"]["generated_sequences"]

        before = made()
        sweep(work, [f"model={model}", "model.server.launch.enabled=false", f"model.server.url={server.url}",
                     f"dataset.n={n}"])
        return made() - before
    finally:
        server.stop()


def on_stock(model: str, n: int, work: Path) -> int:
    from hookbench.testing.stock_server import StockServer

    with StockServer(model) as server:
        sweep(work, ["model=qwen72b", f"dataset.n={n}"], {"QWEN72B_URL": server.url})
        return server.generations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--model", default="tiny", choices=["tiny", "smollm2"])
    args = ap.parse_args()
    n, k = args.items, len(CAPABILITIES)
    root = Path(tempfile.mkdtemp(prefix="hookbench-sweep-requests-"))
    try:
        reference = on_reference(args.model, n, root / "reference")
        stock_work = root / "stock"
        shutil.copytree(root / "reference" / "patches" / args.model, stock_work / "patches" / "qwen72b")
        stock = on_stock(args.model, n, stock_work)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    minimum = n * (1 + k)
    rows = [("minimum, N·(1+K)", minimum), ("seed plan, N·(1+2K)", n * (1 + 2 * k)),
            (f"reference server (hookbench.server --model {args.model})", reference),
            (f"stock-behaving server (stand-in on {args.model}, model=qwen72b)", stock)]
    print(f"sweep: 1 model ({args.model}) x {k} patch sets ({', '.join(CAPABILITIES)}) x N={n} items; "
          "generations counted at the server")
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}s}  {'generations':>11s}  {'/ minimum':>9s}")
    for name, count in rows:
        print(f"{name:{width}s}  {count:11d}  {count / minimum:9.2f}")


if __name__ == "__main__":
    main()
