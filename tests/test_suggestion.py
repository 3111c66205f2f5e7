"""The one Suggestion model of the hook API (hookapi.contract): what it accepts, and how each side words a refusal."""

import json
import math

import pytest

from hookbench.base.errors import PatchError
from hookbench.evaluation.patches import load_patch_file
from hookbench.hookapi.contract import Suggestion, SuggestionError

GOOD = {"tensor_name": "model.layers.0.mlp.up_proj.weight", "operation": "scale", "value": 1.1}


def test_a_good_suggestion_keeps_its_extra_fields_and_reads_as_an_edit():
    s = Suggestion.check(GOOD | {"value": 2, "reason": "why", "confidence": 0.3}, "weights")
    assert s.edit == ("model.layers.0.mlp.up_proj.weight", "scale", 2.0, ("all", 100.0))
    assert s.model_extra == {"reason": "why", "confidence": 0.3}
    assert Suggestion.check(GOOD | {"operation": "normalize", "target": "TOP 20%"}, "hooks").edit[3] == ("top", 20.0)


@pytest.mark.parametrize("bad, field, words", [
    ("not a dict", None, "a suggestion must be an object, got str"),
    ({k: v for k, v in GOOD.items() if k != "value"} | {"tensor_name": ""}, None, "missing field 'value'"),
    (GOOD | {"tensor_name": ""}, "tensor_name", "must be a non-empty string"),
    (GOOD | {"tensor_name": 3}, "tensor_name", "must be a non-empty string"),
    (GOOD | {"operation": "normalize"}, "operation", "'normalize' is not one of scale, add, clamp_max, clamp_min (weights mode)"),
    (GOOD | {"value": math.nan}, "value", "nan is not a finite number"),
    (GOOD | {"value": True}, "value", "True is not a finite number"),
    (GOOD | {"value": "1.1"}, "value", "'1.1' is not a finite number"),
    (GOOD | {"target": "middle 10%"}, "target", "bad target 'middle 10%'"),
    (GOOD | {"target": None}, "target", "bad target None"),
])
def test_a_bad_suggestion_names_its_field(bad, field, words):
    with pytest.raises(SuggestionError) as e:
        Suggestion.check(bad, "weights")
    assert e.value.field == field and e.value.message.startswith(words)


def test_the_client_words_it_as_a_patch_error_naming_file_entry_and_field(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([GOOD, GOOD | {"operation": "rotate"}]))
    with pytest.raises(PatchError, match=r"p.json: suggestions\[1\].operation: 'rotate' is not one of scale, add"):
        load_patch_file(f, "weights")
    f.write_text(json.dumps([{"operation": "scale", "value": 1.0}]))
    with pytest.raises(PatchError, match=r"p.json: suggestions\[0\]: missing field 'tensor_name'"):
        load_patch_file(f, "weights")


def test_the_reference_server_refuses_with_the_index_and_field():
    from hookbench.server import models
    from hookbench.server.patching import Patcher, PatchRejected

    patcher = Patcher(models.load("tiny").model)
    assert patcher.validate([GOOD], "weights")[0].value == 1.1
    with pytest.raises(PatchRejected) as e:
        patcher.validate([GOOD, GOOD | {"value": math.inf}], "weights")
    assert e.value.index == 1 and e.value.detail == "suggestion 1: value: inf is not a finite number"
    with pytest.raises(PatchRejected, match="suggestion 0: unknown tensor 'nope'"):
        patcher.validate([GOOD | {"tensor_name": "nope"}], "hooks")
