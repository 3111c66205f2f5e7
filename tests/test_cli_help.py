
"""`--help` says what hookbench does, its groups and options and how to run it; reproduce and confirm
describe every argument."""

import pytest

from hookbench.testing.cli import run_cli


def test_hookbench_help_is_its_own_page_with_groups_and_examples(tmp_path):
    p = run_cli(["--help"], tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert out.splitlines()[0] == "hookbench: does a tensor edit make a language model better?"
    assert "powered by Hydra" not in out and "== Config ==" not in out  # no stock page, no config dump
    assert "patch: file, general, math, none, reasoning" in out and "model: llama70b, qwen72b, smollm2, tiny" in out
    for example in ("python -m hookbench  ", "dataset=gsm8k", "-m patch=general,math,reasoning",
                    "python -m hookbench.reproduce RUN_ID", "python -m hookbench.confirm"):
        assert example in out, example


@pytest.mark.slow
def test_reproduce_and_confirm_describe_every_argument(tmp_path):
    expected = {"hookbench.reproduce": ["the MLflow run to rerun", "the store holding the run"],
                "hookbench.confirm": ["the parent run id a sweep printed", "confirm the N best patch sets",
                                      "the store (default"]}
    for module, phrases in expected.items():
        p = run_cli(["--help"], tmp_path, module=module, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        text = " ".join(p.stdout.split())  # argparse wraps lines
        for phrase in phrases:
            assert phrase in text, (module, phrase)
