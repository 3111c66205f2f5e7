"""`hookbench check`'s answer: a table for people (rich) or one JSON object for scripts (`--json`)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "n/a" if value is None else str(value)


def _wall(cost: dict) -> str:
    if not cost:
        return "n/a (no loss endpoint: timed by a first job)"
    return (f"{cost['wall_s']:.0f} s ({cost['wall_s'] / 3600:.2f} h): {cost['generations']:.0f} generations, "
            f"{cost['loss_requests']:.0f} loss requests")


def _guards(job: dict) -> str:
    if not job:
        return "n/a"
    if not job.get("guards"):
        return "none (guards=[])"
    return (f"{job['guards']}: {job['guard_generations']:.0f} of the generations, "
            f"{job['guard_wall_s']:.0f} s of the wall time")


def rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, found) in the order a user reads them."""
    lat = d["latency"]
    out = [("server", d["url"]), ("token", d["token"])]
    out += [(endpoint, status) for endpoint, status in d["endpoints"].items()]
    out += [("apply modes", _fmt(d["apply_modes"])), ("extensions (batching, digests, seed, ...)", _fmt(d["extensions"])),
            ("presets", _fmt(d["presets"])),
            ("bare question answered", f"{'EMPTY' if d['bare_answer_empty'] else 'yes'}: {d['bare_answer']!r}"),
            ("probe loss deterministic", _fmt(d["loss_deterministic"])),
            ("latency per answer", "n/a" if lat is None else f"{lat['generation_s']:.3f} s (a request of "
                                                             f"{lat['probe_answers']}, as jobs send them)"),
            ("latency per loss request", "n/a" if lat is None else f"{lat['loss_s'] * 1e3:.0f} ms"),
            ("default job here", _wall(d["default_job"])), ("its guards here", _guards(d["default_job"])),
            ("default study here", _wall(d["default_study"]) + (" (its confirmation run with the guards)"
                                                               if d["default_job"].get("guards") else "")),
            ("left as found", f"{_fmt(d['left_as_found'])}: no patch applied, probe loss "
                              f"{_fmt(d['probe_loss_before'])} before, {_fmt(d['probe_loss_after'])} after"),
            ("a model option would set", ", ".join(f"{k}={v!r}" for k, v in d["learned"].items()))]
    return out


def show(d: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(d, indent=2, default=str))
        return
    table = Table(title=f"hookbench check {d['url']}", show_lines=False)
    table.add_column("what")
    table.add_column("found", overflow="fold")
    for what, found in rows(d):
        table.add_row(what, found)
    console = Console()
    console.print(table)
    for note in d["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
