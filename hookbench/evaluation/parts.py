"""The edge where config becomes parts: dataset, scorer, patch source, client and typed settings.

Everything here reads the Hydra config; nothing after it does. `Evaluation` takes a `Parts`, so the
loop can be driven in-process (tests build Parts against a stand-in server) as well as from the CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from hookbench.errors import ConfigError
from hookbench.evaluation.build import build, plain
from hookbench.evaluation.guards import Guard, build_guards, compose_guards
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.patches import PatchSource
from hookbench.evaluation.scorers import Scorer
from hookbench.evaluation.settings import GenerationSettings, ModelInfo, Parts, Settings
from hookbench.hookapi import contract
from hookbench.hookapi.client import HookClient
from hookbench.hookapi.launcher import check_launch, ensure_server, launched_token
from hookbench.paths import cache_root, sqlite_path


def _positive_int(value, key: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer{' or null' if allow_none else ''}, got {value!r}")
    return value


def settings_from(cfg: DictConfig) -> Settings:
    m, g = cfg.model, cfg.model.generation
    alpha = float(cfg.stats.alpha)
    if not 0 < alpha < 1:
        raise ConfigError(f"stats.alpha={alpha} must be between 0 and 1")
    target = float(cfg.stats.target_effect)
    if not 0 < target <= 1:
        raise ConfigError(f"stats.target_effect={target} must be in (0, 1] (a change in accuracy)")
    return Settings(
        model=ModelInfo(m.name, m.get("hf_id"), m.get("revision"), m.apply_mode),
        generation=GenerationSettings(
            preset=g.preset, batch_size=_positive_int(g.batch_size, "model.generation.batch_size"),
            seed=g.get("seed"), max_new_tokens=g.get("max_new_tokens"), chat=m.prompt.get("chat"),
            template=m.prompt.template, samples=_positive_int(cfg.generation.samples, "generation.samples")),
        metric=cfg.metric, loss_prefix=_loss_prefix(cfg), loss_chat=_loss_chat(cfg), loss_answer=str(cfg.loss.answer),
        screen_size=_positive_int(cfg.screen.size, "screen.size", allow_none=True),
        screen_threshold=float(cfg.screen.threshold), alpha=alpha, target_effect=target,
        warn_share=float(cfg.failures.warn_share), compare_prompt=_compare_prompt(cfg),
    )


def _compare_prompt(cfg: DictConfig) -> str | None:
    """compare.prompt, checked: a prompting arm needs text and a patch to compare it with."""
    prompt = cfg.get("compare", {}).get("prompt")
    if prompt is None:
        return None
    if not str(prompt).strip():
        raise ConfigError("compare.prompt is empty: give the prompt change to compare the patch with, or null")
    if cfg.patch.name == "none":
        raise ConfigError("compare.prompt with patch=none: a prompting arm is compared with a patch; "
                          "choose a patch (patch=math, patch=file ...) or leave compare.prompt null")
    return str(prompt)


def _loss_chat(cfg: DictConfig) -> bool:
    """The loss in the format the job generates in: generation's chat setting unless loss.chat says otherwise."""
    chat = cfg.loss.get("chat")
    return bool(cfg.model.prompt.get("chat")) if chat is None else bool(chat)


def _loss_prefix(cfg: DictConfig) -> str:
    prefix = cfg.loss.get("answer_prefix")
    if prefix is not None:
        return str(prefix)
    return "" if _loss_chat(cfg) else contract.LOSS_ANSWER_PREFIX


def check_url(cfg: DictConfig) -> None:
    """A server to talk to, named before anything runs: model.server.url, or a launched server. An
    unset variable the option reads the URL from is named, never replaced by some localhost."""
    server = cfg.model.server
    if server.get("url") or (server.launch and server.launch.get("enabled")):
        return
    raw = str(server._get_node("url")._value())  # the option's own spelling, e.g. ${oc.env:QWEN72B_URL,null}
    env = re.search(r"oc\.env:\s*([A-Za-z_]\w*)", raw)
    if env:
        raise ConfigError(f"model={cfg.model.name} reads its server's URL from ${env.group(1)}, which is not "
                          f"set: export {env.group(1)}=http://HOST:PORT (or set model.server.url=..., or "
                          "model.server.launch.enabled=true to start the reference server here)")
    raise ConfigError(f"model.server.url is not set: model={cfg.model.name} talks to a server you run; set "
                      "model.server.url=http://HOST:PORT (`hookbench check URL` tries one first)")


@dataclass
class Offline:
    """The parts that need no server: built and checked before a server starts or a run is created."""

    settings: Settings
    dataset: Dataset
    scorer: Scorer
    patch_source: PatchSource
    guards: list[Guard] = field(default_factory=list)


def check_inputs(cfg: DictConfig) -> Offline:
    """Config values, dataset file and fields, scorer against the golds, the patch file and its edits:
    every user mistake that needs no server fails here, before a server starts or a run is created."""
    settings = settings_from(cfg)
    launch = cfg.model.server.launch
    check_launch(plain(launch) if launch else None)
    check_url(cfg)
    dataset = build(cfg.dataset, "dataset")
    scorer = build(cfg.scorer, "scorer")
    scorer.check_golds(dataset.items)
    patch_source = build(cfg.patch, "patch")
    check = getattr(patch_source, "check", None)
    if check is not None:  # a patch file is read and validated now, not after the server started
        check(settings.model.name, settings.model.apply_mode)
    compose_guards(cfg)  # the composed guards replace their names in cfg before the run logs it
    guards = build_guards(cfg, dataset, settings.generation) if settings.generates else []
    return Offline(settings, dataset, scorer, patch_source, guards)


def connect(cfg: DictConfig, offline: Offline) -> Parts:
    """Start (or find) the server and bind the parts to it."""
    m = cfg.model
    t0 = time.perf_counter()
    launch = plain(m.server.launch) if m.server.launch else None
    url = ensure_server(launch, m.server.url)
    # a server this process launched has its own fresh token; token_env is for a server at model.server.url
    token = launched_token(url) or (os.environ.get(m.server.token_env) if m.server.get("token_env") else None)
    client = HookClient(url, token=token, timeout_s=m.server.timeout_s, retries=m.server.retries,
                        max_connection_failures=cfg.failures.max_connection_failures)
    offline.scorer.bind_client(client)  # a judge on the evaluated server grades through the job's own client
    for g in offline.guards:
        g.scorer.bind_client(client)
    return Parts(offline.dataset, offline.scorer, offline.patch_source, client, offline.settings,
                 {"server_start": time.perf_counter() - t0}, offline.guards)


def build_parts(cfg: DictConfig) -> Parts:
    """Every part: checked first (`check_inputs`), then bound to the server (`connect`)."""
    return connect(cfg, check_inputs(cfg))


def generation_store_path(cfg: DictConfig) -> Path:
    """reuse.path, else beside a local sqlite tracking store, else per tracking URI in the user cache
    (so a run against a tracking server creates no local mlruns/)."""
    if cfg.reuse.get("path"):
        return Path(cfg.reuse.path)
    uri = cfg.mlflow.tracking_uri
    db = sqlite_path(uri)
    if db is not None:
        return db.parent / "generations.sqlite"
    return cache_root() / "generations" / f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}.sqlite"
