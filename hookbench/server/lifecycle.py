"""No engine outlives its server: SIGTERM, SIGINT or SIGHUP stop the server gracefully, shut the
engine down, and then end every process the server started (vLLM's engine core and workers ignore
SIGTERM and would otherwise keep the model's memory, re-parented to init).

uvicorn turns SIGINT/SIGTERM into a graceful shutdown and re-raises the signal afterwards; with the
default handler that re-raise killed the server before its `finally` could stop the engine. Here the
handlers raise `Stopped` instead, so the `finally` runs; SIGHUP (which uvicorn leaves alone) is
forwarded as SIGTERM. A watchdog ends everything `STOP_DEADLINE_S` after the first signal even if a
shutdown hangs. The server is a child subreaper (Linux), so a worker orphaned by its engine core is
re-parented to the server and still found among its descendants. A server launched by hookbench gets
SIGTERM when its launcher dies (launcher.py), which takes the same path.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

log = logging.getLogger("hookbench.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CHILD_GRACE_S = 5.0  # after the engine's own shutdown: SIGTERM to what is left, then SIGKILL
STOP_DEADLINE_S = 30.0  # from the first signal to no process of the server left, whatever hangs
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


class Stopped(SystemExit):
    """The server was told to stop by `signum`; exits 128 + signum, as the default action would."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


_first: list[int] = []  # the first stop signal received


def install() -> None:
    """Stop handlers for SIGTERM/SIGINT/SIGHUP (main thread), and become a child subreaper."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if not _first:
        _first.append(signum)
        log.info("received %s: stopping the server and its engine", signal.Signals(signum).name)
        threading.Thread(target=_deadline, args=(signum,), daemon=True, name="stop-deadline").start()
    if signum == signal.SIGHUP:  # uvicorn only stops gracefully on SIGINT/SIGTERM: ask it that way
        signal.raise_signal(signal.SIGTERM)
        return
    raise Stopped(_first[0])


def _deadline(signum: int) -> None:
    time.sleep(STOP_DEADLINE_S)
    log.error("still stopping %.0f s after %s: killing every process of the server", STOP_DEADLINE_S,
              signal.Signals(signum).name)
    kill_all(descendants(), signal.SIGKILL)
    os._exit(128 + signum)


def descendants(pid: int | None = None) -> list[int]:
    """Every live (not zombie) process below `pid` (default: this one), read from /proc; [] off Linux."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []
    for d in entries:
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end_children(grace_s: float = CHILD_GRACE_S) -> list[int]:
    """SIGTERM every descendant still running, SIGKILL whatever is left after `grace_s`; returns
    the pids that needed SIGKILL. Reaps what it can, so none stays a zombie of this process."""
    left = descendants()
    if not left:
        return []
    log.info("ending %d leftover child processes of the server: %s", len(left), left)
    kill_all(left, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while left and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
        left = descendants()
    kill_all(left, signal.SIGKILL)
    for _ in range(50):
        _reap()
        if not descendants():
            break
        time.sleep(0.1)
    return left


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
