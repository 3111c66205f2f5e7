"""`python -m hookbench.study [overrides]`: the command stays here; the study is `hookbench.studies.study`.

Same config as `python -m hookbench` (conf/study.yaml = config.yaml + the `search` group), e.g.
`python -m hookbench.study search.trials=40 search.space.layers.choices='[10,12,14]' dataset.n=200`.
"""

import sys

import hydra
from omegaconf import DictConfig

import hookbench.evaluation.schema  # noqa: F401  (registers the config schema before Hydra composes)
from hookbench.entry import hydra_command, run_command


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    from hookbench.studies.study import run_study  # here: `--help` needs no mlflow or optuna

    sys.exit(run_command(lambda: run_study(cfg)))


if __name__ == "__main__":
    sys.exit(hydra_command(main))
