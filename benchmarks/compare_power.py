"""Power of `hookbench compare`'s paired test beside lm-eval's unpaired comparator, on two real logs.

    python benchmarks/compare_power.py BASE EDITED [--task T --metric acc --n 40 100 200 --reps 1000]

BASE and EDITED are lm-eval --log_samples folders of the same task. Items are resampled with
replacement from the paired items (keeping each item's pair together, so the edit's real effect
and the real correlation between the two runs are what is sampled), n per draw; for each draw both
tests run at alpha: hookbench's paired test (stats.compare_arms, Tango's score test for 0/1) and
the z-test lm-eval's scripts/model_comparator.py applies to the two accuracies and their standard
errors as lm-eval reports them (sample SD / sqrt(n)), as if the runs were independent. Prints the
share of draws each test calls a change, with its Monte Carlo SE, and how often the two disagree.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.stats import norm

from hookbench.compare.lm_eval_log import read
from hookbench.compare.pairing import pair_logs
from hookbench.stats import compare_arms


def unpaired_p(a: np.ndarray, b: np.ndarray) -> float:
    """model_comparator.py's test: z = (acc1 − acc2) / √(se1² + se2²), se as lm-eval's mean_stderr."""
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return 1.0 if se == 0 else float(2 * norm.sf(abs(a.mean() - b.mean()) / se))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("edited")
    parser.add_argument("--task", default="hb_addition")
    parser.add_argument("--metric", default="acc")
    parser.add_argument("--n", type=int, nargs="+", default=[40, 100, 200, 400])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    from pathlib import Path

    pairing = pair_logs(read(args.base, [Path(args.base)]), read(args.edited, [Path(args.edited)]), False)
    (pair,) = [p for p in pairing.pairs if (p.task, p.metric) == (args.task, args.metric)]
    a, b = np.asarray(pair.a), np.asarray(pair.b)
    rng = np.random.default_rng(0)
    print(f"{args.task} {args.metric}: {len(a)} paired items, B − A = {b.mean() - a.mean():+.3f}; "
          f"{args.reps} resamples per n at alpha = {args.alpha}")
    print("n | paired (hookbench) | unpaired (model_comparator) | only paired | only unpaired")
    for n in args.n:
        paired = unpaired = only_p = only_u = 0
        for _ in range(args.reps):
            k = rng.integers(0, len(a), n)
            hit_p = compare_arms(a[k], b[k], alpha=args.alpha).p_value < args.alpha
            hit_u = unpaired_p(a[k], b[k]) < args.alpha
            paired, unpaired = paired + hit_p, unpaired + hit_u
            only_p, only_u = only_p + (hit_p and not hit_u), only_u + (hit_u and not hit_p)
        rate = [x / args.reps for x in (paired, unpaired, only_p, only_u)]
        se = [math.sqrt(r * (1 - r) / args.reps) for r in rate]
        print(f"{n} | " + " | ".join(f"{r:.3f} ± {s:.3f}" for r, s in zip(rate, se)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
