"""The search space of a patch study: which edits Optuna may propose, read and checked from `search.space`.

Every proposal becomes an ordinary frozen, hashed PatchSet, so reuse, reports, reproduce and
confirm treat a searched candidate like any other patch file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from hookbench.base.errors import ConfigError, PatchError
from hookbench.evaluation.parts import plain
from hookbench.evaluation.patches import PatchSet, validate
from hookbench.hookapi.contract import ADD, SCALE

TENSOR = "model.layers.{layer}.{tensor}.weight"
OPS = (SCALE, ADD)


@dataclass(frozen=True)
class Choice:
    """A list of values (categorical) or an inclusive range (low, high). In YAML a range node may
    also hold `choices` (a list, which wins when set), so `search.space.layers.choices=[10,12]`
    overrides a default range from the command line (Hydra cannot replace a mapping by a list)."""

    values: tuple | None = None
    low: float | None = None
    high: float | None = None

    @property
    def size(self) -> float:
        return len(self.values) if self.values is not None else math.inf

    def suggest(self, trial, name: str, integer: bool = False):
        if self.values is not None:
            return trial.suggest_categorical(name, list(self.values))
        if integer:
            return trial.suggest_int(name, int(self.low), int(self.high))
        return trial.suggest_float(name, self.low, self.high)


def _choice(node, key: str, integer: bool = False) -> Choice:
    if OmegaConf.is_list(node) or isinstance(node, (list, tuple)):
        values = tuple(node)
        if not values:
            raise ConfigError(f"{key}: the list is empty")
        return Choice(values=values)
    if (OmegaConf.is_dict(node) or isinstance(node, dict)) and node.get("choices") is not None:
        return _choice(node.get("choices"), f"{key}.choices", integer)
    if OmegaConf.is_dict(node) or isinstance(node, dict):
        low, high = node.get("low"), node.get("high")
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high))
        if not ok or low > high or (integer and (low != int(low) or high != int(high))):
            raise ConfigError(f"{key}: a range needs numbers low <= high{' (integers)' if integer else ''}, "
                              f"got low={low!r} high={high!r}")
        if low == high:
            return Choice(values=(int(low) if integer else float(low),))
        return Choice(low=low, high=high)
    raise ConfigError(f"{key}: give a list of values, {{choices: [..]}} or a range {{low: .., high: ..}}, got {node!r}")


@dataclass(frozen=True)
class SearchSpace:
    layers: Choice
    tensors: Choice
    ops: Choice
    values: dict[str, Choice]
    targets: Choice
    edits: int
    apply_mode: str = "weights"

    @classmethod
    def from_config(cls, space: DictConfig, apply_mode: str) -> SearchSpace:
        """Every mistake named by its key, before any server is asked anything."""
        ops = _choice(space.ops, "search.space.ops")
        bad = [o for o in ops.values if o not in OPS]
        if bad:
            raise ConfigError(f"search.space.ops: {bad} not searchable; use {', '.join(OPS)}")
        values = {op: _choice(space["values"].get(op), f"search.space.values.{op}") for op in ops.values}
        edits = space.edits
        if isinstance(edits, bool) or not isinstance(edits, int) or edits < 1:
            raise ConfigError(f"search.space.edits must be a positive integer, got {edits!r}")
        out = cls(_choice(space.layers, "search.space.layers", integer=True), _choice(space.tensors, "search.space.tensors"),
                  ops, values, _choice(space.targets, "search.space.targets"), edits, apply_mode)
        out._check_sample(apply_mode)
        return out

    def _check_sample(self, apply_mode: str) -> None:
        """One edit of each kind through the patch validation: a bad target or value fails now."""
        for target in self.targets.values:
            for op, v in self.values.items():
                value = v.values[0] if v.values is not None else v.low
                try:
                    validate([{"tensor_name": "t", "operation": op, "value": value, "target": target}],
                             "search.space", apply_mode)
                except PatchError as e:
                    raise ConfigError(str(e)) from None

    @property
    def size(self) -> float:
        """How many distinct patch sets the space holds (inf with a continuous range)."""
        one = self.layers.size * self.tensors.size * self.targets.size * sum(v.size for v in self.values.values())
        return one ** self.edits

    def suggest(self, trial, name: str, number: int) -> PatchSet:
        """The trial's patch set: `edits` edits, each with its own layer, tensor, op, value and target."""
        edits = []
        for i in range(self.edits):
            layer = self.layers.suggest(trial, f"e{i}.layer", integer=True)
            tensor = self.tensors.suggest(trial, f"e{i}.tensor")
            op = self.ops.suggest(trial, f"e{i}.op")
            value = self.values[op].suggest(trial, f"e{i}.value.{op}")
            target = self.targets.suggest(trial, f"e{i}.target")
            edits.append({"tensor_name": TENSOR.format(layer=layer, tensor=tensor), "operation": op,
                          "value": float(value), "target": target})
        return PatchSet(name, validate(edits, f"trial {number}", self.apply_mode), f"search:{name}",
                        {"trial": number, "params": dict(trial.params)})


def study_name(cfg: DictConfig) -> str:
    """The resume key: the same search on the same model, server and dataset is the same study."""
    if cfg.search.get("name"):
        return str(cfg.search.name)
    keyed = {k: plain(cfg.search).get(k) for k in ("space", "items", "seed", "sampler", "objective", "rungs", "eta", "keep")}
    keyed |= {"model": cfg.model.name, "url": cfg.model.server.get("url"),
              "dataset": plain(cfg.dataset)}
    return f"{cfg.model.name}-{hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:10]}"
