"""One redaction step for everything a run logs (params, tags, config files, context, reports), so a
secret given on the command line or in a URL never reaches the store."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|credentials?)$", re.I)  # `*_env` names are fine
MASK = "***"


class Redactor:
    """Finds the secrets of a config (values under secret-looking keys, passwords in URLs) and masks
    them wherever they appear: in params, tags, YAML and JSON text."""

    def __init__(self, container: dict | None = None):
        self.secrets: set[str] = set()
        if container is not None:
            self._collect(container)

    def _collect(self, node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                self._collect(v, str(k))
        elif isinstance(node, list):
            for v in node:
                self._collect(v, key)
        elif isinstance(node, str) and node:
            if SECRET_KEY.search(key):
                self.secrets.add(node)
            password = urlsplit(node).password if "://" in node else None
            if password:
                self.secrets.add(password)
            for override in re.findall(r"([\w.+~]+)=(\S+)", node) if "=" in node else []:
                if SECRET_KEY.search(override[0]):
                    self.secrets.add(override[1])

    def add_overrides(self, overrides: list[str]) -> None:
        """Command-line overrides: `+model.server.launch.env.HF_TOKEN=abc` makes `abc` a secret."""
        for o in overrides:
            k, _, v = o.partition("=")
            if v and SECRET_KEY.search(k.lstrip("+~")):
                self.secrets.add(v)

    def text(self, s: str) -> str:
        # a secret of 1-3 characters would mask every such run of text (every "1" in the results): such a
        # value is still dropped from params by its key, but not searched for in text
        for secret in sorted((x for x in self.secrets if len(x) > 3), key=len, reverse=True):
            s = s.replace(secret, MASK)
        return s

    def value(self, v: Any) -> Any:  # JSON-like: str, dict, list, scalars
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        return v


def redact_url(url: str) -> str:
    """http://user:pw@host -> http://***@host."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rsplit('@', 1)[1]}"))
    return url


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """Dotted params of a nested dict; keys that look secret are dropped, long values cut."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if SECRET_KEY.search(str(k)):
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            s = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
            out[key] = s if len(s) <= 6000 else s[:5990] + "…"
    return out
