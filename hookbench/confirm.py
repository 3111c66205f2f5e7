"""`python -m hookbench.confirm`: the old spelling of `hookbench confirm`, kept so existing scripts run (with a note)."""

import sys

from hookbench.__main__ import old_spelling

if __name__ == "__main__":
    sys.exit(old_spelling("confirm"))
