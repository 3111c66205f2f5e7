"""How hookbench writes numbers and tables: one spelling for accuracy, deltas, p, MDE, plurals and n/a,
shared by the run report, the console, descriptions, the sweep summary, reproduce and confirm.
Every sentence about a test (a job's verdict, two runs' agreement) is written here and only here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from hookbench.base.outcomes import Agreement, GuardVerdict, Verdict
from hookbench.stats import Comparison, Equivalence

NA = "n/a"
CELL_MAX = 200  # characters per markdown table cell before truncation


@dataclass(frozen=True)
class CorrectionWords:
    """How a multiple-comparison correction (stats.correction) is named where a sweep's results are read."""

    short: str  # in a run's name: `... → hurts after Holm`
    name: str  # in a child's description: `... after Benjamini–Hochberg over 4 jobs`
    phrase: str  # in the sweep summary: `Benjamini–Hochberg (FDR) correction over 4 jobs`


# stats.correction -> its words; "none" (each p as tested) has no entry
CORRECTIONS = {"holm": CorrectionWords("Holm", "Holm", "Holm correction"),
               "bh": CorrectionWords("BH", "Benjamini–Hochberg", "Benjamini–Hochberg (FDR) correction")}
NO_CORRECTION = "no correction"


def correction_name(correction: str) -> str:
    """`Holm`, `Benjamini–Hochberg`, `no correction` (an unknown value as given)."""
    words = CORRECTIONS.get(correction)
    return words.name if words else NO_CORRECTION if correction == "none" else correction


def is_nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_acc(x: float | None) -> str:
    """Accuracy as 0.xxx (xx.x%); n/a when nothing was scored."""
    return NA if is_nan(x) else f"{x:.3f} ({x:.1%})"


def fmt_num(x: float | None, digits: int = 3) -> str:
    return NA if is_nan(x) else f"{x:.{digits}f}"


def fmt_signed(x: float | None) -> str:
    """A signed difference, so a reader sees the direction at a glance."""
    return NA if is_nan(x) else f"{x:+.3f}"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    return NA if is_nan(lo) or is_nan(hi) else f"[{lo:+.3f}, {hi:+.3f}]"


def fmt_delta(delta, lo, hi) -> str:
    """Delta with its CI: `+0.060 [-0.012, +0.132]`."""
    return f"{fmt_signed(delta)} {fmt_ci(lo, hi)}"


def fmt_p(p: float | None) -> str:
    return NA if is_nan(p) else ("< 0.001" if p < 0.001 else f"{p:.3g}")


def p_words(p: float | None) -> str:
    """`p = 0.0625`, `p < 0.001`, `p n/a`: for sentences."""
    return "p n/a" if is_nan(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.3g}")


def fmt_mde(mde: float | None, bounded: bool = True) -> str:
    """Smallest change the test detects with 80% power, one rounding everywhere; for scores in
    [0, 1] (`bounded`) an MDE ≥ 1 means no possible change would be detected."""
    if is_nan(mde):
        return NA
    return f"±{mde:.3f}" if mde < 1 or not bounded else "≥ ±1 (no change in [0, 1] is detectable)"


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 item`, `2 items`: the count with its noun in the right number."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt_level(alpha: float) -> str:
    """The interval's level, 1 − α: `95%` at α = 0.05."""
    return f"{(1 - alpha) * 100:.10g}%"


def comparison_size(c: Comparison) -> str:
    size = plural(c.n, "item")
    if c.n_clusters != c.n:
        size += f" in {plural(c.n_clusters, 'cluster')}"
    if c.draws > 1:
        size += f" ({c.draws} draws each)"
    return size


def comparison_floor(c: Comparison) -> str:
    """What this n can detect (the MDE), and the items a target effect needs."""
    size = comparison_size(c)
    if is_nan(c.mde):
        return f"with {size} no change can be tested"
    if c.mde >= 1 and c.higher_is_better:
        floor = f"with {size} not even a change of ±1 would reliably be detected"
    else:
        floor = f"with {size} the smallest detectable change is {fmt_mde(c.mde, c.higher_is_better)}"
    if c.items_needed:
        floor += f"; a change of ±{c.target_effect:g} needs about {plural(c.items_needed, 'item')}"
    return floor


def comparison_sentence(c: Comparison) -> str:
    """One line a user reads; calls the patch better or worse only when the verdict does."""
    if c.verdict == Verdict.NO_DATA:
        return "no data (no paired items)"
    if c.verdict == Verdict.NO_CHANGE_OBSERVED:
        return f"no change observed (0 of {plural(c.n, 'item')} changed; {comparison_floor(c)})"
    what = f"{fmt_signed(c.delta)} {fmt_level(c.alpha)} {fmt_ci(c.ci_low, c.ci_high)}, {p_words(c.p_value)}"
    if c.verdict == Verdict.NO_DETECTABLE_CHANGE:
        return f"no detectable change ({what}; {comparison_floor(c)})"
    name = c.test_name
    counts = (f"{c.fixed} fixed / {c.broken} broken" if c.higher_is_better
              else f"{plural(c.broken, 'item')} with lower / {c.fixed} with higher loss")
    return f"{c.verdict}: {what} ({name}, {counts})"


def fmt_seconds(x: float | None) -> str:
    return NA if is_nan(x) else f"{x:.2f} s"


def fmt_failures(count: int, kinds: dict[str, int]) -> str:
    """`3 (timeout: 2, empty: 1)` — the kind tells the user what to fix."""
    if not count:
        return "0"
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{count} ({detail})"


def fmt_comparison_delta(c: Comparison) -> str:
    """The delta cell: no zero-width interval when nothing changed, the words instead."""
    if c.verdict == Verdict.NO_CHANGE_OBSERVED:
        return f"{Verdict.NO_CHANGE_OBSERVED} (0 of {c.n} changed)"
    return fmt_delta(c.delta, c.ci_low, c.ci_high)


EQUIVALENCE_WORDS: dict[str, str] = {Agreement.AGREES: "reproduces", Agreement.DISAGREES: "does not reproduce",
                     Agreement.INCONCLUSIVE: str(Agreement.INCONCLUSIVE)}
ARM_WORDS = {"delta": "the delta (patched − baseline)", "baseline": "the baseline arm", "patched": "the patched arm"}


def equivalence_rule(alpha: float, margin: float) -> str:
    return (f"rule: reproduces when the {fmt_level(2 * alpha)} interval of the difference lies within "
            f"±{fmt_num(margin)} (TOST at α = {alpha:g}), does not reproduce when the {fmt_level(alpha)} "
            "interval excludes 0, else inconclusive; CR1 t clustered by query")


def equivalence_sentence(e: Equivalence) -> str:
    """`the delta (patched − baseline): reproduces: the runs differ by +0.010 [..] ...`."""
    who = ARM_WORDS.get(e.what, e.what)
    if e.n_clusters < 2:
        return (f"{who}: inconclusive: {plural(e.n, 'paired item')} in {plural(e.n_clusters, 'cluster')}, "
                "too few to compare")
    return (f"{who}: {EQUIVALENCE_WORDS[e.outcome]}: the runs differ by {fmt_signed(e.difference)} "
            f"{fmt_level(e.alpha)} {fmt_ci(e.ci_low, e.ci_high)}, {p_words(e.p_difference)}; "
            f"{fmt_level(2 * e.alpha)} {fmt_ci(e.tost_low, e.tost_high)} vs margin ±{fmt_num(e.margin)} "
            f"(TOST {p_words(e.p_equivalence)})")


def _no_nan(value):
    """NaN inside dicts/lists prints as n/a, not as JSON's NaN."""
    if isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def md_cell(value, limit: int | None = CELL_MAX) -> str:
    """Make any value safe inside a markdown table cell: truncate, escape pipes, no raw newlines."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, (dict, list)):
        value = json.dumps(_no_nan(value), ensure_ascii=False, sort_keys=True)
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"  # truncate before escaping, so no escape is cut in half
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plots_sentence(pngs: list[str], where: str = "this run") -> str:
    """Plots are named, not embedded: MLflow's markdown preview cannot show relative images."""
    return f"Plots: {', '.join(f'`{p}`' for p in pngs)} (artifacts of {where}: open them in the artifact list)."


def fmt_batch_sizes(sizes: list[int]) -> str:
    return ", ".join(str(s) for s in sizes) if sizes else NA


def fmt_metric(x: float | None) -> str:
    """Any logged metric in a comparison table (4 significant digits)."""
    return NA if is_nan(x) else f"{x:.4g}"


SWEEP_OWN_TEST = "own test, before the sweep's correction over its jobs"


def job_headline(out, in_sweep: bool = False) -> str:
    """A job's result in one line of words (`out`: evaluation.job_output.JobOutput). Inside a sweep the
    job's own test is labelled as such: the sweep's adjusted verdict replaces it when the sweep ends."""
    if not out.screen_passed:
        s = out.screen
        return (f"screened out: loss delta {s.delta:+.4f} on {plural(s.size, 'item')} is above "
                f"screen.threshold={s.threshold:g}; no generations")
    parts, summary = [], out.summary
    if summary.breaks_generation():
        parts.append(f"the patch breaks generation: {summary.patch_caused} of {summary.n_draws} "
                     "patched answers failed only under the patch")
    if out.settings.generates:
        parts.append(f"accuracy {comparison_sentence(summary.comparison)}")
    if summary.loss is not None:
        parts.append(f"loss {comparison_sentence(summary.loss)}")
    if out.guards:
        parts.insert(0, verdict_lead(summary.comparison.verdict, out.dataset.name, out.guards))
        parts.append(guards_sentence(out.guards))
    if out.prompt is not None:
        parts.append(prompt_sentence(out.prompt))
        parts += prompt_guard_sentences(out.guards)
    line = "; ".join(parts) or "nothing measured"
    return f"{SWEEP_OWN_TEST}: {line}" if in_sweep and out.settings.generates else line


def job_note(out, title: str, in_sweep: bool = False) -> str:
    """The run's description in the MLflow UI: its one-line result, plain text (the runs table and its
    tooltips show it raw)."""
    return f"{title}: {job_headline(out, in_sweep)}"


def adjusted_lead(verdict_adjusted: str, p_adjusted: float, p_own: float, method: str, jobs: int) -> str:
    """What a sweep child leads with once the sweep is corrected: `hurts → no detectable change ...`."""
    return (f"{verdict_adjusted} after {method} over {plural(jobs, 'job')}, p_adj {_p_value(p_adjusted)} "
            f"(own p {_p_value(p_own)})")


def _p_value(p: float | None) -> str:
    return NA if is_nan(p) else ("< 0.001" if p < 0.001 else f"= {p:.3g}")


# -- guards: non-inferiority of the tasks a patch must not damage ---------------------------------
def guard_phrase(g) -> str:
    """`capitals non-inferior (-0.004 90% [-0.015, +0.007], margin 0.05)`; a guard that hurts shows its
    two-sided test's interval (which excludes 0), every other the (1 − 2α) one: each agrees with its word."""
    ni, c = g.ni, g.comparison
    if g.verdict == GuardVerdict.NO_DATA:
        return f"{g.name} {GuardVerdict.NO_DATA}"
    if g.verdict == GuardVerdict.HURTS:
        return (f"{g.name} {GuardVerdict.HURTS} ({fmt_signed(c.delta)} {fmt_level(c.alpha)} "
                f"{fmt_ci(c.ci_low, c.ci_high)}, {p_words(c.p_value)})")
    return (f"{g.name} {g.verdict} ({fmt_signed(ni.delta)} {fmt_level(2 * ni.alpha)} {fmt_ci(ni.ci_low, ni.ci_high)}, "
            f"margin {ni.margin:g})")


def guards_sentence(guards: list) -> str:
    """`guards: capitals non-inferior (...), gsm8k inconclusive (...)`; empty without guards."""
    return "guards: " + ", ".join(guard_phrase(g) for g in guards) if guards else ""


def guards_hurt(guards: list) -> list[str]:
    return [g.name for g in guards if g.verdict == GuardVerdict.HURTS]


def guard_tag(guards: list) -> str:
    """Tag `guard_verdict`: `non-inferior` (every guard), `hurts capitals`, or `inconclusive gsm8k`."""
    hurt = guards_hurt(guards)
    if hurt:
        return f"{GuardVerdict.HURTS} {', '.join(hurt)}"
    unsure = [g.name for g in guards if g.verdict != GuardVerdict.NON_INFERIOR]
    return f"{GuardVerdict.INCONCLUSIVE} {', '.join(unsure)}" if unsure else str(GuardVerdict.NON_INFERIOR)


def verdict_lead(verdict: str, target: str, guards: list) -> str:
    """`improves arithmetic but hurts capitals`, `improves arithmetic; guards non-inferior`: the target's
    verdict read together with its guards (empty without guards)."""
    if not guards:
        return ""
    hurt = guards_hurt(guards)
    if hurt:
        joiner = "but" if verdict == Verdict.IMPROVES else "and"
        return f"{verdict} {target} {joiner} hurts {', '.join(hurt)}"
    if all(g.verdict == GuardVerdict.NON_INFERIOR for g in guards):
        return f"{verdict} {target}; every guard non-inferior"
    return f"{verdict} {target}; guards not shown non-inferior: " + ", ".join(
        g.name for g in guards if g.verdict != GuardVerdict.NON_INFERIOR)


def guard_rule(alpha: float) -> str:
    return (f"rule: non-inferior when the {fmt_level(2 * alpha)} interval of the guard's delta lies above −margin "
            f"(one-sided score test at α = {alpha:g}); hurts when its two-sided {fmt_level(alpha)} paired test "
            "calls a decrease; else inconclusive. Every guard must be non-inferior (intersection–union: no adjustment)")


# -- the prompting arm: the patch beside a prompt change on the same items ------------------------
def prompt_sentence(p) -> str:
    """`the patch beats prompting (+0.030 95% [+0.010, +0.050], p = 0.004)` or `does not beat ...`
    (`p`: evaluation.prompting.PromptResult); the interval is the paired test's, patched − prompt."""
    c = p.patch_vs_prompt
    beats = c.verdict == Verdict.IMPROVES
    what = f"{fmt_signed(c.delta)} {fmt_level(c.alpha)} {fmt_ci(c.ci_low, c.ci_high)}, {p_words(c.p_value)}"
    return f"the patch {'beats' if beats else 'does not beat'} prompting ({what})"


def prompt_guard_sentences(guards: list) -> list[str]:
    """`guards under prompting: capitals non-inferior (...)`: the prompting arm judged on each guard
    like the patch (prompt − baseline), so a prompt change that wrecks a guard is seen as one."""
    judged = [guard_phrase(g.prompting) for g in guards if g.prompting is not None]
    return [f"guards under prompting: {', '.join(judged)}"] if judged else []


def prompt_lines(p) -> list[tuple[str, object]]:
    """(comparison, Comparison) rows of the three paired comparisons, the job's own first."""
    return [("prompt − baseline", p.vs_baseline), ("patched − prompt", p.patch_vs_prompt)]
