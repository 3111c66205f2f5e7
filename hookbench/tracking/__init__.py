"""MLflow, in one place: where runs go (store), what is masked (redaction), one job's MLflow run (mlflow_run),
closing a dead job's run (recovery), a sweep's parent (sweep_parent), and reading runs back (reading).

Every other module (job, sweep callback, reproduce, confirm) goes through here; the names below are
the package's interface.
"""

from hookbench.tracking.mlflow_run import MlflowRun, log_dataset, result_line
from hookbench.tracking.reading import download, get_run, is_finished, logged_items
from hookbench.tracking.recovery import close_dead_run, lease_record
from hookbench.tracking.redaction import MASK, SECRET_KEY, Redactor, flatten, redact_url
from hookbench.tracking.store import (
    EXPERIMENT_TAGS,
    VIEW_KEY,
    configure,
    default_tracking_uri,
    git_info,
    ui_hint,
    ui_page,
    use_store,
)
from hookbench.tracking.sweep_parent import (
    PARENT_ENV,
    PARENT_FILE,
    SweepParent,
    child_runs,
    log_chart_image,
    parent_run_id,
    set_child_tags,
)

__all__ = ["EXPERIMENT_TAGS", "MASK", "PARENT_ENV", "PARENT_FILE", "SECRET_KEY", "VIEW_KEY", "MlflowRun", "Redactor",
           "SweepParent", "child_runs", "close_dead_run", "configure", "default_tracking_uri", "download", "flatten",
           "get_run", "git_info", "is_finished", "result_line", "lease_record", "log_chart_image", "log_dataset", "logged_items",
           "parent_run_id", "redact_url", "set_child_tags", "ui_hint", "ui_page", "use_store"]
