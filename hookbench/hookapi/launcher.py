"""Start, reuse and stop the hook server a model config says how to launch.

One started server is kept per launch spec for the life of the process, so consecutive jobs of a
sweep on the same model share it; all are stopped at exit, Ctrl-C included. On Linux the server
also gets SIGTERM from the kernel when hookbench dies without running its exit handlers (kill -9,
OOM killer), so a launched server never lingers orphaned, holding a GPU.

Each launch gets a fresh random bearer token, handed to the server in the environment
($HOOKBENCH_SERVER_TOKEN, never argv, which other users see in `ps`) and kept in this process only:
a launched server is never open, even on loopback, and is never reused by another process (none
outlives the process that started it, so there is nothing to hand the token on to).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hookbench.base.errors import ConfigError, ServerError
from hookbench.hookapi import contract

TOKEN_ENV = contract.SERVER_TOKEN_ENV

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    token: str | None = None  # the bearer token it was started with; never logged

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; then whatever is left of its process group (a server's
        own children, e.g. vLLM's engine core and workers), which would otherwise hold memory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: the group is the server's
        except (ProcessLookupError, PermissionError):
            pass


_running: dict[str, RunningServer] = {}


def _stop_all() -> None:
    for server in _running.values():
        server.stop()
    _running.clear()


atexit.register(_stop_all)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> dict:
    """Poll /api/health until it says online; stop early if the server process died."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            h = requests.get(url + contract.HEALTH, timeout=2).json()
            if h.get("status") == "online":
                return h
            last = f"status {h.get('status')!r}"
        except (requests.RequestException, ValueError) as e:
            last = type(e).__name__
        time.sleep(0.25)
    raise TimeoutError(f"not healthy after {timeout_s:.0f} s (last: {last})")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int):
    """A preexec_fn: the child gets SIGTERM when the thread that started it dies (Linux only).

    The kernel ties this to the starting thread, so it is set only from the main thread; a server
    started from a worker thread is stopped by atexit alone."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the child only calls it
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_server(command: list, env: dict | None = None, cwd: str | None = None, timeout_s: float = 300,
                 port: int | None = None, token: str | None = None, python: str | None = None) -> RunningServer:
    """Start a hook server on a loopback port and wait until it is healthy.

    `{port}` and `{python}` (`python`, else this interpreter) in the command and env values are
    filled in; `token` goes in its environment as $HOOKBENCH_SERVER_TOKEN. On failure the process is
    stopped and the ServerError carries the tail of its log.
    """
    port = port or free_port()
    cmd = [str(c).format(port=port, python=python or sys.executable) for c in command]
    env = {**os.environ, **{k: str(v).format(port=port) for k, v in (env or {}).items()},
           **({TOKEN_ENV: token} if token else {})}
    fd, name = tempfile.mkstemp(prefix="hookbench-server-", suffix=".log")
    log = Path(name)
    try:  # the child gets the log file; this process keeps no descriptor of it
        proc = subprocess.Popen(cmd, cwd=cwd or None, env=env, stdout=fd, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    except OSError as e:
        raise ServerError(f"could not start the model server {cmd}: {e}") from None
    finally:
        os.close(fd)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log, token)
    try:
        check_token(server.url, wait_healthy(server.url, timeout_s, proc), token)
    except (RuntimeError, TimeoutError, requests.RequestException) as e:
        server.stop()
        raise ServerError(f"model server {' '.join(cmd)} failed to start: {e}\n"
                          f"--- last lines of {log} ---\n{server.log_tail()}") from None
    return server


def check_token(url: str, health: dict, token: str | None) -> None:
    """A server that requires a token (health `auth`) must take the one it was given."""
    if token and health.get("auth") and requests.get(url + contract.CONFIGS, timeout=10,
                                                     headers={"Authorization": f"Bearer {token}"}).status_code == 401:
        raise RuntimeError(f"it refuses the token hookbench passed in ${TOKEN_ENV} "
                           "(does its command name another variable with --token-env?)")


def launched_token(url: str) -> str | None:
    """The bearer token of the server this process launched at `url`; None for any other server."""
    return next((s.token for s in _running.values() if s.url == url.rstrip("/")), None)


def reference_server_command(model: str) -> list[str]:
    """hookbench's own reference server for `model` (smollm2, tiny, a path)."""
    return ["{python}", "-m", "hookbench.server", "--model", model, "--port", "{port}"]


ENGINES = ("hf", "vllm")


def check_launch(launch: dict | None) -> None:
    """A launch spec's engine choice, checked before anything starts (ConfigError naming the key)."""
    if not launch or not launch.get("enabled") or "engine" not in launch:
        return
    engine = launch["engine"]
    if engine not in ENGINES:
        raise ConfigError(f"model.server.launch.engine={engine!r}: use one of {', '.join(ENGINES)}")
    python = launch.get("python")
    if python and not Path(python).is_file():
        raise ConfigError(f"model.server.launch.python={python!r}: no such file")


def ensure_server(launch: dict | None, url: str | None) -> str:
    """The base URL to talk to: the configured one, or a server started from `launch`."""
    if not launch or not launch.get("enabled"):
        if not url:
            raise ServerError("model.server.url is empty and model.server.launch is not enabled")
        return url.rstrip("/")
    key = json.dumps(launch, sort_keys=True, default=str)
    if key in _running and _running[key].process.poll() is None:
        return _running[key].url
    log.info("starting the model server: %s ...", " ".join(str(c).format(port="<free port>", python=sys.executable)
                                                           for c in launch["command"]))
    t0 = time.monotonic()
    _running[key] = start_server(launch["command"], launch.get("env"), launch.get("cwd"),
                                 float(launch.get("startup_timeout_s", 300)), token=secrets.token_urlsafe(32),
                                 python=launch.get("python"))
    log.info("model server ready at %s after %.0f s", _running[key].url, time.monotonic() - t0)
    return _running[key].url
