"""MLflow, in one place: where runs go, a run's lifecycle, what a job logs, and reading runs back.

Every other module (job, sweep callback, reproduce, confirm) goes through here. Everything logged
(params, tags, config files, context, reports) passes one redaction step, so a secret given on the
command line or in a URL never reaches the store.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from hookbench import __version__, names
from hookbench.errors import ConfigError
from hookbench.evaluation.build import plain
from hookbench.paths import sqlite_path
from hookbench.reports.formatting import job_note
from hookbench.reports.plots import verdict_hex
from hookbench.tracking import naming
from hookbench.vocabulary import Screen, Verdict

log = logging.getLogger(__name__)
SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|credentials?)$", re.I)  # `*_env` names are fine
PROJECT_DIR = Path(__file__).resolve().parents[2]
PARENT_ENV = "HOOKBENCH_PARENT_RUN_ID"
PARENT_FILE = ".hookbench_parent_run"
# MLflow 3's UI opens an experiment by this tag: without it, on the GenAI overview with no runs table
EXPERIMENT_KIND = {names.TAG_EXPERIMENT_KIND: "custom_model_development"}
# A view of the runs table MLflow's UI loads from an experiment tag `mlflow.sharedViewState.<key>` when the
# link has `viewStateShareKey=<key>` (its "Share" button writes the same, as JSON): sorted by the delta,
# with hookbench's columns.
VIEW_KEY = "hookbench-results"
VIEW_STATE = {"orderByKey": f"metrics.`{names.ACC_DELTA}`", "orderByAsc": False,
              "selectedColumns": [f"tags.`{names.TAG_RESULT}`", f"tags.`{names.TAG_VERDICT_ADJUSTED}`", f"metrics.`{names.ACC_DELTA}`",
                                  f"metrics.`{names.ACC_CI_LOW}`", f"metrics.`{names.ACC_CI_HIGH}`",
                                  f"metrics.`{names.P_ADJUSTED}`", f"params.`{names.PATCH_HASH}`"]}
EXPERIMENT_TAGS = {**EXPERIMENT_KIND, names.shared_view_state(VIEW_KEY): json.dumps(VIEW_STATE)}
MASK = "***"


# ------------------------------------------------------------------ redaction


class Redactor:
    """Finds the secrets of a config (values under secret-looking keys, passwords in URLs) and masks
    them wherever they appear: in params, tags, YAML and JSON text."""

    def __init__(self, container: dict | None = None):
        self.secrets: set[str] = set()
        if container is not None:
            self._collect(container)

    def _collect(self, node, key: str = "") -> None:
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

    def value(self, v):
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


# ------------------------------------------------------------------ the store


def configure(mlflow_cfg) -> str:
    """Point MLflow at the configured store and return the experiment id (created if missing).

    A local sqlite store is created under a file lock: two first runs in a fresh directory would
    otherwise race through MLflow's schema migration (`duplicate column name: step`)."""
    uri = mlflow_cfg.tracking_uri
    mlflow.set_tracking_uri(uri)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(db) + ".lock"):
            return _experiment(mlflow_cfg, mlflow_cfg.get("artifact_location"))
    return _experiment(mlflow_cfg, None)


def _experiment(mlflow_cfg, artifact_location: str | None) -> str:
    client = MlflowClient()
    exp = client.get_experiment_by_name(mlflow_cfg.experiment)
    if exp is None:
        try:
            return client.create_experiment(mlflow_cfg.experiment, artifact_location=artifact_location,
                                            tags=EXPERIMENT_TAGS)
        except MlflowException as e:  # only the creation race (another process made it first) is not an error
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(mlflow_cfg.experiment)
            if exp is None:
                raise
    for k, v in EXPERIMENT_TAGS.items():
        if exp.tags.get(k) != v:
            client.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


ONE_CLICK = ('at the plain UI root MLflow opens its GenAI overview: click "Model training" in the sidebar once '
             "(the browser remembers it)")


def ui_page(experiment_id: str) -> str:
    """The experiment's runs table with hookbench's view. MLflow 3.17/3.18's UI picks the landing from the
    URL's `workflowType`, else the browser's stored choice (default GenAI); no server setting decides it."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


def ui_hint(uri: str, experiment_id: str) -> str:
    """How to see the runs: the link, and the one click MLflow needs at its plain root."""
    page = ui_page(experiment_id)
    if uri.startswith("http"):
        return f"open {uri.rstrip('/')}/{page}\n  ({ONE_CLICK})"
    return f"mlflow ui --backend-store-uri {uri}\n  then open http://127.0.0.1:5000/{page}\n  ({ONE_CLICK})"


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the local store `python -m hookbench` logs to from here."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"


def use_store(uri: str) -> MlflowClient:
    """A client on an existing store; refuses to create an empty local store by reading a missing one."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise ConfigError(f"no MLflow store at {uri} (run from the directory you ran hookbench in, "
                             "or set MLFLOW_TRACKING_URI / --tracking-uri)")
    mlflow.set_tracking_uri(uri)
    return MlflowClient()


@functools.lru_cache(maxsize=1)
def git_info() -> dict[str, str]:
    """Commit and dirty flag of the hookbench checkout ('unknown' outside git); asked once per process."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {names.GIT_COMMIT: git("rev-parse", "HEAD"), names.GIT_DIRTY: str(bool(git("status", "--porcelain")))}
    except (OSError, subprocess.SubprocessError):
        return {names.GIT_COMMIT: "unknown", names.GIT_DIRTY: "unknown"}


def parent_run_id(sweep_dir: Path | None) -> str | None:
    """The sweep's parent run id, for a job of that sweep in any launcher's process."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    f = sweep_dir / PARENT_FILE if sweep_dir else None
    return f.read_text().strip() if f and f.exists() else None


# ------------------------------------------------------------------ one job's run


class JobRun:
    """One job's MLflow run: started (tagged with a sweep's parent when there is one), given the
    config, the outcome, and ended FINISHED, FAILED or KILLED with the reason attached."""

    def __init__(self, cfg: DictConfig, name: str, parent_id: str | None = None, tags: dict | None = None,
                 in_sweep: bool = False):
        self.cfg, self.name, self.in_sweep = cfg, name, in_sweep  # in_sweep: the sweep corrects its verdict later
        container = plain(cfg)
        self.redactor = Redactor(container)
        self.experiment_id = configure(cfg.mlflow)
        parent = {names.TAG_PARENT: parent_id} if parent_id is not None else {}
        self.run = mlflow.start_run(experiment_id=self.experiment_id, run_name=name, tags={
            names.TAG_VERSION: __version__, names.TAG_NAME: name, **parent, **git_info(), **(tags or {})})
        self.run_id = self.run.info.run_id
        mlflow.log_params(self._params(flatten(container)))
        mlflow.log_text(self.redactor.text(OmegaConf.to_yaml(cfg, resolve=True)), names.RESOLVED_CONFIG)

    def _params(self, params: dict[str, str]) -> dict[str, str]:
        return {k: redact_url(self.redactor.text(v)) for k, v in params.items()}

    def log_outcome(self, out, report_dir: Path, hydra_dir: Path | None) -> None:
        """Tags, traceability params, metrics, artifacts and the dataset of a finished job."""
        rec = out.record
        result = job_result(out)
        tags = {**rec.tags(), names.TAG_VERDICT: out.summary.comparison.verdict, names.TAG_RESULT: result,
                names.TAG_NOTE: job_note(out, self.name, self.in_sweep),
                names.TAG_RUN_COLOR: verdict_hex(None if self.in_sweep else out.summary.comparison.verdict)}
        if out.screen is not None:
            tags[names.TAG_SCREEN] = Screen.PASSED if out.screen["passed"] else Screen.REJECTED
        mlflow.set_tags({k: redact_url(self.redactor.text(v)) for k, v in tags.items()})
        mlflow.log_params(self._params(rec.params()))
        metrics = out.metrics()
        mlflow.log_metrics(metrics)
        mlflow.log_dict(out.patch.to_json(), names.PATCH_JSON)
        mlflow.log_dict(self.redactor.value(rec.to_dict()), names.CONTEXT_JSON)
        if hydra_dir is not None and hydra_dir.is_dir():
            for f in sorted(hydra_dir.glob("*.yaml")):  # Hydra's own copy holds the overrides as typed
                mlflow.log_text(self.redactor.text(f.read_text()), f".hydra/{f.name}")
        for f in sorted(report_dir.iterdir()):
            if f.suffix in (".md", ".jsonl", ".csv", ".json"):
                mlflow.log_text(self.redactor.text(f.read_text(encoding="utf-8")), f.name)
            else:
                mlflow.log_artifact(str(f))
        if out.dataset is not None:
            log_dataset(out.dataset)
        MlflowClient().update_run(self.run_id, name=naming.with_result(self.name, result))

    def log_metrics(self, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics)

    def took_over(self, record: dict, recovered: str | None) -> None:
        """A dead job's lease was found: say in this run what was restored, close that job's run."""
        if recovered:
            mlflow.set_tag(names.TAG_RECOVERED, recovered)
        close_dead_run(record, recovered, self.run_id)

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        if error:
            text = self.redactor.text(error)
            mlflow.log_text(text, names.ERROR_TXT)
            mlflow.set_tag(names.TAG_ERROR, text[-4000:])
        mlflow.end_run(status)


def job_result(out) -> str:
    """The job's own rounded result (accuracy, or loss for a loss-only job), before any sweep correction."""
    if not out.screen_passed:
        return f"screened out (loss {out.screen['delta']:+.4f} > {out.screen['threshold']:g})"
    c = out.summary.comparison if out.settings.generates else out.summary.loss
    text = naming.result_text(c.delta, c.ci_low, c.ci_high, c.p_value, c.verdict)
    if c.verdict == Verdict.NO_CHANGE_OBSERVED:
        text += f" (0 of {c.n} changed)"
    return text if out.settings.generates else f"loss {text}"


def close_dead_run(record: dict, recovered: str | None, by_run: str) -> bool:
    """Close the run of a job that died holding a server (its lease `record`), if it is on this store
    and still RUNNING: KILLED, with the reason. Returns whether it closed one."""
    run_id = record.get("run_id")
    if not run_id or record.get("tracking_uri") != mlflow.get_tracking_uri():
        return False
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    if run.info.status != "RUNNING":
        return False
    reason = (f"its process (pid {record.get('pid')} on {record.get('host')}) died without closing the run; "
              f"closed KILLED by run {by_run}" + (f"; {recovered}" if recovered else ""))
    client.log_text(run_id, reason, names.ERROR_TXT)
    client.set_tag(run_id, names.TAG_ERROR, reason)
    client.set_terminated(run_id, "KILLED")
    log.warning("run %s: %s", run_id, reason)
    return True


def log_dataset(dataset) -> None:
    df = pd.DataFrame([{"id": i.id, "task": i.task, "prompt": i.prompt, "gold": i.gold} for i in dataset.items])
    with warnings.catch_warnings():  # MLflow guesses at a source kind for a hub id or generator spec
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(df, source=dataset.source, name=dataset.name, targets="gold",  # type: ignore[attr-defined]
                                     digest=dataset.fingerprint)
    mlflow.log_input(ds, context="evaluation")


# ------------------------------------------------------------------ sweeps


class SweepParent:
    """A sweep's parent run, made with the client API so it never becomes the process's active run."""

    def __init__(self, mlflow_cfg, overrides: list[str], sweep_dir: Path):
        self.experiment_id = configure(mlflow_cfg)
        self.client = MlflowClient()
        text = " ".join(overrides)
        redactor = Redactor()
        redactor.add_overrides(overrides)
        self.name = redactor.text(f"sweep {text}").strip()
        swept = " ".join(o for o in overrides if "," in o.partition("=")[2])  # what differs between the jobs
        self.short_name = redactor.text(f"sweep {swept or text}").strip()
        run = self.client.create_run(self.experiment_id, run_name=self.name,
                                     tags={names.TAG_SWEEP: "parent", names.TAG_SWEEP_OVERRIDES: redactor.text(text),
                                           **git_info()})
        self.run_id = run.info.run_id
        for o in overrides:  # the sweep's own overrides, as params a user can filter parents by
            k, _, v = o.partition("=")
            if k and not SECRET_KEY.search(k):
                self.client.log_param(self.run_id, names.sweep_param(k.lstrip('+~')), redactor.text(v)[:6000])
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self.run_id)
        os.environ[PARENT_ENV] = self.run_id

    def children(self) -> list:
        return child_runs(self.client, self.experiment_id, self.run_id)

    def finish(self, status: str, metrics: dict, files: list[Path], table: dict | None, note: str,
               answer: str = "") -> None:
        try:
            for p in files:
                self.client.log_artifact(self.run_id, str(p))
                if p.suffix == ".png":  # also as an MLflow image: the parent's chart view shows it
                    log_chart_image(self.client, self.run_id, p)
            if answer:
                self.client.update_run(self.run_id, name=f"{answer} ({self.short_name})"[:250])
            if table:
                self.client.log_table(self.run_id, table, names.SWEEP_JSON)
            for k, v in metrics.items():
                self.client.log_metric(self.run_id, k, v)
            self.client.set_tag(self.run_id, names.TAG_NOTE, note)
        finally:
            self.client.set_terminated(self.run_id, status)
            os.environ.pop(PARENT_ENV, None)


# MLflow's chart view groups an image under its key's prefix and lists the groups in locale order; the
# leading space (not shown) puts this one before every metric group (accuracy, failures, ...), at the top
CHART_SECTION = " Sweep answer"


def log_chart_image(client: MlflowClient, run_id: str, png: Path) -> None:
    from PIL import Image

    with Image.open(png) as image:
        client.log_image(run_id, image.convert("RGB"), key=f"{CHART_SECTION}/{png.stem}", step=0)


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    """A parent's jobs: tagged hookbench.parent, or MLflow-nested as in stores written before that tag."""
    runs = {r.info.run_id: r for key in (names.TAG_PARENT, names.TAG_LEGACY_PARENT)
            for r in client.search_runs([experiment_id], f"tags.`{key}` = '{parent_id}'", max_results=10000)}
    return sorted(runs.values(), key=lambda r: r.info.start_time)


def set_child_tags(client: MlflowClient, run_id: str, tags: dict, metrics: dict) -> None:
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)


# ------------------------------------------------------------------ reading a logged run


def get_run(client: MlflowClient, run_id: str):
    try:
        return client.get_run(run_id)
    except MlflowException as e:
        raise ConfigError(f"run {run_id} not found in {mlflow.get_tracking_uri()}: {e.message}") from None


def download(client: MlflowClient, run_id: str, artifact: str, into: Path) -> Path:
    try:
        return Path(client.download_artifacts(run_id, artifact, str(into)))
    except (MlflowException, OSError) as e:
        raise ConfigError(f"run {run_id} has no {artifact} ({e})") from None


def logged_items(client: MlflowClient, run_id: str, into: Path) -> list:
    from hookbench.evaluation.results import ItemResult

    path = download(client, run_id, names.ITEMS_JSONL, into)
    return [ItemResult.from_flat(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def is_finished(run) -> bool:
    return run.info.status == RunStatus.to_string(RunStatus.FINISHED)
