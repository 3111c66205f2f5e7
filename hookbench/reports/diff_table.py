"""diff_table.md: the items whose answer the patch changed, fixed and broken first, as a Markdown table."""

from __future__ import annotations

from hookbench.base import mlflow_keys
from hookbench.evaluation.results import ArmResult, ItemResult
from hookbench.reports.formatting import md_table, plural

DIFF_MAX_ROWS = 200  # unchanged, unfailed rows beyond this are left out of the diff table


def arm_status(arm: ArmResult) -> str:
    """✓ / ✗ when scored, else the failure kind (a failure is not a wrong answer), else '–'."""
    if arm.error:
        return arm.error
    if arm.correct is None:
        return "–"
    return "✓" if arm.correct else "✗"


def arm_answer(arm: ArmResult) -> str | None:
    """What the scorer read as the answer; the raw output when nothing was extracted."""
    return arm.extracted if arm.extracted is not None else arm.output


def change_kind(r: ItemResult) -> str:
    """fixed / broken (score changed, both scored), failed (any arm failed), changed (another wrong
    answer), or same (the answer did not change)."""
    if r.baseline.scored and r.patched.scored and r.baseline.correct != r.patched.correct:
        return "fixed" if r.patched.correct else "broken"
    if r.baseline.error or r.patched.error:
        return "failed"
    if arm_answer(r.baseline) != arm_answer(r.patched):
        return "changed"
    return "same"


_ORDER = {"fixed": 0, "broken": 1, "failed": 2, "changed": 3, "same": 4}


def diff_table(records: list[ItemResult], max_rows: int = DIFF_MAX_ROWS) -> str:
    """Markdown diff table: changed rows first (fixed, then broken), then failures, then the rest.

    All changed and failed rows are always kept; only unchanged rows are cut beyond max_rows.
    Rows are answers (one per draw); a draw column appears when there is more than one draw.
    """
    ordered = sorted(records, key=lambda r: _ORDER[change_kind(r)])  # stable: input order within group
    keep = [r for r in ordered if change_kind(r) != "same"]
    rest = [r for r in ordered if change_kind(r) == "same"]
    room = max(0, max_rows - len(keep))
    left_out = max(0, len(rest) - room)
    keep += rest[:room]
    counts = {k: sum(change_kind(r) == k for r in records) for k in _ORDER}
    draws = any(r.draw for r in records)
    header = ["id", *(["draw"] if draws else []), "task", "prompt", "gold", "baseline answer", "patched answer",
              "baseline", "patched"]
    rows = [
        [r.id, *([r.draw] if draws else []), r.task, r.prompt, r.gold, arm_answer(r.baseline),
         arm_answer(r.patched), arm_status(r.baseline), arm_status(r.patched)]
        for r in keep
    ]
    parts = [
        f"{plural(counts['fixed'], 'answer')} fixed by the patch, {counts['broken']} broken by it, "
        f"{counts['changed']} changed but still wrong, {counts['failed']} with a failed generation, "
        f"{counts['same']} unchanged (✓ correct, ✗ wrong, otherwise the failure kind).",
        "",
        md_table(header, rows),
    ]
    if left_out:
        parts += ["", f"_{left_out} unchanged rows left out; the full data is in {mlflow_keys.ITEMS_JSONL}._"]
    return "\n".join(parts) + "\n"
