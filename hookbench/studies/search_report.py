"""How a study reads: the trials, the kept candidates' dev results, the loss-to-accuracy rank
correlation, the loss-delta-per-trial plot and the answer in one line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from scipy import stats as sps

from hookbench.reports.formatting import fmt_delta, fmt_level, md_table

if TYPE_CHECKING:
    from hookbench.studies.rungs import Measured


# how studies.rungs ranks (Measured.score, RungSearch._promote), in words
RANKING = ("Each candidate against the shared baseline on the first N dev items; the best of each rung go on to "
           "the next, ranked by the paired test's signed z (the evidence of a gain: the two-sided p turned into a "
           "z with the delta's sign; 0 when no item changed), then the delta. With search.objective=auto, when loss "
           "and accuracy agree on rung 0, rung 1's candidates are the lowest loss deltas instead.")
MIN_INFORMATIVE = 10  # fewer kept candidates than this: the correlation's interval is too wide to say much


@dataclass(frozen=True)
class Trial:
    number: int
    loss_delta: float  # nan: the trial failed
    patch_hash: str
    edits: str
    run_id: str


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho with a Fisher-z interval (SE 1.06/sqrt(n-3), Fieller, Hartley & Pearson 1957)."""

    n: int
    rho: float
    low: float
    high: float

    def sentence(self) -> str:
        if self.n < 4 or math.isnan(self.rho):
            why = "fewer than 4 kept candidates" if self.n < 4 else "no variation in one of the deltas"
            return f"loss-to-accuracy rank correlation: undefined ({why}; n = {self.n})"
        s = f"loss-to-accuracy rank correlation (Spearman, loss delta vs accuracy delta over {self.n} kept " \
            f"candidates): rho = {self.rho:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (95%, Fisher z)"
        if self.n < MIN_INFORMATIVE:
            s += f"; uninformative with fewer than {MIN_INFORMATIVE} candidates"
        return s


def rank_correlation(loss_deltas: list[float], acc_deltas: list[float], level: float = 0.95) -> Correlation:
    """A screen that works has rho < 0: a lower loss delta goes with a higher accuracy delta."""
    n = len(loss_deltas)
    if n < 4:
        return Correlation(n, math.nan, math.nan, math.nan)
    rho = float(sps.spearmanr(loss_deltas, acc_deltas).statistic)
    if math.isnan(rho):
        return Correlation(n, rho, math.nan, math.nan)
    z, half = math.atanh(max(-0.999999, min(0.999999, rho))), sps.norm.ppf(0.5 + level / 2) * 1.06 / math.sqrt(n - 3)
    return Correlation(n, rho, math.tanh(z - half), math.tanh(z + half))


def concordant_share(loss_deltas: list[float], acc_deltas: list[float]) -> float:
    """The share of candidate pairs the loss orders as accuracy does (lower loss delta with higher accuracy
    delta), over the pairs tied in neither."""
    same = total = 0
    for i in range(len(loss_deltas)):
        for j in range(i + 1, len(loss_deltas)):
            a, b = loss_deltas[i] - loss_deltas[j], acc_deltas[i] - acc_deltas[j]
            if a != 0 and b != 0:
                total += 1
                same += (a < 0) == (b > 0)
    return same / total if total else math.nan


@dataclass(frozen=True)
class LossAccuracyAgreement:
    """Loss and accuracy on the first rung's candidates: the loss screens only when they agree, i.e. the
    Spearman interval lies wholly below 0 (lower loss goes with higher accuracy)."""

    correlation: Correlation
    concordant: float

    @property
    def agree(self) -> bool:
        return math.isfinite(self.correlation.high) and self.correlation.high < 0

    def sentence(self, later_rungs: bool = True) -> str:
        """What the agreement decided; with one rung (`later_rungs` false) there was nothing to choose."""
        c = self.correlation
        rho = "undefined" if math.isnan(c.rho) else f"rho = {c.rho:+.2f} [{c.low:+.2f}, {c.high:+.2f}] (95%, Fisher z)"
        share = "n/a" if math.isnan(self.concordant) else f"{self.concordant:.0%}"
        how = "they agree" if self.agree else "they do not agree"
        if later_rungs:
            how += ": the loss chose rung 1" if self.agree else ": the paired accuracy comparison chose rung 1"
        else:
            how += " (one rung: nothing to choose for a later one)"
        return (f"loss vs accuracy on rung 0 ({c.n} candidates): Spearman {rho}, pairs ordered the same way "
                f"{share}; {how}")


def agreement(loss_deltas: list[float], acc_deltas: list[float]) -> LossAccuracyAgreement:
    ok = [(x, y) for x, y in zip(loss_deltas, acc_deltas) if math.isfinite(x) and math.isfinite(y)]
    xs, ys = [x for x, _ in ok], [y for _, y in ok]
    return LossAccuracyAgreement(rank_correlation(xs, ys), concordant_share(xs, ys))


def trials_markdown(trials: list[Trial], kept: set[str], reference: float | None) -> str:
    rows = [[t.number, "nan" if math.isnan(t.loss_delta) else f"{t.loss_delta:+.4f}", t.patch_hash,
             "kept" if t.patch_hash in kept else "", t.edits, t.run_id] for t in trials]
    ref = "" if reference is None else f"The configured patch's loss delta on the same items: {reference:+.4f}.\n\n"
    return "# Search trials\n\n" + ref + md_table(["trial", "loss delta", "hash", "", "edits", "run"], rows) + "\n"


def kept_markdown(rows: list[dict], alpha: float) -> str:
    body = [[r["hash"], f"{r['search_loss_delta']:+.4f}",
             fmt_delta(r.get("delta", math.nan), r.get("ci_low", math.nan), r.get("ci_high", math.nan)),
             f"{r.get('p', math.nan):.3g}", f"{r.get('p_adjusted', math.nan):.3g}", r.get("verdict_adjusted", "?"),
             r["run_id"]] for r in rows]
    return "# Kept candidates on dev\n\n" + md_table(
        ["hash", "search loss delta", f"dev accuracy delta [{fmt_level(alpha)} CI]", "p", "p adjusted", "verdict (adjusted)", "run"],
        body) + "\n"


def plot_trials(path: Path, trials: list[Trial], kept: set[str], reference: float | None) -> Path:
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    done = [t for t in trials if not math.isnan(t.loss_delta)]
    ax.scatter([t.number for t in done], [t.loss_delta for t in done],
               c=["tab:green" if t.patch_hash in kept else "tab:gray" for t in done], s=18)
    if reference is not None:
        ax.axhline(reference, color="tab:blue", linestyle="--", linewidth=1, label="configured patch")
        ax.legend(loc="best", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set(xlabel="trial", ylabel="mean loss delta (patched - baseline)", title="Patch search: loss delta per trial "
           "(green: kept)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def rungs_markdown(measured: list[Measured], kept: set[str], reference: Measured | None, alpha: float) -> str:
    """Every measurement of the accuracy search, rung by rung: the paired delta against the shared baseline."""
    def row(m: Measured, label: str) -> list:
        return [m.rung, m.items, label, m.hash, fmt_delta(m.delta, m.ci_low, m.ci_high), f"{m.p:.3g}", m.verdict,
                "kept" if m.hash in kept and label != "reference" else "", m.run_id]
    body = [row(m, str(m.trial)) for m in sorted(measured, key=lambda m: (m.rung, m.trial))]
    if reference is not None:
        body.append(row(reference, "reference"))
    return f"# Search rungs\n\n{RANKING}\n\n" + md_table(
            ["rung", "items", "trial", "hash", f"paired delta [{fmt_level(alpha)} CI]", "p", "verdict", "", "run"],
            body) + "\n"
