"""Metric, tag and artifact names, defined once: every writer and reader of a run uses these."""

from __future__ import annotations

ARMS = ("baseline", "patched")

# -- metrics users compare runs by (keep stable) --------------------------------------------------
ACC_BASELINE = "accuracy/baseline"
ACC_PATCHED = "accuracy/patched"
ACC_DELTA = "accuracy/delta"
ACC_CI_LOW = "accuracy/delta_ci_low"
ACC_CI_HIGH = "accuracy/delta_ci_high"
ACC_DELTA_PATCH_FAILURES = "accuracy/delta_patch_failures_as_wrong"  # patch-caused failures counted as wrong
N_ITEMS = "n/items"
N_SCORED = "n/scored"
N_FIXED = "n/fixed"
N_BROKEN = "n/broken"
N_CLUSTERS = "n/clusters"
N_SKIPPED_ITEMS = "n/skipped_items"
N_DRAWS = "n/draws"
P_VALUE = "stats/p_value"
P_ADJUSTED = "stats/p_adjusted"
MDE = "stats/mde"
ITEMS_NEEDED = "stats/items_needed"  # items a change of stats.target_effect needs at 80% power
LOSS_BASELINE = "loss/baseline"
LOSS_PATCHED = "loss/patched"
LOSS_DELTA = "loss/delta"
LOSS_CI_LOW = "loss/delta_ci_low"
LOSS_CI_HIGH = "loss/delta_ci_high"
LOSS_P_VALUE = "loss/p_value"
PATCH_HOOK_COUNT = "patch/hook_count"
PATCH_PROBE_DELTA = "patch/probe_loss_delta"
FAILURES_PATCH_CAUSED = "failures/patch_caused"
GENERATIONS = "requests/generations"
LOSS_REQUESTS = "requests/loss"
LOGGING_S = "time/logging_s"


def failures(arm: str) -> str:
    return f"failures/{arm}"


def reused(arm: str) -> str:
    return f"n/reused_{arm}"


def latency(arm: str, what: str) -> str:
    """what: per_item_mean | request_mean | request_p95."""
    return f"latency/{arm}_{what}_s"


def per_task(metric: str, task: str) -> str:
    return f"{metric}/{task}"


def phase(name: str) -> str:
    return f"time/{name}_s"


GUARD_FIELDS = ("baseline", "patched", "delta", "ci_low", "ci_high", "p_value")  # ci: (1 − 2α); p: one-sided NI


def guard(name: str, what: str) -> str:
    """A guard task's metric: guard/<name>/<what>, what one of GUARD_FIELDS (or p_paired, the two-sided test;
    n, its items; discordance, the share of its answers the patch changed; margin)."""
    return f"guard/{name}/{what}"


def prompt_guard(name: str, what: str) -> str:
    """The prompting arm on a guard task (prompt − baseline, judged like the patch): prompt/guard/<name>/<what>,
    what: accuracy | delta | ci_low | ci_high | p_value (one-sided at −margin)."""
    return f"prompt/guard/{name}/{what}"


def prompt_arm(vs: str, what: str) -> str:
    """The prompting arm's comparisons: prompt/<vs>/<what>, vs `baseline` (prompt − baseline) or
    `patched` (patched − prompt); what: accuracy | delta | ci_low | ci_high | p_value."""
    return f"prompt/{vs}/{what}"


# -- sweep parent metrics -------------------------------------------------------------------------
SWEEP_JOBS = "sweep/jobs"
SWEEP_FAILED_JOBS = "sweep/failed_jobs"


def sweep_param(override_key: str) -> str:
    """A sweep parent's param for one of its overrides: sweep.patch.strength, ..."""
    return f"sweep.{override_key}"


def sweep_count(verdict: str) -> str:
    """Children of a sweep with this adjusted verdict: sweep/improves, sweep/hurts."""
    return f"sweep/{verdict}"


# -- a patch study's parent (hookbench study) and its cost plan ------------------------------------
STUDY_TRIALS = "study/trials"
STUDY_KEPT = "study/kept"
STUDY_SPEARMAN_RHO = "study/spearman_rho"  # search loss delta vs. dev accuracy delta of the kept picks
STUDY_BEST_LOSS_DELTA = "study/best_loss_delta"
STUDY_REFERENCE_LOSS_DELTA = "study/reference_loss_delta"
STUDY_TEST_DELTA = "study/test_delta"
PLAN_LOSS_REQUESTS = "plan/loss_requests"
PLAN_GENERATIONS = "plan/generations"
PLAN_WALL_S = "plan/wall_s"
PLAN_TRIALS = "plan/trials"
PLAN_KEEP = "plan/keep"
PLAN_RUNG_GENERATIONS = "plan/rung{}_generations"  # the accuracy search: generations planned for rung N
STUDY_BEST_DELTA = "study/best_dev_delta"  # the accuracy search: the best kept candidate's paired delta, last rung
STUDY_CONCORDANT = "study/concordant_share"  # objective=auto: pairs of rung-0 candidates loss and accuracy order alike

# metrics a reproduction compares and a sweep summary shows, in this order
COMPARED = (ACC_BASELINE, ACC_PATCHED, ACC_DELTA, ACC_CI_LOW, ACC_CI_HIGH, P_VALUE, N_SCORED,
            failures("baseline"), failures("patched"), FAILURES_PATCH_CAUSED, LOSS_DELTA)

# -- tags -----------------------------------------------------------------------------------------
TAG_VERDICT = "verdict"
TAG_VERDICT_ADJUSTED = "verdict_adjusted"
TAG_NAME = "hookbench.name"  # the run name without its result tail
TAG_RESULT = "result"  # the rounded one-line result, also the run name's tail (tracking/naming.py)
TAG_SCREEN = "screen"
TAG_SWEEP = "hookbench.sweep"
# a sweep or study child's parent run id. A sweep's jobs have only this, not MLflow's mlflow.parentRunId,
# under which the runs table collapses the children into their parent's row (each job's result would then
# need a click); a study's many rung jobs have both, so its parent's row, the answer, is not buried.
TAG_PARENT = "hookbench.parent"
TAG_SWEEP_LARGEST_JOB = "sweep.largest_delta_job"  # the job whose delta is sweep/largest_delta
SWEEP_LARGEST_DELTA = "sweep/largest_delta"
TAG_REPRODUCES = "hookbench.reproduces"
TAG_REPRODUCED = "hookbench.reproduced"  # the rerun's verdict: agrees | disagrees | inconclusive
TAG_CONFIRMS = "hookbench.confirms"
TAG_RECOVERED = "hookbench.recovered"  # this job restored a server a dead job had left patched
TAG_MLFLOW_PARENT = "mlflow.parentRunId"  # a study's jobs; also how sweeps named their parent before TAG_PARENT
TAG_SWEEP_OVERRIDES = "sweep.overrides"  # a sweep parent's command-line overrides
TAG_STUDY = "hookbench.study"  # a study parent's name (its resume key)
TAG_STUDY_PHASE = "hookbench.study.phase"  # a study child's phase: search | reference | keep
TAG_STUDY_TRIAL = "hookbench.study.trial"  # a study child's trial number
TAG_ERROR = "error"
TAG_SERVER_IDENTITY = "server.identity"
TAG_WEIGHT_DIGESTS = "patch.weight_digests"  # equal | DIFFERENT after restore, or why not checked
TAG_NOTE = "mlflow.note.content"  # MLflow's run description
TAG_RUN_COLOR = "mlflow.runColor"  # the dot beside the run's name in the UI, and its colour in charts
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"  # the MLflow UI's experiment type
TAG_GUARD_VERDICT = "guard_verdict"  # `all non-inferior`, `hurts <guard>`, ... (reports.formatting.guard_tag)
TAG_PROMPT_VERDICT = "prompt_verdict"  # the patch vs the prompting arm: the paired verdict
TAG_STUDY_RUNG = "hookbench.study.rung"  # an accuracy search child's rung (0: the trial's first measurement)


def shared_view_state(key: str) -> str:
    """The experiment tag MLflow's UI loads a runs-table view from, for a link with viewStateShareKey=key."""
    return f"mlflow.sharedViewState.{key}"


TAG_MODEL = "model"
TAG_VERSION = "hookbench.version"
TAG_VERSION_PREFIX = "version."  # + a package (python, torch, ...) or server.<field>: what a run ran on
SERVER_DEVICE = "server.device"
SERVER_URL = "server.url"
GIT_COMMIT = "git.commit"
GIT_DIRTY = "git.dirty"

# -- params a job logs beyond its flattened config (some also as tags), and config keys read back --
MODEL_NAME = "model.name"
PATCH_NAME = "patch.name"
PATCH_HASH = "patch.hash"
STATS_ALPHA = "stats.alpha"  # the level of every interval the run logged is 1 - alpha
STATS_TARGET_EFFECT = "stats.target_effect"  # the change a run was sized for
STATS_CORRECTION = "stats.correction"  # a sweep's (and compare's) multiple-comparison correction
REPRODUCE_MARGIN = "reproduce.margin"  # how close a rerun must come to reproduce
PATCH_SOURCE = "patch.source"
PATCH_STRENGTH = "patch.strength"
PATCH_EDITS = "patch.edits"  # patch=inline: the edits written as an override
DATASET_NAME = "dataset.name"
DATASET_FINGERPRINT = "dataset.fingerprint"
GEN_PRESET_CONFIG = "generation.preset_config"
GEN_EXTRAS = "generation.extras"
GEN_PATCHED_PATH = "generation.patched_path"
COMPARE_PROMPT = "compare.prompt"  # the prompting arm's prompt change (a config key, logged as a param)

TRIAL_NUMBER = "trial.number"  # a study search trial's number, and its sampled values:


def trial_param(name: str) -> str:
    """A study trial's sampled value: trial.<param>."""
    return f"trial.{name}"


# -- artifacts ------------------------------------------------------------------------------------
RESOLVED_CONFIG = "config_resolved.yaml"  # the fully composed config a run can be reproduced from
PATCH_JSON = "patch.json"
ITEMS_JSONL = "items.jsonl"
ITEMS_CSV = "items.csv"
DIFF_TABLE = "diff_table.md"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"  # report.md with its plots inline: what MLflow's artifact view renders
CONTEXT_JSON = "context.json"
ERROR_TXT = "error.txt"
FOREST_PNG = "forest.png"  # the answer in one picture: target, prompting arm and guards against the baseline
ACCURACY_PNG = "accuracy.png"
LATENCY_PNG = "latency.png"
SWEEP_MD = "sweep_summary.md"
SWEEP_HTML = "sweep_summary.html"
SWEEP_CSV = "sweep_summary.csv"
SWEEP_JSON = "sweep_summary.json"
SWEEP_PNG = "sweep_delta.png"
SWEEP_STRENGTH_PNG = "sweep_strength.png"
CONFIRMATION_MD = "confirmation.md"
GUARDS_JSONL = "guard_items.jsonl"  # the guard tasks' items, one row per item and guard
PROMPT_JSONL = "prompt_items.jsonl"  # the prompting arm's answers: one row per target item, then per guard item
