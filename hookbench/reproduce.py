"""`python -m hookbench.reproduce RUN_ID`: the command stays here; the study is `hookbench.studies.reproduce`."""

import sys

from hookbench.studies.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
