"""Sweep report: one line per job (model x patch), so a user can see which edit helps which model."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from hookbench.report import NA, fmt_acc, fmt_delta, md_table

ID_COLUMNS = ["model", "patch", "patch_hash", "dataset", "run_id", "status"]
METRIC_COLUMNS = [
    "accuracy/baseline",
    "accuracy/patched",
    "accuracy/delta",
    "accuracy/delta_ci_low",
    "accuracy/delta_ci_high",
    "n/scored",
    "failures/baseline",
    "failures/patched",
]
COLUMNS = ID_COLUMNS + METRIC_COLUMNS
COUNT_COLUMNS = ["n/scored", "failures/baseline", "failures/patched"]
HASH_SHOWN = 12  # characters of patch_hash in the markdown table; the CSV keeps it whole


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _sorted(rows: list[dict]) -> list[dict]:
    """Stable order a reader can scan: by model, then patch, then dataset."""
    return sorted(rows, key=lambda r: (str(r.get("model", "")), str(r.get("patch", "")), str(r.get("dataset", ""))))


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


def sweep_markdown(rows: list[dict]) -> str:
    """The sweep table: one row per job, the delta with its CI in one cell."""
    header = ["model", "patch", "hash", "dataset", "status", "baseline", "patched",
              "delta [95% CI]", "n scored", "failures b/p", "run id"]
    body = [
        [r.get("model"), r.get("patch"), (r.get("patch_hash") or "")[:HASH_SHOWN], r.get("dataset"),
         r.get("status"), fmt_acc(r.get("accuracy/baseline")), fmt_acc(r.get("accuracy/patched")),
         fmt_delta(r.get("accuracy/delta"), r.get("accuracy/delta_ci_low"), r.get("accuracy/delta_ci_high"))
         if not _missing(r.get("accuracy/delta")) else NA,
         _count(r.get("n/scored")),
         f"{_count(r.get('failures/baseline'))} / {_count(r.get('failures/patched'))}", r.get("run_id")]
        for r in _sorted(rows)
    ]
    n_failed = sum(r.get("status") == "FAILED" for r in rows)
    lines = ["# Sweep summary", "",
             f"{len(rows)} jobs, {n_failed} failed. Delta is patched − baseline accuracy with its paired 95% CI.",
             "", md_table(header, body), "", "![delta per patch](sweep_delta.png)", ""]
    errors = [r for r in _sorted(rows) if r.get("error")]
    if errors:
        lines += ["## Failed jobs", "", *(f"- {r.get('model')} / {r.get('patch')} ({r.get('run_id')}): {r['error']}"
                                          for r in errors), ""]
    return "\n".join(lines)


def plot_sweep_delta(path: Path, rows: list[dict]) -> Path:
    """Delta with CI per patch, one colour per model side by side; failed jobs marked ✕ on the zero line."""
    rows = _sorted(rows)
    datasets = sorted({str(r.get("dataset")) for r in rows})
    label = (lambda r: f"{r.get('patch')}\n{r.get('dataset')}") if len(datasets) > 1 else (lambda r: str(r.get("patch")))
    groups = list(dict.fromkeys(label(r) for r in sorted(rows, key=lambda r: (str(r.get("patch")), str(r.get("dataset"))))))
    models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    width = 0.8 / max(1, len(models))
    fig = Figure(figsize=(max(6, 1.2 * len(groups) * max(1, len(models)) ** 0.5 + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color="black", lw=0.8)
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    failed_labelled = False
    for mi, model in enumerate(models):
        offset = (mi - (len(models) - 1) / 2) * width
        first = True
        for r in (r for r in rows if str(r.get("model")) == model):
            x = groups.index(label(r)) + offset
            d, lo, hi = r.get("accuracy/delta"), r.get("accuracy/delta_ci_low"), r.get("accuracy/delta_ci_high")
            if _missing(d):
                ax.plot([x], [0], marker="x", color="tab:red", ms=9, ls="none",
                        label=None if failed_labelled else "failed / no data")
                failed_labelled = True
                continue
            yerr = None if _missing(lo) or _missing(hi) else [[d - lo], [hi - d]]
            ax.errorbar([x], [d], yerr=yerr, fmt="o", color=colors[model], capsize=4,
                        label=model if first else None)
            first = False
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.6, max(0.6, len(groups) - 0.4))
    ax.set_ylabel("accuracy delta (patched − baseline)")
    ax.set_title("Patch effect per model (95% paired CI)", fontsize=10)
    if rows:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no jobs", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path


def write_sweep_report(out_dir: Path, rows: list[dict]) -> list[Path]:
    """Write sweep_summary.md, sweep_summary.csv and sweep_delta.png; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "sweep_summary.md"
    md.write_text(sweep_markdown(rows), encoding="utf-8")
    csv = out_dir / "sweep_summary.csv"
    frame = pd.DataFrame(sweep_table(rows), columns=_columns(rows))
    for col in COUNT_COLUMNS:  # keep counts integer in the CSV even when failed jobs leave gaps
        frame[col] = pd.to_numeric(frame[col]).astype("Int64")
    frame.to_csv(csv, index=False)
    return [md, csv, plot_sweep_delta(out_dir / "sweep_delta.png", rows)]
