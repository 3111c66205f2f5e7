"""A study's planned wall time against the wall it took, on the batched reference server (the tiny
model): the plan's per-answer figure is measured when the study starts, so the ratio shows how far
the estimate holds on this machine as its load is now.

    python benchmarks/study_wall.py [--repeat 3]

Each repeat runs one small accuracy study (6 trials, rungs 8/16/24 of 60 items, no guard; the
settings of tests/test_study.py's accuracy search) in a fresh
directory with a fresh store against one server, and prints the plan's estimate, the measured wall
and their ratio, with the date and commit. Run from the repository root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hookbench.base import mlflow_keys
from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import start_server, stop_server, write_external_models

STUDY = ["search.objective=accuracy", "search.trials=6", "search.rungs=[8,16,24]", "search.eta=2", "search.keep=2",
         "search.seed=3", "search.space.layers.choices=[0,1]", "search.space.tensors=[mlp.up_proj]",
         "search.space.ops=[scale]", "search.space.values.scale.low=0.5", "search.space.values.scale.high=1.5",
         "search.space.targets=[all]", "dataset.n=60", "search.compare_to_patch=false", "patch=none", "guards=[]"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, commit {commit or 'unknown'}")
    server = start_server("tiny")
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="hookbench-study-wall-") as tmp:
                searchpath = write_external_models(Path(tmp) / "conf", {"ext_tiny": ("tiny", server)})
                started = time.perf_counter()
                p = run_cli(["study", "model=ext_tiny", searchpath, *STUDY], Path(tmp))
                wall = time.perf_counter() - started
                if p.returncode not in (0, 1):
                    raise SystemExit(f"the study failed ({p.returncode}):\n{p.stderr[-2000:]}")
                (parent,) = [r for r in runs(Path(tmp)) if r.data.tags.get("hookbench.study")]
                estimate = parent.data.metrics[mlflow_keys.PLAN_WALL_S]
                print(f"estimate {estimate:6.1f} s   wall {wall:6.1f} s   estimate / wall {estimate / wall:.2f}", flush=True)
    finally:
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
