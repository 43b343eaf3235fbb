"""Accuracy of distalloc.queueing.approximate against simulation on a published grid.

    python bench/queue_accuracy.py [--jobs 300000]

Grid: n in {2, 4, 6, 10, 16, 20}; k in {1, 2, n/2, n-1, n}; speed mixes: one speed;
two speeds (1, 3) with p(fast) in {0.1, 0.5, 0.9}; three speeds (0.5, 1, 2) with
(0.3, 0.4, 0.3); SPEC 3.3 load rho in {0.3, 0.6, 0.85}; idle power 0.1.
Prints the worst and mean relative errors per (k class, speeds) and overall.
"""
import argparse
from collections import defaultdict

import numpy as np

from distalloc.queueing import ForkJoin, approximate, simulate

MIXES = {"1 speed": ([1.0], [1.0], [1.0]),
         "2 speeds p=0.1": ([1.0, 3.0], [1.0, 6.0], [0.9, 0.1]),
         "2 speeds p=0.5": ([1.0, 3.0], [1.0, 6.0], [0.5, 0.5]),
         "2 speeds p=0.9": ([1.0, 3.0], [1.0, 6.0], [0.1, 0.9]),
         "3 speeds": ([0.5, 1.0, 2.0], [0.3, 1.0, 3.5], [0.3, 0.4, 0.3])}


def k_class(n, k):
    return "k=1" if k == 1 else "k=n" if k == n else "k=n-1" if k == n - 1 else "1<k<n-1"


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--jobs", type=int, default=300_000)
    args = ap.parse_args()
    table = defaultdict(list)
    for n in (2, 4, 6, 10, 16, 20):
        for k in sorted({1, 2, max(1, n // 2), n - 1, n}):
            for name, (mu, P, p) in MIXES.items():
                base = ForkJoin(n, k, 1.0, mu, P, p, idle_power=0.1)
                for rho in (0.3, 0.6, 0.85):
                    sys_ = base.with_rate(rho / base.load)
                    a, s = approximate(sys_), simulate(sys_, args.jobs, seed=1)
                    table[(k_class(n, k), name, rho)].append(
                        (a.mean_jobs / s.mean_jobs - 1, a.energy_per_job / s.energy_per_job - 1))
    print("| k | speeds | rho | worst E[N] error | mean abs E[N] error | worst energy error |")
    print("|---|---|---|---|---|---|")
    allv = []
    for (kc, name, rho), v in sorted(table.items()):
        v = np.array(v)
        allv.append(v)
        wn = v[np.argmax(np.abs(v[:, 0])), 0]
        we = v[np.argmax(np.abs(v[:, 1])), 1]
        print(f"| {kc} | {name} | {rho} | {wn:+.1%} | {np.mean(np.abs(v[:, 0])):.1%} | {we:+.1%} |")
    v = np.concatenate(allv)
    print(f"\nall {len(v)} points: worst E[N] {v[np.argmax(np.abs(v[:, 0])), 0]:+.1%}, mean "
          f"|E[N]| {np.mean(np.abs(v[:, 0])):.1%}, share within 5% "
          f"{np.mean(np.abs(v[:, 0]) <= 0.05):.0%}; worst energy "
          f"{v[np.argmax(np.abs(v[:, 1])), 1]:+.1%}")


if __name__ == "__main__":
    main()
