"""CLI: python -m hookbench.server --model SPEC --port N [--host H] [--dtype D] [--device-map M]
[--token-env VAR] [--insecure-no-token] [--engine hf|vllm] [--tensor-parallel-size N] [--chat-template M]
[--prepare-only]."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from hookbench.server import auth, lifecycle

if TYPE_CHECKING:
    from hookbench.server.engine import Engine


def main(argv: list[str] | None = None, prog: str = "python -m hookbench.server") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument("--model", default=os.environ.get("MODEL_PATH"),
                    help="smollm2 | tiny | path to a .gguf file | HF model dir (default: $MODEL_PATH)")
    ap.add_argument("--port", type=int, help="port to listen on (required unless --prepare-only)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dtype", choices=DTYPES, default="auto",
                    help="auto: bfloat16 on a CUDA device that supports it, float32 on CPU")
    ap.add_argument("--device-map", default="auto", help=DEVICE_MAP_HELP)
    auth.add_arguments(ap)
    ap.add_argument("--engine", choices=ENGINES, default="hf",
                    help="hf: transformers (default); vllm: vLLM's LLM engine (pip install .[vllm])")
    ap.add_argument("--tensor-parallel-size", type=int, default=1,
                    help="vllm engine: GPUs the model is sharded over (the hf engine uses --device-map)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=None,
                    help=f"vllm engine: share of device memory for weights + KV cache "
                         f"(default 0.9 on CUDA; on CPU a fixed {CPU_KV_CACHE_GIB} GiB KV cache)")
    ap.add_argument("--enforce-eager", choices=("auto", "true", "false"), default="auto",
                    help="vllm engine: no compiled graphs / CUDA graphs (auto: eager on CPU only)")
    ap.add_argument("--max-model-len", type=int, default=None, help="vllm engine: context length (default: the model's)")
    ap.add_argument("--chat-template", choices=("auto", "always", "never"), default="auto",
                    help="server default for prompts: auto = use the tokenizer's chat template if it has one")
    ap.add_argument("--prepare-only", action="store_true", help="load (and cache) the model, then exit")
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("--model is required (or set MODEL_PATH)")
    if not args.prepare_only and args.port is None:
        ap.error("--port is required")
    from hookbench.server import placement  # torch: after the arguments parsed (help needs none)

    try:
        placement.check_device_map(args.device_map)
    except ValueError as e:
        ap.error(str(e))
    engine_error = check_engine_args(args)
    if engine_error:
        ap.error(engine_error)
    try:
        token = None if args.prepare_only else auth.cli_token(args)
    except auth.AuthSetupError as e:
        print(f"hookbench.server: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="hookbench.server: %(message)s", stream=sys.stderr)
    lifecycle.install()  # a stop signal from here on ends the engine and every process it started
    from hookbench.server import digests  # here, after parsing: it needs torch, which --help does not

    try:
        digests.warn_if_faulty()
    except ValueError as e:
        print(f"hookbench.server: {e}", file=sys.stderr)
        return 2
    try:
        try:
            engine = (load_vllm if args.engine == "vllm" else load_hf)(args)  # heavy imports after argument errors
        except (FileNotFoundError, OSError, ValueError) as e:
            print(f"hookbench.server: cannot load model {args.model!r} on the {args.engine} engine: {e}",
                  file=sys.stderr)
            return 2
        lifecycle.install()  # again: an engine may have put its own handlers in place while loading
        try:
            if not args.prepare_only:
                serve(engine, args, token)
        finally:
            engine.shutdown()
    finally:
        lifecycle.end_children()  # the backstop: whatever the engine's shutdown left running
    return 0


def serve(engine: Engine, args: argparse.Namespace, token: str | None) -> None:
    """The contract over HTTP, whichever engine is behind it, behind the same bearer token."""
    import uvicorn

    from hookbench.server.app import create_app

    uvicorn.run(create_app(engine, args.chat_template, token), host=args.host, port=args.port, log_level="warning")


def load_hf(args: argparse.Namespace) -> Engine:
    from hookbench.server import models
    from hookbench.server.engine import HFEngine

    lm = models.load(args.model, args.dtype, args.device_map)
    print(f"hookbench.server: loaded {args.model} in {lm.dtype} on {', '.join(lm.devices)} "
          f"(device map {lm.device_map}, weights {lm.weights_sha256[:12]})", file=sys.stderr)
    return HFEngine(lm)


def load_vllm(args: argparse.Namespace) -> Engine:
    """The model in vLLM (the spawn guard below keeps vLLM's workers from rerunning main)."""
    from hookbench.server.vllm_engine import VLLMEngine

    engine = VLLMEngine(args.model, args.dtype, args.tensor_parallel_size, args.gpu_memory_utilization,
                        args.max_model_len, {"auto": None, "true": True, "false": False}[args.enforce_eager])
    print(f"hookbench.server: loaded {args.model} into vLLM in {engine.dtype} on {engine.device} "
          f"(tensor parallel {engine.tp}, weights {engine.weights_sha256[:12]})", file=sys.stderr)
    return engine


ENGINES = ("hf", "vllm")
# placement.DTYPES and .DEVICE_MAP_HELP, repeated so --help needs no torch import (tests/test_cli_help.py)
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_MAP_HELP = "auto (accelerate spreads the model over every visible GPU, else CPU) | cuda | cuda:N | cpu"
CPU_KV_CACHE_GIB = 1  # vllm_engine.CPU_KV_CACHE_GIB, repeated so --help needs no vLLM import


def check_engine_args(args: argparse.Namespace) -> str | None:
    """Why the engine options do not fit together (None: they do), before anything loads."""
    if args.tensor_parallel_size < 1:
        return f"--tensor-parallel-size {args.tensor_parallel_size}: must be at least 1"
    if args.engine == "hf":
        vllm_only = [f for f, v in (("--tensor-parallel-size", args.tensor_parallel_size != 1),
                                     ("--gpu-memory-utilization", args.gpu_memory_utilization is not None),
                                     ("--max-model-len", args.max_model_len is not None),
                                     ("--enforce-eager", args.enforce_eager != "auto")) if v]
        return f"{', '.join(vllm_only)}: only with --engine vllm" if vllm_only else None
    if args.device_map != "auto":
        return f"--device-map {args.device_map!r}: the vllm engine places the model itself (use --tensor-parallel-size)"
    if args.gpu_memory_utilization is not None and not 0 < args.gpu_memory_utilization <= 1:
        return f"--gpu-memory-utilization {args.gpu_memory_utilization}: must be in (0, 1]"
    from hookbench.server.vllm_engine import vllm_available

    why = vllm_available()
    return None if why is None else f"--engine vllm: {why}; see docs/server.md (the vLLM engine)"


if __name__ == "__main__":
    sys.exit(main())
