"""The `compare` command's work, in the order that loses nothing: every input checked (arguments,
both logs, their pairing) before an MLflow run is created; then the record, then stdout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError
from hookbench.compare.logs import read_log
from hookbench.compare.mlflow_record import PARAM_A, PARAM_B, PARAM_CORRECTION, log_comparison
from hookbench.compare.pairing import pair_logs
from hookbench.compare.tables import as_json, console_text, markdown
from hookbench.compare.verdicts import judge, parse_guards
from hookbench.stats import CORRECTIONS


@dataclass(frozen=True)
class CompareArgs:
    a: str
    b: str
    guards: list[str]
    correction: str = "holm"
    alpha: float = 0.05
    intersect: bool = False
    as_json: bool = False
    tracking_uri: str | None = None
    experiment: str = "hookbench"
    record: bool = True


def _short(source: str) -> str:
    parts = Path(source.split("#")[0].split(",")[0]).parts
    text = "/".join(parts[-2:]) if parts else source
    return text if len(text) <= 60 else "…" + text[-59:]


def run_compare(args: CompareArgs) -> int:
    if args.correction not in CORRECTIONS:
        raise ConfigError(f"--correction {args.correction!r} is not one of {', '.join(CORRECTIONS)}")
    if not 0 < args.alpha < 0.5:
        raise ConfigError(f"--alpha must lie in (0, 0.5), got {args.alpha}")
    guards = parse_guards(args.guards)
    a, b = read_log(args.a, args.tracking_uri), read_log(args.b, args.tracking_uri)
    pairing = pair_logs(a, b, args.intersect)
    rows = judge(pairing.pairs, args.alpha, args.correction, guards)
    text = markdown(a, b, pairing, rows, args.alpha, args.correction)
    report = as_json(a, b, pairing, rows, args.alpha, args.correction)
    run_id = None
    if args.record:
        from hookbench.tracking import default_tracking_uri

        params = {PARAM_A: a.source, PARAM_B: b.source, PARAM_CORRECTION: args.correction,
                  mlflow_keys.STATS_ALPHA: str(args.alpha)}
        run_id = log_comparison(args.tracking_uri or default_tracking_uri(), args.experiment,
                                f"compare · {_short(b.source)} vs {_short(a.source)}", rows, params, text, report)
    if args.as_json:
        print(json.dumps({**report, "mlflow_run": run_id}, indent=2, ensure_ascii=False))
    else:
        print(console_text(a, b, pairing, rows, args.alpha, args.correction), end="")
        if run_id is not None:
            print(f"MLflow run {run_id} (report.md, report.html, {len(rows)} child runs)")
    return 0
