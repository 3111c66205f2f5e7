"""The soak (benchmarks/soak.py, tests/test_soak.py): a GSM8K split against the stock stand-in with
injected faults; every fault counted by kind, no good answer lost, the rerun regenerates only the failed."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from hookbench.testing.repo import GSM8K

KINDS = {"5xx": "api_error", "error-text": "error_text", "empty": "empty"}  # fault -> the kind the job counts


def parts(url: str, path: Path, n: int | None):
    from hookbench.evaluation.datasets import gsm8k
    from hookbench.evaluation.patches import NoPatch
    from hookbench.evaluation.scorers import NumericScorer
    from hookbench.evaluation.settings import Parts
    from hookbench.hookapi.client import HookClient
    from hookbench.testing.config import tiny_settings
    s = tiny_settings("benchmark", batch_size=8, metric="accuracy")
    return Parts(gsm8k(path=str(path), limit=n), NumericScorer(), NoPatch(),
                 HookClient(url, retries=0, backoff_s=0.0), s)


def inject(server, calls: int, share: float, seed: int = 0) -> dict[str, set[int]]:
    """Disjoint sets of generate call numbers (after the ones already made) for each fault kind."""
    rng = random.Random(seed)
    start = server.generate_calls
    picked = rng.sample(range(start + 1, start + calls + 1), 3 * round(share * calls))
    k = len(picked) // 3
    faults = {"5xx": set(picked[:k]), "error-text": set(picked[k:2 * k]), "empty": set(picked[2 * k:])}
    server.http_error_calls = {c: 503 for c in faults["5xx"]}
    server.fail_calls, server.empty_calls = faults["error-text"], faults["empty"]
    return faults


def soak(server, n: int | None, share: float = 0.02, path: Path = GSM8K) -> dict:
    """Run, count, rerun; the figures of the soak (answers_lost must be 0)."""
    from hookbench.evaluation.loop import EvaluationLoop
    from hookbench.evaluation.reuse import GenerationStore
    server.fake_model = True
    store = GenerationStore(Path(tempfile.mkdtemp(prefix="soak-")) / "generations.sqlite")
    p = parts(server.url, path, n)
    items = len(p.dataset.items)
    faults = inject(server, 2 * items, share)  # two arms (A/A: patch=none), one request per answer
    t0 = time.perf_counter()
    out = EvaluationLoop(p, "soak-1", store).run()
    wall = time.perf_counter() - t0
    kinds = {arm: dict(out.summary.failure_kinds[arm]) for arm in ("baseline", "patched")}
    counted = {k: sum(kinds[a].get(v, 0) for a in kinds) for k, v in KINDS.items()}
    good = sum(1 for r in out.items for a in (r.baseline, r.patched) if a.error is None and a.output is not None)
    server.http_error_calls, server.fail_calls, server.empty_calls = {}, set(), set()
    before = server.generate_calls
    rerun = EvaluationLoop(parts(server.url, path, n), "soak-2", store).run()
    regenerated = server.generate_calls - before
    failed = 2 * items - good
    lost = 2 * items - regenerated - sum(rerun.summary.reused.values())  # answers neither kept nor regenerated
    store.close()
    return {"items": items, "faults_injected": {k: len(v) for k, v in faults.items()}, "faults_counted": counted,
            "good_answers": good, "failed_answers": failed, "rerun_regenerated": regenerated,
            "answers_lost": lost + max(0, regenerated - failed), "wall_s": round(wall, 1)}
