"""The prompting arm (`compare.prompt=...`): the unpatched model asked with a prompt change, on the
target's items, so a patch is compared with what asking differently buys (AxBench, 2025).

`compare.prompt` is a template over each item's prompt (`{prompt}` is replaced by it; without
`{prompt}` the text is put before it, on its own paragraph); the result then goes through
model.prompt.template like any item. The arm is generated on the clean server before the patch is
applied, under its own reuse key (the prompt text in it), so every job of a sweep shares its answers.
Three paired comparisons on the same items, with the job's own test: patch − baseline (the job's
verdict), prompt − baseline, and patch − prompt, the last deciding "the patch beats prompting".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hookbench.evaluation.results import ArmResult, ItemResult, per_item

if TYPE_CHECKING:  # statsmodels and scipy load when a job is summarised
    from hookbench.stats import Comparison


def prompted(prompt: str, item_prompt: str) -> str:
    """The item's prompt with the prompting arm's change."""
    return prompt.replace("{prompt}", item_prompt) if "{prompt}" in prompt else f"{prompt}\n\n{item_prompt}"


def prompted_items(items: list[ItemResult], prompt: str, query) -> list[ItemResult]:
    """One item result per target item result; the prompted answer goes in its `patched` slot."""
    return [ItemResult(r.id, r.task, prompted(prompt, r.prompt), query(prompted(prompt, r.prompt)), r.gold, r.draw)
            for r in items]


def paired(first: list[ArmResult], second: list[ArmResult], like: list[ItemResult]) -> list[ItemResult]:
    """Records whose baseline is `first` and patched is `second`, item by item (ids and clusters of `like`)."""
    return [replace(r, baseline=a, patched=b) for r, a, b in zip(like, first, second)]


@dataclass(frozen=True)
class PromptResult:
    """The prompting arm's accuracy and its two comparisons (each the job's own paired test)."""

    prompt: str
    accuracy: float
    vs_baseline: Comparison  # prompt − baseline
    patch_vs_prompt: Comparison  # patched − prompt


def summarize_prompt(items: list[ItemResult], prompts: list[ItemResult], prompt: str, draws: int, alpha: float,
                     target_effect: float) -> PromptResult:
    from hookbench.stats import compare_arms

    answers = [p.patched for p in prompts]
    vs_base = paired([r.baseline for r in items], answers, items)
    patch_vs = paired(answers, [r.patched for r in items], items)
    out = []
    for pairs in (vs_base, patch_vs):
        b, p, clusters, _ = per_item(pairs, count_patch_failures=False)
        out.append(compare_arms(b, p, clusters=clusters, draws=draws, alpha=alpha, target_effect=target_effect))
    scored = [float(a.correct) for a in answers if a.scored]
    return PromptResult(prompt, sum(scored) / len(scored) if scored else math.nan, out[0], out[1])
