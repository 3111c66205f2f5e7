"""The server lease is keyed on the normalised address: two spellings of one server, one lock."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from hookbench.base.errors import ConfigError
from hookbench.hookapi.lease import lock_path, server_lease

SAME_SERVER = [
    "http://localhost:8000/",
    "http://127.0.0.1:8000",
    "HTTP://LocalHost:8000/api/",
    "http://[::1]:8000",
    "http://0.0.0.0:8000//",
    "localhost:8000",
    f"http://{socket.gethostname()}:8000/",
]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOKBENCH_CACHE", str(tmp_path))


def test_spellings_of_one_local_server_share_a_lock():
    assert len({lock_path(u) for u in SAME_SERVER}) == 1


def test_default_ports_and_case_are_normalised():
    assert lock_path("http://Example.COM/") == lock_path("http://example.com:80")
    assert lock_path("https://example.com") == lock_path("https://example.com:443/v1")


@pytest.mark.parametrize("a, b", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8001"),  # another port
    ("http://example.com", "https://example.com"),  # another scheme (and port)
    ("http://localhost:8000", "http://example.com:8000"),  # another host
])
def test_different_servers_get_different_locks(a, b):
    assert lock_path(a) != lock_path(b)


def test_bad_port_is_a_config_error_naming_the_url():
    with pytest.raises(ConfigError, match="http://x:abc"):
        lock_path("http://x:abc")


def test_second_spelling_waits_for_the_first(tmp_path):
    """A job holding `localhost` keeps a process asking for `127.0.0.1/` waiting until it lets go."""
    child = textwrap.dedent("""
        import sys
        from filelock import FileLock
        from hookbench.hookapi.lease import lock_path
        lock = FileLock(str(lock_path("http://127.0.0.1:8000/")))
        try:
            lock.acquire(timeout=0)
            print("acquired")
        except Exception:
            print("busy")
    """)
    with server_lease("http://localhost:8000"):
        held = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    free = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert (held.stdout.strip(), free.stdout.strip()) == ("busy", "acquired")
