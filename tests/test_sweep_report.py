"""The sweep report: one row per job with its own and its adjusted verdict, the correction and the family
it counted, failed and screened-out jobs visible, a dose-response plot when strengths differ."""

import math

import pandas as pd
import pytest
from PIL import Image
from statsmodels.stats.multitest import multipletests

from hookbench.base import mlflow_keys
from hookbench.reports.sweep_report import sweep_note, sweep_table, write_sweep_report
from hookbench.stats import adjust_p_values, adjusted_verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def job(model, patch, delta=None, p=None, status="FINISHED", strength=1.0, **kw):
    row = {"model": model, "patch": patch, "patch_hash": f"{patch}-hash-0123456789abcdef", "dataset": "gsm8k",
           "run_id": f"run-{model}-{patch}-{strength:g}", "status": status, "strength": strength,
           "screen": None, "verdict": None}
    if delta is not None:
        row |= {mlflow_keys.ACC_BASELINE: 0.5, mlflow_keys.ACC_PATCHED: 0.5 + delta, mlflow_keys.ACC_DELTA: delta,
                mlflow_keys.ACC_CI_LOW: delta - 0.05, mlflow_keys.ACC_CI_HIGH: delta + 0.05, mlflow_keys.P_VALUE: p,
                mlflow_keys.MDE: 0.08, mlflow_keys.N_SCORED: 100, mlflow_keys.N_CLUSTERS: 90, mlflow_keys.N_FIXED: 12, mlflow_keys.N_BROKEN: 3,
                mlflow_keys.failures("baseline"): 0, mlflow_keys.failures("patched"): 2, mlflow_keys.FAILURES_PATCH_CAUSED: 1,
                "verdict": ("improves" if delta > 0 else "hurts") if p < 0.05 else "no detectable change"}
    return row | kw


def adjusted(rows, method="holm", alpha=0.05):
    """What the sweep parent does before the report: every job in the family, failed ones as p = 1."""
    ps = [r.get(mlflow_keys.P_VALUE, math.nan) if r["status"] == "FINISHED" and r["screen"] != "rejected" else math.nan
          for r in rows]
    for r, p in zip(rows, adjust_p_values(ps, method)):
        r[mlflow_keys.P_ADJUSTED] = p
        r["verdict_adjusted"] = adjusted_verdict(r.get(mlflow_keys.ACC_DELTA, math.nan), p, alpha)
    return rows


def rows_4():
    return adjusted([job("smollm2", "scale_mlp", 0.06, 0.01), job("smollm2", "zero_head", -0.10, 0.001),
                     job("qwen", "scale_mlp", 0.01, 0.04), job("qwen", "zero_head", status="FAILED", error="boom")])


def table_rows(md: str) -> dict[str, list[str]]:
    """Cells of the compact table by job label (`patch ×strength · model`)."""
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| job")]
    cells = [[c.strip() for c in r.strip().strip("|").split(" | ")] for r in rows]
    return {c[0]: c for c in cells}


def test_sweep_summary_has_own_and_adjusted_verdicts_and_the_family(tmp_path):
    rows = rows_4()
    paths = write_sweep_report(tmp_path, rows, "holm", 0.05)
    assert [p.name for p in paths] == ["sweep_summary.md", "sweep_summary.csv", "sweep_summary.html", "sweep_delta.png"]
    md = (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
    assert "Holm correction over 4 jobs (1 failed, counted in the family)" in md
    page = (tmp_path / "sweep_summary.html").read_text(encoding="utf-8")  # the summary with its plot inline
    assert "Holm correction over 4 jobs" in page and 'alt="sweep_delta.png" src="data:image/png;base64,' in page
    table = table_rows(md)
    assert len(table) == 4
    holm = multipletests([0.01, 0.001, 0.04, 1.0], method="holm")[1]  # the failed job counts as p = 1
    assert list(holm) == pytest.approx([0.03, 0.004, 0.08, 1.0])
    assert md.splitlines()[2] == ("Best: scale_mlp · smollm2, delta +0.060 [+0.010, +0.110], improves; "
                                  "1 of 4 jobs improve and 1 hurt after Holm.")
    header = md.split("| job | ")[1].split("\n")[0].split(" | ")
    assert len(header) + 1 <= 7  # a page shows it without breaking words; the rest is in the CSV
    col = {h.strip(" |"): i + 1 for i, h in enumerate(header)}
    scale = table["scale_mlp · qwen"]
    assert scale[col["delta [95% CI]"]] == "+0.010 [-0.040, +0.060]"
    assert scale[col["p"]] == "0.04" and scale[col["p adjusted"]] == "0.08"
    assert scale[col["verdict (own test)"]] == "improves"
    assert scale[col["verdict (adjusted)"]] == "no detectable change"  # the correction takes it back
    assert table["zero_head · smollm2"][col["verdict (adjusted)"]] == "hurts"
    assert table["zero_head · smollm2"][col["p adjusted"]] == "0.004"
    failed = table["zero_head · qwen"]
    assert failed[col["verdict (adjusted)"]] == "failed"
    assert failed[col["delta [95% CI]"]] == "n/a" and "nan" not in md.lower()
    assert "## Failed jobs" in md and "qwen / zero_head (strength 1, run run-qwen-zero_head-1): boom" in md

    csv = pd.read_csv(tmp_path / "sweep_summary.csv")
    assert len(csv) == 4 and list(csv.columns[:5]) == ["patch", "strength", "model", mlflow_keys.ACC_DELTA, mlflow_keys.ACC_CI_LOW]
    assert csv.loc[csv.status == "FAILED", mlflow_keys.ACC_DELTA].isna().all()
    assert csv.loc[csv.patch == "zero_head", mlflow_keys.P_ADJUSTED].dropna().tolist() == pytest.approx([0.004])
    csv_text = (tmp_path / "sweep_summary.csv").read_text(encoding="utf-8")
    assert ",12,3," in csv_text and "12.0" not in csv_text  # counts stay integers despite the failed row

    png = tmp_path / "sweep_delta.png"
    assert png.read_bytes().startswith(PNG_MAGIC) and Image.open(png).size[0] > 500


def test_screened_out_jobs_are_listed_and_counted(tmp_path):
    rows = adjusted([job("tiny", "math", 0.2, 0.001), job("tiny", "general", screen="rejected"),
                     job("tiny", "reasoning", status="FAILED")], method="bh")
    write_sweep_report(tmp_path, rows, "bh", 0.05)
    md = (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
    assert ("Benjamini–Hochberg (FDR) correction over 3 jobs (1 failed, 1 screened out, counted in the family)"
            in md)
    assert "## Screened out" in md and "- tiny / general (strength 1, run run-tiny-general-1)" in md
    assert "no error recorded" in md  # a failed job without an error still says so
    assert "screened out" in table_rows(md)["general · tiny"]


def test_no_correction_says_so(tmp_path):
    write_sweep_report(tmp_path, adjusted([job("tiny", "math", 0.2, 0.03)], method="none"), "none", 0.05)
    md = (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
    assert "No correction for multiple comparisons over 1 job: each p as tested" in md


def test_dose_response_plot_when_a_patch_set_ran_at_several_strengths(tmp_path):
    rows = adjusted([job("tiny", "math", d, p, strength=s) for s, d, p in ((0.5, 0.02, 0.4), (1.0, 0.1, 0.01),
                                                                          (2.0, -0.2, 0.001))]
                    + [job("tiny", "general", status="FAILED", strength=2.0)])
    paths = write_sweep_report(tmp_path, rows, "holm", 0.05)
    assert [p.name for p in paths][-1] == "sweep_strength.png"
    png = tmp_path / "sweep_strength.png"
    assert png.read_bytes().startswith(PNG_MAGIC)
    image = Image.open(png)
    image.verify()
    assert image.size[0] > 500
    md = (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
    assert "Plots: `sweep_delta.png`, `sweep_strength.png`" in md and "![" not in md
    assert [k for k in table_rows(md) if k.startswith("math")] == [
        "math ×0.5 · tiny", "math · tiny", "math ×2 · tiny"]  # ordered by strength


def test_no_dose_response_plot_with_one_strength(tmp_path):
    paths = write_sweep_report(tmp_path, rows_4(), "holm", 0.05)
    assert not (tmp_path / "sweep_strength.png").exists() and len(paths) == 4
    assert "sweep_strength" not in (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")


def test_sweep_note_leads_with_the_answer_then_a_compact_table():
    note = sweep_note(rows_4(), "holm", 0.05)
    lines = note.splitlines()
    assert lines[0] == ("Best: scale_mlp · smollm2, delta +0.060 [+0.010, +0.110], improves; "
                        "1 of 4 jobs improve and 1 hurt after Holm.")  # plain text: no markdown in the first line
    assert lines[2] == ("| job | delta [95% CI] | p adjusted | verdict (adjusted) | p | verdict (own test) "
                        "| fixed / broken (n) |")
    assert "| zero_head · smollm2 | -0.100 [-0.150, -0.050] | 0.004 | hurts | 0.001 | hurts | 12 / 3 (100) |" in lines
    assert "| zero_head · qwen | n/a | n/a | failed | n/a | n/a | n/a / n/a (n/a) |" in lines
    assert "| job | delta [90% CI] |" in sweep_note(rows_4(), "holm", 0.10)  # the level the intervals have
    assert "sweep_delta.png" in note and "![" not in note
    assert "Holm correction over 4 jobs" in note
    nothing = adjusted([job("tiny", "a", 0.02, 0.3), job("tiny", "b", -0.01, 0.6)])
    assert sweep_note(nothing, "holm", 0.05).splitlines()[0] == (
        "Best: a · tiny, delta +0.020 [-0.030, +0.070], no detectable change; nothing survives Holm.")


def test_sweep_table_is_column_oriented_with_none_for_missing():
    table = sweep_table(rows_4() + [job("qwen", "noop", **{mlflow_keys.ACC_DELTA: math.nan})])
    assert len({len(v) for v in table.values()}) == 1 and len(table["model"]) == 5
    failed = table["status"].index("FAILED")
    assert table[mlflow_keys.ACC_DELTA][failed] is None
    assert not any(isinstance(v, float) and math.isnan(v) for col in table.values() for v in col)


def test_empty_sweep_does_not_crash(tmp_path):
    paths = write_sweep_report(tmp_path, [], "holm", 0.05)
    assert all(p.exists() for p in paths)
    assert "over 0 jobs" in (tmp_path / "sweep_summary.md").read_text(encoding="utf-8")
