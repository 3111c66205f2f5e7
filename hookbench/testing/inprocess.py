"""Parts built by hand for driving `EvaluationLoop` in-process against a running server (tiny model)."""

from __future__ import annotations

import json

from hookbench.evaluation.datasets import arithmetic
from hookbench.evaluation.patches import FileSource
from hookbench.evaluation.scorers import NumericScorer
from hookbench.evaluation.settings import Parts
from hookbench.hookapi.client import HookClient
from hookbench.testing.config import tiny_settings

MLP = "model.layers.1.mlp.up_proj.weight"


def patch_file(tmp_path, suggestions=None, name="p"):
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(suggestions or [{"tensor_name": MLP, "operation": "scale", "value": 1.5, "target": "all"}]))
    return FileSource(str(f), name=name)


def parts(url, source, n=6, preset="benchmark", metric="accuracy", samples=1, batch_size=4, **settings):
    generation = {k: settings.pop(k) for k in ("seed", "max_new_tokens", "chat") if k in settings}
    s = tiny_settings(preset, batch_size, samples, metric=metric, **generation, **settings)
    return Parts(arithmetic(n=n), NumericScorer(), source, HookClient(url, retries=1, backoff_s=0.05), s)
