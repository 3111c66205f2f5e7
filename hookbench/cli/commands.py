"""The argument-parsing subcommands of `hookbench`: reproduce, confirm, plan, compare, server, ui.

Each parses its arguments here and imports the module that does the work only then, so that
`hookbench COMMAND --help` and a mistyped argument cost no MLflow, torch, pandas or statsmodels import.
(The job and `study` take Hydra overrides instead: hookbench.cli.dispatch.)
"""

from __future__ import annotations

import argparse

from hookbench.base.errors import ConfigError
from hookbench.cli.exits import run_command

STORE_HELP = "the store holding the run (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db, where hookbench logs)"


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"hookbench {name}", description=description)


def _store(uri: str | None) -> str:
    from hookbench import tracking

    return uri or tracking.default_tracking_uri()


def reproduce(argv: list[str]) -> int:
    parser = _parser("reproduce", "Rerun a logged run from what it logged (its resolved config and frozen patch), "
                                  "and say whether it agrees. Exit 0 reproduces, 6 does not, 8 inconclusive, "
                                  "7 nothing to compare.")
    parser.add_argument("run_id", help="the MLflow run to rerun (the id hookbench printed: MLflow run <ID>)")
    parser.add_argument("--tracking-uri", default=None, help=STORE_HELP)
    parser.add_argument("--margin", type=float, default=None, dest="equivalence_margin", metavar="MARGIN",
                        help="equivalence margin for sampled runs, in accuracy units (default: reproduce.margin, "
                             "else the logged stats.target_effect, 0.03)")
    args = parser.parse_args(argv)

    def body() -> int:
        from hookbench.studies.reproduce import reproduce as rerun

        return rerun(args.run_id, _store(args.tracking_uri), args.equivalence_margin)
    return run_command(body)


def confirm(argv: list[str]) -> int:
    parser = _parser("confirm", "Confirm a sweep's best patch sets on held-out items: rerun each model's best "
                                "child of a sweep on dataset.split=dev on dataset.split=test. Exit 0 when every "
                                "pick improves on test, 1 when not.")
    parser.add_argument("sweep_run_id", help="the parent run id a sweep printed (sweep parent run ...)")
    parser.add_argument("--top", type=int, default=1, help="confirm the N best patch sets per model (default 1)")
    parser.add_argument("--tracking-uri", default=None,
                        help="the store (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")

    def body() -> int:
        from hookbench.studies.confirm import confirm as run_confirm

        return run_confirm(args.sweep_run_id, _store(args.tracking_uri), args.top)
    return run_command(body)


def plan(argv: list[str]) -> int:
    parser = _parser("plan", "Size a study from a pilot run: the items a change of --effect needs at 80% power, "
                             "the generations a K-patch sweep costs and its wall time at the pilot's latency.")
    parser.add_argument("run_id", help="a finished pilot run (its items.jsonl and latency metrics are read)")
    parser.add_argument("--effect", type=float, default=None,
                        help="the change in accuracy to detect, e.g. 0.03 (default: the run's stats.target_effect)")
    parser.add_argument("--patches", type=int, default=1, help="patch sets the study sweeps over, K (default: 1)")
    parser.add_argument("--margin", type=float, default=None, dest="equivalence_margin", metavar="MARGIN",
                        help="reproduction margin for the rerun sizing (default: the run's reproduce.margin, "
                             "else its stats.target_effect)")
    parser.add_argument("--tracking-uri", default=None, help=STORE_HELP)
    args = parser.parse_args(argv)

    def body() -> int:
        if (args.effect is not None and not 0 < args.effect <= 1) or args.patches < 1:
            raise ConfigError(f"--effect must be in (0, 1] and --patches at least 1, got {args.effect}, {args.patches}")
        if args.equivalence_margin is not None and not 0 < args.equivalence_margin < 1:
            raise ConfigError(f"--margin must lie in (0, 1), got {args.equivalence_margin}")
        from hookbench.studies.plan import pilot_plan

        return pilot_plan(args.run_id, _store(args.tracking_uri), args.effect, args.patches, args.equivalence_margin)
    return run_command(body)


def compare(argv: list[str]) -> int:
    parser = _parser("compare", "Paired verdict of B against A, two evaluation logs of the same items: lm-eval "
                                "--log_samples output (a folder or samples_*.jsonl files joined by commas), a "
                                "hookbench run id or items.jsonl (RUN#baseline for that arm; default patched), an "
                                "inspect_ai log (extra 'inspect'). Exit 3 when the logs do not pair.")
    parser.add_argument("a", help="the baseline log")
    parser.add_argument("b", help="the log compared with it: every delta is B − A")
    parser.add_argument("--guard", action="append", default=[], metavar="TASK[:MARGIN]",
                        help="judge TASK by non-inferiority at MARGIN (default 0.05), as a job's guard; repeatable")
    parser.add_argument("--correction", default="holm", help="across the compared metrics: holm (default), bh, none")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default 0.05)")
    parser.add_argument("--intersect", action="store_true", help="compare the items in both logs, saying what is left out")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    parser.add_argument("--tracking-uri", default=None, help=STORE_HELP)
    parser.add_argument("--experiment", default="hookbench", help="the MLflow experiment (default: hookbench)")
    parser.add_argument("--no-record", action="store_true", help="log no MLflow run")
    args = parser.parse_args(argv)

    def body() -> int:
        from hookbench.compare.command import CompareArgs, run_compare

        return run_compare(CompareArgs(args.a, args.b, args.guard, args.correction, args.alpha, args.intersect,
                                       args.json, args.tracking_uri, args.experiment, not args.no_record))
    return run_command(body)


def server(argv: list[str]) -> int:
    from hookbench.server.__main__ import main as serve

    return serve(argv, prog="hookbench server")


def ui(argv: list[str]) -> int:
    parser = _parser("ui", "Start MLflow's UI on the store hookbench logs to, wait until it answers and open the "
                           "runs table with hookbench's columns (the link is printed too). For a tracking server "
                           "(MLFLOW_TRACKING_URI=http...) it prints the link instead. Ctrl-C stops it.")
    parser.add_argument("--tracking-uri", default=None,
                        help="the store (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    parser.add_argument("--experiment", default=None, help="the experiment to open (default: mlflow.experiment)")
    parser.add_argument("--host", default="127.0.0.1", help="the interface MLflow's UI listens on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="its port (default: 5000)")
    parser.add_argument("--no-browser", action="store_true", help="print the link only")
    args = parser.parse_args(argv)

    def body() -> int:
        from hookbench.cli import ui as mlflow_ui

        return mlflow_ui.show(_store(args.tracking_uri), args.experiment, args.host, args.port, not args.no_browser)
    return run_command(body)
