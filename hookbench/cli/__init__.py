"""The command line: `main(argv)` dispatches to a job, a sweep or a command (see dispatch).

dispatch: the program and its command table; commands: the argument-parsing commands; exits: errors
and signals to messages and exit codes; callbacks: Hydra's sweep callback, loaded lightly; ui: `hookbench ui`.
"""

from hookbench.cli.dispatch import COMMANDS, main

__all__ = ["COMMANDS", "main"]
