"""SIGTERM and SIGHUP handled like Ctrl-C.

Slurm sends SIGTERM at a time limit or preemption, a closed terminal sends SIGHUP; by default
either kills the process at once, leaving the server patched and the run RUNNING. Inside
`graceful_signals()` they raise `Terminated` in the main thread instead, so the `finally`/`except`
paths that already handle KeyboardInterrupt restore the server and close the run.

Ctrl-C raises KeyboardInterrupt as always, but is also remembered: an interrupt raised inside a
finaliser, a callback or a library's broad `except` is swallowed there (Python prints "Exception
ignored in ..." at best), so the job would run on. `checkpoint()`, called between answers and phases,
raises it again: a Ctrl-C is never lost, only late by at most one answer.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # the signal graceful_signals() raised for, until its context ends


class Terminated(SystemExit):
    """Raised by a handled signal. A SystemExit, so `except Exception` lets it through and, left
    uncaught, the process exits silently with `exit_code` (128 + signal number: 143 for SIGTERM,
    129 for SIGHUP, as a shell reports a process killed by it)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + self.signum
        super().__init__(self.exit_code)

    def __str__(self) -> str:
        return f"received {self.signal_name}"


@contextmanager
def graceful_signals() -> Iterator[None]:
    """While active, SIGTERM/SIGHUP raise Terminated once; later ones are ignored so the clean-up
    they started can finish. Previous handlers come back on exit. Outside the main thread (where
    Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def handler(signum, frame):
        if _received:
            return  # the clean-up the first one started must finish
        _received.append(signum)
        raise _exception(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (*HANDLED, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        _received.clear()


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def checkpoint() -> None:
    """Raise again a signal that was received but swallowed on its way up (see module doc)."""
    if _received:
        raise _exception(_received[0])
