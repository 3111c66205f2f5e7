"""`python -m hookbench.server --engine vllm` on the embedded model: the contract, exact edits, hooks
mode (eager and compiled), the same numbers as the HF engine, and a hookbench job that records the engine.

Runs where vLLM imports (the vLLM venv: see the README's vLLM set-up); elsewhere every test here is
skipped with the reason, or fails when HOOKBENCH_REQUIRE_VLLM=1 (CI, where it was installed).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from hookbench.hookapi import contract
from hookbench.testing.cli import cli_env, run_cli
from hookbench.testing.mlflow_store import runs
from hookbench.testing.repo import REPO
from hookbench.testing.servers import external, start_server, stop_server
from hookbench.testing.vllm import LOSS_TOL, MARKS, PROBES

pytestmark = MARKS
QUERIES = ["The cat sat on", "Numbers: 1 2 3", "Question: What is 7 + 5?\nAnswer:", "Why is the sky blue?"]
# one edit per kind of vLLM parameter: a fused gate_up_proj share, a fused qkv_proj, a plain o_proj, a norm
EDITS = [{"tensor_name": "model.layers.10.mlp.up_proj.weight", "operation": "scale", "value": 3.0, "target": "top 20%"},
         {"tensor_name": "model.layers.5.self_attn.k_proj.weight", "operation": "scale", "value": 0.0},
         {"tensor_name": "model.layers.20.self_attn.o_proj.weight", "operation": "add", "value": 0.01, "target": "bottom 10%"},
         {"tensor_name": "model.layers.3.input_layernorm.weight", "operation": "clamp_max", "value": 0.5}]
# hooks mode: MLP outputs (two edits composed on layer 10's), attention outputs, a layer norm's and the final norm's
HOOKS = [{"tensor_name": "model.layers.10.mlp.down_proj.weight", "operation": "scale", "value": 1.5, "target": "top 20%"},
         {"tensor_name": "model.layers.10.mlp.up_proj.weight", "operation": "clamp_max", "value": 0.5},
         {"tensor_name": "model.layers.5.self_attn.o_proj.weight", "operation": "add", "value": 0.05},
         {"tensor_name": "model.layers.20.self_attn.q_proj.weight", "operation": "clamp_min", "value": -0.2,
          "target": "top 10%"},
         {"tensor_name": "model.layers.7.post_attention_layernorm.weight", "operation": "scale", "value": 1.2,
          "target": "bottom 10%"},
         {"tensor_name": "model.norm.weight", "operation": "clamp_max", "value": 3.0}]
TOKEN = "vllm-test-token-not-a-secret-0123456789"  # the vLLM server runs behind it, as a launched one does


@pytest.fixture(scope="module")
def vsmol():
    server = start_server("smollm2", "--engine", "vllm", timeout_s=900, token=TOKEN)
    yield server
    stop_server(server)


@pytest.fixture
def vclean(vsmol):
    vsmol.clean()
    yield vsmol
    vsmol.clean()


def probe_losses(server) -> list[float]:
    return [server.loss(p, a) for p, a in PROBES]


def batch_losses(server) -> list[float]:
    items = [{"prompt": p, "answer": a} for p, a in PROBES]
    return [r["loss"] for r in server.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]]


def greedy_batch(server, n_queries: int = len(QUERIES), new_tokens: int = 16) -> list[str]:
    body = {"queries": QUERIES[:n_queries], "config": "greedy", "max_new_tokens": new_tokens, "chat": False}
    return [r["original"] for r in server.ok("POST", contract.GENERATE_BATCH_PATH, body)["results"]]


def patch(server, suggestions, mode="weights"):
    return server.call("POST", "/api/hooks", {"suggestions": suggestions, "apply_mode": mode})


def test_contract_probe(vclean):
    s = vclean
    h = s.ok("GET", "/api/health")
    assert h["auth"] is True and requests.post(s.url + "/api/hooks", json={"suggestions": []}, timeout=60).status_code == 401
    assert h["status"] == "online" and h["device"] == "cpu" and h["hooks_active"] is False
    assert h["server"]["engine"] == "vllm" and h["server"]["dtype"] == "float32" and len(h["server"]["weights_sha256"]) == 64
    assert contract.EXT_LOSS_BATCH in h["extensions"]
    cfgs = s.ok("GET", "/api/configs")
    assert all(list(c) == list(contract.PRESET_FIELDS) for c in cfgs.values())
    one = s.greedy("The cat sat on", 8, chat=False)
    assert set(one) == {"original", "modified", "hook_count"} and one["original"] and one["modified"] is None
    assert s.call("POST", "/api/generate", {"config": "greedy"}).status_code == 422
    bad = s.call("POST", "/api/generate", {"query": "Hi", "config": "greedy", "max_new_tokens": -1}).json()
    assert contract.is_error_text(bad["original"])
    sampled = {"query": "Once upon a time", "config": "creative", "max_new_tokens": 12, "seed": 7, "chat": False}
    assert s.ok("POST", "/api/generate", sampled) == s.ok("POST", "/api/generate", sampled)
    loss = s.ok("POST", "/api/loss", {"prompt": "What is 7 + 5?", "answer": "12"})
    assert set(loss) == {"loss", "prompt_tokens", "answer_tokens", "total_tokens"} and loss["loss"] > 0
    items = [{"prompt": p, "answer": a} for p, a in PROBES] + [{"prompt": "Hi", "answer": ""}]
    batch = s.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]
    assert [r["loss"] for r in batch[:3]] == pytest.approx(probe_losses(s), rel=1e-6)
    assert batch[3]["loss"] is None and "no tokens" in batch[3]["error"]
    assert s.call("POST", contract.LOSS, items[3]).status_code == 422


def test_strict_rejects_and_hooks_on_a_module_it_cannot_edit(vclean):
    s = vclean
    before = probe_losses(s)
    r = patch(s, [EDITS[0], {"tensor_name": "model.layers.99.mlp.up_proj.weight", "operation": "scale", "value": 2.0}])
    assert r.status_code == 422 and r.json()["suggestion_index"] == 1 and "unknown tensor" in r.json()["detail"]
    embed = {"tensor_name": "model.embed_tokens.weight", "operation": "scale", "value": 2.0}
    r = patch(s, [HOOKS[0], embed], mode="hooks")
    assert r.status_code == 422 and r.json()["suggestion_index"] == 1 and "'model.embed_tokens'" in r.json()["detail"]
    r = patch(s, [HOOKS[0]] * 5, mode="hooks")  # one module holds at most 4 activation edits
    assert r.status_code == 422 and "'model.layers.10.mlp'" in r.json()["detail"] and "at most 4" in r.json()["detail"]
    assert probe_losses(s) == before and s.ok("GET", "/api/hooks")["active"] is False


def test_hooks_mode_gives_the_hf_engine_s_losses_and_outputs_and_delete_undoes_it(vclean, smol_clean):
    """scale, add and clamp of MLP outputs (two composed on one module) and attention outputs, a norm's
    output and the final norm's: the HF engine's hooks-mode losses (1e-4) and greedy outputs; DELETE gives
    back the exact clean losses and outputs."""
    seen = []
    for server in (smol_clean, vclean):
        clean = batch_losses(server)
        clean_out = greedy_batch(server, 2, 8)
        r = patch(server, HOOKS, mode="hooks")
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "hooks" and r.json()["hook_count"] == len(HOOKS)
        stats = server.ok("GET", "/api/hooks")
        assert stats["active"] is True and stats["stats"]["total_hooks"] == len(HOOKS)
        hooked = batch_losses(server)
        hooked_out = greedy_batch(server, 2, 8)
        server.ok("DELETE", "/api/hooks")
        assert batch_losses(server) == clean and greedy_batch(server, 2, 8) == clean_out
        seen.append((clean, hooked, clean_out, hooked_out, stats["stats"]["modules"]))
    (hf_clean, hf_hooked, hf_out, hf_hooked_out, hf_mods), (v_clean, v_hooked, v_out, v_hooked_out, v_mods) = seen
    print("hooks-mode probe losses: hf", hf_hooked, "vllm", v_hooked, "clean vllm", v_clean)
    assert v_mods == hf_mods
    assert v_hooked == pytest.approx(hf_hooked, rel=LOSS_TOL) and v_hooked != pytest.approx(v_clean, rel=LOSS_TOL)
    assert v_out == hf_out and v_hooked_out == hf_hooked_out and v_hooked_out != v_out


def test_hooks_mode_in_vllm_s_compiled_forward(vclean, monkeypatch, tmp_path):
    """--enforce-eager false: vLLM traces the forward once with Dynamo and drops its guards, so an edit
    can only act through the slots the graph reads. It does: the eager engine's hooks-mode losses (1e-4),
    again after DELETE and a second apply, and DELETE gives back the exact clean losses. (vLLM's own
    VLLM_CPU_CI_ENV=1 runs the traced graph without Inductor, which would take minutes to compile here.)"""
    assert patch(vclean, HOOKS, mode="hooks").status_code == 200
    eager = batch_losses(vclean)
    monkeypatch.setenv("VLLM_CPU_CI_ENV", "1")
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path))  # traced here, not loaded from an earlier run's cache
    server = start_server("smollm2", "--engine", "vllm", "--enforce-eager", "false", timeout_s=900)
    try:
        assert server.ok("GET", "/api/health")["server"]["enforce_eager"] is False
        clean = batch_losses(server)
        for _ in range(2):
            assert patch(server, HOOKS, mode="hooks").status_code == 200
            hooked = batch_losses(server)
            assert hooked == pytest.approx(eager, rel=LOSS_TOL) and hooked != pytest.approx(clean, rel=LOSS_TOL)
            server.ok("DELETE", "/api/hooks")
            assert batch_losses(server) == clean
    finally:
        stop_server(server)
    assert list(tmp_path.glob("hookbench-*/torch_compile_cache"))  # vLLM compiled, in the engine's own folder


def test_edit_changes_losses_and_outputs_restore_is_bit_exact(vclean):
    s = vclean
    clean_losses, clean_out = probe_losses(s), greedy_batch(s)
    r = patch(s, EDITS)
    assert r.status_code == 200, r.text
    assert r.json() == {"hook_count": 4, "applied_tensors": [e["tensor_name"] for e in EDITS], "mode": "weights"}
    patched = probe_losses(s)
    assert all(a != b for a, b in zip(patched, clean_losses)) and greedy_batch(s) != clean_out
    s.ok("DELETE", "/api/hooks")
    assert probe_losses(s) == patched  # contract §1: DELETE leaves the weight edit
    assert s.ok("POST", "/api/restore", {}) == {"restored_params": 4}
    assert probe_losses(s) == clean_losses and greedy_batch(s) == clean_out


def test_edits_compound_like_in_place_edits(vclean):
    s = vclean
    x4 = {"tensor_name": "model.layers.10.mlp.down_proj.weight", "operation": "scale", "value": 4.0}
    patch(s, [x4])
    once4 = probe_losses(s)
    s.clean()
    patch(s, [x4 | {"value": 2.0}])
    patch(s, [x4 | {"value": 2.0}])
    assert probe_losses(s) == once4


def test_same_patch_same_losses_on_both_engines(vclean, smol_clean):
    items = [{"prompt": p, "answer": a} for p, a in PROBES]
    both = []
    for server in (smol_clean, vclean):
        clean = [r["loss"] for r in server.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]]
        assert patch(server, EDITS[:3]).status_code == 200
        patched = [r["loss"] for r in server.ok("POST", contract.LOSS_BATCH_PATH, {"items": items})["results"]]
        both.append((clean, patched))
    (hf_clean, hf_patched), (v_clean, v_patched) = both
    assert v_clean == pytest.approx(hf_clean, rel=LOSS_TOL) and v_patched == pytest.approx(hf_patched, rel=LOSS_TOL)
    assert v_patched != pytest.approx(v_clean, rel=LOSS_TOL)  # the edit moved them more than the tolerance
    ask = {"capability": "math"}  # the HF method on the same weights: one answer for both engines
    assert vclean.ok("POST", "/api/suggestions", ask) == smol_clean.ok("POST", "/api/suggestions", ask)


def test_job_records_the_engine_and_never_reuses_across_engines(vsmol, smol, tmp_path):
    """The same job against each engine in one store: the identity names the engine, nothing is reused."""
    args = ["dataset.n=4", "patch=none", "model.generation.max_new_tokens=8"]
    for server in (vsmol, smol):  # the vLLM server's token reaches the job as model.server.token_env names it
        auth = ["model.server.token_env=HB_VLLM_TOKEN"] if server is vsmol else []
        proc = run_cli([*external(server), *args, *auth, "guards=[]"], cwd=tmp_path, env={"HB_VLLM_TOKEN": TOKEN})
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    vllm_run, hf_run = runs(tmp_path)
    engines = [json.loads(r.data.tags["server.identity"])["engine"] for r in (vllm_run, hf_run)]
    assert engines == ["vllm", "hf"]
    assert hf_run.data.metrics["n/reused_baseline"] == 0 and hf_run.data.metrics["n/items"] == 4


def test_engine_compare_prints_both_engines_side_by_side(tmp_path):
    """benchmarks/engine_compare.py on CPU with the embedded model: one table, an hf and a vllm column,
    every row measured (small sizes: the numbers are the benchmark's to print, not the test's)."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engine_compare.py"), "--batch-sizes", "1,8",
                        "--new-tokens", "8", "--job-items", "2"], capture_output=True, text=True, timeout=1800,
                       env=cli_env(), cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(r.stdout)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in r.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == ["what", "hf", "vllm"] and len(rows) == 1 + 7  # the header, then 7 measured rows
    for what, hf, vllm in rows[1:]:
        assert hf and vllm and "failed" not in hf + vllm, (what, hf, vllm)
    probe = {what: (hf, vllm) for what, hf, vllm in rows[1:]}["probe loss (clean)"]
    assert abs(float(probe[0]) - float(probe[1])) <= LOSS_TOL * float(probe[0])  # same model, same numbers


def digests(server, names: list[str]) -> dict[str, list[str]]:
    return server.ok("POST", contract.WEIGHTS_DIGEST_PATH, {"tensors": names})["digests"]


def test_digests_per_rank_change_with_the_patch_and_come_back_with_restore(vclean):
    """One digest per rank of the vLLM module holding the tensor (fused qkv / gate_up: one for the module)."""
    s = vclean
    assert contract.EXT_WEIGHTS_DIGEST in s.ok("GET", "/api/health")["extensions"]
    gate, untouched = "model.layers.10.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight"
    names = [e["tensor_name"] for e in EDITS] + [gate, untouched]
    clean = digests(s, names)
    assert all(len(d) == 1 and len(d[0]) == 64 for d in clean.values())  # tensor parallel 1: one rank
    assert clean[gate] == clean[EDITS[0]["tensor_name"]]  # gate_proj and up_proj live in one gate_up_proj
    r = s.call("POST", contract.WEIGHTS_DIGEST_PATH, {"tensors": ["model.layers.99.mlp.up_proj.weight"]})
    assert r.status_code == 422 and r.json()["unknown"] == ["model.layers.99.mlp.up_proj.weight"]
    assert patch(s, EDITS).status_code == 200
    patched = digests(s, names)
    assert all(patched[e["tensor_name"]] != clean[e["tensor_name"]] for e in EDITS) and patched[untouched] == clean[untouched]
    s.ok("POST", "/api/restore", {})
    assert digests(s, names) == clean


def test_a_restore_one_ulp_off_fails_the_job_with_exit_4_naming_the_server(tmp_path):
    from hookbench.hookapi.launcher import reference_server_command
    from hookbench.hookapi.launcher import start_server as launch
    from hookbench.server.digests import FAULT_ENV, RESTORE_OFF_BY_ONE_ULP
    from hookbench.testing.servers import Server

    server = Server(launch(reference_server_command("smollm2") + ["--engine", "vllm"],
                           {FAULT_ENV: RESTORE_OFF_BY_ONE_ULP, "TOKENIZERS_PARALLELISM": "false"}, timeout_s=900))
    try:
        (tmp_path / "p.json").write_text(json.dumps(EDITS[2:]))  # o_proj and a norm
        p = run_cli([*external(server), "dataset=arithmetic", "dataset.n=2", "metric=loss", "patch=file",
                     f"patch.path={tmp_path / 'p.json'}", "guards=[]"], tmp_path)
        assert p.returncode == 4, p.stderr[-3000:]
        assert f"restoring {server.url} failed" in p.stderr and "may still be patched" in p.stderr
        assert "SHA-256 digests of model.layers.20.self_attn.o_proj.weight" in p.stderr
    finally:
        stop_server(server)
