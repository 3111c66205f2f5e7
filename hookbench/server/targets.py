"""The stock target rule and the edit ops: the edited tensor computed from an original one.

Engine-independent on purpose: any engine (HF here, vLLM elsewhere) computes the exact same edited
HF tensor from the same original, so a patch means the same edit on every server (hook-api.md).

Rule (observed on the stock server): k = round(n * share), at least 1; the threshold is the k-th
largest |w| (`top`) or the k-th smallest (`bottom`), and every entry equal to it is included.
On weights the share is over the whole tensor; on activations (hooks mode) it is over each token
row (the last dimension), so a token's edit does not depend on the other rows of its batch.

Ops: scale x*v, add x+v, clamp_max min(x, v), clamp_min max(x, v); normalize (hooks mode only):
each row rescaled to L2 norm v.
"""

from __future__ import annotations

import torch

from hookbench.contract import ADD, CLAMP_MAX, CLAMP_MIN, NORMALIZE, SCALE


def share_k(n: int, pct: float) -> int:
    """k = round(n * share), at least 1 (Python's round, as the stock server's)."""
    return max(1, min(n, round(n * pct / 100)))


def threshold_mask(x: torch.Tensor, target: tuple[str, float], dim: int | None = None) -> torch.Tensor | None:
    """Entries of x picked by `target` over the whole tensor (dim None) or along `dim`; None means all.

    |x| is compared in float32, exact for float16/bfloat16 values, so ties stay ties."""
    kind, pct = target
    if kind == "all" or pct >= 100:
        return None
    a = x.detach().abs().float()
    flat = a.flatten() if dim is None else a
    d = 0 if dim is None else dim
    n = flat.shape[d]
    k = share_k(n, pct)
    rank = n - k + 1 if kind == "top" else k  # kthvalue counts from the smallest
    thr = flat.kthvalue(rank, dim=d, keepdim=dim is not None).values
    mask = a >= thr if kind == "top" else a <= thr
    return mask


def apply_op(x: torch.Tensor, op: str, value: float) -> torch.Tensor:
    """The edited values of x (all entries; the target mask picks which are kept)."""
    if op == SCALE:
        return x * value
    if op == ADD:
        return x + value
    if op == CLAMP_MAX:
        return x.clamp(max=value)
    if op == CLAMP_MIN:
        return x.clamp(min=value)
    if op == NORMALIZE:
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12) * value
    raise ValueError(op)


def edited_weight(w: torch.Tensor, op: str, value: float, target: tuple[str, float]) -> torch.Tensor:
    """The patched tensor for weight `w` (same dtype and device): the target over the whole tensor."""
    mask = threshold_mask(w, target)
    new = apply_op(w, op, value)
    return new if mask is None else torch.where(mask, new, w)


def edited_activation(x: torch.Tensor, op: str, value: float, target: tuple[str, float]) -> torch.Tensor:
    """A hooked module's output after the edit: the target per token row (last dimension)."""
    mask = threshold_mask(x, target, dim=-1)
    new = apply_op(x, op, value)
    return new if mask is None else torch.where(mask, new, x)
