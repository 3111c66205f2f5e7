"""The identity of served weights without rereading them at every start.

A file's sha256 is computed once and cached under the cache root, keyed by its absolute path,
size and modification time: an unchanged file is never reread, a rewritten one (new size or
mtime) is hashed again.  A model directory's identity combines its files' hashes with the dtype
the weights are served in (the same files in bf16 are other weights than in float32).
Engine-independent: every engine reports the same identity for the same files and dtype.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch

from hookbench.base.paths import cache_root

log = logging.getLogger("hookbench.server")
HASHED_FILES: list[str] = []  # files actually read for a hash in this process (tests check the cache)


def _cache_file(path: Path, st: os.stat_result) -> Path:
    key = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return cache_root() / "identity" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def write_atomic(target: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, from the cache when its path, size and mtime are unchanged."""
    path = Path(path)
    st = path.stat()
    cached = _cache_file(path, st)
    if cached.is_file():
        return json.loads(cached.read_text())["sha256"]
    log.info("identity: hashing %s (%.2f GB), once for this file version", path.name, st.st_size / 1e9)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    HASHED_FILES.append(str(path))
    write_atomic(cached, json.dumps({"path": str(path.resolve()), "size": st.st_size,
                                      "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}))
    return digest.hexdigest()


def dir_identity(model_dir: Path, dtype: str) -> str:
    """sha256 over (file name, file sha256) of every file in the model directory, plus the dtype."""
    h = hashlib.sha256(f"dtype={dtype}\n".encode())
    for f in sorted(p for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.name}={file_sha256(f)}\n".encode())
    return h.hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the live state dict's bytes in name order: what is loaded *now*, patches included.

    Reads every weight: for checks (is the model as loaded?), not for every start."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()
