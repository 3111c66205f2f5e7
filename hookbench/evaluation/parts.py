"""Where config becomes a job's parts, read top to bottom: `check_inputs` (typed settings, the launch
command, dataset, scorer, patch source and guards: everything that needs no server), then `connect`
(the server started or found, the parts bound to its client). The helpers follow in the order these
call them; below them `build` and `plain`, the two ways a config node becomes a part or plain data.

Everything here reads the Hydra config; nothing after it does. `EvaluationLoop` takes a `Parts`, so the
loop can be driven in-process (tests build Parts against a stand-in server) as well as from the CLI.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import MissingMandatoryValue

from hookbench.base.errors import ConfigError, HookbenchError
from hookbench.base.paths import cache_root, sqlite_path
from hookbench.evaluation.guards import Guard
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.patches import PatchSource
from hookbench.evaluation.scorers import Scorer
from hookbench.evaluation.settings import GenerationSettings, ModelInfo, Parts, Settings
from hookbench.hookapi import contract
from hookbench.hookapi.client import HookClient
from hookbench.hookapi.launcher import check_launch, ensure_server, launched_token

DEFAULT_GUARD_SCORER = "auto"  # where the dataset option names none: numbers as numbers, text by normalized equality
ENTRY_KEYS = ("dataset", "scorer", "margin", "name")  # the others in a mapping entry are dataset keys


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
class CheckedInputs:
    """The parts that need no server: built and checked before a server starts or a run is created."""

    settings: Settings
    dataset: Dataset
    scorer: Scorer
    patch_source: PatchSource
    guards: list[Guard] = field(default_factory=list)


def check_inputs(cfg: DictConfig) -> CheckedInputs:
    """Config values, dataset file and fields, scorer against the golds, the patch file and its edits:
    every user mistake that needs no server fails here, before a server starts or a run is created."""
    settings = settings_from(cfg)
    launch = cfg.model.server.launch
    check_launch(plain(launch) if launch else None)
    check_url(cfg)
    dataset = build_dataset(cfg.dataset, "dataset")
    scorer = build(cfg.scorer, "scorer")
    scorer.check_golds(dataset.items)
    patch_source = build(cfg.patch, "patch")
    check = getattr(patch_source, "check", None)
    if check is not None:  # a patch file is read and validated now, not after the server started
        check(settings.model.name, settings.model.apply_mode)
    compose_guards(cfg)  # the composed guards replace their names in cfg before the run logs it
    guards = build_guards(cfg, dataset, settings.generation) if settings.generates else []
    return CheckedInputs(settings, dataset, scorer, patch_source, guards)


def connect(cfg: DictConfig, checked: CheckedInputs) -> Parts:
    """Start (or find) the server and bind the parts to it."""
    m = cfg.model
    t0 = time.perf_counter()
    launch = plain(m.server.launch) if m.server.launch else None
    url = ensure_server(launch, m.server.url)
    # a server this process launched has its own fresh token; token_env is for a server at model.server.url
    token = launched_token(url) or (os.environ.get(m.server.token_env) if m.server.get("token_env") else None)
    client = HookClient(url, token=token, timeout_s=m.server.timeout_s, retries=m.server.retries,
                        max_connection_failures=cfg.failures.max_connection_failures)
    checked.scorer.bind_client(client)  # a judge on the evaluated server grades through the job's own client
    for g in checked.guards:
        g.scorer.bind_client(client)
    return Parts(checked.dataset, checked.scorer, checked.patch_source, client, checked.settings,
                 {"server_start": time.perf_counter() - t0}, checked.guards)


def build_parts(cfg: DictConfig) -> Parts:
    """Every part: checked first (`check_inputs`), then bound to the server (`connect`)."""
    return connect(cfg, check_inputs(cfg))


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
        screen_size=_positive_int_or_none(cfg.screen.size, "screen.size"),
        screen_threshold=float(cfg.screen.threshold), alpha=alpha, target_effect=target,
        warn_share=float(cfg.failures.warn_share), compare_prompt=_compare_prompt(cfg),
    )


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def _positive_int_or_none(value: object, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer or null, got {value!r}")
    return value


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


# -- guards from config ---------------------------------------------------------------------------------
# `guards` in the config is a list. An entry is a dataset option's name (`guards=[capitals,gsm8k]`),
# or a mapping that names one and sets the guard's own scorer, margin and dataset keys
# (`guards=[{dataset:gsm8k,scorer:numeric,margin:0.03,sample:100}]`). Hydra composes each option from
# the dataset and scorer groups (`compose_guards`, over the same schema as `dataset=`), and the
# composed nodes replace the names in the job's config before its run is created, so the logged config
# holds every guard whole and `reproduce` and `confirm` rerun them without today's conf/.

def compose_guards(cfg: DictConfig) -> None:
    """Replace each guard entry in `cfg.guards` by its composed form {name, dataset, scorer, margin}
    (a ConfigError naming an unknown dataset or scorer option, or a bad margin)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    default = cfg.guard.margin
    _margin(None, None, default)
    composed = []
    for raw in cfg.get("guards") or []:
        entry = _entry(raw)
        if isinstance(entry["dataset"], dict):  # already composed (a logged config)
            name = entry.get("name") or entry["dataset"].get("name")
            composed.append({**entry, "name": name, "margin": _margin(entry.get("margin"), name, default)})
            continue
        option, scorer = entry["dataset"], entry.get("scorer")
        name = entry.get("name") or option
        keys = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
        extra = [f"dataset.{k}={_literal(v)}" for k, v in keys.items() if not isinstance(v, dict)]
        try:
            node = _compose([f"dataset={option}", *extra])
            node.dataset.merge_with({k: v for k, v in keys.items() if isinstance(v, dict)})  # e.g. as_guard
            scorer = scorer or node.dataset.as_guard.get("scorer") or DEFAULT_GUARD_SCORER  # the dataset's own
            scorer_node = _compose([f"scorer={scorer}"]).scorer
        except (HydraException, OmegaConfBaseException) as e:
            shown = scorer or "its dataset's"
            raise ConfigError(f"guards: guard {name!r} ({option}, scorer {shown}) cannot be composed: "
                              f"{str(e).splitlines()[0]}") from None
        composed.append({"name": name, "dataset": plain(node.dataset), "scorer": plain(scorer_node),
                         "margin": _margin(entry.get("margin"), name, default)})
    names = [g["name"] for g in composed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"guards: {', '.join(dup)} named twice; give one a name (guards=[{{dataset:..,name:..}}])")
    with open_dict(cfg):
        cfg.guards = ListConfig(composed)


def _entry(raw: object) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"dataset": raw}
    if isinstance(raw, (DictConfig, dict)):
        entry: dict[str, Any] = plain(raw) if isinstance(raw, DictConfig) else dict(raw)
        if not isinstance(entry.get("dataset"), (str, dict)):
            raise ConfigError(f"guards: entry {entry} names no dataset (guards=[{{dataset:NAME,...}}])")
        return entry
    raise ConfigError(f"guards: entry {raw!r} is neither a dataset option's name nor a mapping with `dataset`")


def _margin(value: object, name: str | None, default: float) -> float:
    """The guard's margin (its own, else guard.margin), in (0, 1); `name` None checks guard.margin itself."""
    margin = default if value is None else value
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        where = f"guards[{name}].margin" if value is not None and name is not None else "guard.margin"
        raise ConfigError(f"{where}={margin!r} must be a number between 0 and 1 exclusive "
                          "(the accuracy drop a guard tolerates)")
    return float(margin)


def _compose(overrides: list[str]) -> DictConfig:
    """The shipped config with `overrides`, composed by Hydra (inside the running job's Hydra when there is one)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if GlobalHydra.instance().is_initialized():
        path = list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []
        extra = [f"hydra.searchpath=[{','.join(path)}]"] if path else []
        return compose("config", overrides=overrides + extra)
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def _literal(value: object) -> str:
    """A value as a Hydra override's right-hand side."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def guard_settings(fmt: dict[str, Any], model: GenerationSettings) -> GenerationSettings:
    """The guard's generation: the model's preset, draws and batch; its dataset's template, and its
    chat setting and answer length where the dataset sets them (else the model's)."""
    return replace(model, template=str(fmt.get("template") or "{prompt}"),
                   chat=model.chat if fmt.get("chat") is None else bool(fmt["chat"]),
                   max_new_tokens=model.max_new_tokens if fmt.get("max_new_tokens") is None else int(fmt["max_new_tokens"]))


def build_guards(cfg: DictConfig, target: Dataset, generation: GenerationSettings | None = None) -> list[Guard]:
    """The composed guards as parts, each dataset loaded and its scorer checked against its golds; a
    guard with the target's own items is refused (it would only repeat the target's test). With the
    job's `generation`, each guard is asked in its own format (`guard_settings`)."""
    out = []
    for g in cfg.get("guards") or []:
        dataset = build_dataset(g.dataset, f"guards[{g.name}].dataset")
        scorer = build(g.scorer, f"guards[{g.name}].scorer")
        scorer.check_golds(dataset.items)
        if dataset.fingerprint == target.fingerprint or {i.id for i in dataset.items} == {i.id for i in target.items}:
            raise ConfigError(f"guards: guard {g.name!r} has the target's own items ({target.source}): a guard "
                              "must be another task (guards=[...] another dataset, or guards=[] for none)")
        fmt = plain(g.dataset).get("as_guard") or {}
        out.append(Guard(str(g.name), dataset, scorer, float(g.margin), [],
                         generation=None if generation is None else guard_settings(fmt, generation)))
    return out



# -- config nodes as parts or plain data -----------------------------------------------------------------

def build(node: DictConfig, group: str) -> Any:
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


def build_dataset(node: DictConfig, group: str) -> Dataset:
    """A dataset from its config node, without its `as_guard` block (how it is asked as a guard, read by
    `build_guards`, not by the loader). The node keeps its parent, so its interpolations resolve."""
    node = copy.copy(node)
    with read_write(node), open_dict(node):
        node.pop("as_guard", None)
    dataset: Dataset = build(node, group)
    return dataset


def _missing(group: str, e: MissingMandatoryValue) -> ConfigError:
    key = e.full_key if e.full_key and e.full_key.startswith(group + ".") else f"{group}.{e.full_key or '?'}"
    return ConfigError(f"{key} is not set: set {key}=... on the command line")


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain, resolved dicts and lists (a mapping node is always a dict)."""
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]  # keys of a config mapping are strings


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
