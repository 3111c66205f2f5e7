"""Work that waits on something slow (a server, a disk) done beside the job instead of before it.

A daemon thread, so a job stopped by Ctrl-C or a signal never waits for it at exit; `result()`
re-raises the work's own exception in the thread that asks for the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`fn()` started now in a daemon thread; `result()` waits for it (once done, at once)."""

    def __init__(self, fn: Callable[[], T], name: str = "hookbench-background"):
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001  (handed to whoever asks for the result)
            self._error = e

    def result(self) -> T:
        while self._thread.is_alive():
            self._thread.join(0.2)  # in slices: Ctrl-C and signal handlers still run in the waiting thread
        if self._error is not None:
            raise self._error
        return self._value
