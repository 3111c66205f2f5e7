"""Guard tasks: datasets a patch must not damage, each judged by non-inferiority at its margin.

`guards` in the config is a list. An entry is a dataset option's name (`guards=[capitals,gsm8k]`),
or a mapping that names one and sets the guard's own scorer, margin and dataset keys
(`guards=[{dataset:gsm8k,scorer:numeric,margin:0.03,sample:100}]`). Hydra composes each option from
the dataset and scorer groups (`compose_guards`, over the same schema as `dataset=`), and the
composed nodes replace the names in the job's config before its run is created, so the logged config
holds every guard whole and `reproduce` and `confirm` rerun them without today's conf/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, open_dict

from hookbench.errors import ConfigError
from hookbench.evaluation.build import build, plain
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.prompting import paired
from hookbench.evaluation.results import ItemResult, per_item
from hookbench.evaluation.scorers import Scorer
from hookbench.evaluation.settings import GenerationSettings
from hookbench.vocabulary import GuardVerdict

if TYPE_CHECKING:  # statsmodels and scipy load when a job is summarised, not before its first request
    from hookbench.stats import Comparison
    from hookbench.stats.noninferiority import NonInferiority

DEFAULT_GUARD_SCORER = "auto"  # where the dataset option names none: numbers as numbers, text by normalized equality
ENTRY_KEYS = ("dataset", "scorer", "margin", "name")  # the others in a mapping entry are dataset keys


@dataclass
class Guard:
    """One guard as a job runs it: its name, items, scorer and margin, and its records once generated."""

    name: str
    dataset: Dataset
    scorer: Scorer
    margin: float
    records: list[ItemResult]
    prompts: list[ItemResult] = field(default_factory=list)  # the prompting arm's answers, in the `patched` slot
    generation: GenerationSettings | None = None  # its own format (guard_settings); None: the target's
    extras: dict = field(default_factory=dict)  # its request fields on the job's server (loop._check_server)


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


def _entry(raw) -> dict[str, Any]:
    if isinstance(raw, str):
        return {"dataset": raw}
    if isinstance(raw, (DictConfig, dict)):
        entry: dict[str, Any] = plain(raw) if isinstance(raw, DictConfig) else dict(raw)
        if not isinstance(entry.get("dataset"), (str, dict)):
            raise ConfigError(f"guards: entry {entry} names no dataset (guards=[{{dataset:NAME,...}}])")
        return entry
    raise ConfigError(f"guards: entry {raw!r} is neither a dataset option's name nor a mapping with `dataset`")


def _margin(value, name: str | None, default: float) -> float:
    """The guard's margin (its own, else guard.margin), in (0, 1); `name` None checks guard.margin itself."""
    margin = default if value is None else value
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        where = f"guards[{name}].margin" if value is not None and name is not None else "guard.margin"
        raise ConfigError(f"{where}={margin!r} must be a number between 0 and 1 exclusive "
                          "(the accuracy drop a guard tolerates)")
    return float(margin)


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


def _literal(value) -> str:
    """A value as a Hydra override's right-hand side."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def guard_settings(fmt: dict, model: GenerationSettings) -> GenerationSettings:
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
        dataset = build(g.dataset, f"guards[{g.name}].dataset")
        scorer = build(g.scorer, f"guards[{g.name}].scorer")
        scorer.check_golds(dataset.items)
        if dataset.fingerprint == target.fingerprint or {i.id for i in dataset.items} == {i.id for i in target.items}:
            raise ConfigError(f"guards: guard {g.name!r} has the target's own items ({target.source}): a guard "
                              "must be another task (guards=[...] another dataset, or guards=[] for none)")
        fmt = plain(g.dataset).get("as_guard") or {}
        out.append(Guard(str(g.name), dataset, scorer, float(g.margin), [],
                         generation=None if generation is None else guard_settings(fmt, generation)))
    return out


@dataclass(frozen=True)
class GuardResult:
    """One guard's outcome: accuracy per arm, its paired comparison (the target's test) and non-inferiority."""

    name: str
    margin: float
    baseline: float
    patched: float
    comparison: Comparison
    ni: NonInferiority
    prompting: GuardResult | None = None  # the prompting arm judged on this guard (prompt − baseline)

    @property
    def verdict(self) -> GuardVerdict:
        return self.ni.verdict


def summarize_guard(guard: Guard, draws: int, alpha: float, target_effect: float,
                    records: list[ItemResult] | None = None) -> GuardResult:
    """The guard's two tests on the items scored in both arms (`records`: other arms paired, as the
    prompting arm's against the baseline); with a prompting arm, the same two tests for it."""
    import numpy as np

    from hookbench.stats import cluster_codes, compare_arms
    from hookbench.stats.noninferiority import non_inferiority

    b, p, clusters, _ = per_item(guard.records if records is None else records, count_patch_failures=False)
    c = compare_arms(b, p, clusters=clusters, draws=draws, alpha=alpha, target_effect=target_effect)
    d = np.asarray(p, float) - np.asarray(b, float)
    binary = draws == 1 and bool(np.isin(b, (0, 1)).all() and np.isin(p, (0, 1)).all())
    ni = non_inferiority(d, cluster_codes(clusters) if clusters else np.zeros(0, int), guard.margin, alpha,
                         binary, c.verdict)
    prompting = None
    if records is None and guard.prompts:
        prompting = summarize_guard(guard, draws, alpha, target_effect,
                                    paired([r.baseline for r in guard.records], [q.patched for q in guard.prompts],
                                           guard.records))
    return GuardResult(guard.name, guard.margin, _mean(b), _mean(p), c, ni, prompting)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan
