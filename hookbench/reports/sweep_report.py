"""Sweep report: one line per job (model x patch x strength), its verdict before and after the
correction for the number of jobs tried, and the family that correction counted.

A job that failed or was screened out stays in the table and in the family: dropping it would make
the others look stronger. Plots are separate PNG artifacts named in the markdown (MLflow's markdown
preview cannot show relative images).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from hookbench.base import mlflow_keys
from hookbench.base.outcomes import Screen, Verdict
from hookbench.reports.formatting import CORRECTIONS, NA, NO_CORRECTION, fmt_delta, fmt_level, fmt_p, md_table, plots_sentence
from hookbench.reports.html import write_page
from hookbench.reports.plots import verdict_color

# results first (a CSV/JSON preview shows its first columns), then what identifies the job
RESULT_COLUMNS = ["patch", "strength", "model", mlflow_keys.ACC_DELTA, mlflow_keys.ACC_CI_LOW, mlflow_keys.ACC_CI_HIGH, mlflow_keys.P_ADJUSTED,
                  mlflow_keys.TAG_VERDICT_ADJUSTED, mlflow_keys.P_VALUE, mlflow_keys.TAG_VERDICT, mlflow_keys.TAG_GUARD_VERDICT]
ID_COLUMNS = ["dataset", "patch_hash", "run_id", "status", mlflow_keys.TAG_SCREEN, "error"]
COUNT_COLUMNS = [mlflow_keys.N_SCORED, mlflow_keys.N_CLUSTERS, mlflow_keys.N_FIXED, mlflow_keys.N_BROKEN, mlflow_keys.failures("baseline"),
                 mlflow_keys.failures("patched"), mlflow_keys.FAILURES_PATCH_CAUSED]
METRIC_COLUMNS = [mlflow_keys.ACC_BASELINE, mlflow_keys.ACC_PATCHED, mlflow_keys.MDE, *COUNT_COLUMNS, mlflow_keys.LOSS_DELTA]
COLUMNS = RESULT_COLUMNS + METRIC_COLUMNS + ID_COLUMNS
MODEL_MARKERS = "osD^v<>P*X"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _strength(r: dict) -> float:
    s = r.get("strength")
    return 1.0 if _missing(s) else float(s)


def _screened_out(r: dict) -> bool:
    return r.get(mlflow_keys.TAG_SCREEN) == Screen.REJECTED


def _sorted(rows: list[dict]) -> list[dict]:
    """Stable order a reader can scan: by model, patch, strength, then dataset."""
    return sorted(rows, key=lambda r: (str(r.get("model", "")), str(r.get("patch", "")), _strength(r),
                                       str(r.get("dataset", ""))))


def _columns(rows: list[dict]) -> list[str]:
    """The known columns first, then any extra keys the caller added, in first-seen order."""
    extra = [k for r in rows for k in r if k not in COLUMNS]
    return COLUMNS + list(dict.fromkeys(extra))


def sweep_table(rows: list[dict]) -> dict[str, list]:
    """Column-oriented dict for mlflow.log_table; missing/NaN values become None (valid JSON)."""
    rows = _sorted(rows)
    return {c: [None if _missing(r.get(c)) else r.get(c) for r in rows] for c in _columns(rows)}


def _count(x) -> str:
    return NA if _missing(x) else str(int(x))


def _delta_cell(r: dict) -> str:
    if r.get(mlflow_keys.TAG_VERDICT) == Verdict.NO_CHANGE_OBSERVED:
        return Verdict.NO_CHANGE_OBSERVED
    if _missing(r.get(mlflow_keys.ACC_DELTA)):
        return NA
    return fmt_delta(r.get(mlflow_keys.ACC_DELTA), r.get(mlflow_keys.ACC_CI_LOW), r.get(mlflow_keys.ACC_CI_HIGH))


def _verdict_adjusted(r: dict) -> str:
    if r.get("status") != "FINISHED":
        return "failed"
    if _screened_out(r):
        return "screened out"
    return r.get(mlflow_keys.TAG_VERDICT_ADJUSTED) or r.get(mlflow_keys.TAG_VERDICT) or Verdict.NO_DATA


def family_line(rows: list[dict], correction: str, alpha: float) -> str:
    """The correction and the family it counted:
    "Holm correction over 4 jobs (1 failed, counted in the family)"."""
    n_failed = sum(r.get("status") != "FINISHED" for r in rows)
    n_screened = sum(r.get("status") == "FINISHED" and _screened_out(r) for r in rows)
    aside = [f"{n_failed} failed"] * bool(n_failed) + [f"{n_screened} screened out"] * bool(n_screened)
    jobs = f"{len(rows)} job{'s' * (len(rows) != 1)}"
    if aside:
        jobs += f" ({', '.join(aside)}, counted in the family)"
    if correction in CORRECTIONS:
        return f"{CORRECTIONS[correction].phrase} over {jobs}; adjusted verdicts at α = {alpha:g}."
    return f"No correction for multiple comparisons over {jobs}: each p as tested, at α = {alpha:g}."


def _strength_rows(rows: list[dict]) -> bool:
    """A dose-response plot is worth drawing: some patch set ran at more than one strength."""
    seen: dict[tuple, set] = {}
    for r in rows:
        seen.setdefault((r.get("model"), r.get("patch"), r.get("dataset")), set()).add(_strength(r))
    return any(len(s) > 1 for s in seen.values())


def sweep_markdown(rows: list[dict], correction: str, alpha: float, pngs: list[str]) -> str:
    """The sweep table: one row per job, its own p, the adjusted p and the adjusted verdict."""
    rows = _sorted(rows)
    header, body = compact_table(rows, alpha)
    verdicts = [_verdict_adjusted(r) for r in rows]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
    lines = ["# Sweep summary", "", sweep_answer(rows, correction), "",
             f"{len(rows)} jobs: {counts or 'none'}. Every column (hash, accuracies, counts, run ids): "
             f"`{mlflow_keys.SWEEP_CSV}`.", "",
             family_line(rows, correction, alpha) + " A failed or screened-out job counts as p = 1.", "",
             "Delta is patched − baseline accuracy with the (1 − α) interval of its own test; p is each job's own "
             "test, p adjusted the corrected one, and the verdict (adjusted) is the one to act on.", "",
             md_table(header, body), "", plots_sentence(pngs, "the sweep's parent run"), ""]
    failed = [r for r in rows if r.get("status") != "FINISHED"]
    if failed:
        lines += ["## Failed jobs", "", *(f"- {r.get('model')} / {r.get('patch')} (strength {_strength(r):g}, run "
                                          f"{r.get('run_id')}): {r.get('error') or 'no error recorded'}"
                                          for r in failed), ""]
    screened = [r for r in rows if r.get("status") == "FINISHED" and _screened_out(r)]
    if screened:
        lines += ["## Screened out", "", "The loss screen rejected these patch sets before generation; they stay "
                                         "in the family.", "",
                  *(f"- {r.get('model')} / {r.get('patch')} (strength {_strength(r):g}, run {r.get('run_id')})"
                    for r in screened), ""]
    return "\n".join(lines)


def job_label(r: dict) -> str:
    """What differs first: `math ×0.5 · smollm2` (dataset when it is not the sweep's only one)."""
    strength = "" if _strength(r) == 1 else f" ×{_strength(r):g}"
    return f"{r.get('patch')}{strength} · {r.get('model')}"


def compact_table(rows: list[dict], alpha: float) -> tuple[list[str], list[list]]:
    """At most 7 columns a page shows without breaking words; the rest is in the CSV."""
    datasets = len({str(r.get("dataset")) for r in rows}) > 1
    header = ["job", f"delta [{fmt_level(alpha)} CI]", "p adjusted", "verdict (adjusted)", "p", "verdict (own test)",
              "fixed / broken (n)"]
    body = [[job_label(r) + (f" · {r.get('dataset')}" if datasets else ""), _delta_cell(r),
             fmt_p(r.get(mlflow_keys.P_ADJUSTED)), _verdict_adjusted(r), fmt_p(r.get(mlflow_keys.P_VALUE)), r.get(mlflow_keys.TAG_VERDICT) or NA,
             f"{_count(r.get(mlflow_keys.N_FIXED))} / {_count(r.get(mlflow_keys.N_BROKEN))} ({_count(r.get(mlflow_keys.N_SCORED))})"]
            for r in rows]
    if any(r.get(mlflow_keys.TAG_GUARD_VERDICT) for r in rows):  # a sweep with guard tasks: their verdict per job
        header.append("guards")
        for row, r in zip(body, rows):
            row.append(r.get(mlflow_keys.TAG_GUARD_VERDICT) or NA)
    return header, body


def _correction_name(correction: str | None) -> str:
    words = CORRECTIONS.get(correction or "")
    return words.phrase.replace(" correction", "") if words else NO_CORRECTION


def best_row(rows: list[dict]) -> dict | None:
    """The job to look at first: an adjusted `improves`, else the largest delta."""
    measured = [r for r in rows if not _missing(r.get(mlflow_keys.ACC_DELTA)) and r.get("status") == "FINISHED"]
    return max(measured, key=lambda r: (_verdict_adjusted(r) == Verdict.IMPROVES, r[mlflow_keys.ACC_DELTA]), default=None)


def sweep_answer(rows: list[dict], correction: str | None) -> str:
    """The sweep's answer in one plain sentence: which job is best, whether anything survives the correction."""
    best = best_row(rows)
    if best is None:
        return f"No job of {len(rows)} measured a delta (failed or screened out)."
    verdicts = [_verdict_adjusted(r) for r in rows]
    k = sum(v in (Verdict.IMPROVES, Verdict.HURTS) for v in verdicts)
    after = f"after {_correction_name(correction)}" if correction in CORRECTIONS else f"({NO_CORRECTION})"
    survive = (f"nothing survives {_correction_name(correction)}" if not k and correction in CORRECTIONS
               else f"{verdicts.count(Verdict.IMPROVES)} of {len(rows)} jobs improve and {verdicts.count(Verdict.HURTS)} hurt {after}")
    delta = "" if _delta_cell(best) == _verdict_adjusted(best) else f"delta {_delta_cell(best)}, "
    return f"Best: {job_label(best)}, {delta}{_verdict_adjusted(best)}; {survive}."


def sweep_note(rows: list[dict], correction: str | None = None, alpha: float | None = None) -> str:
    """The parent run's MLflow description: one plain sentence first (the runs table and tooltips show
    it raw), then a compact markdown table."""
    rows = _sorted(rows)
    alpha = 0.05 if alpha is None else alpha
    parts = [sweep_answer(rows, correction), "", md_table(*compact_table(rows, alpha))]
    if correction is not None:
        parts += ["", family_line(rows, correction, alpha)]
    pngs = [mlflow_keys.SWEEP_PNG] + [mlflow_keys.SWEEP_STRENGTH_PNG] * _strength_rows(rows)
    parts += ["", f"Full table: `{mlflow_keys.SWEEP_MD}`, `{mlflow_keys.SWEEP_CSV}`. " + plots_sentence(pngs)]
    return "\n".join(parts)


def _errorbar(ax, x: float, r: dict, color: str, marker: str, label: str | None) -> None:
    d, lo, hi = r.get(mlflow_keys.ACC_DELTA), r.get(mlflow_keys.ACC_CI_LOW), r.get(mlflow_keys.ACC_CI_HIGH)
    no_interval = _missing(lo) or _missing(hi) or r.get(mlflow_keys.TAG_VERDICT) == Verdict.NO_CHANGE_OBSERVED
    ax.errorbar([x], [d], yerr=None if no_interval else [[d - lo], [hi - d]], fmt=marker, color=color,
                capsize=4, label=label)


def _verdict_legend(ax) -> None:
    for v in (Verdict.IMPROVES, Verdict.HURTS, Verdict.NO_DETECTABLE_CHANGE):
        ax.plot([], [], "s", color=verdict_color(v), label=f"{v} (adjusted)")


def plot_sweep_delta(path: Path, rows: list[dict]) -> Path:
    """Delta with its interval per patch set, a marker per model, coloured by the adjusted verdict;
    failed or screened-out jobs marked ✕ on the zero line."""
    rows = _sorted(rows)
    datasets, strengths = len({str(r.get("dataset")) for r in rows}) > 1, len({_strength(r) for r in rows}) > 1

    def label(r):
        return "\n".join([str(r.get("patch"))] + [f"s={_strength(r):g}"] * strengths
                         + [str(r.get("dataset"))] * datasets)

    groups = list(dict.fromkeys(label(r) for r in sorted(rows, key=lambda r: (str(r.get("patch")), _strength(r),
                                                                               str(r.get("dataset"))))))
    models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    width = 0.8 / max(1, len(models))
    fig = Figure(figsize=(max(6, 1.2 * len(groups) * max(1, len(models)) ** 0.5 + 3), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="black", lw=0.8)
    no_data_labelled = False
    for mi, model in enumerate(models):
        offset = (mi - (len(models) - 1) / 2) * width
        marker = MODEL_MARKERS[mi % len(MODEL_MARKERS)]
        ax.plot([], [], marker, color="black", ls="none", label=model)
        for r in (r for r in rows if str(r.get("model")) == model):
            x = groups.index(label(r)) + offset
            if _missing(r.get(mlflow_keys.ACC_DELTA)):
                ax.plot([x], [0], marker="x", color="black", ms=9, ls="none",
                        label=None if no_data_labelled else "failed / screened out / no data")
                no_data_labelled = True
                continue
            _errorbar(ax, x, r, verdict_color(_verdict_adjusted(r)), marker, None)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.6, max(0.6, len(groups) - 0.4))
    ax.set_ylabel("accuracy delta (patched − baseline)")
    ax.set_title("Patch effect per model (interval of each job's own test)", fontsize=10)
    if rows:
        _verdict_legend(ax)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax.text(0.5, 0.5, "no jobs", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path


def plot_sweep_strength(path: Path, rows: list[dict]) -> Path:
    """Dose-response: delta with its interval against patch strength, one line per patch set and model
    (and dataset), points coloured by the adjusted verdict; failed jobs ✕ on the zero line."""
    rows = _sorted(rows)
    series: dict[tuple, list[dict]] = {}
    for r in rows:
        series.setdefault((str(r.get("patch")), str(r.get("model")), str(r.get("dataset"))), []).append(r)
    datasets = len({k[2] for k in series}) > 1
    fig = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(1, color="0.7", lw=0.8, ls=":")
    no_data_labelled = False
    for i, ((patch, model, dataset), rs) in enumerate(series.items()):
        name = f"{patch} / {model}" + (f" / {dataset}" if datasets else "")
        line_color = f"C{i % 10}"
        ok = [r for r in rs if not _missing(r.get(mlflow_keys.ACC_DELTA))]
        ax.plot([_strength(r) for r in ok], [r[mlflow_keys.ACC_DELTA] for r in ok], "-", color=line_color, lw=1.2,
                label=name if ok else None)
        marker = MODEL_MARKERS[i % len(MODEL_MARKERS)]
        for r in ok:
            _errorbar(ax, _strength(r), r, verdict_color(_verdict_adjusted(r)), marker, None)
        for r in (r for r in rs if _missing(r.get(mlflow_keys.ACC_DELTA))):
            ax.plot([_strength(r)], [0], marker="x", color="black", ms=9, ls="none",
                    label=None if no_data_labelled else "failed / screened out / no data")
            no_data_labelled = True
    ax.set_xlabel("patch strength (0 = no edit, 1 = the patch as written)")
    ax.set_ylabel("accuracy delta (patched − baseline)")
    ax.set_title("Dose-response: delta against strength (interval of each job's own test)", fontsize=10)
    _verdict_legend(ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110)
    return path


def write_sweep_report(out_dir: Path, rows: list[dict], correction: str, alpha: float) -> list[Path]:
    """Write sweep_summary.md, sweep_summary.csv, sweep_delta.png, when a patch set ran at more than
    one strength the dose-response plot, and sweep_summary.html (all in one page); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [out_dir / mlflow_keys.SWEEP_PNG]
    if _strength_rows(rows):
        pngs.append(out_dir / mlflow_keys.SWEEP_STRENGTH_PNG)
    md = out_dir / mlflow_keys.SWEEP_MD
    text = sweep_markdown(rows, correction, alpha, [p.name for p in pngs])
    md.write_text(text, encoding="utf-8")
    csv = out_dir / mlflow_keys.SWEEP_CSV
    frame = pd.DataFrame(sweep_table(rows), columns=_columns(rows))
    for col in COUNT_COLUMNS:  # keep counts integer in the CSV even when failed jobs leave gaps
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    frame.to_csv(csv, index=False)
    plot_sweep_delta(pngs[0], rows)
    if len(pngs) > 1:
        plot_sweep_strength(pngs[1], rows)
    page = write_page(out_dir / mlflow_keys.SWEEP_HTML, "sweep summary", text, pngs)
    return [md, csv, page, *pngs]
