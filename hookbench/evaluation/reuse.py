"""Reuse of generations across jobs and runs: a generation is made once per identical request.

The key holds everything that decides the text: server identity (model, weights, server version),
preset and its parameters, extension overrides and seed, the exact query text, and the arm (no
patch, or the patch hash with its apply mode). Missing any of these serves one model's outputs for
another (lm-evaluation-harness #2715, #4063). Sampled generations are keyed only under a seed, and
then also by their batch, since a seeded batch's samples depend on what else is in it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def generation_key(server_identity: dict, preset: dict, extras: dict, query: str, arm: dict,
                   batch: list[str] | None) -> str:
    blob = json.dumps({"server": server_identity, "preset": preset, "extras": extras, "query": query,
                       "arm": arm, "batch": batch}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationStore:
    """A sqlite table beside the tracking store: key -> (text, run id that generated it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                        " run_id TEXT NOT NULL, latency_s REAL)")

    def get_many(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = self.db.execute(f"SELECT key, text, run_id FROM generations WHERE key IN "
                                   f"({','.join('?' * len(chunk))})", chunk)
            found.update({k: (t, r) for k, t, r in rows})
        return found

    def put_many(self, rows: list[tuple[str, str, str, float | None]]) -> None:
        """Only successful generations are stored: a failure is retried next time, never reused."""
        self.db.executemany("INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()
