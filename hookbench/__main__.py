"""`python -m hookbench`: the command line (hookbench.cli)."""

import sys

from hookbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
