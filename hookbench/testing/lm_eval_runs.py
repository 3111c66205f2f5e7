"""lm-eval's own CLI on a local model directory and task, for the `hookbench compare` tests and docs.

Runs `python -m lm_eval --model hf` offline (no hub: the model is a local directory, the task a YAML
with a local jsonl), and makes the edited model as a copy of the directory with one tensor scaled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TASK_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "lm_eval_task"
TASK = "hb_addition"


def scaled_copy(model_dir: Path, target: Path, tensor: str, factor: float) -> Path:
    """`model_dir` copied to `target` with the safetensors tensor `tensor` multiplied by `factor`."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy2(f, target / f.name)
    weights = load_file(str(model_dir / "model.safetensors"))
    if tensor not in weights:
        raise KeyError(f"{tensor} is not a tensor of {model_dir}")
    weights[tensor] = weights[tensor] * factor
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def run_lm_eval(model_dir: Path, output: Path, limit: int | None = None, timeout: float = 900) -> Path:
    """lm-eval's HF backend on the local task with --log_samples; the folder its samples_*.jsonl are in."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
               f"pretrained={model_dir},dtype=float32", "--tasks", TASK, "--include_path", str(TASK_DIR),
               "--device", "cpu", "--batch_size", "8", "--log_samples", "--output_path", str(output)]
    if limit is not None:
        command += ["--limit", str(limit)]
    done = subprocess.run(command, cwd=TASK_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"lm-eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = sorted(output.rglob(f"samples_{TASK}_*.jsonl"))
    if not found:
        raise RuntimeError(f"lm-eval wrote no samples file under {output}")
    return found[0].parent
