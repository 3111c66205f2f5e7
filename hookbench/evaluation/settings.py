"""The typed settings and parts one job runs with: plain dataclasses, so any module can hold them
without pulling in the server launcher, MLflow or pandas (`parts.build_parts` fills them from config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hookbench.evaluation.items import Dataset

if TYPE_CHECKING:
    from hookbench.evaluation.guards import Guard
    from hookbench.evaluation.patches import PatchSource
    from hookbench.evaluation.scorers import Scorer
    from hookbench.hookapi.client import HookClient


@dataclass(frozen=True)
class ModelInfo:
    name: str
    hf_id: str | None
    revision: str | None
    apply_mode: str


@dataclass(frozen=True)
class GenerationSettings:
    """model.generation, model.prompt and generation.samples; no defaults here: they are the config's."""

    preset: str
    batch_size: int
    seed: int | None
    max_new_tokens: int | None
    chat: bool | None  # None: the server decides prompting
    template: str
    samples: int

    def query(self, prompt: str) -> str:
        """`{prompt}` in the template is replaced by the item's prompt; other braces are left alone."""
        return self.template.replace("{prompt}", prompt)


@dataclass(frozen=True)
class Settings:
    """What a job reads from its config, typed (parts.settings_from); the defaults are the config's only."""

    model: ModelInfo
    generation: GenerationSettings
    metric: str  # both | accuracy | loss
    loss_prefix: str  # loss.answer_prefix
    loss_chat: bool
    loss_answer: str  # loss.answer: the gold's wording ({gold})
    screen_size: int | None
    screen_threshold: float
    alpha: float
    target_effect: float  # stats.target_effect: the change items_needed is planned for
    warn_share: float
    compare_prompt: str | None = None  # compare.prompt: the prompting arm's prompt change, if any

    @property
    def generates(self) -> bool:
        return self.metric in ("both", "accuracy")

    @property
    def measures_loss(self) -> bool:
        return self.metric in ("both", "loss")


@dataclass
class Parts:
    """What one job runs with, built from config before any generation."""

    dataset: Dataset
    scorer: Scorer
    patch_source: PatchSource
    client: HookClient
    settings: Settings
    phase_s: dict[str, float] = field(default_factory=dict)
    guards: list[Guard] = field(default_factory=list)  # guard tasks, generated in both arms beside the target
