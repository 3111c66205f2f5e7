"""The fault matrix: phases x faults against the stock-server stand-in, each cell asserted, printed as a table.

Each cell runs `python -m hookbench` as a user does (the shipped qwen72b config, a patch file, N items)
against `hookbench.testing.stock_server.StockServer` on the tiny model in this process (the model does not matter
here), injects one fault when the request that marks the phase has been answered, and checks: the exit
code, the run's status (KILLED / FAILED with the reason, never RUNNING; after kill -9 RUNNING until the
next run closes it KILLED, or no run at all when killed before the job had made its store), the
server's probe losses exactly as before, and that the same command then finishes, generating only the
answers that were not kept. CI runs `CI_CELLS`
(tests/test_fault_matrix.py); this script runs every cell:

    PYTHONPATH=. python benchmarks/fault_matrix.py [--cells phase:fault ...]
"""

from __future__ import annotations

import argparse
import sys
import time

from hookbench.testing.fault_matrix import all_cells, print_table, run_cell
from hookbench.testing.stock_server import StockServer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="*", help="phase:fault ... (default: every cell)")
    args = ap.parse_args()
    cells = [tuple(c.split(":")) for c in args.cells] if args.cells else all_cells()
    t0 = time.perf_counter()
    with StockServer("tiny") as server:
        results = [run_cell(server, p, f) for p, f in cells]
    print_table(results)
    print(f"{sum(c.ok for c in results)} of {len(results)} cells as asserted in {time.perf_counter() - t0:.0f} s")
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
