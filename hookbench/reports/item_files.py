"""A run's per-item data files: items.jsonl / items.csv (results first), guard_items.jsonl and
prompt_items.jsonl. The lossless record of what each arm answered; the reports are read from these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from hookbench.base import mlflow_keys
from hookbench.evaluation.results import ItemResult

if TYPE_CHECKING:
    from hookbench.evaluation.guards import GuardResult

# results first, so a preview (MLflow's artifact view shows the first columns) shows outcomes, not prompts
ITEMS_FIRST = ["id", "gold", "baseline_correct", "patched_correct", "baseline_extracted", "patched_extracted",
               "baseline_output", "patched_output", "baseline_error", "patched_error", "task", "draw"]


def item_columns() -> list[str]:
    return ITEMS_FIRST + [c for c in ItemResult.columns() if c not in ITEMS_FIRST]


def write_items(out_dir: Path, records: list[ItemResult]) -> list[Path]:
    """items.jsonl is the lossless record (round-trips via ItemResult.from_flat); items.csv is for sheets."""
    columns = item_columns()
    rows = [{c: flat.get(c) for c in columns} for flat in (r.flat() for r in records)]
    jsonl = out_dir / mlflow_keys.ITEMS_JSONL
    with jsonl.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    csv = out_dir / mlflow_keys.ITEMS_CSV
    pd.DataFrame(rows, columns=columns).to_csv(csv, index=False)
    return [jsonl, csv]


def write_guard_items(out_dir: Path, guards: list[GuardResult], guard_records: list[list[ItemResult]]) -> Path:
    """guard_items.jsonl: each guard's items as items.jsonl has them, with the guard's name first."""
    path = out_dir / mlflow_keys.GUARDS_JSONL
    with path.open("w", encoding="utf-8") as f:
        for g, records in zip(guards, guard_records):
            for r in records:
                f.write(json.dumps({"guard": g.name, **r.flat()}, ensure_ascii=False) + "\n")
    return path


def write_prompt_items(out_dir: Path, records: list[ItemResult]) -> Path:
    """prompt_items.jsonl: the prompting arm's answers, one flat item per line."""
    path = out_dir / mlflow_keys.PROMPT_JSONL
    path.write_text("".join(json.dumps(r.flat(), ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
