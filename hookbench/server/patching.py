"""Apply suggestions as weight edits or activation hooks, validated up front, and restore bit-exactly.

The stock server skips bad suggestions silently and applies NaN values (contract §4).  Here a
request is validated as a whole first; any bad suggestion raises `PatchRejected` naming it, and
nothing of that request is applied.  Everything else keeps the contract's semantics: weight edits
are in place and compound, DELETE removes hooks only, restore puts the kept originals back.

Targets and ops are the stock rule of hook-api.md, in `targets` (shared with every engine).
Originals are kept as exact copies on their own device, so restore is bit-exact in any dtype and
wherever a device map put the tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hookbench.hookapi.contract import (
    APPLY_MODES,
    PATCHABLE_WEIGHT,
    Suggestion,
    SuggestionError,
)
from hookbench.hookapi.contract import MODE_HOOKS as HOOKS
from hookbench.hookapi.contract import MODE_WEIGHTS as WEIGHTS
from hookbench.server.targets import edited_activation, edited_weight


class PatchRejected(ValueError):
    """A suggestion that cannot be applied; the whole request is refused (HTTP 422)."""

    def __init__(self, index: int, suggestion: object, detail: str) -> None:
        super().__init__(detail)
        self.index, self.suggestion, self.detail = index, suggestion, detail


@dataclass(frozen=True)
class Edit:
    """One validated suggestion."""

    tensor_name: str
    operation: str
    value: float
    target: tuple[str, float]  # contract.parse_target: ("all", 100.0) | ("top", p) | ("bottom", p)


def hook_module_name(tensor_name: str) -> str:
    """model.layers.3.mlp.down_proj.weight -> model.layers.3.mlp; norm weights -> the norm module."""
    parts = tensor_name.split(".")[:-1]
    if len(parts) >= 2 and parts[-2] in ("self_attn", "mlp") and parts[-1].endswith("_proj"):
        parts = parts[:-1]
    return ".".join(parts)


class PatcherState:
    """An engine's patch state is its Patcher's (`self.patcher`), on every engine."""

    patcher: Patcher

    @property
    def active(self) -> bool:
        return self.patcher.active

    @property
    def hook_count(self) -> int:
        return self.patcher.hook_count


class Patcher:
    """All patch state of one model: kept originals, hooks, their stats and the `active` flag."""

    def __init__(self, model: torch.nn.Module, edit_weight: Callable = edited_weight):
        """edit_weight(w, op, value, target) -> the edited tensor (a stand-in may bring its own rule)."""
        self.model = model
        self.edit_weight = edit_weight
        self.params = dict(model.named_parameters())
        self.modules = dict(model.named_modules())
        self.originals: dict[str, torch.Tensor] = {}
        self.handles: list = []
        self.stats: dict[str, dict[str, int]] = {}
        self.active = False
        self.hook_count = 0
        self.hooks_enabled = True  # switched off while suggestions measure the unpatched model

    # -- validation ---------------------------------------------------------------------------
    def validate(self, suggestions: list, mode: str) -> list[Edit]:
        """Every suggestion checked before anything is applied; raises PatchRejected on the first bad one."""
        if mode not in APPLY_MODES:
            raise PatchRejected(-1, None, f"apply_mode {mode!r} unknown: use one of {', '.join(APPLY_MODES)}")
        return [self._validate_one(i, s, mode) for i, s in enumerate(suggestions)]

    def _validate_one(self, i: int, s: object, mode: str) -> Edit:
        def bad(msg: str) -> PatchRejected:
            return PatchRejected(i, s, f"suggestion {i}: {msg}")

        try:
            name, op, value, target = Suggestion.check(s, mode).edit
        except SuggestionError as e:
            raise bad(str(e)) from None
        if name not in self.params:
            raise bad(f"unknown tensor {name!r}")
        if mode == WEIGHTS and not PATCHABLE_WEIGHT.search(name):
            raise bad(f"tensor {name!r} is not patchable in weights mode (attention/MLP projections and norm weights only)")
        if mode == HOOKS and hook_module_name(name) not in self.modules:
            raise bad(f"tensor {name!r} has no module to hook")
        return Edit(name, op, value, target)

    # -- weights mode -------------------------------------------------------------------------
    @torch.no_grad()
    def apply_weights(self, edits: list[Edit]) -> list[str]:
        """In-place edits; the first edit of a tensor keeps a clone of its original for restore."""
        for e in edits:
            w = self.params[e.tensor_name]
            if e.tensor_name not in self.originals:
                self.originals[e.tensor_name] = w.detach().clone()
            w.copy_(self.edit_weight(w, e.operation, e.value, e.target))
        self._mark_applied(len(edits))
        return [e.tensor_name for e in edits]

    @torch.no_grad()
    def restore(self) -> int:
        """Put every edited tensor back bit-exactly and forget the originals."""
        n = len(self.originals)
        for name, orig in self.originals.items():
            self.params[name].copy_(orig)
        self.originals.clear()
        return n

    # -- hooks mode ---------------------------------------------------------------------------
    def apply_hooks(self, edits: list[Edit]) -> list[str]:
        """One forward hook per suggestion on the tensor's parent module, editing its output."""
        names = []
        for e in edits:
            mod_name = hook_module_name(e.tensor_name)
            self.stats.setdefault(mod_name, {"modifications": 0, "activated": 0})
            self.handles.append((mod_name, self.modules[mod_name].register_forward_hook(self._hook(mod_name, e))))
            names.append(mod_name)
        self._mark_applied(len(edits))
        return list(dict.fromkeys(names))

    def _hook(self, mod_name: str, e: Edit) -> Callable[[torch.nn.Module, tuple, torch.Tensor | tuple], torch.Tensor | tuple | None]:
        stats = self.stats[mod_name]

        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple | None:
            """activated counts calls; modifications counts calls whose output actually changed."""
            if not self.hooks_enabled:
                return None
            stats["activated"] += 1
            x = output[0] if isinstance(output, tuple) else output
            new = edited_activation(x, e.operation, e.value, e.target)
            if not torch.equal(new, x):
                stats["modifications"] += 1
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook

    def remove_hooks(self) -> None:
        """DELETE /api/hooks: hooks gone, flag off; weight edits stay (contract §1)."""
        for _, h in self.handles:
            h.remove()
        self.handles.clear()
        self.stats.clear()
        self.active = False
        self.hook_count = 0

    def _mark_applied(self, n: int) -> None:
        self.active = True
        self.hook_count += n

    def hook_stats(self) -> dict:
        """GET /api/hooks body; weight edits do not show here (contract §4)."""
        return {
            "active": self.active,
            "stats": {
                "total_hooks": len(self.handles),
                "total_modifications": sum(s["modifications"] for s in self.stats.values()),
                "modules": list(self.stats),
                "stats": {k: dict(v) for k, v in self.stats.items()},
            },
        }

    # -- measuring the unpatched model --------------------------------------------------------
    @torch.no_grad()
    def swap_originals(self) -> dict[str, torch.Tensor]:
        """Temporarily put originals back and disable hooks; returns the edited values for `unswap`."""
        edited = {n: self.params[n].detach().clone() for n in self.originals}
        for n, orig in self.originals.items():
            self.params[n].copy_(orig)
        self.hooks_enabled = False
        return edited

    @torch.no_grad()
    def unswap(self, edited: dict[str, torch.Tensor]) -> None:
        for n, val in edited.items():
            self.params[n].copy_(val)
        self.hooks_enabled = True
