"""Soak: the GSM8K test split against the stock stand-in with 2% injected faults of each kind.

The stand-in answers in its fake-model mode (a fixed text per query, no model call: the model does not
matter here, the fault handling does). Faults, each on 2% of generate requests chosen by a seeded
draw: HTTP 503, error text in a 200 (§3), an empty answer. The job must end, count every fault by its
kind, keep every good answer; a rerun on the same store must regenerate only the failed ones.
Prints items, faults injected, faults counted, answers lost (must be 0) and wall time.

    PYTHONPATH=. python benchmarks/soak.py [--n 1319]
"""

from __future__ import annotations

import argparse
import sys

from hookbench.testing.soak import soak
from hookbench.testing.stock_server import StockServer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=None, help="items (default: all 1,319)")
    args = ap.parse_args()
    with StockServer("tiny") as server:
        figures = soak(server, args.n)
    for k, v in figures.items():
        print(f"{k:20s} {v}")
    ok = figures["answers_lost"] == 0 and figures["faults_counted"] == figures["faults_injected"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
