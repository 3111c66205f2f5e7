"""What the command-line entry points share: logging to stderr, and one mapping of outcomes to exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from mlflow.exceptions import MlflowException

from hookbench.errors import HookbenchError
from hookbench.signals import Terminated


def run_command(fn: Callable[[], int]) -> int:
    """Run a command body; a user mistake, Ctrl-C or SIGTERM/SIGHUP becomes a message and an exit code."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    try:
        return fn()
    except HookbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except MlflowException as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the server was restored and the run marked KILLED", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"{e}; the server was restored and the run marked KILLED", file=sys.stderr)
        return e.exit_code
