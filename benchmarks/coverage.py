"""Coverage and type-I error of every interval and test the verdict reports, by simulation.

    python benchmarks/coverage.py            # the moderate grid (a few minutes on 2 cores)
    python benchmarks/coverage.py --full     # n 50/200/1000, psi 0.1/0.2/0.4, |delta|/psi 0..0.9, clusters 1-5
    python benchmarks/coverage.py --few      # exactly G = 7, 8, 15 query clusters (clustered, draws, loss)

Prints one row per cell: coverage of the (1 - alpha) interval with its Monte Carlo SE, type-I error
at delta = 0 with its SE, and the power (share with p < alpha) elsewhere, for 0/1 one-draw data
beside exact McNemar's on the same data; then the worst cell per kind and whether every cell is at
>= 1 - alpha - 3 SE (coverage) and <= alpha + 3 SE (type I). The simulation is
hookbench.stats.coverage; the data it draws are described there.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import Iterator

from hookbench.base import mlflow_keys
from hookbench.evaluation.config_schema import schema_default
from hookbench.stats.coverage import FEW, FULL, KINDS, MODERATE, Cell, cells, few_cells, simulate


def fmt(rate: float, se: float) -> str:
    return "" if math.isnan(rate) else f"{rate:.3f} ± {se:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's full grid (long)")
    parser.add_argument("--few", action="store_true", help="the few-cluster cells (G = 7, 8, 15) instead")
    parser.add_argument("--reps", type=int, default=None, help="data sets per cell (default 1000; 2000 with --full)")
    parser.add_argument("--alpha", type=float, default=schema_default(mlflow_keys.STATS_ALPHA), help="default: conf/config.yaml stats.alpha")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {', '.join(KINDS)}")
    args = parser.parse_args()
    grid, reps = (FULL, args.reps or 2000) if args.full else (MODERATE, args.reps or 1000)
    kinds = tuple(k.strip() for k in args.kinds.split(","))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit or 'unknown'}, {reps} data sets per cell, "
          f"alpha = {args.alpha:g}")
    print("| kind | n | G | psi | abs(delta)/psi | largest cluster | coverage | type-I error | power | exact McNemar power |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst: dict[str, tuple[float, str]] = {}
    ok, started = True, time.time()
    for c in run_cells(args.few, grid, kinds, reps, args.alpha):
        kind, n, psi, ratio, cluster = c.kind, c.n, c.psi, c.ratio, c.cluster
        psi_cell = "-" if kind == "loss" else f"{psi:g}"
        print(f"| {kind} | {n} | {c.n_clusters or '-'} | {psi_cell} | {ratio:g} | {cluster} | {fmt(c.coverage, c.coverage_se)} | "
              f"{fmt(c.type_one, c.type_one_se)} | {fmt(c.power, 0.0).split(' ±')[0]} | "
              f"{fmt(c.mcnemar_power, 0.0).split(' ±')[0]} |", flush=True)
        se_nominal = math.sqrt((1 - args.alpha) * args.alpha / reps)
        ok &= c.coverage >= 1 - args.alpha - 3 * se_nominal
        ok &= math.isnan(c.type_one) or c.type_one <= args.alpha + 3 * se_nominal
        label = f"n = {n}{f', G = {c.n_clusters}' if c.n_clusters else ''}, psi = {psi_cell}, ratio {ratio:g}, clusters up to {cluster}"
        if kind not in worst or c.coverage < worst[kind][0]:
            worst[kind] = (c.coverage, label)
    for kind, (coverage, label) in worst.items():
        print(f"lowest coverage, {kind}: {coverage:.3f} ({label})")
    print(f"every cell within 3 SE of nominal or better: {'yes' if ok else 'NO'} ({time.time() - started:.0f} s)")
    return 0 if ok else 1


def run_cells(few: bool, grid: dict, kinds: tuple[str, ...], reps: int, alpha: float) -> Iterator[Cell]:
    """The simulated cells: the few-cluster grid (`FEW`, kinds that have clusters), else `grid`."""
    if few:
        for kind, g, psi, ratio, cluster in few_cells(FEW, tuple(k for k in kinds if k != "one draw")):
            yield simulate(kind, 0, psi, ratio, cluster, reps, alpha, n_clusters=g)
    else:
        for kind, n, psi, ratio, cluster in cells(grid, kinds):
            yield simulate(kind, n, psi, ratio, cluster, reps, alpha)


if __name__ == "__main__":
    sys.exit(main())
