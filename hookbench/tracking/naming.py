"""What a run is called and the short result it carries, so MLflow's default runs table (which
shows the Run Name column and no tag or metric until one is picked) reads as a results list.

A run starts named by what differs between jobs (patch, strength, model, then dataset); when its
result is known, the rounded plain-text result goes in before the dataset (`math · smollm2: -0.175
[-0.32, -0.03] p=0.04 → hurts · arithmetic`), also kept whole in tag `result`. In a sweep it is
rewritten with the adjusted p and verdict once the sweep's correction is known.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig

from hookbench.base import mlflow_keys
from hookbench.base.outcomes import GuardVerdict, Screen, Verdict
from hookbench.reports.formatting import CORRECTIONS


def base_name(cfg: DictConfig, tags: dict | None = None) -> str:
    """`math ×0.5 · smollm2 · arithmetic`; reproduce/confirm runs say what they are first."""
    strength = cfg.patch.get("strength", 1.0)
    patch = cfg.patch.name if strength in (None, 1, 1.0) else f"{cfg.patch.name} ×{float(strength):g}"
    name = f"{patch} · {cfg.model.name} · {cfg.dataset.name}"
    tags = tags or {}
    if tags.get(mlflow_keys.TAG_REPRODUCES):
        return f"reproduce of {tags[mlflow_keys.TAG_REPRODUCES][:8]}: {name}"
    if tags.get(mlflow_keys.TAG_CONFIRMS):
        return f"confirm on test: {name}"
    return name


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def result_text(delta, lo, hi, p, verdict: str | None, p_label: str = "p", after: str | None = None) -> str:
    """`−0.175 [−0.32, −0.03] p=0.04 → no detectable change after Holm`: rounded, one line, no markdown."""
    verdict = verdict or Verdict.NO_DATA
    if _missing(delta) or verdict == Verdict.NO_CHANGE_OBSERVED:  # no item changed: no interval, nothing to correct
        return verdict
    text = _signed(delta, 3)
    if not _missing(lo) and not _missing(hi):
        text += f" [{_signed(lo, 2)}, {_signed(hi, 2)}]"
    if not _missing(p):
        text += f" {p_label}={_p(p)}"
    return f"{text} → {verdict}" + (f" after {after}" if after else "")


def sweep_result(row: dict, correction: str) -> str:
    """A sweep child's result with its adjusted p and verdict (tag `verdict_adjusted`)."""
    if row.get("status") != "FINISHED":
        return "failed"
    if row.get(mlflow_keys.TAG_SCREEN) == Screen.REJECTED:
        return "screened out (loss screen)"
    if row.get(mlflow_keys.TAG_VERDICT_ADJUSTED) == Verdict.NO_CHANGE_OBSERVED and not _missing(row.get(mlflow_keys.N_SCORED)):
        return f"no change observed (0 of {int(row[mlflow_keys.N_SCORED])} changed)"
    words = CORRECTIONS.get(correction)
    after = words.short if words else None
    text = result_text(row.get(mlflow_keys.ACC_DELTA), row.get(mlflow_keys.ACC_CI_LOW), row.get(mlflow_keys.ACC_CI_HIGH),
                       row.get(mlflow_keys.P_ADJUSTED), row.get(mlflow_keys.TAG_VERDICT_ADJUSTED), "p_adj" if after else "p", after)
    return text + guard_tail(row.get(mlflow_keys.TAG_VERDICT_ADJUSTED), row.get(mlflow_keys.TAG_GUARD_VERDICT))


def guard_tail(verdict: str | None, guard_verdict: str | None) -> str:
    """` but hurts capitals` / ` · guards non-inferior` after a result; empty for a job without guards."""
    if not guard_verdict:
        return ""
    if guard_verdict.startswith(f"{GuardVerdict.HURTS} "):
        return f" {'but' if verdict == Verdict.IMPROVES else 'and'} {guard_verdict}"
    return f" · guards {guard_verdict}"


def with_result(name: str, result: str) -> str:
    """`math ×0.5 · smollm2: −0.175 [−0.32, −0.03] p=0.04 → hurts · gsm8k`: the result right after what
    differs, before the dataset, since MLflow's Run Name column shows the first ~25 characters.
    MLflow keeps run names up to 250 characters."""
    head, sep, dataset = name.rpartition(" · ")
    return (f"{head}: {result} · {dataset}" if sep else f"{name}: {result}")[:250]
