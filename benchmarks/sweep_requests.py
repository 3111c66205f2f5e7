"""Generations a sweep of 1 model x 3 patch sets over N items asks of the server, against the
minimum (N baseline + 3N patched) and a naive plan (a fresh baseline per patch set and two
generations per patched request, hook-api.md §2): 3 x (N + 2N) = 9N.

Starts one reference server, runs `python -m hookbench -m patch=general,math,reasoning` against
it in a fresh store, then reads the server's own counter of generated sequences.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from hookbench.server_process import ensure_server, reference_server_command


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--model", default="smollm2")
    args = ap.parse_args()
    n = args.items
    url = ensure_server({"enabled": True, "command": reference_server_command(args.model)}, None)
    before = requests.get(url + "/api/health").json()["counters"]["generated_sequences"]
    work = Path(tempfile.mkdtemp(prefix="hookbench-sweep-bench-"))
    p = subprocess.run([sys.executable, "-m", "hookbench", "-m", f"model={args.model}", "model.server.launch.enabled=false",
                        f"model.server.url={url}", "patch=general,math,reasoning", f"dataset.n={n}"],
                       cwd=work, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"the sweep failed ({p.returncode}):\n{p.stderr[-3000:]}")
    made = requests.get(url + "/api/health").json()["counters"]["generated_sequences"] - before
    print(f"sweep: 1 model x 3 patch sets x {n} items")
    print(f"{'generations sent to the server':34s} {made:6d}")
    print(f"{'minimum (N + 3N)':34s} {4 * n:6d}")
    print(f"{'naive plan (3 x (N + 2N))':34s} {9 * n:6d}")
    print(f"beyond the minimum: {made - 4 * n}")


if __name__ == "__main__":
    main()
