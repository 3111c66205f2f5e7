"""`python -m hookbench`: compose model, dataset, patch and scorer, evaluate, log to MLflow."""

import hydra
from omegaconf import DictConfig

from hookbench.job import run_job


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    return run_job(cfg)


if __name__ == "__main__":
    main()
