"""Where hookbench keeps state on disk: the per-user cache (model caches, server locks) and the file
behind a local sqlite tracking URI."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$HOOKBENCH_CACHE, else ~/.cache/hookbench."""
    env = os.environ.get("HOOKBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hookbench"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local `sqlite:///` tracking URI; None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
