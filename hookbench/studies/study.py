"""`hookbench study`: from a space of candidate edits to a confirmed improvement.

search (Optuna proposes patch sets, each measured by loss on dev) -> keep (the `search.keep` best
distinct candidates get the accuracy job on dev, one shared baseline, p-values adjusted over them)
-> confirm (the best kept pick rerun on test by hookbench.studies.confirm). Everything lands under
one MLflow parent run; the cost plan is printed first, the answer last. Exit code 0 when a patch
is confirmed (or search only), 1 when none is, 2 and up on error, 143 on SIGTERM (server restored;
the same command resumes from the finished trials).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, cast

from omegaconf import DictConfig, OmegaConf

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError, PatchError
from hookbench.base.outcomes import Verdict
from hookbench.base.signals import Terminated, graceful_signals
from hookbench.evaluation.loop import generation_extras
from hookbench.evaluation.parts import build_dataset, build_parts, plain
from hookbench.hookapi import contract
from hookbench.job import hydra_dirs, run_job
from hookbench.reports.formatting import fmt_delta
from hookbench.stats import adjust_p_values, adjusted_verdict
from hookbench.studies import confirm as confirm_study
from hookbench.studies.rungs import Measured, RungSearch, objective, schedule
from hookbench.studies.search import (
    Search,
    job_config,
    loss_job,
    nested,
    open_study,
    random_note,
    sampler_args,
    storage_url,
)
from hookbench.studies.search_cost import RungPlan, SearchCost, measure_latency
from hookbench.studies.search_report import (
    kept_markdown,
    plot_trials,
    rank_correlation,
    rungs_markdown,
    trials_markdown,
)
from hookbench.studies.search_space import SearchSpace, study_name
from hookbench.studies.study_page import answer_row, rung_page

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from hookbench.evaluation.settings import Parts
    from hookbench.studies.search import Trial

log = logging.getLogger("hookbench")


def _count(cfg: DictConfig, key: str, minimum: int) -> int:
    v = cfg.search.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"search.{key} must be an integer >= {minimum}, got {v!r}")
    return v


def dev_items(cfg: DictConfig) -> int:
    """The dev split's size (the dataset is read here, before any server is asked anything)."""
    return len(build_dataset(cast(DictConfig, OmegaConf.merge(cfg.dataset, {"split": "dev"})), "dataset").items)


class Study:
    def __init__(self, cfg: DictConfig):
        self.space = SearchSpace.from_config(cfg.search.space, cfg.model.apply_mode)
        self.objective = objective(cfg)
        self.trials, self.items = _count(cfg, "trials", 1), _count(cfg, "items", 1)
        self.keep = int(min(_count(cfg, "keep", 0), self.trials, self.space.size))
        self.schedule = None if self.objective == "loss" else schedule(cfg, self.trials, self.keep, dev_items(cfg))
        self.cfg, self.name, self.uri = cfg, study_name(cfg), cfg.mlflow.tracking_uri
        base = plain(cfg)
        base.pop("search")
        base["dataset"]["split"] = "dev"
        base["screen"]["size"] = None
        self.reference_cfg = OmegaConf.create(base).patch if cfg.search.compare_to_patch else None
        self.out = hydra_dirs()[0] / "study"
        self.sampler = sampler_args(cfg)
        self.random_note = random_note(self.trials, self.sampler["n_startup_trials"])
        self.search = Search(open_study(self.name, storage_url(cfg), self.sampler,
                                        "minimize" if self.objective == "loss" else "maximize"), self.space, base,
                             self.items, self.out)
        self.base = base
        self.rungs = None
        if self.schedule is not None:
            self.rungs = RungSearch(self.search, self.schedule, "both" if self.objective == "auto" else "accuracy")
            self.rungs.reference_patch = self.reference_cfg

    # -- the plan ---------------------------------------------------------------------------
    def cost(self, parts: Parts) -> SearchCost:
        g, dev = parts.settings.generation, parts.dataset.items
        test = build_dataset(cast(DictConfig, OmegaConf.merge(self.cfg.dataset, {"split": "test"})), "dataset").items
        queries = lambda items: len({g.query(i.prompt) for i in items}) * g.samples  # noqa: E731
        first_job = self.schedule.rungs[0] if self.schedule is not None else len(dev)
        distinct = list(dict.fromkeys(g.query(i.prompt) for i in dev))
        latency = measure_latency(parts.client, distinct, dev[0].gold, g.preset, generation_extras(g, parts.client),
                                  parts.settings.loss_prefix, min(g.batch_size, first_job))
        trials = max(0, self.trials - len(self.search.completed()))
        rungs: tuple[RungPlan, ...] = ()
        reference = self._reference_pending()
        if self.rungs is not None and self.schedule is not None:
            counts = [trials, *self.rungs.pending()]
            rungs = tuple(RungPlan(n, queries(dev[:n]), c) for n, c in zip(self.schedule.rungs, counts))
            reference = self.reference_cfg is not None and self.reference_cfg.get("name") != "none" and \
                "reference_rung" not in self.search.study.user_attrs
        return SearchCost(trials=trials, items=min(self.items, len(dev)),
                        reference=reference, keep=self.keep, dev_queries=queries(dev),
                        dev_items=len(dev), test_queries=queries(test), test_items=len(test),
                        confirm=1 if self.keep else 0, batched_loss=contract.EXT_LOSS_BATCH in parts.client.extensions,
                        latency=latency, rungs=rungs, guard_queries=sum(queries(gd.dataset.items) for gd in parts.guards),
                        rung_loss_items=self.schedule.rungs[0] if self.objective == "auto" and self.schedule else 0,
                        guards=tuple((gd.name, len(gd.dataset.items), gd.margin, float(self.cfg.stats.alpha))
                                     for gd in parts.guards))

    def _reference_pending(self) -> bool:
        patch = self.reference_cfg
        return patch is not None and patch.get("name") != "none" and \
            "reference_loss_delta" not in self.search.study.user_attrs

    # -- the parent run ---------------------------------------------------------------------
    def parent(self, client: MlflowClient, experiment_id: str, plan: SearchCost) -> str:
        """The study's parent run: created once per study, reopened on resume."""
        run_id = self.search.study.user_attrs.get("parent_run_id")
        if run_id:
            client.update_run(run_id, "RUNNING")
        else:
            run_id = client.create_run(experiment_id, run_name=f"study {self.name}", tags={
                mlflow_keys.TAG_SWEEP: "parent", mlflow_keys.TAG_STUDY: self.name, **tracking.git_info()}).info.run_id
            self.search.study.set_user_attr("parent_run_id", run_id)
            for k, v in tracking.flatten(plain(self.cfg.search), "search.").items():
                client.log_param(run_id, k, v)
        for key, value in plan.metrics().items():
            client.log_metric(run_id, key, value)
        return run_id

    def reference(self, parent_id: str) -> float | None:
        """The configured patch (e.g. the server's suggestions) by loss on the same items: the bar to beat."""
        attrs = self.search.study.user_attrs
        if self._reference_pending():
            cfg = self.search.loss_config(None)
            cfg.patch = self.reference_cfg
            try:
                delta, _ = loss_job(cfg, parent_id, self.out / "reference", {mlflow_keys.TAG_STUDY_PHASE: "reference"})
            except PatchError as e:  # e.g. a server with no suggestions: the search still runs, with no bar
                log.warning("the configured patch could not be measured as the reference: %s", e)
                return None
            self.search.study.set_user_attr("reference_loss_delta", delta)
            return delta
        return attrs.get("reference_loss_delta")

    # -- keep: accuracy on dev for the best candidates --------------------------------------
    def keep_phase(self, client: MlflowClient, parent_id: str) -> list[dict]:
        rows = []
        for t in self.search.kept(self.keep):
            patch = self.search.candidate(self._params(t.number), t.number)
            cfg = job_config(self.base, patch, self.out / "candidates" / f"{patch.hash}.json", metric="both",
                             **{"reuse.enabled": True})
            result = run_job(cfg, extra_tags=nested(parent_id, {mlflow_keys.TAG_STUDY_PHASE: "keep",
                                                                mlflow_keys.TAG_STUDY_TRIAL: str(t.number)}),
                             out_dir=self.out / "keep", parent_id=parent_id)
            m = result.metrics
            rows.append({"hash": patch.hash, "trial": t.number, "search_loss_delta": t.loss_delta,
                         "run_id": result.run_id, "delta": m.get(mlflow_keys.ACC_DELTA, math.nan),
                         "ci_low": m.get(mlflow_keys.ACC_CI_LOW, math.nan), "ci_high": m.get(mlflow_keys.ACC_CI_HIGH, math.nan),
                         "p": m.get(mlflow_keys.P_VALUE, math.nan), "verdict": result.output.summary.comparison.verdict})
        self._adjust(client, rows)
        return rows

    # -- the accuracy search: rungs, then the last rung's best are the kept candidates ---------
    def accuracy_phase(self, client: MlflowClient, parent_id: str, trials: int) -> tuple[list[dict], Measured | None]:
        assert self.rungs is not None
        reference = self.rungs.reference(parent_id)
        self.search.run(trials, parent_id, client, measure=self.rungs.first)
        first_loss = {m.hash: m.loss_delta for m in self.rungs.measured(0)}
        rows = [{"hash": m.hash, "trial": m.trial, "search_loss_delta": first_loss.get(m.hash, math.nan),
                 "run_id": m.run_id, "delta": m.delta, "ci_low": m.ci_low, "ci_high": m.ci_high, "p": m.p,
                 "verdict": m.verdict} for m in self.rungs.later_rungs(parent_id)]
        self._adjust(client, rows)
        return rows, reference

    def _params(self, number: int) -> dict:
        return next(t.params for t in self.search.completed() if t.number == number)

    def _adjust(self, client: MlflowClient, rows: list[dict]) -> None:
        """The correction over the kept jobs (they were chosen among many; confirm then tests one on test)."""
        adjusted = adjust_p_values([r["p"] for r in rows], self.cfg.stats.correction)
        for r, p in zip(rows, adjusted):
            r["p_adjusted"] = p
            r["verdict_adjusted"] = r["verdict"] if r["verdict"] == Verdict.NO_CHANGE_OBSERVED else \
                adjusted_verdict(r["delta"], p, float(self.cfg.stats.alpha))
            metrics = {} if math.isnan(p) else {mlflow_keys.P_ADJUSTED: p}
            tracking.set_child_tags(client, r["run_id"], {mlflow_keys.TAG_VERDICT_ADJUSTED: r["verdict_adjusted"]}, metrics)


def confirmation(client: MlflowClient, parent_id: str, uri: str, rows: list[dict], base: dict) -> Run | None:
    """The best kept pick rerun on test (hookbench.studies.confirm's logic) over the whole test split, with
    the study's guard tasks (the search ran without them); its test run."""
    confirm_study.confirm(parent_id, uri, top=1, among={r["run_id"] for r in rows},
                          changes={"dataset.limit": base["dataset"].get("limit"), "guards": base.get("guards") or []})
    runs = [r for r in tracking.child_runs(client, client.get_run(parent_id).info.experiment_id, parent_id)
            if mlflow_keys.TAG_CONFIRMS in r.data.tags]
    return runs[-1] if runs else None


def answer(test: Run | None, rows: list[dict], tried: int, distinct: int) -> str:
    """The study's result in one line: the confirmed patch set or none, its test delta and verdict."""
    count = f"{tried} candidates tried ({distinct} distinct), {len(rows)} kept"
    if test is None:
        return f"search only: {count}; nothing confirmed (search.keep=0)"
    m, verdict = test.data.metrics, test.data.tags.get(mlflow_keys.TAG_VERDICT, "?")
    delta = fmt_delta(m.get(mlflow_keys.ACC_DELTA, math.nan), m.get(mlflow_keys.ACC_CI_LOW, math.nan),
                      m.get(mlflow_keys.ACC_CI_HIGH, math.nan))
    pick = test.data.params.get(mlflow_keys.PATCH_HASH, "?")
    head = f"confirmed: patch {pick}" if confirm_study.is_confirmed(test) else f"no patch confirmed: the pick {pick}"
    guards = test.data.tags.get(mlflow_keys.TAG_GUARD_VERDICT)
    guards = f", guards {guards}" if guards else ""
    return f"{head} on test {delta}, p = {m.get(mlflow_keys.P_VALUE, math.nan):.3g}, {verdict}{guards}; {count}"


def versus_reference(trials: list[Trial], reference: float | None) -> str:
    if not trials:
        return "no trial finished"
    best = min(trials, key=lambda t: t.loss_delta)
    text = f"best candidate by loss: trial {best.number} ({best.patch_hash}), loss delta {best.loss_delta:+.4f}"
    if reference is None or math.isnan(reference):
        return text
    lower = "lower than" if best.loss_delta < reference else "none is lower than"
    return f"{text}; {lower} the configured patch's {reference:+.4f}"


def report(study: Study, client: MlflowClient, parent_id: str, rows: list[dict], test: Run | None, reference: float | None) -> str:
    trials = study.search.trials()
    kept = {r["hash"] for r in rows}
    corr = rank_correlation([r["search_loss_delta"] for r in rows], [r["delta"] for r in rows])
    head = answer(test, rows, len(trials), len({t.patch_hash for t in trials}))
    lines = [head, "", versus_reference(trials, reference), corr.sentence(), ""]
    if study.random_note:
        lines.insert(2, study.random_note)
    study.out.mkdir(parents=True, exist_ok=True)
    files = [plot_trials(study.out / "search_loss.png", trials, kept, reference)]
    (study.out / "search_trials.md").write_text(trials_markdown(trials, kept, reference))
    files.append(study.out / "search_trials.md")
    if rows:
        (study.out / "search_kept.md").write_text(kept_markdown(rows, float(study.cfg.stats.alpha)))
        files.append(study.out / "search_kept.md")
    for f in files:
        client.log_artifact(parent_id, str(f))
    metrics = {mlflow_keys.STUDY_TRIALS: len(trials), mlflow_keys.STUDY_KEPT: len(rows), mlflow_keys.STUDY_SPEARMAN_RHO: corr.rho,
               mlflow_keys.STUDY_BEST_LOSS_DELTA: min((t.loss_delta for t in trials), default=math.nan),
               mlflow_keys.STUDY_REFERENCE_LOSS_DELTA: math.nan if reference is None else reference}
    return log_summary(study, client, parent_id, rows, test, metrics, lines)


def log_summary(study: Study, client: MlflowClient, parent_id: str, rows: list[dict], test: Run | None, metrics: dict,
                lines: list[str]) -> str:
    """The study's metrics (the test delta added) and its description on the parent run; the summary text."""
    if test is not None:
        metrics[mlflow_keys.STUDY_TEST_DELTA] = test.data.metrics.get(mlflow_keys.ACC_DELTA, math.nan)
    for k, v in metrics.items():
        if not math.isnan(v):
            client.log_metric(parent_id, k, v)
    text = "\n".join(lines) + (kept_markdown(rows, float(study.cfg.stats.alpha)) if rows else "")
    client.set_tag(parent_id, mlflow_keys.TAG_NOTE, text)
    return "\n".join(lines)


def versus_reference_rung(rows: list[dict], reference: Measured | None) -> str:
    if not rows:
        return "no candidate kept"
    top = rows[0]
    text = f"best kept candidate on dev: trial {top['trial']} ({top['hash']}), {fmt_delta(top['delta'], top['ci_low'], top['ci_high'])}"
    if reference is None:
        return text
    return f"{text}; the configured patch on the same {reference.items} items: " \
        f"{fmt_delta(reference.delta, reference.ci_low, reference.ci_high)}"


def rung_report(study: Study, client: MlflowClient, parent_id: str, rows: list[dict], test: Run | None,
                reference: Measured | None) -> str:
    assert study.rungs is not None
    measured = [m for r in range(len(study.rungs.schedule.rungs)) for m in study.rungs.measured(r)]
    first = study.rungs.measured(0)
    head = answer(test, rows, len(first), len({m.hash for m in first}))
    lines = [head, "", versus_reference_rung(rows, reference), ""]
    agreed = study.rungs.agreement()
    if agreed is not None:
        lines.insert(3, agreed.sentence(later_rungs=len(study.rungs.schedule.rungs) > 1))
    if study.random_note:
        lines.insert(2, study.random_note)
    study.out.mkdir(parents=True, exist_ok=True)
    files = [study.out / "search_rungs.md"]
    files[0].write_text(rungs_markdown(measured, {r["hash"] for r in rows}, reference, float(study.cfg.stats.alpha)))
    if rows:
        (study.out / "search_kept.md").write_text(kept_markdown(rows, float(study.cfg.stats.alpha)))
        files.append(study.out / "search_kept.md")
    files += rung_page(study.out, study.name, float(study.cfg.stats.alpha), lines, measured, rows, test, reference)
    for f in files:
        client.log_artifact(parent_id, str(f))
    metrics = {mlflow_keys.STUDY_TRIALS: len(first), mlflow_keys.STUDY_KEPT: len(rows),
               mlflow_keys.STUDY_BEST_DELTA: rows[0]["delta"] if rows else math.nan}
    if agreed is not None:
        metrics |= {mlflow_keys.STUDY_SPEARMAN_RHO: agreed.correlation.rho, mlflow_keys.STUDY_CONCORDANT: agreed.concordant}
    return log_summary(study, client, parent_id, rows, test, metrics, lines)


def run_study(cfg: DictConfig) -> int:
    with graceful_signals():
        study = Study(cfg)
        plan = study.cost(build_parts(job_config(study.base, None, None)))  # the whole dev split
        print(plan.text(), flush=True)
        if study.random_note:
            print(f"note: {study.random_note}", flush=True)
        experiment_id = tracking.configure(cfg.mlflow)
        client = tracking.use_store(study.uri)
        parent_id = study.parent(client, experiment_id, plan)
        print(f"study {study.name}: parent run {parent_id}", flush=True)
        try:
            if study.rungs is not None:
                rows, measured_reference = study.accuracy_phase(client, parent_id, plan.trials)
                test = confirmation(client, parent_id, study.uri, rows, study.base) if rows else None
                text = rung_report(study, client, parent_id, rows, test, measured_reference)
            else:
                reference = study.reference(parent_id)
                study.search.run(plan.trials, parent_id, client)
                rows = study.keep_phase(client, parent_id) if study.keep else []
                test = confirmation(client, parent_id, study.uri, rows, study.base) if rows else None
                text = report(study, client, parent_id, rows, test, reference)
        except Terminated:
            client.set_terminated(parent_id, "KILLED")
            raise
        except BaseException:
            client.set_terminated(parent_id, "FAILED")
            raise
        answer_row(client, parent_id, study.name, test)
        client.set_terminated(parent_id, "FINISHED")
    print(text, flush=True)
    return 0 if test is None or confirm_study.is_confirmed(test) else 1
