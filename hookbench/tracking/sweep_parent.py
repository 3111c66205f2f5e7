"""A sweep's parent run and how its jobs find it (an environment variable, or a file in the sweep's folder)."""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from hookbench.base import mlflow_keys
from hookbench.tracking.redaction import SECRET_KEY, Redactor
from hookbench.tracking.store import configure, git_info

PARENT_ENV = "HOOKBENCH_PARENT_RUN_ID"
PARENT_FILE = ".hookbench_parent_run"


def parent_run_id(sweep_dir: Path | None) -> str | None:
    """The sweep's parent run id, for a job of that sweep in any launcher's process."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    f = sweep_dir / PARENT_FILE if sweep_dir else None
    return f.read_text().strip() if f and f.exists() else None


class SweepParent:
    """A sweep's parent run, made with the client API so it never becomes the process's active run."""

    def __init__(self, mlflow_cfg: DictConfig, overrides: list[str], sweep_dir: Path) -> None:
        self.experiment_id = configure(mlflow_cfg)
        self.client = MlflowClient()
        text = " ".join(overrides)
        redactor = Redactor()
        redactor.add_overrides(overrides)
        self.name = redactor.text(f"sweep {text}").strip()
        swept = " ".join(o for o in overrides if "," in o.partition("=")[2])  # what differs between the jobs
        self.short_name = redactor.text(f"sweep {swept or text}").strip()
        run = self.client.create_run(self.experiment_id, run_name=self.name,
                                     tags={mlflow_keys.TAG_SWEEP: "parent", mlflow_keys.TAG_SWEEP_OVERRIDES: redactor.text(text),
                                           **git_info()})
        self.run_id = run.info.run_id
        for o in overrides:  # the sweep's own overrides, as params a user can filter parents by
            k, _, v = o.partition("=")
            if k and not SECRET_KEY.search(k):
                self.client.log_param(self.run_id, mlflow_keys.sweep_param(k.lstrip('+~')), redactor.text(v)[:6000])
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
            if answer:  # the parent's row says the sweep's answer: its name and the view's `result` column
                self.client.update_run(self.run_id, name=f"{answer} ({self.short_name})"[:250])
                self.client.set_tag(self.run_id, mlflow_keys.TAG_RESULT, answer)
            if table:
                self.client.log_table(self.run_id, table, mlflow_keys.SWEEP_JSON)
            for k, v in metrics.items():
                self.client.log_metric(self.run_id, k, v)
            self.client.set_tag(self.run_id, mlflow_keys.TAG_NOTE, note)
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
    runs = {r.info.run_id: r for key in (mlflow_keys.TAG_PARENT, mlflow_keys.TAG_MLFLOW_PARENT)
            for r in client.search_runs([experiment_id], f"tags.`{key}` = '{parent_id}'", max_results=10000)}
    return sorted(runs.values(), key=lambda r: r.info.start_time)


def set_child_tags(client: MlflowClient, run_id: str, tags: dict, metrics: dict) -> None:
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)
