"""`python -m hookbench`: compose model, dataset, patch and scorer, evaluate, log to MLflow.

Exit codes: 0 done; the error's own code for a user mistake (2 config, 3 data, 4 server, 5 patch,
6 reproduction, 7 nothing measured); 130 Ctrl-C; 143 SIGTERM, 129 SIGHUP. In a sweep a failed job
is a FAILED child run and the sweep goes on; the sweep's exit code says whether any failed.
"""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hookbench.errors import HookbenchError
from hookbench.signals import Terminated

log = logging.getLogger("hookbench")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    from hookbench.job import run_job  # here, not at import: `--help` needs no mlflow, torch or statsmodels

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return run_job(cfg).as_dict()
    except HookbenchError as e:
        log.error("error: %s", e)
        if multirun:  # the sweep goes on; its callback reports this job as FAILED
            return {"status": "FAILED", "error": str(e)}
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted; the server was restored and the run marked KILLED")
        sys.exit(130)
    except Terminated as e:
        log.error("%s; the server was restored and the run marked KILLED", e)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
