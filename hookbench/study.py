"""`python -m hookbench.study`: the old spelling of `hookbench study`, kept so existing scripts run (with a note)."""

import sys

from hookbench.__main__ import old_spelling

if __name__ == "__main__":
    sys.exit(old_spelling("study"))
