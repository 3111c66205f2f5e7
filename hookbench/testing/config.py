"""The shipped config as a job sees it: composed by Hydra over its schema (not the bare YAML)."""

from __future__ import annotations

from dataclasses import replace

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

import hookbench.evaluation.config_schema  # noqa: F401  (registers the config schema before anything composes)
from hookbench.evaluation.parts import settings_from
from hookbench.evaluation.settings import GenerationSettings, ModelInfo, Settings
from hookbench.testing.repo import CONF


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # so ${hydra:runtime.cwd} resolves, as in a real run
        return cfg


def option_cfg(group: str, option: str, *overrides: str):
    """One config group option as a job sees it."""
    return compose_cfg([f"{group}={option}", *overrides])[group]


def shipped_settings(model: str = "tiny") -> Settings:
    """A job's settings as the shipped config and its schema give them (no Hydra run is started)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return settings_from(compose("config", overrides=[f"model={model}"]))


def tiny_settings(preset: str = "benchmark", batch_size: int = 4, samples: int = 1, seed: int | None = None,
                  max_new_tokens: int | None = None, chat: bool | None = None, **fields) -> Settings:
    """Settings for an in-process job on the tiny model: the shipped defaults, with the generation a test
    chooses (by default the server decides length and prompting) and any other `fields` replaced."""
    base = shipped_settings("tiny")
    generation = GenerationSettings(preset=preset, batch_size=batch_size, seed=seed, max_new_tokens=max_new_tokens,
                                    chat=chat, template="{prompt}", samples=samples)
    return replace(base, model=ModelInfo("tiny", "hookbench/tiny", "seed0", "weights"), generation=generation, **fields)
