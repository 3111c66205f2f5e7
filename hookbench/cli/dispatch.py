"""The dispatcher of `hookbench` (the console script) and `python -m hookbench`: one program, `main(argv)`.

`hookbench [-m] [group=option ...] [key=value ...]` runs one job (with -m a sweep) from Hydra
overrides; `hookbench COMMAND ...`, when the first word names a command, runs that command instead.
Each imports what it needs only once it runs: help imports no MLflow, torch, pandas or statsmodels.

Exit codes: 0 done; the error's own code for a user mistake (2 config, Hydra's composition errors
included, 3 data, 4 server, 5 patch, 6 reproduction, 7 nothing measured); 130 Ctrl-C; 143 SIGTERM,
129 SIGHUP (hookbench.cli.exits). In a sweep a failed job is a FAILED child run and the sweep goes on;
the sweep's exit code says whether any failed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import hookbench.evaluation.config_schema  # noqa: F401  (registers the config schema before Hydra composes)
from hookbench.base.errors import HookbenchError
from hookbench.cli import commands
from hookbench.cli.exits import hydra_command, in_job, run_command

log = logging.getLogger("hookbench")
PROG = "hookbench"
# conf/ by absolute path: run as `python -m hookbench` Hydra would find it beside this file, but
# imported by the console script it would look for a package hookbench.conf (conf/ is package data)
CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _job(cfg: DictConfig) -> dict:
    from hookbench.job import run_job  # here, not at import: `--help` needs no mlflow, torch or statsmodels

    try:
        return run_job(cfg).as_dict()
    except HookbenchError as e:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        log.error("error: %s", e)  # the sweep goes on; its callback reports this job as FAILED
        return {"status": "FAILED", "error": str(e)}


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def job(cfg: DictConfig) -> dict:
    return in_job(lambda: _job(cfg))


@hydra.main(version_base="1.3", config_path=CONF, config_name="study")
def study(cfg: DictConfig) -> None:
    from hookbench.studies.study import run_study  # here: `--help` needs no mlflow or optuna

    sys.exit(run_command(lambda: run_study(cfg)))


def _hydra(app: Callable[[], int | None], argv: list[str]) -> int:
    """A Hydra app on `argv` (Hydra reads sys.argv), in this process."""
    saved = sys.argv
    sys.argv = [PROG, *argv]
    try:
        return hydra_command(app)
    finally:
        sys.argv = saved


# The commands, in the order `hookbench --help` lists them: name -> (what it does, how it runs)
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "study": ("search edits by loss, keep the best, confirm on test (Hydra overrides)",
              lambda argv: _hydra(study, argv)),
    "reproduce": ("rerun a logged run from what it logged; say whether it agrees", commands.reproduce),
    "confirm": ("rerun a dev sweep's best patch sets on the test split", commands.confirm),
    "plan": ("size a study from a pilot run: items, generations, wall time", commands.plan),
    "compare": ("paired verdict of two evaluation logs (lm-eval, hookbench, inspect)", commands.compare),
    "server": ("the reference hook server (--model, --port, --engine hf|vllm, ...)", commands.server),
    "ui": ("MLflow's UI on hookbench's store, opened at the results view", commands.ui),
}


def _listing() -> str:
    return "\n".join(f"  {PROG} {name:<10} {what}" for name, (what, _) in COMMANDS.items())


OmegaConf.register_new_resolver("hookbench_commands", _listing, replace=True)  # conf/hydra/help/hookbench.yaml


def _exit_code(e: SystemExit) -> int:
    if e.code is None or isinstance(e.code, int):
        return e.code or 0
    print(e.code, file=sys.stderr)  # sys.exit("message"), as argparse's callers may do
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line `argv` (default: sys.argv[1:]) run in this process; its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in COMMANDS:
            return COMMANDS[args[0]][1](args[1:])
        if args and re.fullmatch(r"[A-Za-z_][\w-]*", args[0]):  # a word, not an override (key=value, ~key)
            print(f"hookbench: unknown command {args[0]!r} (commands: {', '.join(COMMANDS)}; a job takes "
                  "key=value overrides; hookbench --help)", file=sys.stderr)
            return 2
        return _hydra(job, args)
    except SystemExit as e:  # Hydra's and argparse's own exits (help, usage errors), a job's mapped error
        return _exit_code(e)
