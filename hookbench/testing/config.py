"""The shipped config as a job sees it: composed by Hydra over its schema (not the bare YAML)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

import hookbench.evaluation.schema  # noqa: F401  (registers the config schema before anything composes)
from hookbench.testing.repo import CONF


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.cwd} resolves, as in a real run
        return cfg


def option_cfg(group: str, option: str, *overrides: str):
    """One config group option as a job sees it."""
    return compose_cfg([f"{group}={option}", *overrides])[group]
