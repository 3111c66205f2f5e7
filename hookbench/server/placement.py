"""Which dtype and which devices a model is served in: `--dtype` and `--device-map`.

Engine-independent: the choice (and its spelling in /api/health and the server identity) is the
same whatever engine loads the weights.
"""

from __future__ import annotations

import re

import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_MAP_HELP = "auto (accelerate spreads the model over every visible GPU, else CPU) | cuda | cuda:N | cpu"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_map(spec: str) -> str:
    """The spec itself, or ValueError naming it (checked before anything loads)."""
    if not isinstance(spec, str) or not _DEVICE.match(spec):
        raise ValueError(f"--device-map {spec!r}: use {DEVICE_MAP_HELP}")
    if spec.startswith("cuda"):
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if not torch.cuda.is_available():
            raise ValueError(f"--device-map {spec!r}: no CUDA device is visible")
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device-map {spec!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return spec


def main_device(spec: str | dict) -> str:
    """The device the model's inputs start on, before loading: decides `--dtype auto`."""
    if isinstance(spec, dict):
        first = next(iter(spec.values()), "cpu")
        return f"cuda:{first}" if isinstance(first, int) else str(first)
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def choose_dtype(name: str, device: str) -> torch.dtype:
    """auto: bfloat16 on a CUDA device that supports it, float32 elsewhere (CPU bf16 matmuls are slow)."""
    if name not in DTYPES:
        raise ValueError(f"--dtype {name!r}: use one of {', '.join(DTYPES)}")
    if name == "auto":
        cuda = device.startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def hf_device_map(spec: str | dict) -> str | dict:
    """What transformers' from_pretrained(device_map=...) gets: 'auto', an explicit {module: device}
    map (tests, or a caller's own placement), or {'': device} for one device.  Without a GPU,
    'auto' is plain CPU (accelerate's auto map could offload to disk when memory looks short)."""
    if isinstance(spec, dict):
        return spec
    return spec if spec == "auto" and torch.cuda.is_available() else {"": main_device(spec)}


def devices_of(model: torch.nn.Module) -> list[str]:
    """Every device holding a parameter, in a stable order (cpu, cuda:0, cuda:1, ...)."""
    devs = {str(p.device) for p in model.parameters()}
    return sorted(devs, key=lambda d: (d != "cpu", len(d), d))


def memory_report(model: torch.nn.Module) -> dict[str, dict]:
    """Per device: bytes of parameters and buffers, and (CUDA) what torch has allocated there."""
    out: dict[str, dict] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        row = out.setdefault(str(t.device), {"weights_bytes": 0, "allocated_bytes": None})
        row["weights_bytes"] += t.numel() * t.element_size()
    for dev, row in out.items():
        if dev.startswith("cuda"):
            row["allocated_bytes"] = torch.cuda.memory_allocated(torch.device(dev))
    return out
