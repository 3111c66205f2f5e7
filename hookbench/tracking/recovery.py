"""A job that died holding a server: its run, left RUNNING, is closed KILLED by the job that finds its lease."""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hookbench.base import mlflow_keys

log = logging.getLogger(__name__)


def lease_record(run_id: str) -> dict[str, str]:
    """What a job writes into its server lease so that a later job can find and close its run: the run
    and the store it is on (the lease itself, hookapi.lease, knows nothing of MLflow)."""
    return {"run_id": run_id, "tracking_uri": mlflow.get_tracking_uri()}


def close_dead_run(record: dict, recovered: str | None, by_run: str) -> bool:
    """Close the run of a job that died holding a server (its lease `record`), if it is on this store
    and still RUNNING: KILLED, with the reason. Returns whether it closed one."""
    run_id = record.get("run_id")
    if not run_id or record.get("tracking_uri") != lease_record(run_id)["tracking_uri"]:
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
    client.log_text(run_id, reason, mlflow_keys.ERROR_TXT)
    client.set_tag(run_id, mlflow_keys.TAG_ERROR, reason)
    client.set_terminated(run_id, "KILLED")
    log.warning("run %s: %s", run_id, reason)
    return True
