"""Patch sets: lists of Suggestions (hook-api.md), validated, content-hashed and frozen to JSON.

A patch set is identified by the hash of its normalised edits (tensor, operation, value, target, in
order), not by where it came from: the same edits asked for twice are the same patch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from hookbench.errors import PatchError

FORMAT = "hookbench.patch/v1"
WEIGHT_OPS = ("scale", "add", "clamp_max", "clamp_min")
HOOK_OPS = WEIGHT_OPS + ("normalize",)
TARGET_RE = re.compile(r"^(all|(top|bottom) (\d+(\.\d+)?)%)$")


@dataclass
class PatchSet:
    name: str
    suggestions: list[dict]
    source: str  # "suggestions:<capability>@<server>" or "file:<path>"
    metadata: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        edits = [
            {k: s[k] for k in ("tensor_name", "operation", "target")} | {"value": float(s["value"])}
            for s in self.suggestions
        ]
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
    if not isinstance(s, dict):
        raise PatchError(f"{where}: a suggestion must be an object, got {type(s).__name__}")
    for key in ("tensor_name", "operation", "value"):
        if key not in s:
            raise PatchError(f"{where}: missing field '{key}'")
    if not isinstance(s["tensor_name"], str) or not s["tensor_name"]:
        raise PatchError(f"{where}.tensor_name: must be a non-empty string")
    ops = HOOK_OPS if apply_mode == "hooks" else WEIGHT_OPS
    if s["operation"] not in ops:
        raise PatchError(f"{where}.operation: '{s['operation']}' is not one of {', '.join(ops)} ({apply_mode} mode)")
    value = s["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PatchError(f"{where}.value: {value!r} is not a finite number")
    target = str(s.get("target", "all")).strip().lower()
    m = TARGET_RE.match(target)
    if not m or (m.group(3) and not 0 < float(m.group(3)) <= 100):
        raise PatchError(f"{where}.target: '{s.get('target')}' is not 'all', 'top N%' or 'bottom N%'")
    return {**s, "value": float(value), "target": target}


def validate(suggestions: list, where: str, apply_mode: str) -> list[dict]:
    if not isinstance(suggestions, list):
        raise PatchError(f"{where}: expected a list of suggestions")
    return [normalise(s, f"{where}[{i}]", apply_mode) for i, s in enumerate(suggestions)]


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
    if not suggestions:
        raise PatchError(f"{path}: the patch set is empty")
    return PatchSet(name or (data.get("name") if isinstance(data, dict) else None) or path.stem,
                    suggestions, source or f"file:{path}", meta)


class FileSource:
    """`patch=file`: a patch JSON from the repo or any path."""

    def __init__(self, path: str, name: str = "file"):
        self.path, self.name = path, name

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet:
        return load_patch_file(self.path, apply_mode, self.name)


class SuggestionsSource:
    """`patch=general|math|reasoning`: asked of the server once, then frozen and reused (§7)."""

    def __init__(self, capability: str, name: str | None = None, freeze_dir: str = "patches"):
        self.capability, self.name, self.freeze_dir = capability, name or capability, Path(freeze_dir)

    def frozen_path(self, model_name: str) -> Path:
        return self.freeze_dir / model_name / f"{self.capability}.json"

    def resolve(self, client, model_name: str, apply_mode: str) -> PatchSet:
        path = self.frozen_path(model_name)
        if path.exists():
            return load_patch_file(path, apply_mode, self.name)
        raw = client.suggestions(self.capability)
        if not raw:
            raise PatchError(
                f"the server returned no suggestions for capability '{self.capability}' "
                f"(contract §7: its agent may be unavailable); nothing to evaluate"
            )
        suggestions = validate(raw, f"/api/suggestions[{self.capability}]", apply_mode)
        patch = PatchSet(self.name, suggestions, f"suggestions:{self.capability}@{client.base_url}", {
            "capability": self.capability, "model": model_name,
            "frozen_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        })
        patch.save(path)
        return patch
