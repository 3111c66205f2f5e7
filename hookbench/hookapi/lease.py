"""One job at a time per hook server.

A server has one global patch state (hook-api.md §1, §2): a baseline generated while another
job's patch is live is silently wrong, and that job's restore would undo this job's patch. Jobs
of a parallel sweep (joblib, submitit) and separate hookbench processes on this machine therefore
hold an exclusive file lock per server from clean to restore; the others wait their turn. The
server serves one generation at a time anyway (§8), so waiting costs no throughput.

The holder writes who it is (pid, host, run id, store) beside the lock and removes it on release. A
record found on acquiring was left by a holder that died (kill -9, a dead node): the next job reads
it to say so, check the server, and close that holder's run. The clean probe losses last seen on the
server are kept beside it too (the weights' fingerprint), to tell whether the dead holder left a patch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from hookbench.base.errors import ConfigError
from hookbench.base.paths import cache_root

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


@dataclass
class Lease:
    waited: float  # seconds spent waiting for another job
    left_by: dict | None  # the record of a holder that died holding the server, if one did
    record: Path | None = None  # where this holder's own record is
    holder: dict | None = None

    def note(self, **more) -> None:
        """Add to this holder's record (a run id known only after the lease was taken)."""
        self.holder = {**(self.holder or {}), **more}
        if self.record is not None:
            write_json(self.record, self.holder)


def holder_path(url: str) -> Path:
    return lock_path(url).with_suffix(".holder.json")


def fingerprint_path(url: str) -> Path:
    return lock_path(url).with_suffix(".fingerprint.json")


def read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def holder_alive(record: dict) -> bool:
    """Whether the process that wrote `record` still runs (only knowable on its own host)."""
    if record.get("host") != socket.gethostname():
        return False  # the lock is per machine: another host's record can only be a stale copy
    try:
        os.kill(int(record.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def server_lease(url: str, holder: dict | None = None) -> Iterator[Lease]:
    """Hold the server for the body; yields how long it waited and what a dead holder left behind."""
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
    record = holder_path(url)
    try:
        left = read_json(record)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), **(holder or {})}
        write_json(record, mine)
        yield Lease(time.perf_counter() - t0, left if isinstance(left, dict) else None, record, mine)
    finally:
        record.unlink(missing_ok=True)
        lock.release()
