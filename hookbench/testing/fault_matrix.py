"""The fault matrix (benchmarks/fault_matrix.py runs every cell, tests/test_fault_matrix.py the CI cells):
one fault injected at one phase of a real `python -m hookbench` against the stock stand-in, each cell asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hookbench.base import mlflow_keys
from hookbench.testing.mlflow_store import runs
from hookbench.testing.repo import REPO

N = 4
GEN = "POST /api/generate"
PHASES = {  # the request whose answer marks the phase (stock server: one generate request per query)
    "clean": ("POST /api/restore", 1), "probe": ("POST /api/loss", 1), "baseline": (GEN, 2),
    "apply": ("POST /api/hooks", 1), "patched": (GEN, N + 2), "restore": ("POST /api/restore", 2)}
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGHUP": (signal.SIGHUP, 129),
           "kill-9": (signal.SIGKILL, -9)}
NO_RUN = "no run"  # kill -9 before the job's store and run existed (the store is made beside the server's set-up)
SERVER_FAULTS = ("5xx", "error-text", "server-dies")  # in the generating phases only
CI_CELLS = [("patched", "SIGINT"), ("baseline", "SIGTERM"), ("patched", "5xx"), ("baseline", "server-dies")]


def all_cells() -> list[tuple[str, str]]:
    return ([(p, f) for p in PHASES for f in SIGNALS]
            + [(p, f) for p in ("baseline", "patched") for f in SERVER_FAULTS])


@dataclass
class Cell:
    phase: str
    fault: str
    exit_code: int
    status: str
    reason: str
    restored: bool
    rerun_exit: int
    regenerated: int
    kept: int
    ok: bool
    problem: str = ""


def probe_losses(server) -> list:
    from hookbench.evaluation.scope import PROBES
    from hookbench.hookapi.client import HookClient
    return HookClient(server.url).losses(PROBES, answer_prefix="")


def _command(server, work: Path) -> tuple[list[str], dict]:
    (work / "p.json").write_text(json.dumps([{"tensor_name": "model.layers.1.mlp.up_proj.weight",
                                              "operation": "scale", "value": 1.5, "target": "all"}]))
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PYTHONPATH": str(REPO),
           "QWEN72B_URL": server.url, "HOOKBENCH_CACHE": str(work / "cache")}
    return [sys.executable, "-m", "hookbench", "model=qwen72b", "model.generation.batch_size=4", "patch=file",
            f"patch.path={work / 'p.json'}", f"dataset.n={N}", "model.server.retries=0", "guards=[]"], env


def _arm(server, phase: str, fault: str, pid_box: list) -> None:
    route, nth = PHASES[phase]
    if fault in SIGNALS:
        nth += server.request_log.count(route)  # the server counts requests over its whole life

        def after(r, n):
            if (r, n) == (route, nth) and pid_box:
                os.kill(pid_box[0], SIGNALS[fault][0])
        server.after_request = after
        return
    call = server.generate_calls + (nth if route == GEN else 1)
    if fault == "5xx":
        server.http_error_calls = {call: 503}
    elif fault == "error-text":
        server.fail_calls = {call}
    else:
        server.down_after_call = call


def _expected_exit(phase: str, fault: str) -> set[int]:
    if fault in SIGNALS:
        return {SIGNALS[fault][1]}
    return {0} if fault in ("5xx", "error-text") else {4}


def run_cell(server, phase: str, fault: str) -> Cell:
    """One cell on a fresh store; the server is put back (up, knobs off) before the rerun."""
    work = Path(tempfile.mkdtemp(prefix=f"fault-{phase}-{fault}-", dir=os.environ.get("FAULT_MATRIX_DIR")))
    cmd, env = _command(server, work)
    before = probe_losses(server)
    pid_box: list[int] = []
    _arm(server, phase, fault, pid_box)
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pid_box.append(proc.pid)
    _, err = proc.communicate(timeout=600)
    server.after_request, server.http_error_calls, server.fail_calls, server.down_after_call = None, {}, set(), None
    if fault == "server-dies":
        server.down()
        server.up()
    made = runs(work)  # none: the job was killed (kill -9) before its store and run were made
    status = made[0].info.status if made else NO_RUN
    rerun = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    restored = probe_losses(server) == before and server.is_clean()
    all_runs = runs(work)
    first_after, last = (all_runs[0] if made else None), all_runs[-1]
    m = last.data.metrics
    kept = int(m.get(mlflow_keys.reused("baseline"), 0) + m.get(mlflow_keys.reused("patched"), 0))
    regenerated = int(m.get(mlflow_keys.GENERATIONS, -1))
    error = (first_after.data.tags.get(mlflow_keys.TAG_ERROR) or "") if first_after else ""
    after = first_after.info.status if first_after else NO_RUN
    cell = Cell(phase, fault, proc.returncode, after if fault == "kill-9" else status,
                error.splitlines()[0][:70] if error else "", restored, rerun.returncode, regenerated, kept, True)
    cell.problem = _problems(cell, phase, fault, status, err, rerun.stderr, len(all_runs))
    cell.ok = not cell.problem
    return cell


def _problems(c: Cell, phase: str, fault: str, status_at_exit: str, err: str, rerun_err: str, n_runs: int) -> str:
    out = []
    if c.exit_code not in _expected_exit(phase, fault):
        out.append(f"exit {c.exit_code} not {_expected_exit(phase, fault)}: {err[-300:]}")
    want = "FINISHED" if fault in ("5xx", "error-text") else ("KILLED" if fault in SIGNALS else "FAILED")
    if fault == "kill-9" and status_at_exit == NO_RUN:  # killed before the store was made: nothing left RUNNING
        if n_runs != 1:
            out.append(f"no run at kill -9, then {n_runs} runs after the rerun")
    else:
        if c.status != want:
            out.append(f"run {c.status}, not {want}")
        if fault == "kill-9" and status_at_exit != "RUNNING":
            out.append(f"right after kill -9 the run was {status_at_exit}")
        if want != "FINISHED" and not c.reason:
            out.append("no reason recorded")
    if fault == "server-dies" and not c.reason.startswith("ServerError: "):  # the server, not the patch, at fault
        out.append(f"reason {c.reason!r} does not blame the server")
    if not c.restored:
        out.append("server not exactly restored")
    if c.rerun_exit != 0:
        out.append(f"rerun exit {c.rerun_exit}: {rerun_err[-300:]}")
    if c.regenerated + c.kept != 2 * N:
        out.append(f"rerun generated {c.regenerated} + kept {c.kept} != {2 * N}")
    return "; ".join(out)


def print_table(cells: list[Cell]) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"fault matrix (stock stand-in, tiny model, {N} items)")
    for col in ("phase", "fault", "exit", "run", "reason", "restored", "rerun exit", "kept", "regenerated", "ok"):
        t.add_column(col)
    for c in cells:
        t.add_row(c.phase, c.fault, str(c.exit_code), c.status, c.reason, "yes" if c.restored else "NO",
                  str(c.rerun_exit), str(c.kept), str(c.regenerated), "ok" if c.ok else f"FAIL: {c.problem}")
    Console(width=200).print(t)
