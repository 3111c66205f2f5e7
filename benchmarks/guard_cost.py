"""What the default guard's size costs the default job: the job with all of `capitals` against the
same job with a 106-item sample of it (the guard's former size), side by side in one process.

    python benchmarks/guard_cost.py [overrides...]     # e.g. dataset.n=40 for a shorter pair

Runs `python -m hookbench` (the default job: the reference server with the embedded model, patch
`math`, the default guard) twice, each in a fresh directory with a fresh store (nothing reused): the
106-item job first, then the full one. Prints each wall time and their ratio, with the date and
commit. Run from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMER = "guards=[{dataset:capitals,scorer:contains,sample:106}]"


def wall(overrides: list[str]) -> float:
    """Seconds `python -m hookbench` takes with `overrides`, in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="hookbench-guard-cost-") as cwd:
        started = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "hookbench", *overrides], cwd=cwd, capture_output=True, text=True)
        took = time.perf_counter() - started
        if p.returncode != 0:
            raise SystemExit(f"the job failed ({p.returncode}):\n{p.stderr[-2000:]}")
        return took


def main() -> int:
    extra = sys.argv[1:]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, commit {commit or 'unknown'}, overrides {extra or 'none'}")
    former = wall([*extra, FORMER])
    print(f"capitals, 106 items (former default guard): {former:.1f} s", flush=True)
    full = wall(extra)
    print(f"capitals, all items (default guard):        {full:.1f} s")
    print(f"ratio: {full / former:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
