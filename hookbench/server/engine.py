"""The seam between the HTTP app and what runs the model: the app calls only an `Engine`.

`HFEngine` is the transformers implementation (models.load + Patcher).  Another engine (vLLM)
implements the same methods; the engine-independent pieces it reuses are placement (dtype,
device choice), identity (cached weights hash), suggestion_cache and targets (the edited tensor
from an original one, so every engine makes the same edit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hookbench.server import digests, generation, placement, suggestions
from hookbench.server.patching import Edit, Patcher, PatcherState

if TYPE_CHECKING:
    from hookbench.server.models import LoadedModel


class Engine(Protocol):
    """What app.create_app needs.  Patch calls keep the contract's semantics (hook-api.md §1, §4)."""

    name: str  # the --model spec
    device: str  # 'cpu' | 'cuda' (the contract's /api/health field)
    num_layers: int

    @property
    def active(self) -> bool: ...
    @property
    def hook_count(self) -> int: ...
    def identity(self) -> dict: ...  # model, weights_sha256, dtype, device, device_map, devices
    def has_chat_template(self) -> bool: ...
    def generate(self, prompts: list[str], cfg: dict, chat: bool, seed: int | None,
                 max_new_tokens: int | None) -> list[str]: ...
    def losses(self, items: list[tuple[str, str]], answer_prefix: str, chat: bool) -> list[dict]: ...
    def validate(self, suggestions: list, mode: str) -> list[Edit]: ...  # raises PatchRejected
    def apply_weights(self, edits: list[Edit]) -> list[str]: ...
    def apply_hooks(self, edits: list[Edit]) -> list[str]: ...
    def remove_hooks(self) -> None: ...
    def restore(self) -> int: ...
    def hook_stats(self) -> dict: ...
    def suggest(self, capability: str) -> list[dict]: ...  # uncached; the app caches on disk
    def tensor_meta(self, name: str) -> tuple[tuple[int, ...], str] | None: ...
    def digests(self, names: list[str]) -> dict[str, list[str]]: ...  # SHA-256 per rank; raises UnknownTensors
    def memory(self) -> dict[str, dict]: ...  # per device: weights_bytes, allocated_bytes (CUDA)
    def shutdown(self) -> None: ...  # stop what the engine started beside this process (vLLM's engine core)


class HFEngine(PatcherState):
    """A models.LoadedModel served with transformers; patches through one Patcher."""

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self.name, self.device = lm.name, lm.device
        self.num_layers = lm.model.config.num_hidden_layers
        self.patcher = Patcher(lm.model)

    def shutdown(self) -> None:
        """Nothing to stop: the model lives in this process and goes with it."""

    def identity(self) -> dict:
        lm = self.lm
        return {"engine": "hf", "model": lm.name, "weights_sha256": lm.weights_sha256, "dtype": lm.dtype, "device": lm.device,
                "device_map": lm.device_map, "devices": lm.devices}

    def memory(self) -> dict[str, dict]:
        return placement.memory_report(self.lm.model)

    def has_chat_template(self) -> bool:
        return bool(self.lm.tokenizer.chat_template)

    def generate(self, prompts: list[str], cfg: dict, chat: bool, seed: int | None, max_new_tokens: int | None) -> list[str]:
        return generation.generate(self.lm, prompts, cfg, chat, seed, max_new_tokens)

    def losses(self, items: list[tuple[str, str]], answer_prefix: str, chat: bool) -> list[dict]:
        return generation.answer_losses(self.lm, items, answer_prefix, chat)

    def validate(self, suggestions_: list, mode: str) -> list[Edit]:
        return self.patcher.validate(suggestions_, mode)

    def apply_weights(self, edits: list[Edit]) -> list[str]:
        return self.patcher.apply_weights(edits)

    def apply_hooks(self, edits: list[Edit]) -> list[str]:
        return self.patcher.apply_hooks(edits)

    def remove_hooks(self) -> None:
        self.patcher.remove_hooks()

    def restore(self) -> int:
        names = list(self.patcher.originals)
        n = self.patcher.restore()
        if digests.broken_restore():
            for name in names:
                digests.nudge_one_ulp(self.patcher.params[name])
        return n

    def digests(self, names: list[str]) -> dict[str, list[str]]:
        """One rank: each parameter as the model holds it (its device, dtype and layout)."""
        unknown = [n for n in names if n not in self.patcher.params]
        if unknown:
            raise digests.UnknownTensors(unknown)
        return {n: [digests.tensor_sha256(self.patcher.params[n])] for n in names}

    def hook_stats(self) -> dict:
        return self.patcher.hook_stats()

    def suggest(self, capability: str) -> list[dict]:
        return suggestions.compute(self.lm, self.patcher, capability)

    def tensor_meta(self, name: str) -> tuple[tuple[int, ...], str] | None:
        p = self.patcher.params.get(name)
        return None if p is None else (tuple(p.shape), placement.dtype_name(p.dtype))
