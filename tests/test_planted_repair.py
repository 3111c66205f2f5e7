"""The positive control of `hookbench study`: the embedded model with one MLP tensor damaged (layer 3's
down_proj x4: dev accuracy 0.474 -> 0.093), served by the reference server; a search over a space that
holds the exact repair (scale 0.25 on that tensor) must confirm it on test."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys
from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.planted import TENSOR, damaged_copy
from hookbench.testing.servers import start_server, stop_server, write_external_models

LAYER, FACTOR = 3, 4.0
SEARCH = ["search.objective=accuracy", "search.trials=8", "search.rungs=[8,24]", "search.eta=2", "search.keep=1",
          "search.seed=0", f"search.space.layers.choices=[{LAYER},8]", "search.space.tensors=[mlp.down_proj]",
          "search.space.ops=[scale]", f"search.space.values.scale.choices=[{1 / FACTOR},{FACTOR}]",
          "search.space.targets=[all]", "search.compare_to_patch=false", "patch=none", "dataset.n=100"]


@pytest.fixture(scope="module")
def damaged_server(tmp_path_factory):
    folder = damaged_copy(tmp_path_factory.mktemp("planted") / "smollm2-damaged", LAYER, FACTOR)
    server = start_server(str(folder))
    yield server
    stop_server(server)


@pytest.mark.slow
def test_the_study_confirms_the_planted_repair(damaged_server, tmp_path):
    searchpath = write_external_models(tmp_path / "conf", {"damaged": ("smollm2", damaged_server)})
    p = run_cli(["study", "model=damaged", searchpath, *SEARCH, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (test_run,) = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.confirms")]
    assert test_run.data.tags[mlflow_keys.TAG_VERDICT] == "improves" and test_run.data.params["dataset.split"] == "test"
    frozen = MlflowClient().download_artifacts(test_run.info.run_id, mlflow_keys.PATCH_JSON, str(tmp_path / "dl"))
    edits = json.loads(open(frozen).read())["suggestions"]
    assert [(e["tensor_name"], e["operation"], e["value"]) for e in edits] == \
        [(TENSOR.format(layer=LAYER, proj="down_proj"), "scale", 1 / FACTOR)], "the confirmed patch is the repair"
    assert "confirmed: patch" in p.stdout
