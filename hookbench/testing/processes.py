"""Which processes are still alive: the check behind every "nothing outlives it" test."""

from __future__ import annotations

from pathlib import Path


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (the tree keeps the session even when re-parented to init)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(d.name))
    return out
