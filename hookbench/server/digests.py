"""SHA-256 of tensors as an engine holds them (`POST /api/weights/digest`), so a client can check that
restore brought back the exact bytes, not only losses that round alike.

`HOOKBENCH_SERVER_FAULT=restore-off-by-one-ulp` makes restore leave the first element of every restored
tensor one ulp off: a broken restore on demand, for the tests that show a job catches one (a real
engine cannot be made to restore wrongly at will). The server says so loudly at start.
"""

from __future__ import annotations

import hashlib
import logging
import os

import torch

log = logging.getLogger("hookbench.server")

FAULT_ENV = "HOOKBENCH_SERVER_FAULT"
RESTORE_OFF_BY_ONE_ULP = "restore-off-by-one-ulp"


class UnknownTensors(ValueError):
    """Digests asked for tensors the model does not have (HTTP 422 naming them)."""

    def __init__(self, names: list[str]):
        super().__init__(f"unknown tensors: {', '.join(names)}")
        self.names = names


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of the tensor's bytes in its dtype and memory order as held (row-major after contiguous())."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return hashlib.sha256(flat.view(torch.uint8).numpy().data if flat.numel() else b"").hexdigest()


def broken_restore() -> bool:
    """Whether this server was started to restore one ulp off (tests only)."""
    fault = os.environ.get(FAULT_ENV, "")
    if fault and fault != RESTORE_OFF_BY_ONE_ULP:
        raise ValueError(f"${FAULT_ENV}={fault!r}: the only fault is {RESTORE_OFF_BY_ONE_ULP!r}")
    return fault == RESTORE_OFF_BY_ONE_ULP


def warn_if_faulty() -> None:
    if broken_restore():
        log.warning("$%s=%s: THIS SERVER RESTORES WRONGLY ON PURPOSE (tests only)", FAULT_ENV, RESTORE_OFF_BY_ONE_ULP)


@torch.no_grad()
def nudge_one_ulp(t: torch.Tensor) -> None:
    """Move the first element of `t` to the next representable value towards +inf, in place."""
    first = t.view(-1)[:1]
    first.copy_(torch.nextafter(first, torch.full_like(first, float("inf"))))
