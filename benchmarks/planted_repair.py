"""The planted repair at one budget of generations: accuracy search, loss-screened search, random search.

The embedded model with layer 3's mlp.down_proj scaled x4 (dev accuracy 0.474 -> 0.093 on the
default arithmetic set) is served by the reference server; each arm runs `hookbench study` over the
same space (layers 1-6, down_proj or up_proj, scale 0.25 / 0.5 / 2 / 4: 48 candidates, one of them the
exact repair) on a fresh store, with about the same generations for the search (~190, plus the test
confirmation), and prints: repair found or not, generations counted at the server, the confirmed
test delta. `random` is the accuracy job on 24 dev items for 7 candidates TPE draws at random.

Usage, from the repo root: python benchmarks/planted_repair.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.hookapi import contract
from hookbench.testing.planted import TENSOR, damaged_copy
from hookbench.testing.servers import start_server, stop_server, write_external_models

LAYER, FACTOR = 3, 4.0
SPACE = ["search.space.layers.low=1", "search.space.layers.high=6", "search.space.tensors=[mlp.down_proj,mlp.up_proj]",
         "search.space.ops=[scale]", "search.space.values.scale.choices=[0.25,0.5,2.0,4.0]",
         "search.space.targets=[all]", "search.compare_to_patch=false", "patch=none", "dataset.n=100"]
ARMS = {
    "accuracy search": ["search.objective=accuracy", "search.trials=10", "search.rungs=[8,24]", "search.eta=2",
                        "search.keep=1"],
    "loss-screened search": ["search.objective=loss", "search.trials=10", "search.items=16", "search.keep=3"],
    "loss-screened search, old loss format (' #### ', no chat)": [
        "search.objective=loss", "search.trials=10", "search.items=16", "search.keep=3", "loss.chat=false",
        "loss.answer_prefix=' #### '"],
    "random search": ["search.objective=accuracy", "search.trials=7", "search.rungs=[24]", "search.keep=1",
                      "search.sampler.n_startup_trials=100"],
}


def generated(url: str) -> int:
    return requests.get(url + contract.HEALTH, timeout=30).json()["counters"]["generated_sequences"]


def arm(name: str, overrides: list[str], url: str, searchpath: str, work: Path) -> list[str]:
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    before = generated(url)
    p = subprocess.run([sys.executable, "-m", "hookbench", "study", "model=damaged", searchpath, *SPACE, "guards=[]", *overrides],
                       cwd=work, capture_output=True, text=True, env=env, check=False)
    used = generated(url) - before
    if p.returncode not in (0, 1):
        sys.exit(f"{name} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    client = MlflowClient(tracking_uri=f"sqlite:///{work}/mlruns/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    tests = [r for r in runs if r.data.tags.get(mlflow_keys.TAG_CONFIRMS)]
    found, delta = "no", "n/a"
    if tests:
        t = tests[0]
        frozen = client.download_artifacts(t.info.run_id, mlflow_keys.PATCH_JSON, str(work / "dl"))
        edits = [(e["tensor_name"], e["value"]) for e in json.loads(Path(frozen).read_text())["suggestions"]]
        found = "yes" if edits == [(TENSOR.format(layer=LAYER, proj="down_proj"), 1 / FACTOR)] else f"no ({edits[0][0]} x{edits[0][1]})"
        m = t.data.metrics
        delta = (f"{m[mlflow_keys.ACC_DELTA]:+.3f} [{m[mlflow_keys.ACC_CI_LOW]:+.3f}, {m[mlflow_keys.ACC_CI_HIGH]:+.3f}] "
                 f"{t.data.tags.get(mlflow_keys.TAG_VERDICT)}")
    return [name, found, str(used), delta]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookbench-planted-") as tmp:
        folder = damaged_copy(Path(tmp) / "smollm2-damaged", LAYER, FACTOR)
        server = start_server(str(folder))
        try:
            searchpath = write_external_models(Path(tmp) / "conf", {"damaged": ("smollm2", server)})
            rows = [arm(name, [*o, f"search.seed={args.seed}"], server.url, searchpath, Path(tmp) / f"arm{i}")
                    for i, (name, o) in enumerate(ARMS.items())]
        finally:
            stop_server(server)
    print("| arm | repair found | generations (server) | confirmed test delta [95% CI], verdict |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
