"""Guard and prompting-arm settings a job refuses before any server starts or run is created."""

from __future__ import annotations

import pytest

from hookbench.base.errors import ConfigError
from hookbench.evaluation.parts import check_inputs
from hookbench.testing.cli import run_cli, stock_args
from hookbench.testing.config import compose_cfg


@pytest.mark.parametrize("overrides, named", [
    (["guards=[nosuchset]"], "nosuchset"),
    (["guard.margin=0"], "guard.margin=0.0"),
    (["guard.margin=1.5"], "guard.margin=1.5"),
    (["guards=[{dataset:capitals,margin:-0.1}]"], "guards[capitals].margin=-0.1"),
    (["dataset=capitals", "scorer=normalized"], "guard 'capitals' has the target's own items"),
    (["patch=none", "compare.prompt=Be careful."], "compare.prompt with patch=none"),
])
def test_bad_guard_and_prompt_settings_are_refused_naming_them(overrides, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check_inputs(compose_cfg(["model=tiny", *overrides]))


def test_the_default_job_composes_its_capitals_guard_whole():
    cfg = compose_cfg(["model=tiny"])
    checked = check_inputs(cfg)
    (guard,) = checked.guards
    assert guard.name == "capitals" and guard.margin == 0.05 and len(guard.dataset.items) == 106
    assert cfg.guards[0].dataset.path.endswith("capitals.jsonl") and cfg.guards[0].scorer.name == "contains"


@pytest.mark.slow
def test_an_unknown_guard_exits_2_with_no_request_and_no_run(stock_server, tmp_path):
    args, env = stock_args(stock_server)
    p = run_cli([*args, "guards=[nosuchset]"], tmp_path, env)
    assert p.returncode == 2 and "nosuchset" in p.stderr and "Traceback" not in p.stderr
    assert stock_server.request_log == [] and not (tmp_path / "mlruns").exists()
