"""The run report, checked the way a user reads it: the verdict in words, the numbers behind it, colours
that follow the verdict, the diff table, files that open."""

import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from hookbench.evaluation.results import ItemResult, summarize
from hookbench.reports.console import summary_table
from hookbench.reports.diff_table import diff_table
from hookbench.reports.formatting import comparison_sentence, fmt_acc, fmt_delta, fmt_mde
from hookbench.reports.report import write_run_report
from hookbench.testing.config import STATS
from hookbench.testing.records import PNG_MAGIC, failed, item, ok, run_record

GREEN_RGB = (44, 160, 44)  # matplotlib tab:green
ANSI_GREEN = "\x1b[32m"
REPORT_FILES = {"items.jsonl", "items.csv", "diff_table.md", "forest.png", "accuracy.png", "latency.png", "report.md", "report.html"}


def paired(n_fixed, n_broken, n_same, task="arith"):
    """n items fixed, broken and right in both: a table with a known score-test p."""
    recs = [item(i, ok("3", False), ok("4", True), task=task) for i in range(n_fixed)]
    recs += [item(100 + i, ok("4", True), ok("3", False), task=task) for i in range(n_broken)]
    return recs + [item(200 + i, ok("4", True), ok("4", True), task=task) for i in range(n_same)]


@pytest.fixture
def records():
    return [
        item(0, ok("4", True, 0.8), ok("4", True, 1.1)),  # same, right
        item(1, ok("5", False, 0.9), ok("5", False, 1.0), task="logic"),  # same, wrong
        item(2, ok("4", True, 1.0), failed("timeout", 30.0)),  # failed in patched (infrastructure)
        item(3, ok("4", True, 1.2), ok("3", False, 1.3)),  # broken by the patch
        item(4, ok("3", False, 1.1), ok("4", True, 1.4), prompt="a | b\nsecond line"),  # fixed, pipe in prompt
        item(5, failed("api_error"), ok("4", True, 0.7), task="logic"),  # failed in baseline
        item(6, ok("4", True, 0.6, source_run="run-old"), ok("4", True, 0.9), task="logic",
             prompt="ünïcødé " + "long " * 100),
    ]


def report_of(tmp_path, records, warnings=(), **summarize_kw) -> tuple[str, object]:
    summary = summarize(records, 1, **STATS, **summarize_kw)
    write_run_report(tmp_path, records, summary, run_record(), "tiny + scale_mlp", list(warnings))
    return (tmp_path / "report.md").read_text(encoding="utf-8"), summary


def section(report: str, heading: str) -> str:
    return report.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def console_text(summary, color: bool = False) -> str:
    console = Console(width=200, record=True, force_terminal=color, color_system="standard" if color else None)
    console.print(summary_table(summary))
    return console.export_text(styles=color)


def green_pixels(png) -> int:
    rgb = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    return int((np.abs(rgb - GREEN_RGB).sum(axis=1) < 30).sum())


def diff_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| q")]


# ---------------------------------------------------------------- diff table


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


def test_diff_table_shows_the_draw_when_items_have_several():
    recs = [ItemResult(id="q0", task="arith", prompt="p", query="Q", gold="4", draw=d,
                       baseline=ok("4", True), patched=ok("3", d == 0)) for d in range(2)]
    md = diff_table(recs)
    assert md.splitlines()[2].startswith("| id | draw |")
    assert any(r.startswith("| q0 | 1 |") for r in diff_rows(md))


# ---------------------------------------------------------------- report.md


def test_write_run_report_files_and_roundtrip(tmp_path, records):
    summary = summarize(records, 1, **STATS)
    paths = write_run_report(tmp_path / "out", records, summary, run_record(), "smollm2 + scale_mlp", [])
    assert {p.name for p in paths} == REPORT_FILES and all(p.exists() for p in paths)

    lines = (tmp_path / "out" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert [ItemResult.from_flat(json.loads(line)) for line in lines] == records
    assert "ünïcødé" in lines[-1]  # ensure_ascii=False
    csv_header = (tmp_path / "out" / "items.csv").read_text(encoding="utf-8").splitlines()[0]
    header = csv_header.split(",")
    assert sorted(header) == sorted(ItemResult.columns())  # every column, results first (what a preview shows)
    assert header[:4] == ["id", "gold", "baseline_correct", "patched_correct"]
    assert header.index("patched_output") < header.index("prompt")

    for png in ("accuracy.png", "latency.png"):
        data = (tmp_path / "out" / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and Image.open(tmp_path / "out" / png).size[0] > 500

    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# smollm2 + scale_mlp")
    assert fmt_acc(summary.accuracy_baseline) in report and fmt_acc(summary.accuracy_patched) in report
    assert f"| scored in both arms / items | {summary.n_scored} / {summary.n_items} |" in report
    assert "timeout: 1" in report and "api_error: 1" in report
    # the run's settings from the RunRecord, dicts as JSON
    assert "| patch.hash | abc123 |" in report and "| dataset.name | gsm8k |" in report
    assert '{"model": "tiny"}' in report  # a nested value (the server's identity) as JSON
    assert (tmp_path / "out" / "diff_table.md").read_text(encoding="utf-8") in report


def test_report_opens_with_the_verdict_sentence_test_interval_and_counts(tmp_path):
    report, summary = report_of(tmp_path, paired(4, 0, 16))  # Tango: p = 2 * sf((4 - 1/2) / sqrt 4) = 0.0801
    c = summary.comparison
    head = report.split("## ", 1)[0]
    assert head.splitlines()[2] == f"**Accuracy: {comparison_sentence(c)}**"
    assert "no detectable change" in head and "p = 0.0801" in head
    assert "Test: Tango score test (continuity-corrected) on 4 fixed / 0 broken of 20 pairs." in head
    assert ("95% interval: for the paired difference (patched − baseline), inverting the same score test "
            "(Tango 1998); it excludes 0") in head
    result = section(report, "Result")
    for row in (f"| delta (patched − baseline) [95% CI] | {fmt_delta(c.delta, c.ci_low, c.ci_high)} |",
                "| p | 0.0801 |", "| verdict (α = 0.05) | no detectable change |",
                f"| minimum detectable effect (80% power) | ±{c.mde:.3f} |",
                "| fixed (✗→✓) | 4 |", "| broken (✓→✗) | 0 |", "| right in both | 16 |", "| wrong in both | 0 |"):
        assert row in result
    assert "improves" not in head


def test_per_task_rows_have_n_delta_interval_and_p(tmp_path):
    report, summary = report_of(tmp_path, paired(6, 0, 4, task="arith") + paired(1, 2, 7, task="logic"))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section(report, "Per task").splitlines()
            if line.startswith("| arith") or line.startswith("| logic")}
    for task in ("arith", "logic"):
        c = summary.per_task[task]["comparison"]
        assert rows[task].startswith(f"| {task} | {c.n} |")
        assert f"| {fmt_delta(c.delta, c.ci_low, c.ci_high)} | {c.p_value:.3g} | {c.verdict} |" in rows[task]
    assert "| arith | 10 |" in rows["arith"] and "| 0.0247 | improves |" in rows["arith"]  # 2 sf((6 - 1/2) / sqrt 6)


def test_zero_discordant_pairs_show_no_change_observed_with_the_mde_not_an_interval(tmp_path):
    report, summary = report_of(tmp_path, paired(0, 0, 20))
    assert "no change observed (0 of 20 items changed" in report.split("## ", 1)[0]
    result = section(report, "Result")
    assert "| delta (patched − baseline) [95% CI] | no change observed (0 of 20 changed) |" in result
    assert f"| minimum detectable effect (80% power) | ±{summary.comparison.mde:.3f} |" in result
    assert "+0.000 [" not in report


def test_nan_is_printed_as_n_a_never_nan(tmp_path):
    records = [item(0, failed("timeout"), failed("api_error")), item(1, failed("empty"), ok("4", True))]
    report, summary = report_of(tmp_path, records)
    assert "n/a" in report and "nan" not in report.lower()  # also the NaN probe_loss_delta of the record
    assert "no data (no paired items)" in report
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in tmp_path.glob("*.png"))
    assert "nan" not in console_text(summary).lower() and "n/a" in console_text(summary)


def test_empty_run_does_not_crash(tmp_path):
    paths = write_run_report(tmp_path, [], summarize([], 1, **STATS), {"model": {"name": "tiny"}}, "empty", [])
    assert {p.name for p in paths} == REPORT_FILES
    assert "nan" not in (tmp_path / "report.md").read_text(encoding="utf-8").lower()


def test_plots_are_named_not_embedded_as_images_mlflow_cannot_show(tmp_path, records):
    report, _ = report_of(tmp_path, records)
    assert "![" not in report and "](accuracy.png)" not in report
    assert "Plots: `forest.png`, `accuracy.png`, `latency.png`" in section(report, "Plots")


def test_loss_block_says_lower_is_better(tmp_path):
    recs = paired(0, 0, 12)
    for i, r in enumerate(recs):
        r.baseline.loss, r.patched.loss = 2.0 + 0.1 * i, 1.5 + 0.1 * i + 0.01 * (-1) ** i  # falls by 0.5 ± 0.01
    report, summary = report_of(tmp_path, recs)
    assert summary.loss.verdict == "improves"
    assert "**Loss (lower is better): improves**" in report
    loss = section(report, "Loss")
    assert "lower is better" in loss and "| loss baseline | 2.5500 |" in loss and "| loss patched | 2.0500 |" in loss
    assert "| delta (patched − baseline) [95% CI] | -0.500" in loss
    assert "| items with lower / higher loss under the patch | 12 / 0 |" in loss
    assert "## Loss" not in report_of(tmp_path, paired(1, 1, 3))[0]


def test_patch_caused_failures_and_breaking_generation_are_said(tmp_path):
    recs = [item(i, ok("4", True), failed("empty")) for i in range(6)] + paired(1, 0, 3)
    warning = "60% of patched answers failed (6 empty); more than failures.warn_share=0.2"
    report, summary = report_of(tmp_path, recs, warnings=[warning])
    assert f"- {warning}" in section(report, "Warnings")
    failures = section(report, "Failures")
    assert "Patch-caused failures (the baseline answered, the patched generation failed): 6." in failures
    w = summary.with_patch_failures
    assert f"Counting them as wrong answers: delta {fmt_delta(w.delta, w.ci_low, w.ci_high)}" in failures
    assert "the patch breaks generation: 6 of 10 patched answers failed only under the patch" in failures
    assert "breaks generation" not in report_of(tmp_path, paired(1, 0, 3))[0]


def test_repeats_within_the_run_are_not_reused_answers(tmp_path):
    recs = paired(2, 0, 4)
    recs[1].query = recs[0].query
    recs[1].baseline.repeat_of = recs[1].patched.repeat_of = recs[0].id
    recs[5].patched.source_run = "run-old"
    report, _ = report_of(tmp_path, recs)
    assert "- 1 items repeat a query of another item and were answered once" in report
    assert "- 1 patched answers were reused from earlier runs" in report
    assert "| query clusters | 5 |" in report


def test_latency_per_answer_with_batch_sizes_and_per_request(tmp_path):
    recs = [item(i, ok("4", True, 0.5, batch_size=4), ok("4", True, 0.75, batch_size=4)) for i in range(4)]
    report, _ = report_of(tmp_path, recs, request_latency_s={"baseline": [2.0], "patched": [3.0, 3.0]})
    latency = section(report, "Latency")
    assert "request's time divided by the request's batch size" in latency
    assert "| baseline | 0.50 s | 4 | 2.00 s | 2.00 s |" in latency
    assert "| patched | 0.75 s | 4 | 3.00 s | 3.00 s |" in latency


# ---------------------------------------------------------------- colours follow the verdict


def test_four_fixed_none_broken_of_twenty_is_not_green(tmp_path):
    """The score test gives p = 0.0801, and its matching interval includes 0: no colour, no 'improves'."""
    recs = paired(4, 0, 16)
    summary = summarize(recs, 1, **STATS)
    assert summary.comparison.ci_low < 0 and summary.comparison.verdict == "no detectable change"
    text = console_text(summary, color=True)
    assert ANSI_GREEN not in text
    assert "no detectable change (p = 0.0801)" in console_text(summary)
    assert comparison_sentence(summary.comparison) in " ".join(console_text(summary).split())
    write_run_report(tmp_path, recs, summary, run_record(), "t", [])
    assert green_pixels(tmp_path / "accuracy.png") == 0


def test_a_significant_improvement_is_green(tmp_path):
    recs = paired(12, 0, 8)
    summary = summarize(recs, 1, **STATS)
    assert summary.comparison.verdict == "improves"
    assert ANSI_GREEN in console_text(summary, color=True)
    write_run_report(tmp_path, recs, summary, run_record(), "t", [])
    assert green_pixels(tmp_path / "accuracy.png") > 20


def test_summary_table_renders_numbers(records):
    summary = summarize(records, 1, **STATS, request_latency_s={"baseline": [1.0, 2.0], "patched": [1.5]})
    text = console_text(summary)
    assert "timeout: 1" in text and "api_error: 1" in text
    assert "1 / 1" in text  # fixed / broken
    assert "1.50 s / 1.95 s" in text  # request mean / p95


def test_diff_table_counts_a_changed_wrong_answer_apart_and_says_1_answer():
    recs = [item(0, ok("3", False), ok("5", False)), item(1, ok("4", True), ok("4", True)),
            item(2, ok("3", False), ok("4", True))]
    md = diff_table(recs)
    assert md.startswith("1 answer fixed by the patch, 0 broken by it, 1 changed but still wrong, "
                         "0 with a failed generation, 1 unchanged")


def test_the_mde_has_one_rounding_in_the_table_and_the_sentence():
    s = summarize(paired(4, 0, 16), 1, **STATS)
    c = s.comparison
    assert c.mde < 1
    table = console_text(s)
    assert fmt_mde(c.mde) in table and fmt_mde(c.mde) in comparison_sentence(c)
