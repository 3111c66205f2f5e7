"""A planted fault: the embedded model with one weight tensor scaled, saved as a model folder.

The positive control of a patch study: the exact repair (the inverse scale on the same tensor) is
known, so a search over a space that holds it must find it. The copy goes where the caller says
(a temporary folder), never into the shared model cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TENSOR = "model.layers.{layer}.mlp.{proj}.weight"


def damaged_copy(target: Path, layer: int, factor: float, proj: str = "down_proj") -> Path:
    """The embedded SmolLM2's folder with `TENSOR` scaled by `factor`; `target` is made (and returned)."""
    from safetensors.torch import load_file, save_file

    from hookbench.server.models import resolve

    source = resolve("smollm2")
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy2(f, target / f.name)
    name = TENSOR.format(layer=layer, proj=proj)
    found = False
    for f in source.glob("*.safetensors"):
        tensors = load_file(f)
        if name in tensors:
            tensors[name] = tensors[name] * factor
            found = True
        save_file(tensors, target / f.name, metadata={"format": "pt"})
    if not found:
        raise KeyError(f"{name} is not a tensor of {source}")
    return target
