"""No process outlives the server: each stop signal ends the server's whole process tree, including
children that ignore SIGTERM (as vLLM's engine core and workers do) and grandchildren orphaned on
the way. The tree here is real processes under the server's own stop handling (lifecycle); the same
on a real vLLM server is in test_server_vllm.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from hookbench.server import lifecycle
from hookbench.testing.processes import session_members

# a server stand-in: lifecycle's handlers, one child that ignores SIGTERM and has its own child
# (a worker) that ignores it too; prints "ready" when the tree is up
TREE = r"""
import os, signal, subprocess, sys, time
from hookbench.server import lifecycle
lifecycle.install()
IGNORE = "import signal, time, subprocess, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
worker = IGNORE + "time.sleep(600)"
core = IGNORE + f"subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(600)"
subprocess.Popen([sys.executable, "-c", core])
try:
    while len(lifecycle.descendants()) < 2:
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(600)
finally:
    lifecycle.end_children(grace_s=1)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_ends_every_process_of_the_server(sig):
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert len(session_members(proc.pid)) == 3
        proc.send_signal(sig)
        code = proc.wait(timeout=lifecycle.STOP_DEADLINE_S + 10)
        assert code == 128 + sig, proc.stderr.read()[-2000:]
        for _ in range(20):  # SIGKILLed processes leave /proc once their new parent (init) reaps them
            if not session_members(proc.pid):
                break
            time.sleep(0.1)
        assert session_members(proc.pid) == []
    finally:
        lifecycle.kill_all(session_members(proc.pid), signal.SIGKILL)
