"""The run record: everything a job's numbers depend on, as one typed object.

`to_dict()` is context.json and the report's "Run" table; tracking reads tags and params from the
fields, never from dotted strings.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from hookbench.base import mlflow_keys

# the distributions a run's numbers can depend on; python is added from the interpreter
VERSIONED = ("torch", "transformers", "mlflow", "hydra-core", "omegaconf", "statsmodels", "hookbench")


def package_versions() -> dict[str, str | None]:
    """Installed versions (None: not installed, e.g. torch on a client-only install), read from package
    metadata so nothing heavy is imported."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def server_versions(identity: dict) -> dict[str, str]:
    """The version fields the server reports in /api/health (its identity); a stock server has none."""
    return {k: str(v) for k, v in identity.items() if "version" in k.lower() and v is not None}


@dataclass(frozen=True)
class ScreenResult:
    """The loss screen: the mean loss delta on the first `size` items against `threshold`."""

    size: int  # items with a loss in both arms
    threshold: float
    delta: float  # NaN when no item had both losses
    passed: bool


@dataclass(frozen=True)
class ModelRecord:
    name: str
    hf_id: str | None
    revision: str | None


@dataclass(frozen=True)
class ServerRecord:
    url: str
    identity: dict[str, Any]  # what the server says it is (/api/health), as it said it
    device: str | None
    extensions: list[str]


@dataclass(frozen=True)
class GenerationRecord:
    preset: str
    preset_config: dict[str, Any]  # the preset as the server reports it (/api/configs)
    extras: dict[str, Any]  # what each generate request added (seed, max_new_tokens, chat)
    batch_size: int
    samples: int
    template: str
    apply_mode: str
    patched_path: str  # how the patched arm was generated, in words
    metric: str


@dataclass(frozen=True)
class PatchRecord:
    name: str
    hash: str
    source: str
    n_suggestions: int
    strength: float
    hook_count: int | None  # as the server answered the apply (None: nothing applied)
    skipped: Any  # the server's own report of edits it skipped
    apply_response: Any
    hooks_state: Any
    probe_loss_clean: list[float | None] | None
    probe_loss_patched: list[float | None] | None
    probe_loss_delta: list[float | None] | None  # patched - clean per probe; None: not measured
    weight_digests: dict | None = None  # SHA-256 per rank before / patched / restored (scope.ServerScope.digests)


@dataclass(frozen=True)
class DatasetRecord:
    name: str
    source: str
    fingerprint: str
    n_items: int
    skipped: int
    split: str
    holdout: float


@dataclass(frozen=True)
class RequestCounts:
    """What this job asked of the server."""

    generations: int
    loss: int


@dataclass(frozen=True)
class StatsRecord:
    alpha: float


@dataclass
class RunRecord:
    model: ModelRecord
    server: ServerRecord
    generation: GenerationRecord
    patch: PatchRecord
    dataset: DatasetRecord
    scorer: dict[str, Any]  # Scorer.context(): what each scorer's grades depend on (differs per scorer)
    requests: RequestCounts
    stats: StatsRecord
    screen: ScreenResult | None = None
    git: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=package_versions)  # python and packages of this client

    def to_dict(self) -> dict:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """Tags that let a user find and trace a run in the MLflow UI."""
        return {mlflow_keys.TAG_MODEL: self.model.name, mlflow_keys.PATCH_NAME: self.patch.name,
                mlflow_keys.PATCH_HASH: self.patch.hash, mlflow_keys.DATASET_NAME: self.dataset.name,
                mlflow_keys.DATASET_FINGERPRINT: self.dataset.fingerprint,
                mlflow_keys.SERVER_DEVICE: str(self.server.device), mlflow_keys.SERVER_URL: self.server.url,
                mlflow_keys.TAG_SERVER_IDENTITY: json.dumps(self.server.identity, sort_keys=True),
                mlflow_keys.TAG_WEIGHT_DIGESTS: digest_tag(self.patch.weight_digests),
                **self.version_tags()}

    def version_tags(self) -> dict[str, str]:
        """version.<package> for this client, version.server.<field> for the server's own."""
        ours = {f"{mlflow_keys.TAG_VERSION_PREFIX}{k}": str(v) for k, v in self.versions.items() if v is not None}
        theirs = server_versions(self.server.identity or {})
        return {**ours, **{f"{mlflow_keys.TAG_VERSION_PREFIX}server.{k}": v for k, v in theirs.items()}}

    def params(self) -> dict[str, str]:
        """Traceability params beyond the config: content hashes and the generation settings as served."""
        return {mlflow_keys.PATCH_HASH: self.patch.hash, mlflow_keys.PATCH_SOURCE: self.patch.source,
                mlflow_keys.DATASET_FINGERPRINT: self.dataset.fingerprint,
                mlflow_keys.GEN_PRESET_CONFIG: json.dumps(self.generation.preset_config, sort_keys=True),
                mlflow_keys.GEN_EXTRAS: json.dumps(self.generation.extras, sort_keys=True),
                mlflow_keys.GEN_PATCHED_PATH: self.generation.patched_path}

    def rows(self) -> list[tuple[str, object]]:
        """(key, value) rows for report.md, one per leaf of the first two levels."""
        return [(f"{section}.{k}", v) for section, values in self.to_dict().items() if isinstance(values, dict)
                for k, v in values.items()]


def digest_tag(digests: dict | None) -> str:
    """What the weight digests said about restore, in one line for the MLflow UI."""
    if not digests:
        return "not checked (the server offers no weights_digest, or nothing was applied)"
    n = len(digests["tensors"])
    return f"{digests.get('restore', 'not restored')} after restore ({n} tensors, {digests['algorithm']} per rank)"
