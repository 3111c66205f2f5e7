"""Where hookbench keeps per-user state that outlives a run: model caches and server locks."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$HOOKBENCH_CACHE, else ~/.cache/hookbench."""
    env = os.environ.get("HOOKBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hookbench"
