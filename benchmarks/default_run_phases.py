"""Wall time of the default `python -m hookbench`, split by phase, and the share spent outside generation.

Runs the default job in a fresh temporary directory (so nothing is reused and mlruns/ starts empty)
and reads the phase timings the run logged as `time/<phase>_s`.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

PHASES = ("server_start", "server_wait", "patch", "loss", "screen", "baseline", "patched", "restore", "scoring", "logging")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hookbench-bench-"))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hookbench", *sys.argv[1:]], cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"the default run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    mlflow.set_tracking_uri(f"sqlite:///{work}/mlruns/mlflow.db")
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("hookbench").experiment_id])
    m = run.data.metrics
    times = {ph: m.get(f"time/{ph}_s", 0.0) for ph in PHASES}
    generation = times["baseline"] + times["patched"]
    print(f"default run: {int(m['n/items'])} items, wall {wall:.1f} s (process start to exit)")
    print(f"{'phase':14s} {'seconds':>8s} {'share':>7s}")
    for ph, s in times.items():
        print(f"{ph:14s} {s:8.2f} {s / wall:7.1%}")
    other = wall - sum(times.values())
    print(f"{'(imports, mlflow set-up, exit)':14s} {other:8.2f} {other / wall:7.1%}")
    print(f"share of wall time outside generation: {1 - generation / wall:.1%}")


if __name__ == "__main__":
    main()
