"""What the default guard's new size and format cost the default job: this checkout's default job
against the default job of a former commit (by default 1b5969d: capitals with 106 items, asked in
the target's format), side by side in one process.

    python benchmarks/guard_cost.py [--former COMMIT] [--rounds N]

Exports the former commit's tree with `git archive` into a temporary folder and runs its
`python -m hookbench` from there (PYTHONPATH), in this venv; this checkout's runs from here. Each job
runs in a fresh directory with a fresh store (no generation reused), in the order former, current,
current, former, ... (N rounds of a pair, the order turned each round so a drift in the machine's
load falls on both). Prints each wall time, the guard's own time (`time/guards_s`) and the ratio
of the totals, with the date and both commits. Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job(pythonpath: Path) -> tuple[float, float]:
    """(wall seconds, guard seconds) of `python -m hookbench` run from `pythonpath`'s package."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    with tempfile.TemporaryDirectory(prefix="hookbench-guard-cost-") as cwd:
        started = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "hookbench"], cwd=cwd, env=env, capture_output=True, text=True)
        took = time.perf_counter() - started
        if p.returncode != 0:
            raise SystemExit(f"the job from {pythonpath} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        with sqlite3.connect(Path(cwd) / "mlruns" / "mlflow.db") as db:
            row = db.execute("SELECT value FROM metrics WHERE key = 'time/guards_s'").fetchone()
        return took, float(row[0]) if row else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--former", default="1b5969d", help="the commit whose default job is the reference")
    ap.add_argument("--rounds", type=int, default=1, help="pairs of jobs (each round turns the order)")
    args = ap.parse_args(argv)
    git = ["git", "-C", str(ROOT)]
    current = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "hookbench", "conf"],
                           capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; former {args.former}, current "
          f"{current}{' with uncommitted changes' if dirty else ''}; {os.cpu_count()} CPUs", flush=True)
    walls: dict[str, list[float]] = {"former": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="hookbench-former-") as former_tree:
        archive = subprocess.run([*git, "archive", args.former], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", former_tree], input=archive, check=True)
        trees = {"former": Path(former_tree), "current": ROOT}
        for r in range(args.rounds):
            for name in (("former", "current") if r % 2 == 0 else ("current", "former")):
                took, guard = job(trees[name])
                walls[name].append(took)
                print(f"{name:8s} default job: {took:7.1f} s (guard {guard:6.1f} s)", flush=True)
    former, now = sum(walls["former"]), sum(walls["current"])
    print(f"ratio current / former: {now / former:.2f} (totals over {args.rounds} round(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
