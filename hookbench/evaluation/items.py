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
    source: str  # where it came from: hub id, file path, or generator spec (with the split, if any)
    split: str = "all"  # "all", or "dev"/"test": the items' side of a stable hash of their ids
    holdout: float = 0.5  # the share of items in the test split
    skipped: int = 0  # rows the loader skipped (no prompt or answer, with dataset.skip_missing)

    @property
    def fingerprint(self) -> str:
        """Content hash of the items (and the split, if not "all"), so a number can be traced to exactly these rows.

        With split "all" it is the hash of the items alone, as it was before splits existed.
        """
        content: object = [asdict(i) for i in self.items]
        if self.split != "all":
            content = {"items": content, "split": self.split, "holdout": self.holdout}
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
