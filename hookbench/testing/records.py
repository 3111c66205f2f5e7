"""Hand-built run records and items for report tests: what a job would have produced, without running one."""

from __future__ import annotations

import dataclasses
from typing import Any

from hookbench.evaluation.record import (
    DatasetRecord,
    GenerationRecord,
    ModelRecord,
    PatchRecord,
    RequestCounts,
    RunRecord,
    ServerRecord,
    StatsRecord,
)
from hookbench.evaluation.results import ArmResult, ItemResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ok(answer: str, correct: bool | None, latency: float | None = 1.0, **kw: Any) -> ArmResult:
    return ArmResult(output=f"The answer is {answer}", latency_s=latency, batch_size=kw.pop("batch_size", 1),
                     correct=correct, extracted=answer, **kw)


def failed(kind: str, latency: float | None = None) -> ArmResult:
    return ArmResult(output=None, latency_s=latency, error=kind, error_detail=f"{kind} detail")


def item(i: int, baseline: ArmResult, patched: ArmResult, task: str = "arith", prompt: str | None = None, gold: str = "4",
         query: str | None = None) -> ItemResult:
    prompt = prompt or f"question {i}"
    return ItemResult(id=f"q{i}", task=task, prompt=prompt, query=query or f"Q: {prompt}\nA:", gold=gold,
                      baseline=baseline, patched=patched)


def run_record(**overrides: Any) -> RunRecord:
    record = RunRecord(model=ModelRecord("tiny", "hookbench/tiny", None),
                       server=ServerRecord("http://127.0.0.1:1", {"model": "tiny"}, "cpu", []),
                       generation=GenerationRecord("greedy", {}, {}, 4, 1, "{prompt}", "weights", "one generation per answer", "both"),
                       patch=PatchRecord("scale_mlp", "abc123", "file", 1, 1.0, 1, None, None, None, None, None, None),
                       dataset=DatasetRecord("gsm8k", "gsm8k", "fp-1", 7, 0, "all", 0.5),
                       scorer={"name": "numeric"}, requests=RequestCounts(14, 0), stats=StatsRecord(0.05))
    return dataclasses.replace(record, **overrides)
