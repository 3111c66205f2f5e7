"""Patch files: validated before anything is sent, content-hashed, frozen and reloaded unchanged."""

import json

import pytest

from hookbench.errors import PatchError
from hookbench.patches import PatchSet, SuggestionsSource, load_patch_file

S = {"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 1.1, "target": "top 20%"}


def test_hash_depends_on_the_edits_not_on_reasons_or_names():
    a = PatchSet("a", [S | {"reason": "x", "confidence": 0.2}], "file:a")
    b = PatchSet("b", [S | {"reason": "y"}], "file:b")
    c = PatchSet("c", [S | {"value": 1.2}], "file:c")
    assert a.hash == b.hash != c.hash


def test_nan_in_a_patch_file_is_refused_naming_the_entry(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('[{"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 1.0},'
                 ' {"tensor_name": "model.layers.2.mlp.up_proj.weight", "operation": "scale", "value": NaN}]')
    with pytest.raises(PatchError, match=r"p.json: suggestions\[1\].value: nan is not a finite number"):
        load_patch_file(f, "weights")


@pytest.mark.parametrize("bad, message", [
    ({"operation": "rotate"}, "operation: 'rotate' is not one of"),
    ({"target": "top 200%"}, "target"),
    ({"value": "1.1"}, "value"),
])
def test_bad_fields_are_named(tmp_path, bad, message):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([S | bad]))
    with pytest.raises(PatchError, match=message):
        load_patch_file(f, "weights")


def test_normalize_is_a_hooks_mode_operation(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([S | {"operation": "normalize"}]))
    with pytest.raises(PatchError, match="weights mode"):
        load_patch_file(f, "weights")
    assert load_patch_file(f, "hooks").suggestions[0]["operation"] == "normalize"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(PatchError, match="patch file not found: .*nope.json"):
        load_patch_file(tmp_path / "nope.json", "weights")
    f = tmp_path / "broken.json"
    f.write_text("[\n{\"tensor_name\": }\n]")
    with pytest.raises(PatchError, match=r"broken.json:2: not valid JSON"):
        load_patch_file(f, "weights")


def test_suggestions_are_frozen_once_and_never_asked_again(tmp_path):
    class Client:
        base_url, calls = "http://127.0.0.1:1", 0

        def suggestions(self, capability):
            Client.calls += 1
            return [S | {"confidence": 0.5, "reason": "r"}]

    source = SuggestionsSource("math", freeze_dir=str(tmp_path))
    first = source.resolve(Client(), "m", "weights")
    second = source.resolve(Client(), "m", "weights")
    assert Client.calls == 1 and first.hash == second.hash
    frozen = json.loads((tmp_path / "m" / "math.json").read_text())
    assert frozen["hash"] == first.hash and frozen["suggestions"][0]["reason"] == "r"


def test_empty_suggestions_fail_clearly(tmp_path):
    class Client:
        base_url = "http://127.0.0.1:1"

        def suggestions(self, capability):
            return []

    with pytest.raises(PatchError, match="no suggestions for capability 'math'"):
        SuggestionsSource("math", freeze_dir=str(tmp_path)).resolve(Client(), "m", "weights")
    assert not (tmp_path / "m" / "math.json").exists()
