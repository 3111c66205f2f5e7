"""Parts built by hand for driving `EvaluationLoop` in-process against a running server (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hookbench.evaluation.datasets import arithmetic
from hookbench.evaluation.patches import FileSource, PatchSource
from hookbench.evaluation.scorers import NumericScorer
from hookbench.evaluation.settings import Parts
from hookbench.hookapi.client import HookClient
from hookbench.testing.config import tiny_settings

MLP = "model.layers.1.mlp.up_proj.weight"


def patch_file(tmp_path: Path, suggestions: list[dict] | None = None, name: str = "p") -> FileSource:
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(suggestions or [{"tensor_name": MLP, "operation": "scale", "value": 1.5, "target": "all"}]))
    return FileSource(str(f), name=name)


def parts(url: str, source: PatchSource, n: int = 6, preset: str = "benchmark", metric: str = "accuracy", samples: int = 1,
          batch_size: int = 4, **settings: Any) -> Parts:
    generation = {k: settings.pop(k) for k in ("seed", "max_new_tokens", "chat") if k in settings}
    s = tiny_settings(preset, batch_size, samples, metric=metric, **generation, **settings)
    return Parts(arithmetic(n=n), NumericScorer(), source, HookClient(url, retries=1, backoff_s=0.05), s)
