"""Patch files: validated before anything is sent, content-hashed, frozen and reloaded unchanged."""

import json

import pytest
from omegaconf import OmegaConf

from hookbench.base.errors import PatchError
from hookbench.evaluation.parts import build
from hookbench.evaluation.patches import NO_PATCH_SOURCE, FileSource, PatchSet, SuggestionsSource, load_patch_file, normalise
from hookbench.testing.config import option_cfg
from hookbench.testing.repo import CONF

S = {"tensor_name": "model.layers.1.mlp.up_proj.weight", "operation": "scale", "value": 1.1, "target": "top 20%"}


def patch_file(tmp_path, suggestions, name="p.json"):
    f = tmp_path / name
    f.write_text(json.dumps(suggestions))
    return f


def edit(op, value, tensor="model.layers.1.mlp.up_proj.weight"):
    return {"tensor_name": tensor, "operation": op, "value": value, "target": "all"}


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


# -- one target grammar for client and server ------------------------------------------------------
SPELLINGS = ["all", " ALL ", "top 20%", "top  20 %", "TOP 20%", "top 20.0%", "bottom 12.5%", "bottom .5%",
             "top 100%", "top 0%", "top 200%", "top -5%", "middle 10%", "top 20", "20%", "", "top 1e1%", 20, None]


@pytest.mark.parametrize("target", SPELLINGS)
def test_one_suggestion_model_decides_every_target_spelling(target):
    """The client's patch check and the reference server both validate through contract.Suggestion."""
    from hookbench.hookapi.contract import Suggestion, SuggestionError, canonical_target, parse_target

    edit = S | {"target": target}
    try:
        checked = Suggestion.check(edit, "weights")
    except SuggestionError as e:
        assert e.field == "target" and "target" in str(e)
        with pytest.raises(PatchError, match=r"p\[0\]\.target: "):
            normalise(edit, "p[0]", "weights")
        return
    client = normalise(edit, "p[0]", "weights")  # what the client sends means what the user wrote
    assert client["target"] == canonical_target(target)
    assert Suggestion.check(client, "weights").edit[3] == checked.edit[3] == parse_target(target)
    assert PatchSet("x", [client], "file:x").hash == PatchSet("x", [edit], "file:x").hash


def test_spellings_of_one_target_are_one_patch(tmp_path):
    hashes = {load_patch_file(patch_file(tmp_path, [S | {"target": t}]), "weights").hash
              for t in ("top 20%", "top  20 %", "TOP 20.0%")}
    assert len(hashes) == 1


# -- strength ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("strength, scale, add", [(0.5, 1.05, 0.1), (2, 1.2, 0.4), (-1, 0.9, -0.2), (1, 1.1, 0.2)])
def test_strength_scales_scale_and_add(tmp_path, strength, scale, add):
    f = patch_file(tmp_path, [edit("scale", 1.1), edit("add", 0.2)])
    got = FileSource(str(f), strength=strength).resolve(None, "m", "weights")
    assert [s["value"] for s in got.suggestions] == [pytest.approx(scale), pytest.approx(add)]
    assert got.metadata["strength"] == strength


@pytest.mark.parametrize("op, mode", [("clamp_max", "weights"), ("clamp_min", "weights"), ("normalize", "hooks")])
def test_strength_is_refused_for_clamps_and_normalize_naming_the_edit(tmp_path, op, mode):
    f = patch_file(tmp_path, [edit("scale", 1.1), edit(op, 3.0, "model.layers.0.mlp.down_proj.weight")])
    with pytest.raises(PatchError, match=rf"edit 1 \(model.layers.0.mlp.down_proj.weight, {op}\) cannot be scaled"):
        FileSource(str(f), strength=0.5).resolve(None, "m", mode)
    assert FileSource(str(f), strength=1).resolve(None, "m", mode).suggestions[1]["value"] == 3.0


def test_strength_zero_is_refused_pointing_to_patch_none(tmp_path):
    node = OmegaConf.create({"_target_": "hookbench.evaluation.patches.FileSource", "path": "p.json", "strength": 0})
    with pytest.raises(PatchError, match="strength 0 is the identity; use patch=none for the A/A"):
        build(node, "patch")


@pytest.mark.parametrize("strength", [float("nan"), float("inf")])  # "abc", null: the schema (test_config)
def test_bad_strength_is_named(strength):
    node = OmegaConf.create({"_target_": "hookbench.evaluation.patches.SuggestionsSource", "capability": "math",
                             "strength": strength})
    with pytest.raises(PatchError, match="patch.strength"):
        build(node, "patch")


def test_hash_covers_the_scaled_edits_and_the_logged_set_reproduces_as_is(tmp_path):
    f = patch_file(tmp_path, [edit("scale", 1.1), edit("add", 0.2)])
    full, half, double = (FileSource(str(f), strength=s).resolve(None, "m", "weights") for s in (1, 0.5, 2))
    assert len({full.hash, half.hash, double.hash}) == 3
    assert half.metadata["unscaled_hash"] == full.hash
    logged = half.save(tmp_path / "run" / "patch.json")  # what a job logs; reproduce loads it at strength 1
    again = FileSource(str(logged)).resolve(None, "m", "weights")
    assert again.hash == half.hash and again.suggestions == half.suggestions and again.metadata["strength"] == 0.5
    # strengths compose: the half-strength set at 2 is the full set
    assert FileSource(str(logged), strength=2).resolve(None, "m", "weights").suggestions == full.suggestions


def test_frozen_suggestions_stay_unscaled(tmp_path):
    class Client:
        base_url = "http://127.0.0.1:1"

        def suggestions(self, capability):
            return [S]

    got = SuggestionsSource("math", freeze_dir=str(tmp_path), strength=0.5).resolve(Client(), "m", "weights")
    assert got.suggestions[0]["value"] == pytest.approx(1.05)
    frozen = json.loads((tmp_path / "m" / "math.json").read_text())
    assert frozen["suggestions"][0]["value"] == 1.1 and "strength" not in frozen["metadata"]
    assert SuggestionsSource("math", freeze_dir=str(tmp_path)).resolve(None, "m", "weights").hash == frozen["hash"]


# -- patch=none --------------------------------------------------------------------------------------
def test_patch_none_is_an_empty_noop_set_with_a_stable_hash():
    cfg = option_cfg("patch", "none")
    first, second = (build(cfg, "patch").resolve(None, "m", mode) for mode in ("weights", "hooks"))
    assert first.name == "none" and first.suggestions == [] and not first.suggestions
    assert first.hash == second.hash == PatchSet("other", [], NO_PATCH_SOURCE).hash


def test_an_empty_patch_is_refused_outside_patch_none(tmp_path):
    with pytest.raises(PatchError, match="p.json: suggestions: the patch set is empty"):
        load_patch_file(patch_file(tmp_path, []), "weights")
    with pytest.raises(PatchError, match="use patch=none"):
        PatchSet("x", [], "file:x")


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "patch").glob("*.yaml")))
def test_every_patch_option_takes_a_strength_override(option):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"patch={option}", "patch.strength=0.5"])
    assert cfg.patch.strength == 0.5
