"""`python -m hookbench`: compose model, dataset, patch and scorer, evaluate, log to MLflow.

Exit codes: 0 done; the error's own code for a user mistake (2 config, Hydra's composition errors
included, 3 data, 4 server, 5 patch, 6 reproduction, 7 nothing measured); 130 Ctrl-C; 143 SIGTERM,
129 SIGHUP (hookbench.entry). In a sweep a failed job is a FAILED child run and the sweep goes on;
the sweep's exit code says whether any failed.
"""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import hookbench.evaluation.schema  # noqa: F401  (registers the config schema before Hydra composes)
from hookbench.entry import hydra_command, in_job
from hookbench.errors import HookbenchError

log = logging.getLogger("hookbench")


def _job(cfg: DictConfig) -> dict:
    from hookbench.job import run_job  # here, not at import: `--help` needs no mlflow, torch or statsmodels

    try:
        return run_job(cfg).as_dict()
    except HookbenchError as e:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        log.error("error: %s", e)  # the sweep goes on; its callback reports this job as FAILED
        return {"status": "FAILED", "error": str(e)}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return in_job(lambda: _job(cfg))


if __name__ == "__main__":
    sys.exit(hydra_command(main))
