"""`hookbench ui`: MLflow's UI on the store hookbench logs to, opened at hookbench's results view.

A local store gets its own `mlflow server`, started in a process group of its own so that stopping
hookbench (Ctrl-C, SIGTERM, SIGHUP) stops it and every worker it started; it also gets SIGTERM from
the kernel if hookbench dies without cleaning up (Linux). A tracking server is already serving: its
link is printed instead. The link names hookbench's view of the runs table (tracking.ui_page), so
the runs and hookbench's columns show with no click.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import webbrowser
from pathlib import Path

import requests
from omegaconf import OmegaConf

from hookbench import tracking
from hookbench.base.errors import ConfigError, ServerError
from hookbench.base.signals import Terminated, graceful_signals
from hookbench.hookapi import launcher

CONFIG = Path(__file__).parents[1] / "conf" / "config.yaml"
REMOTE = ("http://", "https://", "databricks")
START_TIMEOUT_S = 180  # MLflow's server imports its app before it answers: seconds, more on a loaded machine


def show(uri: str, experiment: str | None, host: str, port: int, browser: bool) -> int:
    experiment = experiment or OmegaConf.load(CONFIG).mlflow.experiment
    if uri.startswith("databricks"):
        print(f"The runs are in Databricks ({uri}): open the experiment {experiment!r} in its workspace.")
        return 0
    if uri.startswith(REMOTE):
        url = f"{uri.rstrip('/')}/{_page(uri, experiment)}"
        print(f"The runs are on the tracking server {tracking.redact_url(uri)}; nothing to start. Open:\n  {url}")
        _open(url, browser)
        return 0
    page = _page(uri, experiment)
    _check_free(host, port)
    with graceful_signals():
        running = _start(uri, host, port)
        try:
            _wait(running)
            url = f"{running.url}/{page}"
            print(f"MLflow UI on {uri}\n  {url}\n  (Ctrl-C stops it)", flush=True)
            _open(url, browser)
            code = running.process.wait()
            raise ServerError(f"mlflow server exited with code {code}:\n{running.log_tail()}")
        except (KeyboardInterrupt, Terminated) as e:
            print(f"stopped the MLflow UI ({'Ctrl-C' if isinstance(e, KeyboardInterrupt) else e})", file=sys.stderr)
            return 130 if isinstance(e, KeyboardInterrupt) else e.exit_code
        finally:
            running.stop()
            running.log_path.unlink(missing_ok=True)


def _page(uri: str, experiment: str) -> str:
    """The experiment's results view; MLflow's experiment list when the store has no such experiment
    yet (or a tracking server does not answer)."""
    exp = None
    if uri.startswith(REMOTE):  # ask once, briefly: MLflow's client would retry an unreachable server for minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            exp = tracking.use_store(uri).get_experiment_by_name(experiment)
        except Exception as e:  # noqa: BLE001  (any failure to reach it: the list is still a useful link)
            print(f"({tracking.redact_url(uri)} did not answer: {type(e).__name__}; linking its experiment list)")
    else:
        exp = tracking.use_store(uri).get_experiment_by_name(experiment)  # ConfigError when there is no store
    if exp is None:
        return "#/experiments?workflowType=machine_learning"
    return tracking.ui_page(exp.experiment_id)


def _check_free(host: str, port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}): another MLflow UI there? "
                              f"Open it, or pass --port N") from None


def _start(uri: str, host: str, port: int) -> launcher.RunningServer:
    fd, log = tempfile.mkstemp(prefix="hookbench-ui-", suffix=".log")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
           "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: nothing else to stop
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=launcher._die_with_parent(os.getpid()))
    finally:
        os.close(fd)
    reach = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # listening everywhere: linked on loopback
    return launcher.RunningServer(f"http://{reach}:{port}", proc, Path(log))


def _wait(running: launcher.RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise ServerError(f"mlflow server exited with code {running.process.returncode}:\n{running.log_tail()}")
        try:
            if requests.get(f"{running.url}/health", timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise ServerError(f"mlflow server did not answer on {running.url} within {START_TIMEOUT_S} s:\n{running.log_tail()}")


def _open(url: str, browser: bool) -> None:
    if browser and not webbrowser.open(url):
        print("(no browser found here: open the link above)")
