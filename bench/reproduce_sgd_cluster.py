"""Real fastest-k SGD on a local Dask cluster against the simulator's prediction (SPEC 2.5).

    python bench/reproduce_sgd_cluster.py [--workers 8] [--time-unit-s 0.05] [--horizon 100]

Problem: synthetic regression, 800 rows x 10 features (seed 1), n = 8 workers of 100 rows,
lr 0.005, target F(w) - F* <= 0.1 (F(w0) - F* = 5.8e6).  Steps:
1. the unloaded workers: 100 all-worker rounds without injected delay, fitted by AIC;
2. with injected Exp(1) x time_unit_s delays: 40 all-worker rounds, fitted (seconds);
3. each policy run for real (measured seconds to the target) and simulated with the model
   fitted in step 2 (horizon in seconds, 3 seeds): seconds to the target.
"""
import argparse
import logging
import time

import numpy as np

from distalloc.sgd import Exponential, fit_response_model, run, synthetic_regression, train

POLICIES = ["fixed:2", "fixed:4", "fixed:8", "bound", "pflug:1:1:5:20"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--time-unit-s", type=float, default=0.05)
    ap.add_argument("--horizon", type=float, default=100.0)
    ap.add_argument("--target", type=float, default=0.1)
    args = ap.parse_args()
    import distributed
    n, lr = args.workers, 0.005
    prob = synthetic_regression(num_samples=800, dim=10, seed=1)
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=2, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
    except OSError:
        load = ["?"]
    print(f"local:{n} on {__import__('os').cpu_count()} cores, load average {' '.join(load)}")
    quiet = train(prob, n, "sync", cluster=client, max_iterations=100, horizon=120, lr=lr)
    fit0 = fit_response_model(np.concatenate(quiet.response_times_s))
    print(f"\nunloaded workers ({fit0.num_samples} response times, no injected delay): "
          f"median {np.median(np.concatenate(quiet.response_times_s)) * 1e3:.1f} ms, by AIC "
          f"{fit0.spec}")
    print("| family | AIC | parameters |\n|---|---|---|")
    for fam, aic in sorted(fit0.aic.items(), key=lambda x: x[1]):
        print(f"| {fam} | {aic:.1f} | " + ", ".join(f"{k} {v:.4g}" for k, v in
                                                   fit0.params[fam].items()) + " |")
    strag = Exponential(1.0)
    cal = train(prob, n, "sync", cluster=client, straggler=strag, time_unit_s=args.time_unit_s,
                max_iterations=40, horizon=120, lr=lr, seed=99)
    fit = fit_response_model(np.concatenate(cal.response_times_s))
    print(f"\nwith injected Exp(mean {args.time_unit_s * 1e3:.0f} ms) delays: fitted {fit.spec}")
    print(f"\n| policy | measured s to F - F* <= {args.target:g} | iterations | uplink | "
          f"simulator with the fitted model (s, 3 seeds) |\n|---|---|---|---|---|")
    for p in POLICIES:
        t0 = time.perf_counter()
        r = train(prob, n, p, cluster=client, straggler=strag, time_unit_s=args.time_unit_s,
                  horizon=args.horizon, lr=lr, target_error=args.target, seed=0, model=fit.model)
        t_real = r.time_to_error(args.target)
        sims = [run(prob, n, p, model=fit.model, lr=lr, horizon=args.horizon, seed=s,
                    record_every=1).time_to_error(args.target) for s in range(3)]
        up = r.uplink_at[np.flatnonzero(r.error <= args.target)[0]] if np.isfinite(t_real) else None
        real = f"{t_real:.2f}" if np.isfinite(t_real) else f"not reached in {args.horizon:g}"
        sim = ", ".join(f"{t:.2f}" if np.isfinite(t) else "—" for t in sims)
        print(f"| {p} | {real} | {r.iterations} | {up if up is not None else '—'} | {sim} |",
              flush=True)
        del t0
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
