"""Paired sign-flip permutation test over clusters and the interval obtained by inverting it.

For a shift δ the statistic is T(δ) = Σ_g (s_g − δ·n_g) (s_g: a cluster's summed difference, n_g:
its size). Flipping the clusters with ε_g = −1 gives T_ε(δ) ≥ T(δ) exactly when δ ≥ b_ε =
Σ_{ε_g=−1} s_g / Σ_{ε_g=−1} n_g, so each one-sided p is a step function of δ whose steps are the
breakpoints b_ε. The interval {δ: both one-sided p ≥ α/2} has order statistics of the b_ε as
endpoints, and the two-sided p at 0 is 2·min of the one-sided p's (as scipy.stats.permutation_test
computes it): the interval excludes 0 exactly when p < α, by construction, from the same sign vectors.
All 2^G sign vectors when 2^G ≤ RESAMPLES (exact; p/N), else RESAMPLES seeded random ones with
scipy's (count + 1)/(R + 1) convention.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 9999
SEED = 0
_CHUNK = 1000


@dataclass(frozen=True)
class SignFlip:
    p_value: float
    ci_low: float
    ci_high: float
    exact: bool
    resamples: int


def sign_flip(sums: np.ndarray, sizes: np.ndarray, alpha: float,
              resamples: int = RESAMPLES, seed: int = SEED) -> SignFlip:
    """Two-sided p at δ = 0 and the (1−α) interval of the per-item mean difference Σs/Σn."""
    s, n = np.asarray(sums, float), np.asarray(sizes, float)
    exact = 2 ** len(s) <= resamples
    neg = _all_flips(len(s)) if exact else np.random.default_rng(seed).random((resamples, len(s))) < 0.5
    b = _breakpoints(neg, s, n)
    always = int(np.isnan(b).sum()) + (0 if exact else 1)  # flips of nothing (and the observed one)
    total = len(neg) + (0 if exact else 1)
    b = np.sort(b[~np.isnan(b)])
    upper = (always + np.searchsorted(b, 0.0, side="right")) / total  # P(T_ε ≥ T) at δ = 0
    lower = (always + len(b) - np.searchsorted(b, 0.0, side="left")) / total  # P(T_ε ≤ T)
    p = min(1.0, 2 * min(upper, lower))
    k = int(np.argmax((always + np.arange(len(b) + 1)) / total >= alpha / 2))  # breakpoints needed
    low = b[k - 1] if k >= 1 else -math.inf
    high = b[len(b) - k] if k >= 1 else math.inf
    return SignFlip(float(p), _finite(low), _finite(high), exact, len(neg))


def _all_flips(g: int) -> np.ndarray:
    return np.array(list(itertools.product((False, True), repeat=g)), dtype=bool).reshape(-1, g)


def _breakpoints(neg: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """b_ε per sign vector (NaN where nothing is flipped); sums within rounding of 0 are 0."""
    tol = 1e-12 * max(float(np.abs(s).sum()), 1e-300)
    out = np.empty(len(neg))
    for start in range(0, len(neg), _CHUNK):
        rows = neg[start:start + _CHUNK].astype(float)
        num, den = rows @ s, rows @ n
        num[np.abs(num) <= tol] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + _CHUNK] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else math.nan
