"""Building swappable parts from config groups with `_target_`, keeping our error messages."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from hookbench.base.errors import ConfigError, HookbenchError


def _missing(group: str, e: MissingMandatoryValue) -> ConfigError:
    key = e.full_key if e.full_key and e.full_key.startswith(group + ".") else f"{group}.{e.full_key or '?'}"
    return ConfigError(f"{key} is not set: set {key}=... on the command line")


def build(node: DictConfig, group: str):
    """instantiate() a config group. Hydra wraps whatever the target raises; a hookbench error
    (a bad file, line or field) is surfaced as itself so it keeps its message and exit code."""
    try:
        return instantiate(node)
    except MissingMandatoryValue as e:
        raise _missing(group, e) from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, HookbenchError):
            raise cause from None
        if isinstance(cause, MissingMandatoryValue):
            raise _missing(group, cause) from None
        raise ConfigError(f"{group}: could not build it from its config: {cause or e}") from None


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain, resolved dicts and lists (a mapping node is always a dict)."""
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]  # keys of a config mapping are strings
