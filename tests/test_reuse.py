"""The reuse key and store: a wrong key serves one model's (or setting's, or patch's) answers as
another's, so the key must change with every field that decides the text, and the store must keep
only successful generations, the first one written, intact under concurrent writers."""

from __future__ import annotations

import copy
import json
import multiprocessing
import sqlite3

import pytest

from hookbench.evaluation.datasets import arithmetic
from hookbench.evaluation.loop import EvaluationLoop
from hookbench.evaluation.patches import FileSource
from hookbench.evaluation.reuse import GenerationStore, generation_key
from hookbench.evaluation.scorers import NumericScorer
from hookbench.evaluation.settings import Parts
from hookbench.hookapi.client import HookClient
from hookbench.server.generation import PRESETS
from hookbench.testing.config import tiny_settings

# a reference server's reported identity plus the clean probe fingerprint, as evaluate builds it
IDENTITY = {"name": "hookbench-reference", "version": "0.3.0", "model": "smollm2",
            "weights_sha256": "ab" * 32, "chat_template": "auto", "dtype": "float32", "device": "cpu",
            "weights_probe": [2.31415, 7.02718, 0.57721]}
EXTRAS = {"seed": 7, "max_new_tokens": 24, "chat": True}
QUERY = "What is 3 + 4? Answer with the number only."
ARM = {"arm": "patched", "patch": "sha256:" + "cd" * 32, "apply_mode": "weights", "draw": 0}
BATCH = [QUERY, "What is 1 + 1? Answer with the number only."]
BASE = {"server_identity": IDENTITY, "preset": PRESETS["benchmark"], "extras": EXTRAS, "query": QUERY,
        "arm": ARM, "batch": BATCH}


def key(**changes) -> str:
    return generation_key(**{**copy.deepcopy(BASE), **changes})


def changed(d: dict, k: str):
    """d with d[k] moved to another value of the same kind."""
    v = d[k]
    if isinstance(v, bool):
        new = not v
    elif isinstance(v, (int, float)):
        new = v + 1
    elif isinstance(v, str):
        new = v + "x"
    elif isinstance(v, list):
        new = [v[0] + 1e-5, *v[1:]]  # a probe loss moved in its last kept digit
    else:
        raise TypeError(f"no change rule for {k}={v!r}")
    return {**d, k: new}


def test_key_is_stable_for_equal_inputs_in_any_key_order():
    reordered = {name: dict(reversed(list(v.items()))) if isinstance(v, dict) else v for name, v in BASE.items()}
    assert list(reordered["server_identity"]) != list(IDENTITY)
    assert generation_key(**reordered) == key() == key()


@pytest.mark.parametrize("field", sorted(IDENTITY))
def test_key_changes_with_each_server_identity_field(field):
    assert key(server_identity=changed(IDENTITY, field)) != key()


def test_key_changes_when_an_identity_field_appears_or_goes():
    assert key(server_identity={k: v for k, v in IDENTITY.items() if k != "weights_probe"}) != key()
    assert key(server_identity={**IDENTITY, "revision": "main"}) != key()


@pytest.mark.parametrize("field", sorted(PRESETS["benchmark"]))
def test_key_changes_with_each_preset_field(field):
    assert key(preset=changed(PRESETS["benchmark"], field)) != key()


def test_key_changes_with_the_preset_name_even_for_equal_parameters():
    renamed = {**PRESETS["benchmark"], "name": "benchmark2"}
    assert key(preset=renamed) != key()
    assert key(preset=PRESETS["precise"]) != key()


@pytest.mark.parametrize("field", sorted(EXTRAS))
def test_key_changes_with_each_extra(field):
    assert key(extras=changed(EXTRAS, field)) != key()
    assert key(extras={k: v for k, v in EXTRAS.items() if k != field}) != key()


def test_key_changes_with_one_character_of_the_query():
    assert key(query=QUERY[:-1] + "?") != key()
    assert key(query=QUERY + " ") != key()


@pytest.mark.parametrize("field", sorted(ARM))
def test_key_changes_with_each_arm_field(field):
    assert key(arm=changed(ARM, field)) != key()


def test_baseline_and_a_b_replicate_and_patched_arms_differ():
    arms = [{"arm": "baseline"}, {"arm": "baseline", "replicate": 1}, {"arm": "baseline", "draw": 0},
            {"arm": "baseline", "draw": 1}, ARM, {**ARM, "apply_mode": "hooks"}]
    assert len({key(arm=a) for a in arms}) == len(arms)


def test_key_changes_with_the_batch():
    assert key(batch=None) != key()
    assert key(batch=list(reversed(BATCH))) != key()
    assert key(batch=BATCH + ["What is 2 + 2?"]) != key()


# ------------------------------------------------------------------ the store


def test_store_round_trip_and_first_write_wins(tmp_path):
    store = GenerationStore(tmp_path / "sub" / "g.sqlite")
    store.put_many([("k1", "seven", "run-a", 0.5), ("k2", "", "run-a", None)])
    store.put_many([("k1", "eight", "run-b", 0.1)])  # a later run's answer for the same key
    store.close()
    reopened = GenerationStore(tmp_path / "sub" / "g.sqlite")
    assert reopened.get_many(["k1", "k2", "missing"]) == {"k1": ("seven", "run-a"), "k2": ("", "run-a")}
    assert reopened.get_many([]) == {}


def test_store_reads_more_keys_than_one_sql_statement_holds(tmp_path):
    store = GenerationStore(tmp_path / "g.sqlite")
    rows = [(f"k{i}", f"t{i}", "run-a", None) for i in range(1203)]
    store.put_many(rows)
    found = store.get_many([r[0] for r in rows] + ["nope"])
    assert len(found) == 1203 and found["k1202"] == ("t1202", "run-a")


def _write(path: str, start: int, n: int) -> None:
    store = GenerationStore(path)
    for i in range(start, start + n, 10):  # many small transactions interleave with the other writer
        store.put_many([(f"k{j}", f"text {j} " + "x" * 200, f"run-{start}", 0.1) for j in range(i, i + 10)])
    store.close()


@pytest.mark.slow
def test_two_processes_writing_at_once_leave_every_row_intact(tmp_path):
    path = str(tmp_path / "g.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(path, start, 600)) for start in (0, 300)]  # 300 keys overlap
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(db.execute("SELECT key, text FROM generations").fetchall())
    assert len(rows) == 900
    assert all(rows[f"k{j}"] == f"text {j} " + "x" * 200 for j in range(900))


# ------------------------------------------------------------------ what the loop stores


MLP = "model.layers.1.mlp.up_proj.weight"


def stock_parts(url: str, tmp_path, n: int = 5) -> Parts:
    f = tmp_path / "p.json"
    f.write_text(json.dumps([{"tensor_name": MLP, "operation": "scale", "value": 1.5, "target": "all"}]))
    settings = tiny_settings("benchmark", batch_size=1, metric="accuracy")
    return Parts(arithmetic(n=n), NumericScorer(), FileSource(str(f), name="p"),
                 HookClient(url, retries=1, backoff_s=0.05), settings)


@pytest.mark.slow
def test_a_failed_generation_is_never_stored_and_is_made_again_next_run(stock_server, tmp_path):
    store = GenerationStore(tmp_path / "g.sqlite")
    stock_server.fail_calls = {2}  # the second baseline request answers "Generation error: ..." in a 200
    first = EvaluationLoop(stock_parts(stock_server.url, tmp_path), "run-1", store).run()
    failed = [r for r in first.items if r.baseline.error]
    assert len(failed) == 1 and failed[0].baseline.error == "error_text"
    assert store.db.execute("SELECT count(*) FROM generations").fetchone() == (2 * 5 - 1,)
    assert "Generation error" not in "".join(t for (t,) in store.db.execute("SELECT text FROM generations"))

    made = stock_server.generations
    second = EvaluationLoop(stock_parts(stock_server.url, tmp_path), "run-2", store).run()
    assert stock_server.generations - made == 1, "only the failed answer is generated again"
    again = next(r for r in second.items if r.id == failed[0].id)
    assert again.baseline.error is None and again.baseline.source_run is None
    assert {r.baseline.source_run for r in second.items if r.id != failed[0].id} == {"run-1"}
    assert {r.patched.source_run for r in second.items} == {"run-1"}
