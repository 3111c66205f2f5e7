"""SIGTERM and SIGHUP handled like Ctrl-C.

Slurm sends SIGTERM at a time limit or preemption, a closed terminal sends SIGHUP; by default
either kills the process at once, leaving the server patched and the run RUNNING. Inside
`graceful_signals()` they raise `Terminated` in the main thread instead, so the `finally`/`except`
paths that already handle KeyboardInterrupt restore the server and close the run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGTERM, signal.SIGHUP)


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
    raised = False

    def handler(signum, frame):
        nonlocal raised
        if raised:
            return
        raised = True
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
