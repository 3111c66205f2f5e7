"""No vLLM process outlives its server: after SIGTERM to `python -m hookbench.server --engine vllm`, or
kill -9 of the hookbench process that launched it, vLLM's engine core and workers are gone (they ignore
SIGTERM, and used to stay behind re-parented to init, holding the model's memory). SIGINT and SIGHUP
take the same handler (hookbench/server/lifecycle.py); test_server_lifecycle.py sends all three to a
process tree that ignores SIGTERM as vLLM's does.

vLLM-marked: runs in the vLLM venv; skipped with the reason elsewhere (test_server_vllm.py's guard).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from hookbench.hookapi.launcher import reference_server_command, start_server
from hookbench.server import lifecycle
from hookbench.testing.cli import cli_env
from hookbench.testing.processes import session_members
from hookbench.testing.vllm import MARKS

pytestmark = MARKS

COMMAND = reference_server_command("smollm2") + ["--engine", "vllm"]
STOPPED_WITHIN_S = lifecycle.STOP_DEADLINE_S + 15  # the server's own deadline, plus init reaping the killed


def vllm_processes(sid: int) -> list[str]:
    out = []
    for pid in session_members(sid):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return [c for c in out if c.startswith("VLLM::")]


def gone(sid: int) -> bool:
    deadline = time.monotonic() + STOPPED_WITHIN_S
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.5)
    return not session_members(sid)


def test_sigterm_ends_the_engine_core_and_workers():
    sig = signal.SIGTERM
    server = start_server(COMMAND, {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=900)
    sid = server.process.pid  # started in its own session: every process it starts stays in it
    try:
        assert vllm_processes(sid), "no VLLM:: process under the server: nothing to check"
        server.process.send_signal(sig)  # the server alone, as Slurm or a user's kill does
        assert server.process.wait(timeout=STOPPED_WITHIN_S) == 128 + sig, server.log_tail()
        assert gone(sid), f"left behind: {vllm_processes(sid) or session_members(sid)}"
    finally:
        server.stop()


LAUNCHER = """
import sys, time
from hookbench.hookapi.launcher import start_server
s = start_server(sys.argv[1:], {"TOKENIZERS_PARALLELISM": "false"}, timeout_s=900)
print(s.process.pid, flush=True)
time.sleep(3600)
"""


def test_kill_9_of_the_launching_process_ends_the_engine_too():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, *COMMAND], stdout=subprocess.PIPE, text=True,
                                env=cli_env())
    sid = None
    try:
        sid = int(launcher.stdout.readline())
        assert vllm_processes(sid), "no VLLM:: process under the server: nothing to check"
        launcher.kill()
        launcher.wait()
        assert gone(sid), f"left behind: {vllm_processes(sid) or session_members(sid)}"
    finally:
        launcher.kill()
        if sid is not None:
            lifecycle.kill_all(session_members(sid), signal.SIGKILL)
