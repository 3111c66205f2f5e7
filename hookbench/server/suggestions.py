"""Deterministic /api/suggestions: try a fixed set of weight edits, keep those that lower calibration loss.

The stock server asks an external LLM agent (contract §7: not reproducible).  Here each candidate
weight edit (the exact tensor a weights-mode patch would make, targets.edited_weight) is scored by
the mean answer loss on the capability's calibration prompts.  Candidates are ranked by loss
improvement; the same capability on the same model gives identical JSON.  The app caches the
result on disk (suggestion_cache), so this runs once per weights, dtype and capability.

Speed: an edit in layer L cannot change what layers 0..L-1 compute, so the unpatched input of
layer L is kept from the baseline pass, and all candidates of layer L are scored in ONE pass of
layers L..: the calibration batch repeated once per candidate, each copy seeing its own edited
weight through a forward hook (the model's weights are never written).

Suggestions always describe the unpatched model: if a patch is live, its originals are swapped in
and hooks are disabled for the measurement, then the patch is put back exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from hookbench.hookapi.contract import SCALE, parse_target
from hookbench.server import targets
from hookbench.server.calibration import CALIBRATION
from hookbench.server.generation import encode_answers, item_losses
from hookbench.server.patching import Patcher

if TYPE_CHECKING:
    from hookbench.server.models import LoadedModel

log = logging.getLogger("hookbench.server")
METHOD = "grid3"  # part of the disk cache key: change it whenever the method's answers would change
TOP_K = 4
ANSWER_PREFIX = ""  # answers get a leading space instead, as after "Answer:" in running text
LAYER_FRACTIONS = (1 / 3, 2 / 3)
# scaling up_proj on "all" is the same edit as down_proj on "all" (the MLP is linear in both), so only one
TENSOR_TARGETS = (("mlp.up_proj", "all"), ("mlp.up_proj", "top 20%"), ("mlp.down_proj", "top 20%"),
                  ("self_attn.o_proj", "all"))
FACTORS = (0.9, 1.1)


def candidates(num_layers: int) -> list[tuple[int, dict]]:
    """The fixed grid of (layer, edit): 2 layers x 4 tensor/targets x 2 factors = 16 edits."""
    layers = sorted({min(num_layers - 1, int(num_layers * f)) for f in LAYER_FRACTIONS})
    return [(layer, {"tensor_name": f"model.layers.{layer}.{tensor}.weight", "operation": SCALE,
                     "value": value, "target": target})
            for layer in layers for tensor, target in TENSOR_TARGETS for value in FACTORS]


class _Calibrator:
    """Loss on one calibration batch, for the full model or starting from a layer's kept input."""

    def __init__(self, lm: LoadedModel, items: list[tuple[str, str]], layers_needed: list[int]) -> None:
        self.decoder = lm.model.get_decoder()
        self.head = lm.model.get_output_embeddings()
        batch = encode_answers(lm.tokenizer, items, ANSWER_PREFIX, chat=False)
        self.labels = batch["labels"]
        self.attn = batch["attention_mask"].to(lm.input_device)
        self.layer_inputs: dict[int, torch.Tensor] = {}
        hooks = [self.decoder.layers[i].register_forward_pre_hook(self._keep(i)) for i in layers_needed]
        try:
            self.base = self._loss(self.decoder(input_ids=batch["input_ids"].to(lm.input_device),
                                                attention_mask=self.attn).last_hidden_state)
        finally:
            for h in hooks:
                h.remove()

    def _keep(self, i: int) -> Callable[..., None]:
        def pre_hook(module: torch.nn.Module, args: tuple, kwargs: dict | None = None) -> None:
            if args:
                self.layer_inputs[i] = args[0].detach().clone()
        return pre_hook

    def _loss(self, hidden: torch.Tensor) -> float:
        return item_losses(self.head, hidden, self.labels).mean().item()

    def losses_from(self, layer: int, weights: list[tuple[torch.nn.Module, torch.Tensor]]) -> list[float]:
        """One pass of layers layer.. over len(weights) copies of the batch; copy i sees weights[i]
        = (a Linear module, its edited weight) in place of that module's own weight."""
        n, rows = len(weights), self.attn.shape[0]
        handles = [module.register_forward_hook(self._swap_rows(module, [(i, w) for i, (m, w) in enumerate(weights)
                                                                          if m is module], rows))
                   for module in dict.fromkeys(m for m, _ in weights)]
        all_layers = self.decoder.layers
        self.decoder.layers = torch.nn.ModuleList(list(all_layers)[layer:])
        try:
            kept = self.layer_inputs.get(layer)
            if kept is None:
                raise RuntimeError(f"layer {layer}'s input was not passed positionally: the calibration pass kept none")
            hidden = self.decoder(inputs_embeds=kept.repeat(n, 1, 1),
                                  attention_mask=self.attn.repeat(n, 1)).last_hidden_state
        finally:
            self.decoder.layers = all_layers
            for h in handles:
                h.remove()
        per_item = item_losses(self.head, hidden, self.labels.repeat(n, 1))
        return [per_item[i * rows:(i + 1) * rows].mean().item() for i in range(n)]

    @staticmethod
    def _swap_rows(module: torch.nn.Module, edits: list[tuple[int, torch.Tensor]], rows: int) -> Callable[..., torch.Tensor]:
        def hook(mod: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            out = output.clone()
            for i, w in edits:
                x = args[0][i * rows:(i + 1) * rows].to(w.device)
                out[i * rows:(i + 1) * rows] = torch.nn.functional.linear(x, w, getattr(module, "bias", None)).to(out.device)
            return out
        return hook


def _score(lm: LoadedModel, patcher: Patcher, cal: _Calibrator, cands: list[tuple[int, dict]], capability: str) -> list[tuple[float, dict]]:
    """(loss, candidate) for every candidate, one batched pass per layer."""
    modules = dict(lm.model.named_modules())
    scored: list[tuple[float, dict]] = []
    for layer in sorted({layer for layer, _ in cands}):
        group = [c for lyr, c in cands if lyr == layer]
        log.info("suggestions[%s]: layer %d, %d candidates in one pass (%d done of %d)", capability, layer,
                 len(group), len(scored), len(cands))
        weights = [(modules[c["tensor_name"].removesuffix(".weight")],
                    targets.edited_weight(patcher.params[c["tensor_name"]], c["operation"], c["value"],
                                          parse_target(c["target"]))) for c in group]
        scored += list(zip(cal.losses_from(layer, weights), group))
    return scored


def _ranked(scored: list, base: float, n_items: int, capability: str) -> list[dict]:
    scored = sorted(scored, key=lambda sc: sc[0])  # stable: ties keep the fixed candidate order
    improving = [sc for sc in scored if sc[0] < base]
    result = []
    for loss, cand in (improving or scored)[:TOP_K]:
        x = (base - loss) / base / 0.01 if base > 0 else 0.0  # relative improvement in percent
        # squashed into (0.05, 0.95): 1% better -> 0.5; no improvement -> 0.05
        confidence = round(0.5 + 0.45 * (x - 1) / (x + 1), 3) if x > 0 else 0.05
        word = "lowers" if loss < base else "does not lower (best available)"
        result.append({**cand, "confidence": confidence,
                       "reason": f"{word} calibration loss {base:.4f} -> {loss:.4f} on {n_items} {capability} prompts"})
    return result


@torch.no_grad()
def compute(lm: LoadedModel, patcher: Patcher, capability: str) -> list[dict]:
    """Ranked suggestions for `capability` ([] if unknown); the model is left exactly as found."""
    items = [(prompt, " " + answer) for prompt, answer in CALIBRATION.get(capability, [])]
    if not items:
        return []
    if not hasattr(lm.model.get_decoder(), "layers"):
        return []  # not a Llama-style decoder: the candidate grid does not apply
    cands = [(layer, c) for layer, c in candidates(lm.model.config.num_hidden_layers)
             if c["tensor_name"] in patcher.params]
    edited = patcher.swap_originals()
    try:
        cal = _Calibrator(lm, items, sorted({layer for layer, _ in cands}))
        scored = _score(lm, patcher, cal, cands, capability)
    finally:
        patcher.unswap(edited)
    return _ranked(scored, cal.base, len(items), capability)
