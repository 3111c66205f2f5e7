"""What the vLLM engine's test files share: the marks that skip them where vLLM cannot run (or fail them
under HOOKBENCH_REQUIRE_VLLM=1, as in CI), the probe texts, and how close vLLM's losses must come to HF's."""

from __future__ import annotations

import os

import pytest

from hookbench.server.vllm_engine import vllm_available

WHY = vllm_available()
if WHY is not None and os.environ.get("HOOKBENCH_REQUIRE_VLLM") == "1":
    raise RuntimeError(f"HOOKBENCH_REQUIRE_VLLM=1 but the vLLM engine cannot run: {WHY}")
MARKS = [pytest.mark.vllm, pytest.mark.slow,
         pytest.mark.skipif(WHY is not None, reason=f"{WHY}; see docs/server.md (the vLLM engine)")]

PROBES = [("The capital of France is", " Paris, a city on the Seine."),
          ("Question: What is 12 + 7?\nAnswer:", " 19"),
          ("def add(a, b):\n    return", " a + b")]
LOSS_TOL = 1e-4  # relative, HF vs vLLM float32 on CPU: different kernels, same maths (seen: ~5e-6)
