"""`hookbench check URL`: a server tried before any GPU hour is spent on it, and left as it was found.

The probing is hookbench.hookapi.preflight's (read-only requests, generations without hooks, losses);
here the findings meet the shipped config: the latency is measured as the default job sends its
requests (studies.search_cost.measure_latency, without its clean-up), and the default job's and the
default study's wall times follow from their own cost counts. `--save NAME` writes what was learned
as a model option, ./hookbench/model/NAME.yaml, found by Hydra from the directory it was written in.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from hookbench.base.errors import ConfigError
from hookbench.evaluation.items import Dataset, Item
from hookbench.evaluation.loop import PROBES, generation_extras
from hookbench.evaluation.parts import build_dataset, build_guards, compose_guards, settings_from
from hookbench.evaluation.settings import GenerationSettings
from hookbench.hookapi import contract, preflight
from hookbench.hookapi.client import HookClient
from hookbench.studies.rungs import objective, schedule
from hookbench.studies.search_cost import JOB_S, Latency, RungPlan, SearchCost, loss_requests, measure_latency

CONF = Path(__file__).resolve().parents[1] / "conf"
MODEL_DIR = Path("hookbench") / "model"  # your own model options, beside where you run (conf/config.yaml's searchpath)
BARE_TEMPLATE = "Question: {prompt}\nAnswer:"  # for a model that answers a bare question with nothing and has no chat


@dataclass
class Learned:
    """The model option check writes: what the server needs to be asked well."""

    preset: str
    chat: bool | None
    template: str
    batch_size: int
    timeout_s: int


@dataclass
class CheckResult:
    probe: preflight.Probe
    learned: Learned
    latency: Latency | None = None
    job: dict[str, Any] = field(default_factory=dict)  # loss_requests, generations, wall_s, the guards' share
    study: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        p = self.probe
        return {
            "url": p.url, "token": ("sent, accepted" if p.token_sent else "none sent, none needed"),
            "endpoints": p.endpoints, "extensions": p.extensions, "presets": sorted(p.presets),
            "apply_modes": p.health.get("apply_modes") or "weights, hooks (the contract's; not tried: check applies nothing)",
            "bare_answer": p.bare_answer, "bare_answer_empty": p.bare_empty, "chat_answer": p.chat_answer,
            "loss_deterministic": p.deterministic, "probe_loss_before": p.loss_before[:1] and p.loss_before[0],
            "probe_loss_after": p.loss_after, "left_as_found": p.unchanged is not False,
            "hooks_active": bool(p.health.get("hooks_active")),
            "latency": asdict(self.latency) if self.latency else None,
            "default_job": self.job, "default_study": self.study, "learned": asdict(self.learned), "notes": p.notes,
        }


def compose(config: str, overrides: list[str]) -> DictConfig:
    """The shipped `config` (config | study) with `overrides`, composed by Hydra outside any job."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose(config, overrides=overrides)
        compose_guards(cfg)  # inside: the guards compose from the same search path
    return cfg


def learn(probe: preflight.Probe, client: HookClient, preset: str) -> Learned:
    """Chat where the server offers it and a bare question needs it; a plain template where it has no chat."""
    chat: bool | None = None
    template = "{prompt}"
    if probe.bare_empty:
        if contract.EXT_CHAT in client.extensions:
            chat = True
        else:
            template = BARE_TEMPLATE
    batch = 8 if contract.EXT_GENERATE_BATCH in client.extensions else 1
    return Learned(preset, chat, template, batch, 60)


def configured(config: str, url: str, learned: Learned, token_env: str | None,
               extra: tuple[str, ...] = ()) -> DictConfig:
    """The shipped `config` on model=remote at `url`, with what check learned set in it."""
    cfg = compose(config, ["model=remote", f"model.server.url={url}", *extra])
    cfg.model.generation.preset, cfg.model.generation.batch_size = learned.preset, learned.batch_size
    cfg.model.prompt.template, cfg.model.prompt.chat = learned.template, learned.chat
    cfg.model.server.token_env = token_env
    return cfg


def _distinct(g: GenerationSettings, items: list[Item]) -> list[str]:
    return list(dict.fromkeys(g.query(i.prompt) for i in items))


def job_cost(cfg: DictConfig, dataset: Dataset, latency: Latency, batched_loss: bool) -> dict[str, Any]:
    """The default job on this server (`dataset`, built from `cfg`): its items and its guards' in both
    arms, its loss requests."""
    g = settings_from(cfg).generation
    guards = build_guards(cfg, dataset, g)
    guard_generations = 2 * g.samples * sum(len(_distinct(gd.generation or g, gd.dataset.items)) for gd in guards)
    generations = 2 * g.samples * len(_distinct(g, dataset.items)) + guard_generations
    losses = loss_requests(len(dataset.items), batched_loss)
    wall = losses * latency.loss_s + generations * latency.generation_s + JOB_S
    return {"items": len(dataset.items), "guards": ", ".join(gd.name for gd in guards),
            "guard_generations": guard_generations, "guard_wall_s": guard_generations * latency.generation_s,
            "loss_requests": losses, "generations": generations, "wall_s": wall}


def study_cost(cfg: DictConfig, latency: Latency, batched_loss: bool) -> dict[str, float]:
    """The default study (conf/study.yaml) on this server, counted as `hookbench study` plans it."""
    g = settings_from(cfg).generation
    dev = build_dataset(cast(DictConfig, OmegaConf.merge(cfg.dataset, {"split": "dev"})), "dataset").items
    test = build_dataset(cast(DictConfig, OmegaConf.merge(cfg.dataset, {"split": "test"})), "dataset").items
    guards = build_guards(cfg, build_dataset(cfg.dataset, "dataset"), g)
    trials, keep = int(cfg.search.trials), int(cfg.search.keep)
    rungs: tuple[RungPlan, ...] = ()
    if objective(cfg) != "loss":
        plan = schedule(cfg, trials, keep, len(dev))
        rungs = tuple(RungPlan(n, len(_distinct(g, dev[:n])) * g.samples, c) for n, c in zip(plan.rungs, plan.counts()))
    cost = SearchCost(trials=trials, items=min(int(cfg.search["items"]), len(dev)),
                      reference=bool(cfg.search.compare_to_patch) and cfg.patch.name != "none", keep=keep,
                      dev_queries=len(_distinct(g, dev)) * g.samples, dev_items=len(dev),
                      test_queries=len(_distinct(g, test)) * g.samples, test_items=len(test), confirm=1 if keep else 0,
                      batched_loss=batched_loss, latency=latency, rungs=rungs,
                      guard_queries=sum(len(_distinct(gd.generation or g, gd.dataset.items)) * g.samples for gd in guards))
    return {"jobs": cost.jobs, "loss_requests": cost.loss_requests, "generations": cost.generations,
            "wall_s": cost.wall_s}


def check_server(url: str, token_env: str | None, timeout_s: float, preset: str | None) -> CheckResult:
    """Probe `url`, time it as the default job would ask it, and cost the default job and study there."""
    token = _token(token_env)
    probe, client = preflight.probe_server(url, token, timeout_s, preset, PROBES[0])
    learned = learn(probe, client, preset or preflight.pick_preset(probe.presets))
    result = CheckResult(probe, learned)
    cfg = configured("config", probe.url, learned, token_env, () if probe.has_loss else ("metric=accuracy",))
    g = settings_from(cfg).generation
    dataset = build_dataset(cfg.dataset, "dataset")
    items = dataset.items
    latency = measure_latency(client, _distinct(g, items), items[0].gold, g.preset, generation_extras(g, client),
                              contract.LOSS_ANSWER_PREFIX if not g.chat else "", g.batch_size, clean=False) \
        if probe.has_loss else None
    if latency is not None:
        learned.timeout_s = max(60, math.ceil(20 * latency.generation_s * latency.probe_answers))
        batched = contract.EXT_LOSS_BATCH in client.extensions
        result.latency, result.job = latency, job_cost(cfg, dataset, latency, batched)
        result.study = study_cost(configured("study", probe.url, learned, token_env), latency, batched)
    preflight.finish(client, probe, PROBES[0])
    return result


def _token(token_env: str | None) -> str | None:
    if token_env is None:
        return None
    token = os.environ.get(token_env)
    if not token:
        raise ConfigError(f"--token-env {token_env}: the variable is not set (export {token_env}=... first)")
    return token


def save_model(result: CheckResult, name: str, token_env: str | None, force: bool) -> Path:
    """./hookbench/model/NAME.yaml from what check learned; an existing file is kept unless `force`."""
    if not name.replace("-", "_").isidentifier():
        raise ConfigError(f"--save {name!r}: a model option's name is letters, digits, '_' or '-'")
    path = MODEL_DIR / f"{name}.yaml"
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: check did not overwrite it (--force to replace it)")
    learned = result.learned
    node = {"defaults": ["remote", "_self_"], "name": name, "hf_id": None,
            "server": {"url": result.probe.url, "token_env": token_env, "timeout_s": learned.timeout_s},
            "generation": {"preset": learned.preset, "batch_size": learned.batch_size},
            "prompt": {"template": learned.template, "chat": learned.chat}}
    head = (f"# Written by `hookbench check {result.probe.url} --save {name}` on "
            f"{dt.date.today().isoformat()}; edit freely (set hf_id to log where the weights come from).\n"
            f"# Use it from this directory: hookbench model={name} ...\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + OmegaConf.to_yaml(OmegaConf.create(node)))
    return path
