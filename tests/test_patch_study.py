"""Patch studies end to end: choose on dev, confirm on test, and sweep the strength of a patch."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import write_external_models

MLP = "model.layers.{layer}.mlp.up_proj.weight"


def patch_file(tmp_path, name: str, value: float, layer: int = 1) -> str:
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps({"name": name, "suggestions": [
        {"tensor_name": MLP.format(layer=layer), "operation": "scale", "value": value, "target": "all"}]}))
    return str(f)


@pytest.mark.slow
def test_confirm_picks_the_better_dev_child_and_reruns_it_on_test(smol_clean, tmp_path):
    searchpath = write_external_models(tmp_path / "conf", {"ext_smol": ("smollm2", smol_clean)})
    mild, harmful = patch_file(tmp_path, "mild", 1.02, 10), patch_file(tmp_path, "harmful", 4.0, 2)
    p = run_cli(["-m", "model=ext_smol", "patch=file", f"patch.path={mild},{harmful}", "dataset.split=dev",
                 "dataset.n=40", searchpath, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = {r.data.params["patch.path"].rsplit("/", 1)[1]: r for r in all_runs if r is not parent}
    assert children["harmful.json"].data.tags["verdict_adjusted"] == "hurts"
    c = run_cli(["confirm", parent.info.run_id], tmp_path)
    assert c.returncode in (0, 1), c.stdout[-2000:] + c.stderr[-2000:]
    (confirmation,) = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.confirms")]
    assert confirmation.data.tags["hookbench.confirms"] == children["mild.json"].info.run_id
    assert confirmation.data.tags["hookbench.parent"] == parent.info.run_id
    assert confirmation.data.params["dataset.split"] == "test"
    md = MlflowClient().download_artifacts(parent.info.run_id, "confirmation.md", str(tmp_path / "dl"))
    text = open(md).read()
    assert children["mild.json"].data.params["patch.hash"] in text and confirmation.info.run_id in text
    assert "test verdict" in text
    assert c.returncode == (0 if confirmation.data.tags["verdict"] == "improves" else 1)


@pytest.mark.slow
def test_confirm_refuses_a_sweep_not_run_on_dev(tiny_clean, tmp_path):
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    p = run_cli(["-m", "model=ext_tiny", "patch=file", f"patch.path={patch_file(tmp_path, 'a', 1.5)}",
                 "dataset.n=4", searchpath, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (parent,) = [r for r in runs(tmp_path) if r.data.tags.get("hookbench.sweep") == "parent"]
    c = run_cli(["confirm", parent.info.run_id], tmp_path)
    assert c.returncode == 2 and "dataset.split=dev" in c.stderr and "Traceback" not in c.stderr


@pytest.mark.slow
def test_a_strength_sweep_draws_its_dose_response_plot(tiny_clean, tmp_path):
    searchpath = write_external_models(tmp_path / "conf", {"ext_tiny": ("tiny", tiny_clean)})
    p = run_cli(["-m", "model=ext_tiny", "patch=file", f"patch.path={patch_file(tmp_path, 'a', 1.5)}",
                 "patch.strength=0.5,1,2", "dataset.n=6", searchpath, "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    all_runs = runs(tmp_path)
    (parent,) = [r for r in all_runs if r.data.tags.get("hookbench.sweep") == "parent"]
    children = [r for r in all_runs if r is not parent]
    assert sorted(float(c.data.params["patch.strength"]) for c in children) == [0.5, 1.0, 2.0]
    assert len({c.data.params["patch.hash"] for c in children}) == 3, "the hash covers the scaled edits"
    files = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id)}
    assert "sweep_strength.png" in files
    png = MlflowClient().download_artifacts(parent.info.run_id, "sweep_strength.png", str(tmp_path / "dl"))
    assert open(png, "rb").read().startswith(b"\x89PNG")
