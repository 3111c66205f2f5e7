"""Patch sets: lists of Suggestions (hook-api.md), validated, content-hashed and frozen to JSON.

A patch set is identified by the hash of its normalised edits (tensor, operation, value, canonical
target, in order), not by where it came from: the same edits asked for twice are the same patch.
`patch.strength` scales the edits before hashing, so a logged patch.json is the set that ran.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hookbench.base.errors import PatchError
from hookbench.hookapi import contract
from hookbench.hookapi.contract import ADD, SCALE

log = logging.getLogger(__name__)

FORMAT = "hookbench.patch/v1"
NO_PATCH_SOURCE = "none"  # the only source a PatchSet may be empty from (the A/A job)
# how an edit's value moves with strength s: s=1 is the edit as written, s→0 tends to doing nothing
_STRENGTHENED = {SCALE: lambda v, s: 1 + s * (v - 1), ADD: lambda v, s: s * v}


@dataclass
class PatchSet:
    name: str
    suggestions: list[dict]
    source: str  # "suggestions:<capability>@<server>", "file:<path>" or "none"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.suggestions and self.source != NO_PATCH_SOURCE:
            raise PatchError(f"patch set '{self.name}' ({self.source}) is empty; "
                             f"for a job with nothing applied use patch=none")

    @property
    def hash(self) -> str:
        edits = [{"tensor_name": s["tensor_name"], "operation": s["operation"], "value": float(s["value"]),
                  "target": contract.canonical_target(s.get("target", "all"))} for s in self.suggestions]
        return hashlib.sha256(json.dumps(edits, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"format": FORMAT, "name": self.name, "hash": self.hash, "source": self.source,
                "metadata": self.metadata, "suggestions": self.suggestions}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        tmp.replace(path)
        return path


def normalise(s: dict, where: str, apply_mode: str) -> dict:
    """One suggestion checked before anything is sent: the server would apply NaN silently (§4)."""
    try:
        checked = contract.Suggestion.check(s, apply_mode)
    except contract.SuggestionError as e:
        raise PatchError(f"{where}.{e.field}: {e.message}" if e.field else f"{where}: {e.message}") from None
    return {**s, "value": checked.value, "target": contract.canonical_target(checked.target)}


def validate(suggestions: list, where: str, apply_mode: str) -> list[dict]:
    """A non-empty list of normalised suggestions (an empty patch is only ever patch=none)."""
    if apply_mode not in contract.APPLY_MODES:
        raise PatchError(f"apply_mode {apply_mode!r} is not one of {', '.join(contract.APPLY_MODES)}")
    if not isinstance(suggestions, list):
        raise PatchError(f"{where}: expected a list of suggestions")
    if not suggestions:
        raise PatchError(f"{where}: the patch set is empty (for a job with nothing applied use patch=none)")
    return [normalise(s, f"{where}[{i}]", apply_mode) for i, s in enumerate(suggestions)]


def check_strength(strength, allow_zero: bool = False) -> float:
    """`patch.strength` as a float, refused early when it is not a finite number (or is 0)."""
    if not math.isfinite(strength):  # its type the schema checked at compose time
        raise PatchError(f"patch.strength={strength!r} is not a finite number")
    if strength == 0 and not allow_zero:
        raise PatchError("patch.strength=0: strength 0 is the identity; "
                         "use patch=none for the A/A (noise floor) job")
    return float(strength)


def strengthen(suggestions: list[dict], strength: float) -> list[dict]:
    """Each edit moved toward (s<1) or past (s>1) its full effect: scale v -> 1+s(v-1), add v -> s*v.

    Clamps and normalize have no such line through 'doing nothing', so they refuse s != 1."""
    strength = check_strength(strength)
    if strength == 1:
        return suggestions
    out = []
    for i, s in enumerate(suggestions):
        rule = _STRENGTHENED.get(s["operation"])
        if rule is None:
            raise PatchError(f"patch.strength={strength:g}: edit {i} ({s['tensor_name']}, {s['operation']}) "
                             f"cannot be scaled; only {', '.join(_STRENGTHENED)} take a strength other than 1")
        out.append({**s, "value": rule(float(s["value"]), strength)})
    return out


def with_strength(patch: PatchSet, strength: float) -> PatchSet:
    """The patch set at `strength`; metadata records the cumulative strength and the unscaled hash
    (strengths compose multiplicatively, so a logged scaled set loaded again at 1 stays as it ran)."""
    strength = check_strength(strength)
    meta = dict(patch.metadata)
    before = float(meta.get("strength", 1.0))
    if strength != 1:
        meta.setdefault("unscaled_hash", patch.hash)
    meta["strength"] = before * strength
    return PatchSet(patch.name, strengthen(patch.suggestions, strength), patch.source, meta)


def load_patch_file(path: str | Path, apply_mode: str, name: str | None = None) -> PatchSet:
    """A frozen patch JSON (hookbench format) or a bare list of Suggestions."""
    path = Path(path)
    if not path.is_file():
        raise PatchError(f"patch file not found: {path} (set patch.path=...)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PatchError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    # json accepts NaN/Infinity literals; normalise() refuses them with the index named
    raw, meta, source = (data.get("suggestions"), data.get("metadata", {}), data.get("source")) \
        if isinstance(data, dict) else (data, {}, None)
    suggestions = validate(raw, f"{path}: suggestions", apply_mode)
    return PatchSet(name or (data.get("name") if isinstance(data, dict) else None) or path.stem,
                    suggestions, source or f"file:{path}", meta)


class PatchSource(Protocol):
    """A `patch=` option: what a job resolves against its server into the PatchSet it applies."""

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet: ...


class FileSource:
    """`patch=file`: a patch JSON from the repo or any path."""

    def __init__(self, path: str, name: str = "file", strength: float = 1.0):
        self.path, self.name, self.strength = path, name, check_strength(strength)

    def check(self, model_name: str, apply_mode: str) -> None:
        """Before the server starts: the file exists, parses, and every edit is valid at this strength."""
        self.resolve(None, model_name, apply_mode)

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet:
        return with_strength(load_patch_file(self.path, apply_mode, self.name), self.strength)


class SuggestionsSource:
    """`patch=general|math|reasoning`: asked of the server once, then frozen (unscaled) and reused (§7)."""

    def __init__(self, capability: str, name: str | None = None, freeze_dir: str = "patches",
                 strength: float = 1.0):
        self.capability, self.name, self.freeze_dir = capability, name or capability, Path(freeze_dir)
        self.strength = check_strength(strength)

    def frozen_path(self, model_name: str) -> Path:
        return self.freeze_dir / model_name / f"{self.capability}.json"

    def check(self, model_name: str, apply_mode: str) -> None:
        """Before the server starts: a frozen set, when there is one, must load at this strength."""
        path = self.frozen_path(model_name)
        if path.exists():
            with_strength(load_patch_file(path, apply_mode, self.name), self.strength)

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet:
        return with_strength(self._frozen(client, model_name, apply_mode), self.strength)

    def _frozen(self, client, model_name: str, apply_mode: str) -> PatchSet:
        path = self.frozen_path(model_name)
        if path.exists():
            return load_patch_file(path, apply_mode, self.name)
        log.info("asking %s for %s suggestions (frozen to %s afterwards)...", client.base_url, self.capability,
                 self.frozen_path(model_name))
        raw = client.suggestions(self.capability)
        if not raw:
            raise PatchError(
                f"the server returned no suggestions for capability '{self.capability}' "
                f"(contract §7: its agent may be unavailable); nothing to evaluate"
            )
        suggestions = validate(raw, f"/api/suggestions[{self.capability}]", apply_mode)
        patch = PatchSet(self.name, suggestions, f"suggestions:{self.capability}@{client.base_url}", {
            "capability": self.capability, "model": model_name,
            "frozen_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })
        patch.save(path)
        return patch


class NoPatch:
    """`patch=none`, the A/A job: an empty patch set, so the patched arm is a second fresh baseline
    with nothing applied; its delta shows the noise floor. Strength does not change nothing."""

    def __init__(self, name: str = "none", strength: float = 1.0):
        self.name, self.strength = name, check_strength(strength, allow_zero=True)

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet:
        return PatchSet(self.name, [], NO_PATCH_SOURCE, {"strength": self.strength})
