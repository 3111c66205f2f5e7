"""Hydra's callbacks for `python -m hookbench`, loaded lightly: Hydra makes them for every run, and
MLflow (with pandas, statsmodels and matplotlib behind hookbench.tracking) would otherwise be
imported before a single job's first request. The sweep callback is loaded when a sweep starts."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class LazySweepCallback(Callback):
    """Stands in for hookbench.tracking.sweep.MlflowSweepCallback until a multirun starts, then makes it."""

    def __init__(self) -> None:
        self._sweep: Any = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hookbench.tracking.sweep import MlflowSweepCallback as Sweep

        self._sweep = Sweep()
        self._sweep.on_multirun_start(config, **kwargs)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._sweep is not None:
            self._sweep.on_multirun_end(config, **kwargs)
