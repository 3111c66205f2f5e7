"""`hookbench compare` on inspect_ai eval logs, read with inspect's own reader (the `inspect` extra):
two real logs written by inspect's own `eval` (its mock model, two epochs), paired by sample id with
epochs as draws. Skipped, with the reason, where the extra is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookbench.__main__ import main

SAMPLES = [("What is 2 + 2?", "4"), ("What is 3 + 3?", "6"), ("Capital of France?", "Paris")]


def test_inspect_logs_without_the_extra_are_refused_naming_it(tmp_path, caplog, monkeypatch):
    """The extra's absence is a clear config error, not a traceback (simulated by hiding inspect_ai)."""
    import sys

    monkeypatch.setitem(sys.modules, "inspect_ai", None)
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)
    for name in ("a.eval", "b.eval"):
        (tmp_path / name).write_bytes(b"PK")
    assert main(["compare", str(tmp_path / "a.eval"), str(tmp_path / "b.eval"), "--no-record"]) == 2
    assert "pip install 'hookbench[inspect]'" in caplog.text


def _inspect_log(folder: Path, answer: str) -> Path:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import get_model
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    task = Task(dataset=[Sample(input=q, target=t, id=f"s{k}") for k, (q, t) in enumerate(SAMPLES)],
                solver=generate(), scorer=match(), name="arith")
    model = get_model("mockllm/model", custom_outputs=[_output(answer) for _ in range(len(SAMPLES) * 2)])
    (log,) = eval(task, model=model, epochs=2, log_dir=str(folder), display="none")
    return Path(log.location)


def _output(text: str):
    """A mock answer with its token usage set, so inspect counts no tokens (its tokenizer is a download)."""
    from inspect_ai.model import ModelOutput, ModelUsage

    output = ModelOutput.from_content(model="mockllm/model", content=text)
    output.usage = ModelUsage(input_tokens=5, output_tokens=1, total_tokens=6)
    return output


def test_compare_reads_real_inspect_logs_with_epochs_as_draws(tmp_path, capsys):
    pytest.importorskip("inspect_ai", reason="the inspect extra is not installed (pip install 'hookbench[inspect]')")
    a = _inspect_log(tmp_path / "a", "I do not know")
    b = _inspect_log(tmp_path / "b", "4")
    assert main(["compare", str(a), str(b), "--json", "--no-record"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["task"] == "arith" and row["metric"] == "match" and row["n"] == 3 and row["draws"] == 2
    assert row["baseline"] == 0 and row["patched"] == pytest.approx(1 / 3)  # "4" matches the first sample only
