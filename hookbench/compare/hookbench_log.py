"""A hookbench run as a log: its items.jsonl (a file, or the artifact of a run id in the store), one arm.

A job's items.jsonl holds both arms; `compare` takes one of them per log (`RUN#baseline`, default
the patched arm), so two jobs' patched arms, or one job's two arms, can be compared. The metric is
`accuracy` (the scorer's 0/1); items sharing a query are one cluster, as in the job's own test.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError, DataError
from hookbench.compare.logs import Log, Score, jsonl_rows

METRIC = "accuracy"
NO_TASK = "items"  # the task of a single-dataset job's items (their `task` is empty)


def is_items(path: Path) -> bool:
    """A .jsonl file whose first row has the columns hookbench's items.jsonl writes."""
    if not (path.is_file() and path.suffix == ".jsonl"):
        return False
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and {"id", "baseline_correct", "patched_correct"} <= set(row)


def _digest(text: object) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def read(spec: str, arm: str, tracking_uri: str | None) -> Log:
    """The scores of arm `arm` in the items.jsonl at `spec`, or of the run with id `spec`."""
    if arm not in mlflow_keys.ARMS:
        raise ConfigError(f"{spec}#{arm}: the arm must be one of {', '.join(mlflow_keys.ARMS)}")
    path = Path(spec)
    if path.is_file():
        rows = jsonl_rows(path)
    else:
        rows = _run_items(spec, tracking_uri)
    log = Log(f"{spec}#{arm}", "hookbench")
    for row in rows:
        if "id" not in row or f"{arm}_correct" not in row:
            raise DataError(f"{spec}: a row without id or {arm}_correct: not a hookbench items.jsonl")
        correct = row[f"{arm}_correct"]
        if correct is None or row.get(f"{arm}_error") is not None:
            continue  # failed or unscored: not a score (the job's own test leaves it out too)
        task = str(row.get("task") or NO_TASK)
        hashes = (("prompt_hash", _digest(row.get("query"))), ("target_hash", _digest(row.get("gold"))))
        log.scores.append(Score(task, METRIC, str(row["id"]), float(correct), int(row.get("draw") or 0),
                                str(row.get("query")), hashes))
        log.higher_is_better[(task, METRIC)] = True
    return log


def _run_items(run_id: str, tracking_uri: str | None) -> list[dict]:
    from hookbench.tracking import default_tracking_uri
    from hookbench.tracking.reading import download, get_run
    from hookbench.tracking.store import use_store

    client = use_store(tracking_uri or default_tracking_uri())
    get_run(client, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        return jsonl_rows(download(client, run_id, mlflow_keys.ITEMS_JSONL, Path(tmp)))
