"""What the command-line entry points share: one mapping of errors and signals to messages and exit codes.

`run_command` wraps reproduce and confirm; `hydra_command` wraps `python -m hookbench` so the same
mapping applies inside the Hydra job (where the job's log file gets the message) and around it,
where Hydra's own composition errors (a bad override, a value the schema refuses) exit 2 like
every other config error (Hydra alone would exit 1).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from hookbench.base.errors import HookbenchError
from hookbench.base.signals import Terminated

log = logging.getLogger("hookbench")
KILLED = "the server was restored and the run marked KILLED"


def user_message(e: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for what the user should see as a message; None for a bug."""
    if isinstance(e, HookbenchError):
        return f"error: {e}", e.exit_code
    if _is_mlflow_error(e):
        return f"error: {e.message}", 2  # type: ignore[attr-defined]
    if isinstance(e, (HydraException, OmegaConfBaseException)):  # a config Hydra could not compose
        cause = f"\n{e.__cause__}" if isinstance(e.__cause__, OmegaConfBaseException) else ""
        return f"config error: {e}{cause}", 2
    if isinstance(e, KeyboardInterrupt):
        return f"interrupted; {KILLED}", 130
    if isinstance(e, Terminated):
        return f"{e}; {KILLED}", e.exit_code
    return None


def _is_mlflow_error(e: BaseException) -> bool:
    """An MlflowException, without importing MLflow: one can only be raised once MLflow is loaded,
    and importing it costs seconds that help and config errors should not pay."""
    if "mlflow.exceptions" not in sys.modules:
        return False
    return isinstance(e, sys.modules["mlflow.exceptions"].MlflowException)


def _report(e: BaseException) -> int:
    found = user_message(e)
    if found is None:
        raise e
    if not logging.getLogger().handlers:  # before Hydra set up logging, or outside Hydra
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s",
                            datefmt="%H:%M:%S", stream=sys.stderr)
    log.error("%s", found[0])
    return found[1]


def run_command(fn: Callable[[], int | None]) -> int:
    """Run a command body; a user mistake, Ctrl-C or SIGTERM/SIGHUP becomes a message and an exit code."""
    try:
        return fn() or 0
    except (Exception, KeyboardInterrupt, Terminated) as e:
        return _report(e)


def in_job(fn: Callable[[], dict]) -> dict:
    """Inside a Hydra job: a mapped error is logged (to the job's log too) and exits with its code."""
    try:
        return fn()
    except (Exception, KeyboardInterrupt, Terminated) as e:
        sys.exit(_report(e))


def hydra_command(main: Callable[[], int | None]) -> int:
    """Run a `@hydra.main` function; Hydra's composition errors reach `user_message` instead of Hydra's
    own report (which exits 1). HYDRA_FULL_ERROR, when the user sets it, keeps Hydra's traceback."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        return main() or 0
    os.environ["HYDRA_FULL_ERROR"] = "1"  # hydra.main re-raises instead of printing and exiting 1
    try:
        return run_command(main)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
