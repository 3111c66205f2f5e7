"""One job's MLflow run: started, given the config, what the job produced, and ended with its status."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from hookbench import __version__
from hookbench.base import mlflow_keys
from hookbench.base.outcomes import Screen, Verdict
from hookbench.evaluation.items import Dataset
from hookbench.evaluation.job_output import JobOutput
from hookbench.evaluation.parts import plain
from hookbench.reports.formatting import guard_tag, guards_hurt, job_note
from hookbench.reports.plots import verdict_hex
from hookbench.tracking import naming
from hookbench.tracking.recovery import close_dead_run, lease_record
from hookbench.tracking.redaction import Redactor, flatten, redact_url
from hookbench.tracking.store import configure, git_info


class MlflowRun:
    """One job's MLflow run: started (tagged with a sweep's parent when there is one), given the
    config, what the job produced (evaluation.job_output.JobOutput), and ended FINISHED, FAILED or KILLED with the reason attached."""

    def __init__(self, cfg: DictConfig, name: str, parent_id: str | None = None, tags: dict | None = None,
                 in_sweep: bool = False):
        self.cfg, self.name, self.in_sweep = cfg, name, in_sweep  # in_sweep: the sweep corrects its verdict later
        container = plain(cfg)
        self.redactor = Redactor(container)
        self.experiment_id = configure(cfg.mlflow)
        parent = {mlflow_keys.TAG_PARENT: parent_id} if parent_id is not None else {}
        self.run = mlflow.start_run(experiment_id=self.experiment_id, run_name=name, tags={
            mlflow_keys.TAG_VERSION: __version__, mlflow_keys.TAG_NAME: name, **parent, **git_info(), **(tags or {})})
        self.run_id = self.run.info.run_id
        mlflow.log_params(self._params(flatten(container)))
        mlflow.log_text(self.redactor.text(OmegaConf.to_yaml(cfg, resolve=True)), mlflow_keys.RESOLVED_CONFIG)

    def _params(self, params: dict[str, str]) -> dict[str, str]:
        return {k: redact_url(self.redactor.text(v)) for k, v in params.items()}

    def log_output(self, out: JobOutput, report_dir: Path, hydra_dir: Path | None) -> None:
        """Tags, traceability params, metrics, artifacts and the dataset of a finished job."""
        rec = out.run_record
        result = result_line(out)
        tags = {**rec.tags(), mlflow_keys.TAG_VERDICT: out.summary.comparison.verdict, mlflow_keys.TAG_RESULT: result,
                mlflow_keys.TAG_NOTE: job_note(out, self.name, self.in_sweep),
                mlflow_keys.TAG_RUN_COLOR: verdict_hex(None if self.in_sweep else out.summary.comparison.verdict,
                                                 bool(guards_hurt(out.guards)))}
        if out.guards:
            tags[mlflow_keys.TAG_GUARD_VERDICT] = guard_tag(out.guards)
        if out.prompt is not None:
            tags[mlflow_keys.TAG_PROMPT_VERDICT] = out.prompt.patch_vs_prompt.verdict
        if out.screen is not None:
            tags[mlflow_keys.TAG_SCREEN] = Screen.PASSED if out.screen.passed else Screen.REJECTED
        mlflow.set_tags({k: redact_url(self.redactor.text(v)) for k, v in tags.items()})
        mlflow.log_params(self._params(rec.params()))
        metrics = out.metrics()
        mlflow.log_metrics(metrics)
        mlflow.log_dict(out.patch.to_json(), mlflow_keys.PATCH_JSON)
        mlflow.log_dict(self.redactor.value(rec.to_dict()), mlflow_keys.CONTEXT_JSON)
        if hydra_dir is not None and hydra_dir.is_dir():
            for f in sorted(hydra_dir.glob("*.yaml")):  # Hydra's own copy holds the overrides as typed
                mlflow.log_text(self.redactor.text(f.read_text()), f".hydra/{f.name}")
        for f in sorted(report_dir.iterdir()):
            if f.suffix in (".md", ".jsonl", ".csv", ".json", ".html"):  # text: redacted
                mlflow.log_text(self.redactor.text(f.read_text(encoding="utf-8")), f.name)
            else:
                mlflow.log_artifact(str(f))
        if out.dataset is not None:
            log_dataset(out.dataset)
        MlflowClient().update_run(self.run_id, name=naming.with_result(self.name, result))

    def log_metrics(self, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics)

    def lease_record(self) -> dict[str, str]:
        """Who holds the server, as the lease records it: this run, on this store."""
        return lease_record(self.run_id)

    def took_over(self, record: dict, recovered: str | None) -> None:
        """A dead job's lease was found: say in this run what was restored, close that job's run."""
        if recovered:
            mlflow.set_tag(mlflow_keys.TAG_RECOVERED, recovered)
        close_dead_run(record, recovered, self.run_id)

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        if error:
            text = self.redactor.text(error)
            mlflow.log_text(text, mlflow_keys.ERROR_TXT)
            mlflow.set_tag(mlflow_keys.TAG_ERROR, text[-4000:])
        mlflow.end_run(status)


def result_line(out: JobOutput) -> str:
    """Tag `result`, also the run name's tail: the job's own rounded result (accuracy, or loss for a loss-only job), before any sweep correction."""
    if out.screen is not None and not out.screen.passed:
        return f"screened out (loss {out.screen.delta:+.4f} > {out.screen.threshold:g})"
    c = out.summary.comparison if out.settings.generates else out.summary.loss
    if c is None:  # a loss-only job whose server measured no loss fails before it is logged (NothingMeasured)
        raise ValueError("a loss-only job's result needs its loss comparison")
    text = naming.result_text(c.delta, c.ci_low, c.ci_high, c.p_value, c.verdict)
    if c.verdict == Verdict.NO_CHANGE_OBSERVED:
        text += f" (0 of {c.n} changed)"
    if out.guards:
        text += naming.guard_tail(c.verdict, guard_tag(out.guards))
    return text if out.settings.generates else f"loss {text}"


def log_dataset(dataset: Dataset) -> None:
    df = pd.DataFrame([{"id": i.id, "task": i.task, "prompt": i.prompt, "gold": i.gold} for i in dataset.items])
    with warnings.catch_warnings():  # MLflow guesses at a source kind for a hub id or generator spec
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(df, source=dataset.source, name=dataset.name, targets="gold",
                                     digest=dataset.fingerprint)
    try:
        mlflow.log_input(ds, context="evaluation")
    except MlflowException:  # a run started beside this one in a fresh store inserted the same dataset row first
        mlflow.log_input(ds, context="evaluation")  # it exists now: this links the run to it
