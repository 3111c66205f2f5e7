"""lm-eval's `--log_samples` output: `samples_<task>_<date>.jsonl`, one row per document and filter.

A row holds `doc_id`, `filter`, the names of its `metrics` and each metric's value, and the
`doc_hash`, `prompt_hash` and `target_hash` lm-eval computes. The metric compared is lm-eval's own
`metric,filter` name (just `metric` for the filter `none`); documents whose requests are identical
(lm-eval's `arguments`) are one cluster; the direction comes from
`higher_is_better` in the `results_<date>.json` lm-eval writes beside the samples (else higher is
better). lm-eval ships no reader for these files, only their names: the task is the name's middle.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from hookbench.base.errors import DataError
from hookbench.compare.logs import Log, Score, jsonl_rows, number

HASHES = ("doc_hash", "prompt_hash", "target_hash")
REQUIRED = ("doc_id", "metrics", "filter")


def is_samples(path: Path) -> bool:
    """A samples_*.jsonl file, or a folder holding some (at any depth, as lm-eval nests them by model)."""
    if path.is_dir():
        return any(path.rglob("samples_*.jsonl"))
    return path.name.startswith("samples_") and path.suffix == ".jsonl"


def task_of(path: Path) -> str:
    """`samples_arc_easy_2026-12-07T14-00-02.964408.jsonl` -> `arc_easy` (as lm_eval.utils.get_file_task_name)."""
    return path.name[len("samples_"):path.name.rfind("_")]


def metric_name(metric: str, filter_name: str) -> str:
    return metric if filter_name == "none" else f"{metric},{filter_name}"


def samples_files(source: str, paths: list[Path]) -> dict[str, Path]:
    """task -> its one samples file; two files for one task are refused (which run is meant?)."""
    found: dict[str, list[Path]] = defaultdict(list)
    for p in paths:
        for f in sorted(p.rglob("samples_*.jsonl")) if p.is_dir() else [p]:
            found[task_of(f)].append(f)
    twice = {t: fs for t, fs in found.items() if len(fs) > 1}
    if twice:
        task, files = next(iter(twice.items()))
        raise DataError(f"{source}: {len(files)} samples files for task {task} ({', '.join(map(str, files))}): "
                        "name the file of the run you mean")
    return {t: fs[0] for t, fs in found.items()}


def directions(samples: Path) -> dict[str, bool]:
    """metric -> higher is better, from the results_<date>.json of the same run (empty when absent)."""
    stamp = samples.name[samples.name.rfind("_") + 1:-len(".jsonl")]
    results = samples.parent / f"results_{stamp}.json"
    if not results.is_file():
        return {}
    try:
        table = json.loads(results.read_text(encoding="utf-8")).get("higher_is_better", {})
    except json.JSONDecodeError:
        return {}
    task = task_of(samples)
    return {str(k): bool(v) for k, v in table.get(task, {}).items() if v is not None}


def _query(row: dict) -> str | None:
    """What the model was asked for this document: every request's arguments (context with each
    continuation, or prompt with generation settings). Documents asking the same are one cluster;
    the prompt alone is not enough (two documents with one question and other choices differ)."""
    if "arguments" not in row:
        return row.get("prompt_hash")
    return hashlib.sha256(json.dumps(row["arguments"], sort_keys=True, default=str).encode("utf-8")).hexdigest()


def read(source: str, paths: list[Path]) -> Log:
    log = Log(source, "lm-eval")
    for task, path in sorted(samples_files(source, paths).items()):
        _read_task(log, task, path)
    if not log.scores:
        raise DataError(f"{source}: lm-eval samples files with no scored document")
    return log


def _read_task(log: Log, task: str, path: Path) -> None:
    higher = directions(path)
    for k, row in enumerate(jsonl_rows(path), 1):
        absent = [key for key in REQUIRED if key not in row]
        if absent:
            raise DataError(f"{path}: line {k} has no {', '.join(absent)}: not an lm-eval --log_samples file")
        hashes = tuple((h, str(row[h])) for h in HASHES if h in row)
        for metric in row["metrics"]:
            name = metric_name(str(metric), str(row["filter"]))
            value = number(row.get(metric))
            if value is None:
                log.skipped[(task, name)] = "not one number per document (lm-eval aggregates it over documents)"
                continue
            log.higher_is_better.setdefault((task, name), higher.get(str(metric), True))
            log.scores.append(Score(task, name, str(row["doc_id"]), value, 0, _query(row), hashes))
