"""How far `reproduction_items` (the items a rerun needs to reproduce) sits above the need, when items
have patch effects of their own, by simulation with reproduce's own rule.

    python benchmarks/reproduction_sizing.py [--reps 400] [--draws 1]

Items of three kinds, each run drawing its own answers (a sampled server): 60% right with
probability 0.9 in both arms, 20% fixed by the patch (0.1 -> 0.9), 20% coin flips in both arms
(0.5). A pilot of 200 items is sized by `reproduction_items` (margin 0.05); the simulated need is
the fewest items at which two independent runs reproduce (TOST within +-0.05,
hookbench.stats.equivalence) in 80% of pairs, found by bisection on the simulated rate. Prints
both, with the rate the sized n achieves. The sizing takes twice a run's per-item variance, which
holds the items' own effects; in the difference of two runs those cancel, so it is an upper bound.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from hookbench.base.outcomes import Agreement
from hookbench.stats.equivalence import equivalence
from hookbench.stats.power import reproduction_items

KINDS = ((0.6, 0.9, 0.9), (0.2, 0.1, 0.9), (0.2, 0.5, 0.5))  # share, baseline p, patched p
MARGIN, PILOT = 0.05, 200


def run_deltas(rng: np.random.Generator, base: np.ndarray, patched: np.ndarray, draws: int) -> np.ndarray:
    """One run's per-item delta: the mean over `draws` sampled answers, patched minus baseline."""
    return (rng.binomial(draws, patched) - rng.binomial(draws, base)) / draws


def items(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    kind = rng.choice(len(KINDS), n, p=[k[0] for k in KINDS])
    return np.array([k[1] for k in KINDS])[kind], np.array([k[2] for k in KINDS])[kind]


def success(n: int, reps: int, draws: int, seed: int) -> float:
    """Share of pairs of runs on n items that reproduce by reproduce's rule (agrees)."""
    rng, groups, hits = np.random.default_rng([seed, n]), np.arange(n), 0
    for _ in range(reps):
        base, patched = items(rng, n)
        diff = run_deltas(rng, base, patched, draws) - run_deltas(rng, base, patched, draws)
        hits += equivalence(diff, groups, MARGIN).outcome == Agreement.AGREES
    return hits / reps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--draws", type=int, default=1)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit or 'unknown'}, {args.reps} pairs per n, "
          f"{args.draws} draw(s), margin {MARGIN}")
    rng = np.random.default_rng(1)
    sized = [reproduction_items(run_deltas(rng, *items(rng, PILOT), args.draws), np.arange(PILOT), MARGIN)
             for _ in range(50)]
    n_sized = int(np.median(sized))
    low, high = 20, 2 * n_sized
    while high - low > max(5, low // 50):
        mid = (low + high) // 2
        low, high = (mid, high) if success(mid, args.reps, args.draws, 0) < 0.8 else (low, mid)
    print(f"sized from a {PILOT}-item pilot: {n_sized} items (median of 50 pilots, range {min(sized)}-{max(sized)}); "
          f"reproduces in {success(n_sized, args.reps, args.draws, 1):.3f} of pairs")
    print(f"simulated need for 80%: about {high} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
