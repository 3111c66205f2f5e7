"""The search phase of a study: Optuna (TPE, seeded) proposes patch sets, each measured by a
loss-only job on the first `search.items` dev items, as an MLflow child run of the study's parent.

Optuna is used directly (ask/tell), not through Hydra's Optuna sweeper: hydra-optuna-sweeper 1.3
pins optuna<3, whose sqlite storage predates SQLAlchemy 2 (which MLflow 3 needs), and a sweeper
runs trials as separate Hydra jobs with no place for the keep and confirm steps after them.
The storage is an sqlite file keyed by study name, so a stopped study resumes from its finished trials.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FixedTrial, TrialState

from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError, PatchError
from hookbench.base.paths import cache_root, sqlite_path
from hookbench.evaluation.patches import PatchSet
from hookbench.job import run_job
from hookbench.studies.search_report import Trial
from hookbench.studies.search_space import SearchSpace

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger("hookbench")
Measure = Callable[[optuna.trial.Trial, PatchSet, str], tuple[float, str]]  # (value told to Optuna, run id)


def storage_url(cfg: DictConfig) -> str:
    if cfg.search.get("storage"):
        return str(cfg.search.storage)
    db = sqlite_path(cfg.mlflow.tracking_uri)
    folder = db.parent if db is not None else cache_root()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.sqlite'}"


SAMPLER_ARGS = ("n_startup_trials", "n_ei_candidates", "multivariate", "group", "constant_liar")


def sampler_args(cfg: DictConfig) -> dict:
    """TPESampler's arguments, every one explicit: Optuna 5 changed the defaults (multivariate and
    constant liar on), so a sampler built from defaults proposes other trials on 4.x and 5.x."""
    node = cfg.search.get("sampler") or {}
    args = {k: node.get(k) for k in SAMPLER_ARGS}
    for k in ("n_startup_trials", "n_ei_candidates"):
        v = args[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "n_startup_trials" else 1):
            raise ConfigError(f"search.sampler.{k} must be an integer >= {0 if k == 'n_startup_trials' else 1}, got {v!r}")
    for k in ("multivariate", "group", "constant_liar"):
        if not isinstance(args[k], bool):
            raise ConfigError(f"search.sampler.{k} must be true or false, got {args[k]!r}")
    if args["group"] and not args["multivariate"]:
        raise ConfigError("search.sampler.group=true needs search.sampler.multivariate=true (Optuna's rule)")
    return args | {"seed": cfg.search.seed}


def random_note(trials: int, startup: int) -> str | None:
    """TPE samples at random for its first n_startup_trials: a shorter search is a random search."""
    if trials >= startup:
        return None
    return (f"search.trials={trials} is below search.sampler.n_startup_trials={startup}: every trial is "
            "drawn at random (TPE models the finished trials only after its startup trials)")


def open_study(name: str, storage: str, args: dict,
               direction: Literal["minimize", "maximize"] = "minimize") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate/group are 'experimental' on Optuna 4
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(**args)
    return optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True,
                               sampler=sampler)


def job_config(base: dict, patch: PatchSet | None, path: Path | None, **changes: Any) -> DictConfig:
    """A plain job config (what reproduce reruns): the study's base with this patch file and changes.
    The search measures the target only: guard tasks are judged once, on test, when a pick is confirmed."""
    cfg = OmegaConf.create(base)
    cfg.guards = []
    if patch is not None:
        if path is None:
            raise ValueError(f"patch {patch.name} needs a path to be saved to for its job config")
        cfg.patch = {"_target_": "hookbench.evaluation.patches.FileSource", "name": patch.name,
                     "path": str(patch.save(path)), "strength": 1.0}
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def nested(parent_id: str, tags: dict[str, str]) -> dict[str, str]:
    """A study job's tags: nested under the study's parent run in MLflow's runs table (mlflow.parentRunId),
    so that the study's many jobs do not bury its answer, the parent's row."""
    return {**tags, mlflow_keys.TAG_MLFLOW_PARENT: parent_id}


def loss_job(cfg: DictConfig, parent_id: str, out: Path, tags: dict) -> tuple[float, str]:
    """(mean loss delta, run id) of one loss-only job; the job restores the server and checks its probes."""
    result = run_job(cfg, extra_tags=nested(parent_id, tags), out_dir=out, parent_id=parent_id)
    return result.metrics.get(mlflow_keys.LOSS_DELTA, math.nan), result.run_id


class Search:
    """Runs the missing trials of one Optuna study and reads all of its trials back."""

    def __init__(self, study: optuna.Study, space: SearchSpace, base: dict, items: int, out: Path):
        self.study, self.space, self.base, self.items, self.out = study, space, base, items, out

    def candidate(self, params: dict, number: int) -> PatchSet:
        """A trial's patch set, rebuilt from its parameters (the same hash every time)."""
        return self.space.suggest(FixedTrial(params, number), f"search-t{number}", number)

    def loss_config(self, patch: PatchSet | None) -> DictConfig:
        path = self.out / "candidates" / f"{patch.hash}.json" if patch is not None else None
        return job_config(self.base, patch, path, metric="loss", **{"dataset.limit": self.items})

    def completed(self) -> list:
        return [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]

    def loss_trial(self, trial: optuna.trial.Trial, patch: PatchSet, parent_id: str) -> tuple[float, str]:
        """The loss objective: a loss-only job on the first `items` dev items."""
        return loss_job(self.loss_config(patch), parent_id, self.out / "trials",
                        {mlflow_keys.TAG_STUDY_PHASE: "search", mlflow_keys.TAG_STUDY_TRIAL: str(trial.number)})

    def run(self, trials: int, parent_id: str, client: MlflowClient, measure: Measure | None = None) -> None:
        """Ask, measure (a loss job unless `measure` says otherwise) and tell, `trials` times."""
        measure = measure or self.loss_trial
        for _ in range(trials):
            trial = self.study.ask()
            try:
                patch = self.space.suggest(trial, f"search-t{trial.number}", trial.number)
                value, run_id = measure(trial, patch, parent_id)
            except PatchError as e:  # e.g. an edit that changes nothing: this candidate fails, the search goes on
                log.warning("trial %d failed: %s", trial.number, e)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            trial.set_user_attr("run_id", run_id)
            trial.set_user_attr("patch_hash", patch.hash)
            for k, v in trial.params.items():
                client.log_param(run_id, mlflow_keys.trial_param(k), v)
            client.log_param(run_id, mlflow_keys.TRIAL_NUMBER, trial.number)
            if math.isfinite(value):
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=TrialState.FAIL)
            log.info("trial %d: %s %+.4f (%s)", trial.number, "loss delta" if measure == self.loss_trial else "score",
                     value, patch.hash)

    def trials(self) -> list[Trial]:
        out = []
        for t in self.completed():
            patch = self.candidate(t.params, t.number)
            edits = "; ".join(f"{s['tensor_name']} {s['operation']} {s['value']:.4g} {s['target']}"
                              for s in patch.suggestions)
            out.append(Trial(t.number, t.value, patch.hash, edits, t.user_attrs.get("run_id", "")))
        return out

    def kept(self, keep: int) -> list[Trial]:
        """The `keep` best distinct candidates by loss delta (a repeated proposal is one candidate)."""
        best: dict[str, Trial] = {}
        for t in sorted(self.trials(), key=lambda t: (t.loss_delta, t.number)):
            best.setdefault(t.patch_hash, t)
        return list(best.values())[:keep]
