"""`python -m hookbench.reproduce`: the old spelling of `hookbench reproduce`, kept so existing scripts run (with a note)."""

import sys

from hookbench.__main__ import old_spelling

if __name__ == "__main__":
    sys.exit(old_spelling("reproduce"))
