"""Per-tensor SHA-256 digests (`POST /api/weights/digest`) on the reference server, and the job's check
that restore brought back the exact bytes: logged in context.json and as a tag, and a job that fails
with exit 4 naming the server when a restore is one ulp off (a server started with
HOOKBENCH_SERVER_FAULT=restore-off-by-one-ulp: a broken restore on demand; the probe losses, rounded to
5 digits, do not see it)."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from hookbench.hookapi import contract
from hookbench.hookapi.launcher import reference_server_command
from hookbench.hookapi.launcher import start_server as launch
from hookbench.server.digests import FAULT_ENV, RESTORE_OFF_BY_ONE_ULP
from hookbench.testing.cli import run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.servers import Server, external, stop_server

UP, DOWN, NORM = "model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.norm.weight"
EDITS = [{"tensor_name": UP, "operation": "scale", "value": 1.5, "target": "top 20%"},
         {"tensor_name": NORM, "operation": "add", "value": 0.01}]


def digests(server, names: list[str]) -> dict[str, list[str]]:
    return server.ok("POST", contract.WEIGHTS_DIGEST_PATH, {"tensors": names})["digests"]


def test_digests_change_with_the_patch_and_come_back_with_restore(tiny_clean):
    s = tiny_clean
    assert contract.EXT_WEIGHTS_DIGEST in s.ok("GET", contract.HEALTH)["extensions"]
    names = [UP, DOWN, NORM]
    clean = digests(s, names)
    assert all(len(d) == 1 and len(d[0]) == 64 for d in clean.values())  # one rank, hex SHA-256
    assert len({d[0] for d in clean.values()}) == 3
    assert s.ok("POST", contract.HOOKS, {"suggestions": EDITS, "apply_mode": "weights"})["hook_count"] == 2
    patched = digests(s, names)
    assert patched[UP] != clean[UP] and patched[NORM] != clean[NORM] and patched[DOWN] == clean[DOWN]
    s.ok("POST", contract.RESTORE, {})
    assert digests(s, names) == clean


def test_unknown_tensors_are_refused_naming_them(tiny_clean):
    r = tiny_clean.call("POST", contract.WEIGHTS_DIGEST_PATH, {"tensors": [UP, "model.layers.99.mlp.up_proj.weight", "x"]})
    assert r.status_code == 422 and r.json()["unknown"] == ["model.layers.99.mlp.up_proj.weight", "x"]
    assert "model.layers.99.mlp.up_proj.weight" in r.json()["detail"]


def patch_file(tmp_path: Path) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(EDITS))
    return path


JOB = ["dataset=arithmetic", "dataset.n=2", "metric=loss", "patch=file"]


def test_a_job_logs_the_digests_equal_after_restore(tiny_clean, tmp_path):
    p = run_cli([*external(tiny_clean, "tiny"), *JOB, f"patch.path={patch_file(tmp_path)}", "guards=[]"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = runs(tmp_path)
    assert run.data.tags["patch.weight_digests"] == "equal after restore (2 tensors, sha256 per rank)"
    context = json.loads(Path(MlflowClient().download_artifacts(run.info.run_id, "context.json", str(tmp_path)))
                         .read_text())
    logged = context["patch"]["weight_digests"]["tensors"]
    assert sorted(logged) == sorted([UP, NORM])
    for d in logged.values():
        assert d["restored"] == d["before"] != d["patched"]
    assert logged[UP]["before"] == digests(tiny_clean, [UP])[UP]


def test_a_restore_one_ulp_off_fails_the_job_with_exit_4_naming_the_server(tmp_path):
    server = Server(launch(reference_server_command("tiny"), {FAULT_ENV: RESTORE_OFF_BY_ONE_ULP}))
    try:
        p = run_cli([*external(server, "tiny"), *JOB, f"patch.path={patch_file(tmp_path)}", "guards=[]"], tmp_path)
        assert p.returncode == 4, p.stderr[-3000:]
        assert f"restoring {server.url} failed" in p.stderr and "may still be patched" in p.stderr
        assert "SHA-256 digests of model.layers.1.mlp.up_proj.weight" in p.stderr and "Traceback" not in p.stderr
        (run,) = runs(tmp_path)
        assert run.info.status == "FAILED" and "SHA-256" in run.data.tags["error"]
    finally:
        stop_server(server)
