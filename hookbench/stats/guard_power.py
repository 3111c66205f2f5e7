"""How likely a guard is to show non-inferiority of a harmless patch, exactly, and the items it needs.

A harmless patch (true δ = 0) still changes some answers: each item is fixed or broken with
probability ψ/2 and tied with 1 − ψ (ψ the discordant share). The chance that the guard's test
(`noninferiority`: Tango's score statistic at δ₀ = −margin, one-sided at α, independent items) calls
it non-inferior is the sum of the trinomial probabilities of the (fixed, broken) counts it rejects
at: the number of discordant items D ~ Binomial(n, ψ), and fixed | D ~ Binomial(D, ½). Exact, not the
normal formula: the continuity correction and the variance under δ₀ = −margin make that formula
too small (docs/guards.md). Items a guard needs are the smallest n whose exact power reaches the
target; the pass chance saw-tooths in n (the counts are discrete), so that n is found by scanning.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.stats import binom, norm

from hookbench.stats.power import POWER
from hookbench.stats.score import tango_z

_TAIL = 1e-12  # discordant counts beyond this binomial tail are left out of the sum


@functools.lru_cache(maxsize=4096)
def pass_chance(n: int, psi: float, margin: float, alpha: float) -> float:
    """Exact chance that a guard of `n` independent 0/1 items shows a harmless patch (δ = 0, discordant
    share ψ) non-inferior at `margin`: one-sided Tango score test at δ₀ = −margin, level α."""
    if n <= 0:
        return 0.0
    if psi <= 0:  # nothing changes: f = b = 0
        return float(norm.sf(float(tango_z(0, 0, n, -margin))) < alpha)
    top = int(min(n, binom.isf(_TAIL, n, psi) + 1))
    discordant = np.arange(top + 1)
    fixed = np.arange(top + 1)
    f, dd = np.meshgrid(fixed, discordant, indexing="ij")
    valid = f <= dd
    z = tango_z(f, np.where(valid, dd - f, 0), n, -margin)
    shown = valid & (norm.sf(z) < alpha)
    weight = binom.pmf(discordant, n, psi)[None, :] * binom.pmf(f, dd, 0.5)
    return float(np.where(shown, weight, 0.0).sum())


def guard_items(psi: float, margin: float, alpha: float, power: float = POWER, limit: int = 100_000) -> int:
    """Fewest items at which a guard shows a harmless patch non-inferior with exact chance ≥ `power`
    (0 when even `limit` items do not). A normal-formula start, doubled until it is enough, halved by
    bisection, then scanned down over the saw-tooth for the smallest n that is enough."""
    psi = max(psi, 1e-4)
    high = max(10, math.ceil((norm.ppf(1 - alpha) + norm.ppf(power)) ** 2 * psi / margin ** 2))
    while pass_chance(high, psi, margin, alpha) < power:
        if high >= limit:
            return 0
        high = min(limit, high * 2)
    low = high // 2
    while high - low > 1:  # pass_chance(high) ≥ power throughout
        mid = (low + high) // 2
        low, high = (low, mid) if pass_chance(mid, psi, margin, alpha) >= power else (mid, high)
    for n in range(high - 1, max(high - 40, 0), -1):  # the saw-tooth: a smaller n may be enough too
        if pass_chance(n, psi, margin, alpha) >= power:
            high = n
    return high


def detectable_share(n: int, margin: float, alpha: float, power: float = POWER) -> float:
    """Largest discordant share ψ at which `n` items show a harmless patch non-inferior with exact
    chance ≥ `power` (bisection over ψ; 0 when not even ψ → 0 is enough): the guard's power, stated
    like the target's MDE."""
    if pass_chance(n, 1e-4, margin, alpha) < power:
        return 0.0
    low, high = 1e-4, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if pass_chance(n, mid, margin, alpha) >= power else (low, mid)
    return low
