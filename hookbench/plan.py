"""`python -m hookbench.plan RUN_ID --effect 0.03`: the command stays here; the study is `hookbench.studies.plan`."""

import sys

from hookbench.studies.plan import main

if __name__ == "__main__":
    sys.exit(main())
