"""The fault matrix: phases x faults against the stock-server stand-in, each cell asserted, printed as a table.

Each cell runs `python -m hookbench` as a user does (the shipped qwen72b config, a patch file, N items)
against `tests.stock_server.StockServer` on the tiny model in this process (the model does not matter
here), injects one fault when the request that marks the phase has been answered, and checks: the exit
code, the run's status (KILLED / FAILED with the reason, never RUNNING; after kill -9 RUNNING until the
next run closes it KILLED), the server's probe losses exactly as before, and that the same command
then finishes, generating only the answers that were not kept. CI runs `CI_CELLS`
(tests/test_fault_matrix.py); this script runs every cell:

    PYTHONPATH=. python benchmarks/fault_matrix.py [--cells phase:fault ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import runs  # noqa: E402

N = 4
GEN = "POST /api/generate"
PHASES = {  # the request whose answer marks the phase (stock server: one generate request per query)
    "clean": ("POST /api/restore", 1), "probe": ("POST /api/loss", 1), "baseline": (GEN, 2),
    "apply": ("POST /api/hooks", 1), "patched": (GEN, N + 2), "restore": ("POST /api/restore", 2)}
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143), "SIGHUP": (signal.SIGHUP, 129),
           "kill-9": (signal.SIGKILL, -9)}
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
            f"patch.path={work / 'p.json'}", f"dataset.n={N}", "model.server.retries=0"], env


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
    first = runs(work)[0]
    status = first.info.status
    rerun = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    restored = probe_losses(server) == before and server.is_clean()
    all_runs = runs(work)
    first_after, last = all_runs[0], all_runs[-1]
    m = last.data.metrics
    kept = int(m.get("n/reused_baseline", 0) + m.get("n/reused_patched", 0))
    regenerated = int(m.get("requests/generations", -1))
    cell = Cell(phase, fault, proc.returncode, first_after.info.status if fault == "kill-9" else status,
                (first_after.data.tags.get("error") or "").splitlines()[0][:70] if first_after.data.tags.get("error")
                else "", restored, rerun.returncode, regenerated, kept, True)
    cell.problem = _problems(cell, phase, fault, status, err, rerun.stderr)
    cell.ok = not cell.problem
    return cell


def _problems(c: Cell, phase: str, fault: str, status_at_exit: str, err: str, rerun_err: str) -> str:
    out = []
    if c.exit_code not in _expected_exit(phase, fault):
        out.append(f"exit {c.exit_code} not {_expected_exit(phase, fault)}: {err[-300:]}")
    want = "FINISHED" if fault in ("5xx", "error-text") else ("KILLED" if fault in SIGNALS else "FAILED")
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="*", help="phase:fault ... (default: every cell)")
    args = ap.parse_args()
    cells = [tuple(c.split(":")) for c in args.cells] if args.cells else all_cells()
    from tests.stock_server import StockServer
    t0 = time.perf_counter()
    with StockServer("tiny") as server:
        results = [run_cell(server, p, f) for p, f in cells]
    print_table(results)
    print(f"{sum(c.ok for c in results)} of {len(results)} cells as asserted in {time.perf_counter() - t0:.0f} s")
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
