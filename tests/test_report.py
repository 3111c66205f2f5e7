"""The run report, checked the way a user reads it: order of the diff table, numbers in report.md, files."""

import json
import math

import pytest
from rich.console import Console

from hookbench.report import diff_table, fmt_acc, fmt_delta, summary_table, write_run_report
from hookbench.results import ArmResult, ItemResult, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ok(answer, correct, latency=1.0, **kw):
    return ArmResult(output=f"The answer is {answer}", latency_s=latency, correct=correct, extracted=answer, **kw)


def failed(kind, latency=None):
    return ArmResult(output=None, latency_s=latency, error=kind, error_detail=f"{kind} detail")


def item(i, baseline, patched, task="arith", prompt=None, gold="4"):
    prompt = prompt or f"question {i}"
    return ItemResult(id=f"q{i}", task=task, prompt=prompt, query=f"Q: {prompt}\nA:", gold=gold,
                      baseline=baseline, patched=patched)


@pytest.fixture
def records():
    return [
        item(0, ok("4", True, 0.8), ok("4", True, 1.1)),  # same, right
        item(1, ok("5", False, 0.9), ok("5", False, 1.0), task="logic"),  # same, wrong
        item(2, ok("4", True, 1.0), failed("timeout", 30.0)),  # failed in patched
        item(3, ok("4", True, 1.2), ok("3", False, 1.3)),  # broken by the patch
        item(4, ok("3", False, 1.1), ok("4", True, 1.4), prompt="a | b\nsecond line"),  # fixed, pipe in prompt
        item(5, failed("api_error"), ok("4", True, 0.7), task="logic"),  # failed in baseline
        item(6, ok("4", True, 0.6, source_run="run-old"), ok("4", True, 0.9), task="logic",
             prompt="ünïcødé " + "long " * 100),
    ]


def diff_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| q")]


def test_diff_table_orders_fixed_broken_failed_then_rest(records):
    ids = [row.split(" | ")[0].lstrip("| ") for row in diff_rows(diff_table(records))]
    assert ids == ["q4", "q3", "q2", "q5", "q0", "q1", "q6"]


def test_diff_table_escapes_pipes_newlines_and_truncates(records):
    md = diff_table(records)
    fixed_row = diff_rows(md)[0]
    assert "a \\| b<br>second line" in fixed_row
    assert fixed_row.count(" | ") == 7  # 8 cells: the pipe in the prompt did not add a column
    long_row = [r for r in diff_rows(md) if r.startswith("| q6")][0]
    assert "…" in long_row and "long " * 100 not in long_row


def test_diff_table_shows_failure_kind_not_cross(records):
    rows = {r.split(" | ")[0].lstrip("| "): r for r in diff_rows(diff_table(records))}
    assert rows["q2"].endswith("| ✓ | timeout |")
    assert rows["q5"].endswith("| api_error | ✓ |")
    assert rows["q3"].endswith("| ✓ | ✗ |")


def test_diff_table_cuts_only_unchanged_rows_when_long():
    recs = [item(i, ok("4", True), ok("4", True)) for i in range(300)]
    recs += [item(1000, ok("4", True), ok("3", False)), item(1001, failed("empty"), ok("4", True))]
    md = diff_table(recs, max_rows=200)
    ids = [row.split(" | ")[0].lstrip("| ") for row in diff_rows(md)]
    assert len(ids) == 200 and ids[:2] == ["q1000", "q1001"]
    assert "102 unchanged rows left out" in md and "items.jsonl" in md


def test_write_run_report_files_and_roundtrip(tmp_path, records):
    summary = summarize(records)
    context = {"title": "smollm2 + scale_mlp", "model": "smollm2", "patch": "scale_mlp",
               "patch_hash": "abc123", "dataset": "gsm8k", "generation": {"max_tokens": 64}}
    paths = write_run_report(tmp_path / "out", records, summary, context)
    names = {p.name for p in paths}
    assert names == {"items.jsonl", "items.csv", "diff_table.md", "accuracy.png", "latency.png", "report.md"}
    assert all(p.exists() for p in paths)

    lines = (tmp_path / "out" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert [ItemResult.from_flat(json.loads(line)) for line in lines] == records
    assert "ünïcødé" in lines[-1]  # ensure_ascii=False
    csv_header = (tmp_path / "out" / "items.csv").read_text(encoding="utf-8").splitlines()[0]
    assert csv_header.split(",") == list(records[0].flat())

    for png in ("accuracy.png", "latency.png"):
        data = (tmp_path / "out" / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000

    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    d = summary.delta
    assert report.startswith("# smollm2 + scale_mlp")
    assert fmt_delta(d.delta, d.ci_low, d.ci_high) in report
    assert f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}]" in report
    assert fmt_acc(summary.accuracy_baseline) in report and fmt_acc(summary.accuracy_patched) in report
    assert f"{summary.n_scored} / {summary.n_items}" in report
    assert "timeout: 1" in report and "api_error: 1" in report
    assert "![accuracy](accuracy.png)" in report and "![latency](latency.png)" in report
    assert "abc123" in report and "gsm8k" in report and '{"max_tokens": 64}' in report
    assert "## Per task" in report and "| logic |" in report
    assert (tmp_path / "out" / "diff_table.md").read_text(encoding="utf-8") in report


def test_nan_summary_does_not_crash(tmp_path):
    records = [item(0, failed("timeout"), failed("api_error")), item(1, failed("empty"), ok("4", True))]
    summary = summarize(records)
    assert math.isnan(summary.accuracy_baseline) and math.isnan(summary.delta.delta)
    paths = write_run_report(tmp_path, records, summary, {})
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "n/a" in report and "nan" not in report.lower()
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths if p.suffix == ".png")


def test_empty_run_does_not_crash(tmp_path):
    paths = write_run_report(tmp_path, [], summarize([]), {"title": "empty"})
    assert len(paths) == 6


def test_summary_table_renders_numbers(records):
    summary = summarize(records)
    console = Console(width=200, record=True)
    console.print(summary_table(summary))
    text = console.export_text()
    d = summary.delta
    assert fmt_delta(d.delta, d.ci_low, d.ci_high) in text
    assert "timeout: 1" in text and "api_error: 1" in text
    nan_console = Console(width=200, record=True)
    nan_console.print(summary_table(summarize([item(0, failed("timeout"), failed("timeout"))])))
    assert "n/a" in nan_console.export_text()
