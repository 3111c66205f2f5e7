"""Parts built by hand for driving `Evaluation` in-process against a running server (tiny model)."""

from __future__ import annotations

import json

from hookbench.evaluation.datasets import arithmetic
from hookbench.evaluation.patches import FileSource
from hookbench.evaluation.scorers import NumericScorer
from hookbench.evaluation.settings import GenerationSettings, ModelInfo, Parts, Settings
from hookbench.hookapi.client import HookClient

MLP = "model.layers.1.mlp.up_proj.weight"


def patch_file(tmp_path, suggestions=None, name="p"):
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(suggestions or [{"tensor_name": MLP, "operation": "scale", "value": 1.5, "target": "all"}]))
    return FileSource(str(f), name=name)


def parts(url, source, n=6, preset="benchmark", metric="accuracy", samples=1, batch_size=4, **settings):
    gen = GenerationSettings(preset=preset, batch_size=batch_size, samples=samples, seed=settings.pop("seed", None),
                             max_new_tokens=settings.pop("max_new_tokens", None), chat=settings.pop("chat", None))
    s = Settings(model=ModelInfo("tiny", "hookbench/tiny", "seed0", "weights"), generation=gen, metric=metric,
                 **settings)
    return Parts(arithmetic(n=n), NumericScorer(), source, HookClient(url, retries=1, backoff_s=0.05), s)
