"""One program: `hookbench --help` lists the commands, groups and examples; every command's help
describes its arguments and imports none of the heavy modules; `main(argv)` runs in-process; the old
`python -m hookbench.NAME` spellings are gone (Python's own message), `python -m hookbench NAME` runs."""

import subprocess
import sys

import pytest

from hookbench.cli import COMMANDS, main
from hookbench.testing.cli import cli_env, run_cli

HEAVY = ("mlflow", "torch", "transformers", "pandas", "scipy", "statsmodels", "optuna")
# main(['--help']) in a fresh interpreter, then the heavy top-level packages it imported
IMPORTS = ("import sys, contextlib, io\n"
           "from hookbench.cli import main\n"
           "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
           "    code = main(sys.argv[1:])\n"
           "assert code == 0 and out.getvalue(), (code, out.getvalue())\n"
           f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")


def test_hookbench_help_is_its_own_page_with_commands_groups_and_examples(tmp_path):
    p = run_cli(["--help"], tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert out.splitlines()[0] == "hookbench: does a tensor edit make a language model better?"
    assert "powered by Hydra" not in out and "== Config ==" not in out  # no stock page, no config dump
    assert "patch: file, general, math, none, reasoning" in out and "model: llama70b, qwen72b, smollm2, tiny" in out
    for name, (what, _) in COMMANDS.items():
        assert f"hookbench {name:<10} {what}" in out, name
    assert set(COMMANDS) == {"study", "reproduce", "confirm", "plan", "compare", "server", "ui"}
    for example in ("hookbench dataset=gsm8k dataset.sample=100", "-m patch=general,math,reasoning",
                    "hookbench reproduce RUN_ID", "hookbench confirm", "hookbench ui"):
        assert example in out, example
    assert "../" not in out and "/work" not in out  # no path outside the repository


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_no_help_imports_a_heavy_module(command, tmp_path):
    argv = [command, "--help"] if command else ["--help"]
    p = subprocess.run([sys.executable, "-c", IMPORTS, *argv], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]", (command, p.stdout)
    assert list(tmp_path.iterdir()) == []  # help creates no store and no outputs/


def test_reproduce_confirm_plan_and_ui_describe_every_argument(capsys):
    expected = {"reproduce": ["usage: hookbench reproduce", "the MLflow run to rerun", "the store holding the run"],
                "confirm": ["the parent run id a sweep printed", "confirm the N best patch sets", "the store (default"],
                "plan": ["a finished pilot run", "--effect", "--patches"],
                "ui": ["--port", "--no-browser", "the experiment to open"],
                "server": ["usage: hookbench server", "--model", "--engine"],
                "compare": ["usage: hookbench compare", "--guard TASK[:MARGIN]", "--intersect", "every delta is B − A"]}
    for command, phrases in expected.items():
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        for phrase in phrases:
            assert phrase in text, (command, phrase)


def test_main_returns_the_exit_code_of_a_usage_error_in_process(capsys):
    assert main(["reproduce"]) == 2  # argparse: the run id is missing
    assert "the following arguments are required: run_id" in capsys.readouterr().err
    assert main(["confirm", "abc", "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err


def test_the_server_help_repeats_placements_choices_exactly():
    from hookbench.server import __main__ as server_cli
    from hookbench.server import placement

    assert server_cli.DTYPES == placement.DTYPES and server_cli.DEVICE_MAP_HELP == placement.DEVICE_MAP_HELP


@pytest.mark.parametrize("name", ["study", "reproduce", "confirm", "plan"])
def test_the_old_spelling_is_gone_and_the_new_one_runs(name, tmp_path):
    old = subprocess.run([sys.executable, "-m", f"hookbench.{name}", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=cli_env())
    # Python's own error ("No module named hookbench.NAME"; where an older checkout is installed editable
    # beside this one, its stale module fails to import instead): nothing runs, no note, no usage
    assert old.returncode == 1 and old.stdout == "" and "is now `hookbench" not in old.stderr, old.stderr[-2000:]
    p = run_cli([name, "--help"], tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert ("Usage: hookbench study [-m]" if name == "study" else f"usage: hookbench {name}") in p.stdout


def test_an_unknown_command_names_the_commands(capsys):
    assert main(["reproduc", "abc"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'reproduc'" in err and "reproduce" in err
