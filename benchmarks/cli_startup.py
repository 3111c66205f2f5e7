"""Time to the first line of `python -m hookbench --help`, today's lazy entry point next to the
eager one it replaced (hookbench.job, hence mlflow, pandas, statsmodels, torch, imported before
Hydra parses the command line), in one run on this machine. Median of --repeat runs each.

Usage, from the repo root: python benchmarks/cli_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "eager (before: hookbench.job imported first)":
        [sys.executable, "-c", "import sys, runpy, hookbench.job; sys.argv = ['hookbench', '--help']; "
                               "runpy.run_module('hookbench', run_name='__main__')"],
    "lazy (now: python -m hookbench --help)": [sys.executable, "-m", "hookbench", "--help"],
}


def first_line_s(cmd: list[str]) -> float:
    """Seconds from start to the first line on stdout (the help's header)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as p:
        line = p.stdout.readline()
        elapsed = time.perf_counter() - t0
        p.stdout.read()
    if not line.startswith("hookbench"):
        raise SystemExit(f"unexpected first line from {cmd}: {line!r}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (the median is printed)")
    args = ap.parse_args()
    times = {name: [first_line_s(cmd) for _ in range(args.repeat)] for name, cmd in COMMANDS.items()}
    (before, after) = (statistics.median(t) for t in times.values())
    for name, t in times.items():
        print(f"{name:48s} median {statistics.median(t):6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in t)})")
    print(f"first help line now in {after / before:.0%} of the eager time")


if __name__ == "__main__":
    main()
