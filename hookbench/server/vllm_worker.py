"""Exact weight edits inside vLLM's workers (a `worker_extension_cls`, called through `collective_rpc`).

Every rank reads the original HF tensor from the model's safetensors by its HF name, and the
edited tensor is computed on that full HF tensor with hookbench's own edit code (`targets`), so
an edit means the same as on the HF engine, on every TP rank. The result goes through vLLM's own
loader (`model.load_weights`), which maps HF names onto fused and sharded parameters
(`qkv_proj`, `gate_up_proj`, TP shards). A fused parameter is always loaded whole (every sibling
HF tensor: the edited one at its current value, the others at theirs).

Loading runs inside vLLM's layerwise reload (`initialize_online_processing` ... `_layerwise_process`,
restricted to the touched layers): it materialises the layer, loads it, reruns the layer's
`process_weights_after_loading` (on CPU that rebuilds the prepacked GEMM weight, since the CPU
backend replaces the parameter with an empty one) and copies the result into the original kernel
tensors' storage, so captured CUDA graphs keep reading the same addresses.
Restore loads the original bytes from safetensors the same way.

Hooks mode: every rank's model gets activation slots (`activation_slots`) on each decoder layer's
`self_attn`, `mlp`, `input_layernorm`, `post_attention_layernorm` and on `model.norm` when the model
runner loads it, before vLLM compiles the forward or captures CUDA graphs (vLLM's worker extension
cannot override `load_model`, so importing this module, which vLLM does in every worker before it
loads, wraps the model runners' `load_model`). `hb_hooks_set` then only writes those buffers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

import torch

from hookbench.server import activation_slots

# the modules whose output hooks mode can edit: vLLM returns the HF modules' outputs there (mlp and self_attn
# before the residual add; a norm's normed output, the residual stream of the fused add-RMSNorm untouched)
HOOKABLE = re.compile(r"^model\.(layers\.\d+\.(self_attn|mlp|input_layernorm|post_attention_layernorm)|norm)$")


def install_slots(model: torch.nn.Module) -> list[str]:
    """Activation slots on every hookable module of a vLLM model; their names."""
    names = [n for n, _ in model.named_modules() if HOOKABLE.match(n)]
    for n in names:
        mod = model.get_submodule(n)
        device = next(t.device for t in [*mod.parameters(), *mod.buffers()])
        activation_slots.install(mod, device)
    return names


def _install_slots_at_load() -> None:
    """Wrap vLLM's model runners' load_model so slots exist before compilation and graph capture."""
    try:
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner
    except ImportError:  # not inside vLLM (imported for its helpers elsewhere)
        return
    classes: list[type] = [GPUModelRunner]
    try:
        from vllm.v1.worker.cpu_model_runner import CPUModelRunner

        classes.append(CPUModelRunner)
    except ImportError:
        pass
    for cls in classes:
        orig = cls.__dict__.get("load_model")
        if orig is None or getattr(orig, "hb_wrapped", False):
            continue

        @functools.wraps(orig)
        def load_model(self, *args, _orig=orig, **kwargs):
            _orig(self, *args, **kwargs)
            install_slots(self.get_model())

        load_model.hb_wrapped = True  # type: ignore[attr-defined]
        cls.load_model = load_model  # type: ignore[method-assign]


_install_slots_at_load()


def _safetensors_index(model_dir: Path) -> dict[str, Path]:
    """HF tensor name -> the safetensors file holding it (sharded or single-file checkpoints)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return {k: model_dir / v for k, v in json.loads(index.read_text())["weight_map"].items()}
    from safetensors import safe_open

    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            out.update({k: f for k in st.keys()})
    return out


@torch.no_grad()
def _kernel_digest(layer: torch.nn.Module) -> str:
    from hookbench.server.digests import tensor_sha256

    h = hashlib.sha256()
    for name, t in sorted([*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]):
        h.update(f"{name}:{tensor_sha256(t)}\n".encode())
    weight = getattr(layer, "weight", None)
    if getattr(layer, "cpu_linear", None) is not None and weight is not None and weight.numel() == 0:
        eye = torch.eye(layer.input_size_per_partition, dtype=weight.dtype, device=weight.device)
        h.update(f"kernel:{tensor_sha256(layer.quant_method.apply(layer, eye, None))}\n".encode())
    return h.hexdigest()


class HookbenchWorker:
    """Mixed into vLLM's worker class; every method runs on every rank."""

    def hb_init(self, model_dir: str) -> dict:
        """Remember where the originals are; returns {hf_name: shape} of the checkpoint tensors."""
        from safetensors import safe_open

        self.hb_dir = Path(model_dir)
        self.hb_files = _safetensors_index(self.hb_dir)
        self.hb_current: dict[str, torch.Tensor] = {}  # HF name -> edited full HF tensor (CPU)
        shapes = {}
        for name, f in self.hb_files.items():
            with safe_open(str(f), framework="pt") as st:
                shapes[name] = list(st.get_slice(name).get_shape())
        return shapes

    def _hb_model(self) -> torch.nn.Module:
        return self.model_runner.get_model()

    def _hb_dtype(self) -> torch.dtype:
        return self.model_runner.model_config.dtype

    def hb_original(self, name: str) -> torch.Tensor:
        """The checkpoint tensor in the served dtype, on CPU (as the HF engine holds it)."""
        from safetensors import safe_open

        with safe_open(str(self.hb_files[name]), framework="pt") as st:
            return st.get_tensor(name).to(self._hb_dtype())

    def hb_value(self, name: str) -> torch.Tensor:
        return self.hb_current[name] if name in self.hb_current else self.hb_original(name)

    def hb_apply(self, edits: list[tuple[str, str, float, tuple[str, float]]]) -> list[str]:
        """Apply (hf_name, op, value, target) edits in order; they compound like in-place edits."""
        from hookbench.server.targets import edited_weight

        for name, op, value, target in edits:
            self.hb_current[name] = edited_weight(self.hb_value(name), op, value, tuple(target))
        self._hb_load(sorted({n for n, *_ in edits}))
        return [n for n, *_ in edits]

    def hb_restore(self) -> int:
        """Load the original bytes of every edited tensor; returns how many were edited."""
        from hookbench.server import digests

        names = sorted(self.hb_current)
        self.hb_current.clear()
        if digests.broken_restore():  # tests only: a restore one ulp off, on purpose
            for n in names:
                self.hb_current[n] = self.hb_original(n).clone()
                digests.nudge_one_ulp(self.hb_current[n])
        self._hb_load(names)
        self.hb_current.clear()
        return len(names)

    def hb_digest(self, names: list[str]) -> dict[str, str | None]:
        """{HF name: SHA-256 of the vLLM module that holds it on this rank} (None: no such module).

        The module's kernel state: the SHA-256 of each of its parameters and buffers, by name, hashed
        together; on CPU, where the GEMM weight is packed away into the kernel (the parameter left empty),
        also the kernel's product with the identity, which is the rank's weight shard as the kernel
        multiplies with it (exact: one nonzero product per output). A fused module (qkv_proj,
        gate_up_proj) has one digest for all of its HF tensors."""
        model = self._hb_model()
        out: dict[str, str | None] = {}
        for name in names:
            try:
                layer = model.get_submodule(self._hb_module(model, name)[0])
            except AttributeError:
                out[name] = None
                continue
            out[name] = _kernel_digest(layer)
        return out

    # -- hooks mode: activation slots, written in place ------------------------------------------
    def hb_hook_modules(self) -> list[str]:
        """The modules whose output this rank can edit (slots installed at load)."""
        return [n for n, m in self._hb_model().named_modules() if hasattr(m, "hb_scale")]

    def hb_hooks_set(self, plan: dict[str, list[tuple[str, float, tuple[str, float]]]]) -> int:
        """Write each module's edits (op, value, target), in order, into its slots; the rest of its slots free."""
        model = self._hb_model()
        width = self.model_runner.model_config.get_hidden_size()  # every hookable output is a hidden state
        for name, edits in plan.items():
            activation_slots.write(model.get_submodule(name), edits, width)
        return sum(len(e) for e in plan.values())

    def hb_hooks_clear(self) -> None:
        """Every slot free (DELETE /api/hooks)."""
        width = self.model_runner.model_config.get_hidden_size()
        for _, m in self._hb_model().named_modules():
            if hasattr(m, "hb_scale") and m.hb_live:
                activation_slots.write(m, [], width)

    def hb_memory(self) -> tuple[str, dict]:
        """(device, {weights_bytes, allocated_bytes}) of this rank. On CPU the prepacked GEMM weights
        live outside the parameters, so weights_bytes there counts the unpacked rest only."""
        model = self._hb_model()
        tensors = [*model.parameters(), *model.buffers()]
        device = tensors[0].device
        row = {"weights_bytes": sum(t.numel() * t.element_size() for t in tensors), "allocated_bytes": None}
        if device.type == "cuda":
            row["allocated_bytes"] = torch.cuda.memory_allocated(device)
        return str(device), row

    # -- loading through vLLM's layerwise reload, restricted to the touched layers ------------
    def _hb_load(self, names: list[str]) -> None:
        from vllm.model_executor.model_loader.reload import layerwise as lw

        model = self._hb_model()
        groups = dict(self._hb_module(model, n) for n in names)  # vLLM module -> its HF tensors
        layers = [model.get_submodule(m) for m in groups]
        for layer in layers:
            info = lw.get_layerwise_info(layer)
            info.kernel_tensors = lw.get_layer_params_buffers(layer)
            info.kernel_non_persistent_buffers = set(layer._non_persistent_buffers_set)
            lw.restore_layer_on_meta(layer, info)
            lw.initialize_online_processing(layer)
        try:
            weights = [(n, self.hb_value(n)) for sibs in groups.values() for n in sibs]
            with torch.no_grad():
                model.load_weights(weights)
        finally:
            for layer in layers:
                info = lw.get_layerwise_info(layer)
                if info.can_load():  # not processed yet (nothing or only part loaded)
                    if info.load_numel > 0:
                        lw._layerwise_process(layer, info)
                    else:
                        lw._place_kernel_tensors(layer, info)
                        info.reset()

    @staticmethod
    def _hb_module(model, hf_name: str) -> tuple[str, list[str]]:
        """(vLLM module name, every HF tensor loaded into it) for an HF weight name."""
        base, _, leaf = hf_name.rpartition(".")
        parent, _, proj = base.rpartition(".")
        for fused, parts in getattr(model, "packed_modules_mapping", {}).items():
            if proj in parts:
                return f"{parent}.{fused}", [f"{parent}.{p}.{leaf}" for p in parts]
        return base, [hf_name]
