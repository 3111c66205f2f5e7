"""`python -m hookbench.confirm SWEEP_RUN_ID`: the command stays here; the study is `hookbench.studies.confirm`."""

import sys

from hookbench.studies.confirm import main

if __name__ == "__main__":
    sys.exit(main())
