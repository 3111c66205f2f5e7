"""CLI: python -m hookbench.server --model SPEC --port N [--host H] [--dtype D] [--device-map M]
[--chat-template M] [--prepare-only]."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from hookbench.server import placement  # light: torch only

    ap = argparse.ArgumentParser(prog="python -m hookbench.server", description=__doc__)
    ap.add_argument("--model", default=os.environ.get("MODEL_PATH"),
                    help="smollm2 | tiny | path to a .gguf file | HF model dir (default: $MODEL_PATH)")
    ap.add_argument("--port", type=int, help="port to listen on (required unless --prepare-only)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dtype", choices=placement.DTYPES, default="auto",
                    help="auto: bfloat16 on a CUDA device that supports it, float32 on CPU")
    ap.add_argument("--device-map", default="auto", help=placement.DEVICE_MAP_HELP)
    ap.add_argument("--chat-template", choices=("auto", "always", "never"), default="auto",
                    help="server default for prompts: auto = use the tokenizer's chat template if it has one")
    ap.add_argument("--prepare-only", action="store_true", help="load (and cache) the model, then exit")
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("--model is required (or set MODEL_PATH)")
    if not args.prepare_only and args.port is None:
        ap.error("--port is required")
    try:
        placement.check_device_map(args.device_map)
    except ValueError as e:
        ap.error(str(e))
    logging.basicConfig(level=logging.INFO, format="hookbench.server: %(message)s", stream=sys.stderr)

    from hookbench.server import models  # heavy imports after argument errors

    try:
        lm = models.load(args.model, args.dtype, args.device_map)
    except (FileNotFoundError, OSError, ValueError) as e:
        print(f"hookbench.server: cannot load model {args.model!r}: {e}", file=sys.stderr)
        return 2
    print(f"hookbench.server: loaded {args.model} in {lm.dtype} on {', '.join(lm.devices)} "
          f"(device map {lm.device_map}, weights {lm.weights_sha256[:12]})", file=sys.stderr)
    if args.prepare_only:
        return 0

    import uvicorn

    from hookbench.server.app import create_app
    from hookbench.server.engine import HFEngine

    uvicorn.run(create_app(HFEngine(lm), args.chat_template), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
