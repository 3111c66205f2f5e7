"""The run record: everything a job's numbers depend on, as one typed object.

`to_dict()` is context.json and the report's "Run" table; tracking reads tags and params from the
fields, never from dotted strings.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata

from hookbench import names

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


@dataclass
class RunRecord:
    model: dict  # name, hf_id, revision
    server: dict  # url, identity, device, extensions
    generation: dict  # preset, preset_config, extras, batch_size, samples, template, apply_mode, patched_path
    patch: dict  # name, hash, source, strength, hook_count, skipped, probe losses, ...
    dataset: dict  # name, source, fingerprint, n_items, skipped, split, holdout
    scorer: dict
    requests: dict  # generations, loss: what this job asked of the server
    stats: dict = field(default_factory=dict)
    screen: dict | None = None
    git: dict = field(default_factory=dict)
    versions: dict = field(default_factory=package_versions)  # python and packages of this client

    def to_dict(self) -> dict:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """Tags that let a user find and trace a run in the MLflow UI."""
        return {names.TAG_MODEL: self.model["name"], names.PATCH_NAME: self.patch["name"],
                names.PATCH_HASH: self.patch["hash"], names.DATASET_NAME: self.dataset["name"],
                names.DATASET_FINGERPRINT: self.dataset["fingerprint"],
                names.SERVER_DEVICE: str(self.server["device"]), names.SERVER_URL: self.server["url"],
                names.TAG_SERVER_IDENTITY: json.dumps(self.server["identity"], sort_keys=True),
                names.TAG_WEIGHT_DIGESTS: digest_tag(self.patch.get("weight_digests")),
                **self.version_tags()}

    def version_tags(self) -> dict[str, str]:
        """version.<package> for this client, version.server.<field> for the server's own."""
        ours = {f"{names.TAG_VERSION_PREFIX}{k}": str(v) for k, v in self.versions.items() if v is not None}
        theirs = server_versions(self.server.get("identity") or {})
        return {**ours, **{f"{names.TAG_VERSION_PREFIX}server.{k}": v for k, v in theirs.items()}}

    def params(self) -> dict[str, str]:
        """Traceability params beyond the config: content hashes and the generation settings as served."""
        return {names.PATCH_HASH: self.patch["hash"], names.PATCH_SOURCE: self.patch["source"],
                names.DATASET_FINGERPRINT: self.dataset["fingerprint"],
                names.GEN_PRESET_CONFIG: json.dumps(self.generation["preset_config"], sort_keys=True),
                names.GEN_EXTRAS: json.dumps(self.generation["extras"], sort_keys=True),
                names.GEN_PATCHED_PATH: self.generation["patched_path"]}

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
