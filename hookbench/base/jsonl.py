"""One reader of JSON Lines for every file hookbench reads by line (packaged datasets, a dataset's bad
line, logs `compare` reads), so a broken line reads the same wherever it is met."""

from __future__ import annotations

import json
from pathlib import Path

from hookbench.base.errors import DataError


def jsonl_objects(path: Path, expected: str) -> list[dict]:
    """The JSON objects of a .jsonl file, blank lines skipped. A line that is not a JSON object is a
    DataError naming the file, the line and what the file should hold (`expected`)."""
    rows = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for k, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{k}: not valid JSON ({e.msg}): {expected}") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{k}: a JSON {type(row).__name__}, not an object: {expected}")
            rows.append(row)
    return rows
