"""One job at a time per hook server.

A server has one global patch state (hook-api.md §1, §2): a baseline generated while another
job's patch is live is silently wrong, and that job's restore would undo this job's patch. Jobs
of a parallel sweep (joblib, submitit) and separate hookbench processes on this machine therefore
hold an exclusive file lock per server from clean to restore; the others wait their turn. The
server serves one generation at a time anyway (§8), so waiting costs no throughput.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from hookbench.errors import ConfigError
from hookbench.paths import cache_root

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def server_key(url: str) -> str:
    """One spelling per server: `scheme://host:port`, lower case, path and slashes dropped.

    Loopback names and this host's own names are one host, and a different host on each machine."""
    parts = urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()  # urlsplit lower-cases and strips IPv6 brackets
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError as e:
        raise ConfigError(f"bad server URL {url!r}: {e}") from None
    if host in LOOPBACK or host in _own_names():
        host = f"loopback@{socket.gethostname().lower()}"
    return f"{scheme}://{host}:{port}"


@functools.cache
def _own_names() -> set[str]:
    return {socket.gethostname().lower(), socket.getfqdn().lower()}


def lock_path(url: str) -> Path:
    """The lock file for a server URL: two spellings of one server share it (see server_key)."""
    digest = hashlib.sha256(server_key(url).encode()).hexdigest()[:16]
    return cache_root() / "locks" / f"server-{digest}.lock"


@contextmanager
def server_lease(url: str) -> Iterator[float]:
    """Hold the server for the body; yields the seconds spent waiting for another job."""
    path = lock_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    t0 = time.perf_counter()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("%s is in use by another hookbench job; waiting for it to restore the server (lock %s)",
                    url, path)
        lock.acquire()
        log.info("%s is free after %.1f s", url, time.perf_counter() - t0)
    try:
        yield time.perf_counter() - t0
    finally:
        lock.release()
