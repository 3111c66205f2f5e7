"""The config schema: typed dataclasses in Hydra's ConfigStore, so a wrong value (a closed-set key
out of its set, a number that is not one) is refused when Hydra composes, with Hydra's own message
naming the key, before any MLflow run or server starts. conf/*.yaml hold the values; each file
names its schema first in its `defaults` (`base_config`, `base_model`, `base_<option>` ...).

Checks a type cannot express (positive counts, ranges, cross-field rules) stay with the code that
uses the value, each with its own message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class Metric(StrEnum):
    both = "both"
    accuracy = "accuracy"
    loss = "loss"


class Correction(StrEnum):
    holm = "holm"
    bh = "bh"
    none = "none"


class EngineName(StrEnum):
    hf = "hf"
    vllm = "vllm"


class ApplyMode(StrEnum):
    weights = "weights"
    hooks = "hooks"


class Split(StrEnum):
    all = "all"
    dev = "dev"
    test = "test"


class JudgeBackend(StrEnum):
    hook = "hook"
    openai = "openai"


@dataclass
class LaunchConfig:
    enabled: bool = False
    engine: EngineName = EngineName.hf  # the reference server's engine (vllm: its own venv, see `python`)
    python: str | None = None  # the interpreter for {python}; None: hookbench's own
    tensor_parallel_size: int = 1  # vllm engine only
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    startup_timeout_s: float = 300.0


@dataclass
class ServerConfig:
    url: str | None = None
    token_env: str | None = None
    timeout_s: float = 300.0
    retries: int = 3
    launch: LaunchConfig | None = None


@dataclass
class ModelGeneration:
    preset: str = MISSING
    max_new_tokens: int | None = None
    seed: int | None = None
    batch_size: int = 8


@dataclass
class PromptConfig:
    template: str = "{prompt}"
    chat: bool | None = None


@dataclass
class ModelConfig:
    name: str = MISSING
    hf_id: str | None = None
    revision: str | None = None
    apply_mode: ApplyMode = ApplyMode.weights
    server: ServerConfig = field(default_factory=ServerConfig)
    generation: ModelGeneration = field(default_factory=ModelGeneration)
    prompt: PromptConfig = field(default_factory=PromptConfig)


@dataclass
class DatasetBase:
    _target_: str = MISSING
    name: str = MISSING
    split: Split = Split.all
    holdout: float = 0.5
    limit: int | None = None
    sample: int | None = None
    seed: int = 0


@dataclass
class ArithmeticConfig(DatasetBase):
    n: int = 200
    terms: int = 2
    min_value: int = 0
    max_value: int = 14
    template: str = MISSING
    allow_repeats: bool = False


@dataclass
class Gsm8kConfig(DatasetBase):
    hf_id: str = "openai/gsm8k"
    hf_config: str = "main"
    hf_split: str = "test"
    path: str | None = None


@dataclass
class JsonlConfig(DatasetBase):
    path: str = MISSING
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    id_field: str | None = "id"
    task_field: str | None = "task"
    skip_missing: bool = False


@dataclass
class PatchBase:
    _target_: str = MISSING
    name: str = MISSING
    strength: float = 1.0


@dataclass
class FilePatchConfig(PatchBase):
    path: str = MISSING


@dataclass
class SuggestionsPatchConfig(PatchBase):
    capability: str = MISSING
    freeze_dir: str = MISSING


@dataclass
class ScorerBase:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class JudgeConfig(ScorerBase):
    backend: JudgeBackend = JudgeBackend.hook
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    batch_size: int = 8
    preset: str | None = None
    timeout_s: float = 60.0
    prompt: str = MISSING


@dataclass
class GenerationConfig:
    samples: int = 1


@dataclass
class LossConfig:
    answer_prefix: str | None = None  # None: "" in chat format, else the hook API's " #### "
    chat: bool | None = None  # None: as generation (model.prompt.chat)
    answer: str = "{gold}"  # the gold's wording; {gold} is the gold answer


@dataclass
class ScreenConfig:
    size: int | None = None
    threshold: float = 0.0


@dataclass
class StatsConfig:
    alpha: float = 0.05
    correction: Correction = Correction.holm
    target_effect: float = 0.03


@dataclass
class ReproduceConfig:
    margin: float | None = None  # null: stats.target_effect


@dataclass
class FailuresConfig:
    warn_share: float = 0.1
    max_connection_failures: int = 3


@dataclass
class MlflowConfig:
    dir: str = MISSING
    tracking_uri: str = MISSING
    artifact_location: str = MISSING
    experiment: str = "hookbench"


@dataclass
class ReuseConfig:
    enabled: bool = True
    path: str | None = None


@dataclass
class GuardConfig:
    margin: float = 0.05  # the accuracy drop every guard tolerates unless its entry sets its own


@dataclass
class CompareConfig:
    prompt: str | None = None  # a prompting arm: the unpatched model with this prompt ({prompt}: the query)


@dataclass
class Config:
    """The whole job config; the four groups are typed by their own option's schema."""

    model: Any = MISSING
    dataset: Any = MISSING
    patch: Any = MISSING
    scorer: Any = MISSING
    metric: Metric = Metric.both
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    failures: FailuresConfig = field(default_factory=FailuresConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    reuse: ReuseConfig = field(default_factory=ReuseConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)
    guards: list[Any] = field(default_factory=list)  # dataset options (or mappings) judged by non-inferiority
    guard: GuardConfig = field(default_factory=GuardConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    search: Any = None  # hookbench study only (conf/search/, checked by studies/search_space.py)


# (group, name, schema); a group option's yaml names it first in its `defaults` as `/<name>@_here_`
SCHEMAS = (
    (None, "base_config", Config),
    ("model", "base_model", ModelConfig),
    ("dataset", "base_arithmetic", ArithmeticConfig),
    ("dataset", "base_gsm8k", Gsm8kConfig),
    ("dataset", "base_jsonl", JsonlConfig),
    ("patch", "base_file", FilePatchConfig),
    ("patch", "base_suggestions", SuggestionsPatchConfig),
    ("patch", "base_none", PatchBase),
    ("scorer", "base_scorer", ScorerBase),
    ("scorer", "base_judge", JudgeConfig),
)


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent); must run before Hydra composes."""
    cs = ConfigStore.instance()
    for _group, name, node in SCHEMAS:  # outside the groups, so `--help` lists only real options
        cs.store(name=name, node=node)


def completed(logged: DictConfig) -> DictConfig:
    """A config logged by an older hookbench, with the keys it lacks filled from this schema's defaults
    (a group option's own keys are the logged ones): the schema stays the one home of every default."""
    defaults = OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(Config), enum_to_str=True))
    merged = OmegaConf.merge(defaults, logged)
    assert isinstance(merged, DictConfig)
    return merged


register()
