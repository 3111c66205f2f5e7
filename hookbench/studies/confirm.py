"""`hookbench confirm SWEEP_RUN_ID`: confirm a sweep's best patch sets on held-out items.

Picking the best of K patch sets on the items that report its delta overstates it (the winner's
curse). A patch study therefore sweeps on `dataset.split=dev`, and this command picks, per model,
the best child by its adjusted verdict (improves first; ties: the larger delta), reruns each pick
on `dataset.split=test` with its frozen patch and logged config (never today's conf/), nests the
confirmation runs under the sweep's parent (tag `hookbench.confirms=<child run id>`), and writes
`confirmation.md` to the parent: dev delta vs test delta with intervals, and the verdict on test
alone. Exit code 0 when every pick improves on test, 1 when not, 2 and up on error.
"""

from __future__ import annotations

import math

from omegaconf import OmegaConf

from hookbench import tracking
from hookbench.base import mlflow_keys
from hookbench.base.errors import ConfigError
from hookbench.base.outcomes import GuardVerdict, Screen, Verdict
from hookbench.job import run_job
from hookbench.reports.formatting import fmt_delta, fmt_level, md_table
from hookbench.studies.reproduce import logged_config, output_dir

RANK = {Verdict.IMPROVES: 0, Verdict.NO_CHANGE_OBSERVED: 1, Verdict.NO_DETECTABLE_CHANGE: 1, Verdict.HURTS: 2}


def picks(children: list, top: int) -> list:
    """The `top` best finished children per model: adjusted verdict first, then the larger delta."""
    done = [r for r in children if tracking.is_finished(r) and r.data.tags.get(mlflow_keys.TAG_SCREEN) != Screen.REJECTED
            and mlflow_keys.TAG_CONFIRMS not in r.data.tags and mlflow_keys.ACC_DELTA in r.data.metrics]
    by_model: dict[str, list] = {}
    for r in done:
        by_model.setdefault(r.data.params.get(mlflow_keys.MODEL_NAME, "?"), []).append(r)

    def key(r):
        verdict = r.data.tags.get(mlflow_keys.TAG_VERDICT_ADJUSTED) or r.data.tags.get(mlflow_keys.TAG_VERDICT)
        return (RANK.get(verdict, 3), -r.data.metrics[mlflow_keys.ACC_DELTA])

    return [r for model in sorted(by_model) for r in sorted(by_model[model], key=key)[:top]]


def _delta(m: dict) -> str:
    return fmt_delta(m.get(mlflow_keys.ACC_DELTA, math.nan), m.get(mlflow_keys.ACC_CI_LOW, math.nan),
                     m.get(mlflow_keys.ACC_CI_HIGH, math.nan))


def _level(rows: list[tuple], arm: int) -> str:
    """The intervals' level, from the runs' own stats.alpha (one per column: a sweep shares its alpha)."""
    alphas = {float(pair[arm].data.params.get(mlflow_keys.STATS_ALPHA, 0.05)) for pair in rows}
    return "/".join(fmt_level(a) for a in sorted(alphas)) or fmt_level(0.05)


def is_confirmed(test) -> bool:
    """A pick is confirmed when its test run improves the target and every guard is non-inferior there
    (intersection–union: each guard's one-sided test at α, no adjustment); a run without guards: improves."""
    guards = test.data.tags.get(mlflow_keys.TAG_GUARD_VERDICT)
    return (test.data.tags.get(mlflow_keys.TAG_VERDICT) == Verdict.IMPROVES
            and (guards is None or guards == GuardVerdict.NON_INFERIOR))


def confirmation_markdown(rows: list[tuple]) -> str:
    body = [[dev.data.params.get(mlflow_keys.MODEL_NAME), dev.data.params.get(mlflow_keys.PATCH_NAME), dev.data.params.get(mlflow_keys.PATCH_HASH),
             _delta(dev.data.metrics), dev.data.tags.get(mlflow_keys.TAG_VERDICT_ADJUSTED, "?"),
             _delta(test.data.metrics), test.data.tags.get(mlflow_keys.TAG_VERDICT, "?"),
             test.data.tags.get(mlflow_keys.TAG_GUARD_VERDICT, "none"), "yes" if is_confirmed(test) else "no", test.info.run_id]
            for dev, test in rows]
    return "\n".join([
        "# Confirmation on held-out items", "",
        "Each pick was chosen on the `dev` split; its delta on `test` (items it was not chosen on) is the "
        "estimate to report. The test verdict is judged alone (no correction: one pre-registered test per pick). "
        "A pick is confirmed when it improves on test and every guard is non-inferior on test.", "",
        md_table(["model", "patch", "hash", f"dev delta [{_level(rows, 0)} CI]", "dev verdict (adjusted)",
                  f"test delta [{_level(rows, 1)} CI]",
                  "test verdict", "guards on test", "confirmed", "test run"], body), ""])


def confirm(sweep_run_id: str, tracking_uri: str, top: int = 1, among: set[str] | None = None,
            changes: dict | None = None) -> int:
    """`among`: pick only from these child runs (a study's kept candidates); `changes`: config keys set
    on the test rerun (a study confirms on the whole test split, not its last rung's item count)."""
    client = tracking.use_store(tracking_uri)
    parent = tracking.get_run(client, sweep_run_id)
    if parent.data.tags.get(mlflow_keys.TAG_SWEEP) != "parent":
        raise ConfigError(f"run {sweep_run_id} is not a sweep's parent run (python -m hookbench -m ...)")
    children = tracking.child_runs(client, parent.info.experiment_id, sweep_run_id)
    chosen = picks([c for c in children if among is None or c.info.run_id in among], top)
    if not chosen:
        raise ConfigError(f"sweep {sweep_run_id} has no finished job with an accuracy delta to confirm")
    work = output_dir("confirm", sweep_run_id)
    rows = []
    for dev in chosen:
        cfg, identity = logged_config(client, dev.info.run_id, work / dev.info.run_id / "logged")
        if cfg.dataset.get("split", "all") != "dev":
            raise ConfigError(f"job {dev.info.run_id} ran on dataset.split={cfg.dataset.get('split', 'all')}; "
                              "a patch study sweeps on dataset.split=dev, then confirms on test")
        cfg.dataset.split = "test"
        cfg.reuse.enabled = True  # the test baseline is shared by every pick
        cfg.mlflow.tracking_uri = tracking_uri
        for key, value in (changes or {}).items():
            OmegaConf.update(cfg, key, value)
        result = run_job(cfg, extra_tags={mlflow_keys.TAG_CONFIRMS: dev.info.run_id}, expected_identity=identity,
                         out_dir=work / dev.info.run_id, parent_id=sweep_run_id)
        rows.append((dev, client.get_run(result.run_id)))
    text = confirmation_markdown(rows)
    client.log_text(sweep_run_id, text, mlflow_keys.CONFIRMATION_MD)
    print(text)
    improved = sum(is_confirmed(test) for _, test in rows)
    confirmed = improved == len(rows)
    print(f"{improved} of {len(rows)} picks "
          f"confirmed ({Verdict.IMPROVES} on test, every guard {GuardVerdict.NON_INFERIOR}); "
          f"{mlflow_keys.CONFIRMATION_MD} logged to the sweep's parent run {sweep_run_id}")
    return 0 if confirmed else 1
