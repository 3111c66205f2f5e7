"""The unit of evaluation data, shared by datasets, prompts, scorers and results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Item:
    """One question with its gold answer; `id` is stable across runs, `task` is optional."""

    id: str
    prompt: str
    gold: str
    task: str | None = None


@dataclass
class Dataset:
    """A named, fingerprinted list of items, as loaded for one run."""

    name: str
    items: list[Item]
    source: str  # where it came from: hub id, file path, or generator spec

    @property
    def fingerprint(self) -> str:
        """Content hash of the items, so a number can be traced to exactly these rows."""
        blob = json.dumps([asdict(i) for i in self.items], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
