"""The sweep report: one row per job, failed jobs visible, files that open."""

import math

import pandas as pd

from hookbench.sweep_report import sweep_table, write_sweep_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def job(model, patch, delta=None, status="FINISHED", **kw):
    row = {"model": model, "patch": patch, "patch_hash": f"{patch}-hash-0123456789abcdef", "dataset": "gsm8k",
           "run_id": f"run-{model}-{patch}", "status": status}
    if delta is not None:
        row.update({"accuracy/baseline": 0.5, "accuracy/patched": 0.5 + delta, "accuracy/delta": delta,
                    "accuracy/delta_ci_low": delta - 0.05, "accuracy/delta_ci_high": delta + 0.05,
                    "n/scored": 100, "failures/baseline": 0, "failures/patched": 2})
    row.update(kw)
    return row


ROWS = [
    job("smollm2", "scale_mlp", 0.06),
    job("smollm2", "zero_head", -0.10),
    job("qwen", "scale_mlp", 0.01),
    job("qwen", "zero_head", status="FAILED"),
]


def table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| model")]


def test_sweep_report_one_row_per_job_failed_visible(tmp_path):
    paths = write_sweep_report(tmp_path, ROWS)
    assert [p.name for p in paths] == ["sweep_summary.md", "sweep_summary.csv", "sweep_delta.png"]
    rows = table_rows((tmp_path / "sweep_summary.md").read_text(encoding="utf-8"))
    assert len(rows) == 4
    keys = {tuple(c.strip() for c in r.strip("|").split("|")[:2]) for r in rows}
    assert keys == {("smollm2", "scale_mlp"), ("smollm2", "zero_head"), ("qwen", "scale_mlp"), ("qwen", "zero_head")}
    failed = [r for r in rows if "| qwen | zero_head |" in r][0]
    assert "FAILED" in failed and "n/a" in failed
    assert any("+0.060 [+0.010, +0.110]" in r for r in rows)

    csv = pd.read_csv(tmp_path / "sweep_summary.csv")
    assert len(csv) == 4 and list(csv.columns[:6]) == ["model", "patch", "patch_hash", "dataset", "run_id", "status"]
    assert csv.loc[csv.status == "FAILED", "accuracy/delta"].isna().all()

    png = (tmp_path / "sweep_delta.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000


def test_sweep_table_is_column_oriented_with_none_for_missing():
    table = sweep_table(ROWS + [job("qwen", "noop", **{"accuracy/delta": math.nan})])
    assert len({len(v) for v in table.values()}) == 1 and len(table["model"]) == 5
    failed = table["status"].index("FAILED")
    assert table["accuracy/delta"][failed] is None
    assert None in table["accuracy/delta"]
    assert not any(isinstance(v, float) and math.isnan(v) for col in table.values() for v in col)


def test_empty_sweep_does_not_crash(tmp_path):
    paths = write_sweep_report(tmp_path, [])
    assert all(p.exists() for p in paths)
