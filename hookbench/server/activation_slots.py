"""Activation edits (hooks mode) held in buffers that a compiled forward reads: the vLLM engine's hooks.

A module gets, once before vLLM compiles or captures CUDA graphs, SLOTS edit slots as buffers and one
forward hook that applies them in order to the module's output (the first element when the module
returns a tuple, as vLLM's fused add-RMSNorm returns (normed, residual)). Applying and removing edits
only writes the buffers in place (`copy_`/`fill_`), so a traced graph or a captured CUDA graph keeps
reading the same storage: no re-trace and no re-capture per edit. A free slot is the identity
(scale 1, add 0, clamp to -inf..+inf, target all, no normalize).

One slot is the hook API's edit, with the same arithmetic as `targets.edited_activation` (equal bit
for bit on CPU in float32, bfloat16 and float16): the target per token row (the last dimension),
k = round(n * share), every tie at the threshold included, the threshold read from the sorted |row|
at an index kept in a buffer (static shapes, so it can live in a graph).
"""

from __future__ import annotations

import math

import torch

from hookbench.hookapi.contract import ADD, CLAMP_MAX, CLAMP_MIN, NORMALIZE, SCALE
from hookbench.server.targets import share_k

SLOTS = 4  # activation edits one module can hold at once
_FLOATS = ("hb_scale", "hb_add", "hb_lo", "hb_hi", "hb_norm", "hb_sign")
LIVE = "hb_live"  # slots in use: eager runs only these; a compiled graph runs all SLOTS (free = identity)
_IDENTITY = {"hb_scale": 1.0, "hb_add": 0.0, "hb_lo": -math.inf, "hb_hi": math.inf, "hb_norm": 0.0, "hb_sign": 0.0}


def install(module: torch.nn.Module, device: torch.device) -> None:
    """Give `module` its free slots and the hook that applies them (idempotent)."""
    if hasattr(module, "hb_scale"):
        return
    for name in _FLOATS:
        module.register_buffer(name, torch.full((SLOTS,), _IDENTITY[name], dtype=torch.float32, device=device),
                               persistent=False)
    module.register_buffer("hb_rank", torch.zeros(SLOTS, dtype=torch.long, device=device), persistent=False)
    module.register_buffer("hb_normalize", torch.zeros(SLOTS, dtype=torch.bool, device=device), persistent=False)
    setattr(module, LIVE, 0)  # a plain int attribute, not a buffer: torch types module attributes as Tensor | Module
    module.register_forward_hook(_hook)


def slot_values(op: str, value: float, target: tuple[str, float], n: int) -> dict[str, float | int | bool]:
    """The buffer entries of one edit on rows of width n."""
    row: dict[str, float | int | bool] = {**_IDENTITY, "hb_rank": 0, "hb_normalize": False}
    if op == SCALE:
        row["hb_scale"] = value
    elif op == ADD:
        row["hb_add"] = value
    elif op == CLAMP_MAX:
        row["hb_hi"] = value
    elif op == CLAMP_MIN:
        row["hb_lo"] = value
    elif op == NORMALIZE:
        row["hb_normalize"], row["hb_norm"] = True, value
    else:
        raise ValueError(op)
    kind, pct = target
    if kind != "all" and pct < 100:
        k = share_k(n, pct)  # kthvalue's rank n-k+1 (top) or k (bottom), 0-based in the sorted row
        row["hb_sign"], row["hb_rank"] = (1.0, n - k) if kind == "top" else (-1.0, k - 1)
    return row


@torch.no_grad()
def write(module: torch.nn.Module, edits: list[tuple[str, float, tuple[str, float]]], n: int) -> None:
    """Put `edits` (in order) into the module's slots, the rest free; in place."""
    if len(edits) > SLOTS:
        raise ValueError(f"{len(edits)} activation edits on one module; at most {SLOTS}")
    rows = [slot_values(op, v, (t[0], t[1]), n) for op, v, t in edits]
    rows += [slot_values(SCALE, 1.0, ("all", 100.0), n)] * (SLOTS - len(rows))
    for name in (*_FLOATS, "hb_rank", "hb_normalize"):
        buf = getattr(module, name)
        buf.copy_(torch.tensor([r[name] for r in rows], dtype=buf.dtype))
    setattr(module, LIVE, len(edits))


def _buf(m: torch.nn.Module, name: str) -> torch.Tensor:
    """A slot buffer, read as the attribute it is (torch types module attributes as Tensor | Module)."""
    return getattr(m, name)


def _slot(m: torch.nn.Module, x: torch.Tensor, i: int) -> torch.Tensor:
    """Slot i applied to x; the arithmetic of targets.edited_activation, with buffer entries for its numbers."""
    a = x.abs().float()
    thr = a.sort(dim=-1).values.index_select(-1, _buf(m, "hb_rank")[i:i + 1])
    sign = _buf(m, "hb_sign")[i]
    mask = torch.where(sign > 0, a >= thr, a <= thr) | (sign == 0)
    affine = (x * _buf(m, "hb_scale")[i] + _buf(m, "hb_add")[i]).clamp(_buf(m, "hb_lo")[i], _buf(m, "hb_hi")[i])
    normed = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12) * _buf(m, "hb_norm")[i]
    return torch.where(mask, torch.where(_buf(m, "hb_normalize")[i], normed, affine), x)


def _hook(module: torch.nn.Module, args: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple | None:
    compiling = torch.compiler.is_compiling()
    live: int = getattr(module, LIVE)
    if not compiling and live == 0:
        return None
    x = output[0] if isinstance(output, tuple) else output
    for i in range(SLOTS if compiling else live):
        x = _slot(module, x, i)
    return (x, *output[1:]) if isinstance(output, tuple) else x
