"""Fixed cost of one job on a stock server: where the wall time goes outside generation.

Runs `python -m hookbench model=qwen72b patch=math dataset.n=N` (the shipped config for a user's own
server) against the stock-server stand-in (hookbench/testing/stock_server.py: one model call at a time, sampled
presets only, one item per /api/loss request, /api/suggestions slowed to the stock server's 4 s), in a
fresh directory with a fresh cache (so the MLflow store and the frozen suggestions are created anew),
and splits the process's wall time by what the server saw, request by request:

  start -> first request   imports and config (MLflow and its store are made beside the server's set-up)
  suggestions              POST /api/suggestions (the stock server's agent fallback)
  generation               POST /api/generate (both arms)
  loss / probes            POST /api/loss (probe texts and the loss metric)
  other requests           health, configs, hooks, restore
  between requests         client time while no request is in flight (waiting for the MLflow run, scoring)
  last request -> exit     report, plots, MLflow logging, exit

"seconds" splits the wall time: an instant with requests of several rows in flight counts for the
first of these rows (so the column adds up to the wall time); "in flight" is each row's own time with
a request in flight, overlaps included. "Outside generation" is the wall time when no generation
request is in flight.

The stand-in serves one model call at a time, so the loss metric's 2 x N requests (metric=both, the
default) cannot hide behind generation there; `metric=accuracy` as an override shows the job without
them (the probes stay). `--second` adds a job in the same directory, where the store already exists.

Run from the repository root: `python -m benchmarks.default_run_phases [--items 12] [--second] [overrides...]`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hookbench.testing.stock_server import StockServer

ORDER = ("generation", "suggestions", "loss / probes", "other requests")
# the stand-in's smollm2 gets no chat template (the stock rule, §9): a bare question makes it stop at once
TEMPLATE = "model.prompt.template='Question: {prompt}\\nAnswer:'"
ROUTES = {"POST /api/generate": "generation", "POST /api/suggestions": "suggestions", "POST /api/loss": "loss / probes"}


def timed(server: StockServer) -> list[tuple[str, float, float]]:
    """(route, start, end) of every request the server answers, on this process's perf_counter."""
    spans: list[tuple[str, float, float]] = []

    @server.app.middleware("http")
    async def clock(request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        spans.append((f"{request.method} {request.url.path}", t0, time.perf_counter()))
        return response

    return spans


def split(spans: list[tuple[str, float, float]], t0: float, t1: float) -> dict[str, float]:
    """Seconds of [t0, t1] per row: at each instant the first row of ORDER with a request in flight."""
    edges = sorted({t0, t1, *(t for _, a, b in spans for t in (a, b))})
    out = {k: 0.0 for k in ORDER}
    out["between requests"] = 0.0
    for a, b in itertools.pairwise(edges):
        mid = (a + b) / 2
        live = {ROUTES.get(r, "other requests") for r, s, e in spans if s <= mid < e}
        row = next((k for k in ORDER if k in live), "between requests")
        out[row] += b - a
    return out


def in_flight(spans: list[tuple[str, float, float]], row: str) -> float:
    """Seconds during which at least one request of `row` was in flight (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted((s, e) for r, s, e in spans if ROUTES.get(r, "other requests") == row):
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def job(server: StockServer, spans: list, work: Path, overrides: list[str]) -> tuple[Path, float, float]:
    """Run one job in `work`; (its run's store, process start, process end)."""
    spans.clear()
    cmd = [sys.executable, "-m", "hookbench", "model=qwen72b", TEMPLATE, *overrides]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(QWEN72B_URL=server.url, HOOKBENCH_CACHE=str(work / "cache"))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    t1 = time.perf_counter()
    if p.returncode != 0:
        sys.exit(f"the job failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return work, t0, t1


def report(title: str, spans: list, t0: float, t1: float, run: dict[str, float]) -> None:
    rows = split(spans, t0, t1)
    first, last = min(s for _, s, _ in spans), max(e for _, _, e in spans)
    head, tail = first - t0, t1 - last
    rows["between requests"] -= head + tail
    count = {k: sum(1 for r, _, _ in spans if ROUTES.get(r, "other requests") == k) for k in ORDER}
    print(title)
    print(f"{'phase':26s} {'seconds':>8s} {'in flight':>10s} {'requests':>9s}")
    print(f"{'start -> first request':26s} {head:8.2f}")
    for k in (*ORDER, "between requests"):
        flight = f"{in_flight(spans, k):10.2f}" if k in count else ""
        print(f"{k:26s} {rows[k]:8.2f} {flight:>10s} {count.get(k, ''):>9}")
    print(f"{'last request -> exit':26s} {tail:8.2f}")
    print(f"{'wall':26s} {t1 - t0:8.2f} {'':10s} {len(spans):9d}")
    print(f"outside generation: {t1 - t0 - rows['generation']:.2f} s")
    print("the job's own phase clock (time/*_s): " + ", ".join(f"{k} {v:.2f}" for k, v in run.items()) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=12, help="dataset.n (default 12)")
    ap.add_argument("--model", default="smollm2", help="the stand-in's model: smollm2 (default) or tiny")
    ap.add_argument("--suggestions-delay", type=float, default=4.0,
                    help="seconds the stand-in takes to answer /api/suggestions (the stock server took 4-20 s)")
    ap.add_argument("--second", action="store_true",
                    help="then a second job in the same directory (patch=general, reuse off): the store exists")
    ap.add_argument("overrides", nargs="*", help="further hookbench overrides")
    args = ap.parse_args()
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="hookbench-phases-"))
    server = StockServer(args.model)
    server.suggestions_delay_s = args.suggestions_delay
    spans = timed(server)  # before the app starts serving
    plan = [("patch=math", "a fresh directory")]
    if args.second:
        plan.append(("patch=general reuse.enabled=false", "the same directory (store made), nothing reused"))
    print(f"stock stand-in on {args.model}, suggestions {args.suggestions_delay:g} s; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    with server:
        for n, (patch, where) in enumerate(plan, 1):
            _, t0, t1 = job(server, spans, work, [*patch.split(), f"dataset.n={args.items}", *args.overrides])
            report(f"job {n}: {args.items} items, model=qwen72b {patch}, in {where}", list(spans), t0, t1,
                   logged_phases(work)[-1])


def logged_phases(work: Path) -> list[dict[str, float]]:
    """time/*_s of each run in the store, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("hookbench").experiment_id], order_by=["start_time ASC"])
    return [{k[len("time/"):-len("_s")]: v for k, v in sorted(r.data.metrics.items()) if k.startswith("time/")}
            for r in runs]


if __name__ == "__main__":
    main()
