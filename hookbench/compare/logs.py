"""What `compare` reads from any evaluation log: one score per item, metric and draw, keyed by the
log's own item id, and which kind of log a path is.

Each reader (lm_eval_log, hookbench_log, inspect_log) turns its format into `Log`; pairing works on
`Log` only, so a new format is one more reader.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from hookbench.base.errors import DataError
from hookbench.base.jsonl import jsonl_objects

RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Score:
    """One item's score on one metric in one draw, with what identifies the item's content."""

    task: str
    metric: str
    item: str  # the log's own item id: lm-eval doc_id, inspect sample id, hookbench item id
    value: float
    draw: int = 0  # inspect epoch, hookbench draw; lm-eval has one
    cluster: str | None = None  # items sharing a query (same prompt hash / query text) are one cluster
    hashes: tuple[tuple[str, str], ...] = ()  # (name, value): what must agree between the two logs


@dataclass
class Log:
    """One evaluation log as `compare` sees it: where it came from, its scores, the metrics it left out."""

    source: str  # the file, folder or run as the user named it
    kind: str  # lm-eval | hookbench | inspect
    scores: list[Score] = field(default_factory=list)
    higher_is_better: dict[tuple[str, str], bool] = field(default_factory=dict)  # (task, metric) -> direction
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)  # (task, metric) -> why not compared


def number(value: object) -> float | None:
    """A per-item score as a float; None for what is not one number (lm-eval's tuples for corpus metrics)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def jsonl_rows(path: Path) -> list[dict]:
    """The JSON objects of a log's .jsonl file."""
    return jsonl_objects(path, "not a log compare can read")


def read_log(spec: str, tracking_uri: str | None) -> Log:
    """The log `spec` names: lm-eval samples (a folder, a samples_*.jsonl file, or several joined by
    commas), a hookbench items.jsonl or run id (`#baseline` picks that arm; default the patched one),
    or an inspect_ai eval log (with the `inspect` extra)."""
    from hookbench.compare import hookbench_log, inspect_log, lm_eval_log

    base, _, arm = spec.partition("#")
    paths = [Path(p) for p in base.split(",") if p]
    if arm or (len(paths) == 1 and not paths[0].exists() and RUN_ID.fullmatch(base)):
        return hookbench_log.read(base, arm or "patched", tracking_uri)
    missing = [str(p) for p in paths if not p.exists()]
    if missing or not paths:
        raise DataError(f"{', '.join(missing) or spec!r}: no such file or folder (and not a run id)")
    if all(lm_eval_log.is_samples(p) for p in paths):
        return lm_eval_log.read(spec, paths)
    if len(paths) == 1 and hookbench_log.is_items(paths[0]):
        return hookbench_log.read(base, "patched", tracking_uri)
    if len(paths) == 1 and inspect_log.is_eval_log(paths[0]):
        return inspect_log.read(paths[0])
    raise DataError(f"{spec}: not a log of a known kind (lm-eval --log_samples samples_*.jsonl or their folder, "
                    "a hookbench items.jsonl or run id, an inspect_ai .eval/.json log)")
