"""/api/suggestions computed once per (weights identity, dtype, capability) and kept on disk.

Under the cache root, so every working directory, run and restart shares the same answer; the
suggestion method's version is part of the key, so a changed method never serves stale JSON.
Engine-independent: the key names the weights, not the engine that measured them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from hookbench.base.paths import cache_root
from hookbench.server.identity import write_atomic

log = logging.getLogger("hookbench.server")


def cache_path(weights: str, dtype: str, capability: str, method: str) -> Path:
    name = f"{weights[:32]}-{dtype}-{quote(capability, safe='')}-{method}.json"
    return cache_root() / "suggestions" / name


def cached(weights: str, dtype: str, capability: str, method: str,
           compute: Callable[[], list[dict]]) -> list[dict]:
    """The cached suggestions, or compute() once and keep them."""
    path = cache_path(weights, dtype, capability, method)
    if path.is_file():
        return json.loads(path.read_text())["suggestions"]
    result = compute()
    write_atomic(path, json.dumps({"weights_sha256": weights, "dtype": dtype, "capability": capability,
                                    "method": method, "suggestions": result}, indent=1))
    log.info("suggestions[%s]: computed and cached in %s", capability, path)
    return result
