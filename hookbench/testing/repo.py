"""Where the checkout's configs are, and the GSM8K test split the tests may use when it is present."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"  # not shipped: tests skip without it


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
