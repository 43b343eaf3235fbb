"""Reproduce the adaptive fastest-k finding (SPEC 2.4) on the synthetic regression.

    python bench/reproduce_sgd.py [--seeds 5] [--plot sgd.png]

n = 50 workers, Exp(1) response times, eta = 0.0005, 6 000 time units.  Target error: the
lowest error fixed k = 40 reaches in its run (per seed).  For each policy: mean time to
reach the target (speed-up against fixed k = 40), and the uplink gradients / downlink
models spent until then.
"""
import argparse

import numpy as np

from distalloc.plots import sgd_error
from distalloc.sgd import run, synthetic_regression

POLICIES = [("fixed:10", {}), ("fixed:20", {}), ("fixed:30", {}), ("fixed:40", {}),
            ("sync", {}), ("bound", {}), ("pflug:10:10:10:200", {"k_max": 40}),
            ("pflug:1:5:10:200", {"k_max": 40}), ("dbw", {}), ("dbw", {"k_max": 40}),
            ("async", {})]


def label(policy, kw):
    return policy + (f", k <= {kw['k_max']}" if "k_max" in kw else "")


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    prob = synthetic_regression()
    rows = {label(p, kw): [] for p, kw in POLICIES}
    first = {}
    for seed in range(args.seeds):
        runs = {label(p, kw): run(prob, 50, p, seed=seed, **kw) for p, kw in POLICIES}
        target = runs["fixed:40"].error.min()
        t40 = runs["fixed:40"].time_to_error(target)
        for p, r in runs.items():
            t = r.time_to_error(target)
            up, down = r.messages_to_error(target)
            rows[p].append((t, t40 / t if np.isfinite(t) else 0.0, up, down))
        if seed == 0:
            first = runs
    print("| policy | time to fixed-40's lowest error | speed-up vs k = 40 | uplink gradients | "
          "downlink models |")
    print("|---|---|---|---|---|")
    for p in rows:
        a = np.array(rows[p])
        ok = np.isfinite(a[:, 0])
        if not ok.any():
            print(f"| {p} | not reached | — | — | — |")
            continue
        print(f"| {p} | {np.mean(a[ok, 0]):,.0f} ({ok.sum()}/{len(a)} seeds) | "
              f"{np.mean(a[:, 1]):.2f}x | {np.mean(a[ok, 2]):,.0f} | {np.mean(a[ok, 3]):,.0f} |")
    if args.plot:
        sgd_error([first[p] for p in ("fixed:10", "fixed:20", "fixed:30", "fixed:40", "bound",
                                      "pflug:10:10:10:200, k <= 40", "dbw, k <= 40")], args.plot,
                  title="synthetic regression, n = 50, Exp(1), seed 0")


if __name__ == "__main__":
    main()
