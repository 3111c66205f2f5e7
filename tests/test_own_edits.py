"""The user's own edit: the shipped example, a file refused before any request, an edit as an override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hookbench
from hookbench.base.errors import PatchError
from hookbench.evaluation.parts import build
from hookbench.evaluation.patches import load_patch_file
from hookbench.hookapi import contract
from hookbench.testing.cli import run_cli
from hookbench.testing.config import option_cfg

EXAMPLE = Path(hookbench.__file__).parent / "data" / "example_patch.json"
UP = "model.layers.1.mlp.up_proj.weight"


def test_the_shipped_example_loads_in_both_apply_modes_and_file_yaml_names_it():
    for mode in contract.APPLY_MODES:
        assert len(load_patch_file(EXAMPLE, mode).suggestions) == 2
    assert "example_patch.json" in (Path(hookbench.__file__).parent / "conf" / "patch" / "file.yaml").read_text()


def test_an_edit_written_as_an_override_is_the_same_patch_as_in_a_file(tmp_path):
    source = build(option_cfg("patch", "inline", f"patch.edits=[{{tensor_name: {UP}, operation: scale, value: 1.1}}]"),
                   "patch")
    (tmp_path / "p.json").write_text(json.dumps([{"tensor_name": UP, "operation": "scale", "value": 1.1}]))
    inline = source.resolve(None, "m", "weights")
    assert inline.hash == load_patch_file(tmp_path / "p.json", "weights").hash and inline.source == "inline"


@pytest.mark.parametrize(("edit", "named"), [
    ("{tensor_name: X, operation: multiply, value: 2}", "patch.edits[1].operation: 'multiply' is not one of"),
    ("{tensor_name: X, operation: scale}", "patch.edits[1]: missing field 'value'"),
    ("{tensor_name: X, operation: scale, value: 2, target: 'top 200%'}", "patch.edits[1].target"),
])
def test_a_bad_inline_edit_is_refused_naming_its_index_and_field(edit, named):
    good = f"{{tensor_name: {UP}, operation: scale, value: 1.1}}"
    source = build(option_cfg("patch", "inline", f"patch.edits=[{good},{edit}]"), "patch")
    with pytest.raises(PatchError) as e:
        source.check("m", "weights")
    assert named in str(e.value)


@pytest.mark.slow
def test_a_patch_with_an_unknown_operation_is_refused_before_any_request(stock_server, tmp_path):
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps([{"tensor_name": UP, "operation": "scale", "value": 1.1},
                               {"tensor_name": UP, "operation": "multiply", "value": 2.0}]))
    p = run_cli(["model=remote", f"model.server.url={stock_server.url}", "patch=file", f"patch.path={bad}", "guards=[]"],
                tmp_path)
    assert p.returncode == 5 and "suggestions[1].operation: 'multiply' is not one of" in p.stderr
    assert "Traceback" not in p.stderr
    assert stock_server.request_log == [] and stock_server.generations == 0, "nothing is asked of the server"
