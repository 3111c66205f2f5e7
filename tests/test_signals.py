"""SIGTERM and SIGHUP become a Terminated exception in the main thread, like Ctrl-C, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hookbench.testing.repo import REPO

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from hookbench.base.signals import Terminated, graceful_signals

    try:
        with graceful_signals():
            try:
                print("ready", flush=True)
                time.sleep(60)
                print("slept through", flush=True)
            except Terminated as e:
                print("caught", e.signal_name, e.exit_code, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal during clean-up is ignored
                time.sleep(0.2)
                print("cleanup finished", flush=True)
                raise
    finally:
        print("handler restored", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)
""")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_raises_terminated_once_and_exits_with_its_code(sig, code):
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert out.splitlines() == [f"caught {sig.name} {code}", "cleanup finished", "handler restored True"]
    assert proc.returncode == code
    assert "Traceback" not in err  # uncaught, Terminated exits quietly with its code


def test_outside_the_context_the_previous_handler_is_back():
    from hookbench.base.signals import graceful_signals

    mine = lambda *_: None  # noqa: E731
    old = signal.signal(signal.SIGHUP, mine)
    try:
        with graceful_signals():
            assert signal.getsignal(signal.SIGHUP) is not mine
        assert signal.getsignal(signal.SIGHUP) is mine
    finally:
        signal.signal(signal.SIGHUP, old)


def _alive(pid: int) -> bool:
    """Running (a zombie left for a reaper that never comes counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


LAUNCHER = textwrap.dedent("""
    import time
    from hookbench.hookapi import launcher as sp
    url = sp.ensure_server({"enabled": True, "command": sp.reference_server_command("tiny"),
                            "env": {"TOKENIZERS_PARALLELISM": "false"}}, None)
    print(next(iter(sp._running.values())).process.pid, url, flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_launched_server_dies_with_hookbench_even_after_kill_9():
    import requests

    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        pid, url = proc.stdout.readline().split()
        pid = int(pid)
        assert requests.get(url + "/api/health", timeout=10).json()["status"] == "online"
        proc.kill()  # SIGKILL: no atexit, no finally
        proc.wait()
        for _ in range(300):  # a wait, not a timed assert: the server stops on its own, or the test fails
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid), f"server {pid} outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        if "pid" in locals() and isinstance(pid, int) and _alive(pid):
            os.kill(pid, signal.SIGKILL)
