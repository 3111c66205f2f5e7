"""Wall time of `hookbench --help` and each command's help, next to `python -c "import hydra"` (the
floor: the job's help is Hydra's), in one run on this machine. Median of --repeat runs each.

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
    'python -c "import hydra"': [sys.executable, "-c", "import hydra"],
    "hookbench --help": [sys.executable, "-m", "hookbench", "--help"],
    **{f"hookbench {c} --help": [sys.executable, "-m", "hookbench", c, "--help"]
       for c in ("study", "reproduce", "confirm", "plan", "server", "ui")},
}


def wall_s(cmd: list[str]) -> float:
    """Seconds from start to exit (exit code 0 checked)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (the median is printed)")
    args = ap.parse_args()
    times = {name: [wall_s(cmd) for _ in range(args.repeat)] for name, cmd in COMMANDS.items()}
    floor = statistics.median(next(iter(times.values())))
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name:34s} median {m:6.2f} s  ({m / floor:4.1f}x import hydra; runs: {', '.join(f'{x:.2f}' for x in t)})")


if __name__ == "__main__":
    main()
