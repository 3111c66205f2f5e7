"""The weights identity and /api/suggestions are computed once and kept under the cache root."""

from __future__ import annotations

import json
import os

import pytest

from hookbench.base.paths import cache_root
from hookbench.hookapi.launcher import reference_server_command
from hookbench.hookapi.launcher import start_server as launch
from hookbench.server import identity
from hookbench.testing.servers import Server


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty cache root whose models/ is the real one (no re-dequantizing the embedded GGUF)."""
    models = cache_root() / "models"
    root = tmp_path / "cache"
    root.mkdir()
    (root / "models").symlink_to(models)
    monkeypatch.setenv("HOOKBENCH_CACHE", str(root))
    return root


def test_identity_is_hashed_once_and_changes_with_a_file(own_cache, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "model.safetensors").write_bytes(b"\0" * 4096)
    identity.HASHED_FILES.clear()
    first = identity.dir_identity(model, "bfloat16")
    assert len(identity.HASHED_FILES) == 2
    assert identity.dir_identity(model, "bfloat16") == first and len(identity.HASHED_FILES) == 2  # from the cache
    assert identity.dir_identity(model, "float32") != first and len(identity.HASHED_FILES) == 2  # dtype: no reread
    (model / "model.safetensors").write_bytes(b"\1" * 4096)  # same size, new content and mtime
    assert identity.dir_identity(model, "bfloat16") != first
    assert identity.HASHED_FILES[2:] == [str(model / "model.safetensors")]


def start(cwd, timeout_s: float = 300) -> Server:
    return Server(launch(reference_server_command("tiny"), {"TOKENIZERS_PARALLELISM": "false"}, cwd=str(cwd),
                         timeout_s=timeout_s))


@pytest.mark.slow
def test_second_start_does_not_rehash_and_suggestions_come_from_disk(own_cache, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(tmp_path / "a")
    try:
        math = first.ok("POST", "/api/suggestions", {"capability": "math"})
        assert math["suggestions"] and first.ok("POST", "/api/suggestions", {"capability": "math"}) == math
        log = first.running.log_tail(200)
        assert "identity: hashing model.safetensors" in log and "suggestions[math]: layer 0, 8 candidates in one pass" in log
        sha = first.ok("GET", "/api/health")["server"]["weights_sha256"]
    finally:
        first.running.stop()
    (cached,) = (own_cache / "suggestions").iterdir()
    assert json.loads(cached.read_text())["suggestions"] == math["suggestions"]
    again = start(tmp_path / "b")  # a restart, from another working directory
    try:
        assert again.ok("POST", "/api/suggestions", {"capability": "math"}) == math
        assert again.ok("GET", "/api/health")["server"]["weights_sha256"] == sha
        log = again.running.log_tail(200)
        assert "identity: hashing" not in log and "candidates in one pass" not in log
    finally:
        again.running.stop()
    assert os.listdir(own_cache / "suggestions") == [cached.name]
