"""Real fastest-k SGD on a local Dask cluster against the simulator's prediction (SPEC 2.5).

    python bench/reproduce_sgd_cluster.py [--seeds 3] [--sim-seeds 10] [--horizon 15]
                                          [--plot FILE]

Problem (:func:`problem`): least squares on 800 rows x 10 standard-normal features (seed 0),
labels X w_bar + N(0, 40^2) noise with w_bar ~ N(0, 300^2) per entry, so F(w0) - F* = 5.7e5;
n = 8 workers of 100 rows, lr 0.1, injected delays Exp(mean 20 ms) per worker and
iteration.  The master averages the k fastest shards' gradients: a fixed k < n has a noise
floor (the shards differ; it falls with k as (n - k) / (k (n - 1))), k = n is the exact
gradient.  Target F - F* <= 1e-4: far below the noise floors of every fixed k < 8 (1e-2
and above, in the simulator and measured), reached by sync (k = 8, the slowest
iterations), so an adaptive policy has to climb to k = 8 and gains by spending the early
descent at cheap small k.  Steps:

1. the unloaded workers: 100 all-worker rounds without injected delay, fitted by AIC;
2. with the injected delays: 100 all-worker rounds; their response times fitted by AIC,
   and the master's own time per iteration m (wall-clock minus the summed X_(8));
   the prediction model is the fit plus m (``WithOverhead``: an iteration costs X_(k) + m);
3. every policy (fixed:1, fixed:4, fixed:6, sync, bound, pflug:1:1:2:10) run for real
   (``--seeds`` injected-delay seeds, the seeds outside and the policies inside so that a
   change of the machine's load falls on all of them; each run stops at the target or
   the horizon) and simulated with the prediction model (``--sim-seeds`` seeds): seconds
   to the target (medians), iterations and uplink gradients to it, seconds per iteration
   measured (and the master's own part of it) against mu_k + m, the lowest error of the
   policies that never reach the target, and for the adaptive policies the time each k is
   first used.  bound plans with the same prediction model in both.  pflug's parameters
   (k from 1 in steps of 1, thresh 2, burnin 10) were chosen on the simulator before the
   real runs.

About 4 minutes on the shared 2-core machine (the fixed k < 8 runs last the whole horizon).
"""
import argparse
import logging
import os
import time

import numpy as np

from distalloc.sgd import (Exponential, WithOverhead, fit_response_model, from_arrays, run,
                           train)

WORKERS, LR, UNIT_S, TARGET = 8, 0.1, 0.02, 1e-4
FIXED = ["fixed:1", "fixed:4", "fixed:6", "sync"]
ADAPTIVE = ["bound", "pflug:1:1:2:10"]


def problem(rows=800, dim=10, noise=40.0, weight_scale=300.0, seed=0):
    """Least squares with standard-normal features and noisy labels (see the module text)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, dim))
    y = X @ (weight_scale * rng.standard_normal(dim)) + noise * rng.standard_normal(rows)
    return from_arrays(X, y, name="noisy-regression")


def _load():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _first_use(res, k):
    """Time at which the run first records k (nan if never)."""
    hit = np.flatnonzero(res.k == k)
    return float(res.time[hit[0]]) if hit.size else np.nan


def _iterations_to(res, n):
    """Iterations done at the first record with F - F* <= TARGET (records every iteration)."""
    return int(res.downlink_at[np.flatnonzero(res.error <= TARGET)[0]] // n)


def _median_int(values):
    return str(int(np.median(values))) if values else "—"


def _fmt(values, digits=2):
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return "not reached"
    if ok.all():
        return f"{np.median(v):.{digits}f}"
    return f"{np.median(v[ok]):.{digits}f} ({ok.sum()}/{v.size})"


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sim-seeds", type=int, default=10)
    ap.add_argument("--horizon", type=float, default=15.0)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    import distributed
    t_script = time.perf_counter()
    n, H = WORKERS, args.horizon
    prob = problem()
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=2, processes=True,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = distributed.Client(cluster, direct_to_workers=True)
    load0 = _load()
    print(f"local:{n} on {os.cpu_count()} cores, load average {load0} at the start")
    gap0 = prob.constants(np.zeros(prob.dim))["initial_gap"]
    print(f"problem {prob.num_samples} x {prob.dim}, F(w0) - F* = {gap0:.3g}, lr {LR}, "
          f"target {TARGET:g}, horizon {H:g} s")

    quiet = train(prob, n, "sync", cluster=client, max_iterations=100, horizon=120, lr=LR)
    t0 = np.concatenate(quiet.response_times_s)
    fit0 = fit_response_model(t0)
    print(f"\nunloaded workers ({fit0.num_samples} response times, no injected delay): median "
          f"{np.median(t0) * 1e3:.1f} ms, by AIC {fit0.spec}; master's own time "
          f"{quiet.extra['master_s_per_iteration'] * 1e3:.2f} ms per iteration")
    print("| family | AIC | parameters |\n|---|---|---|")
    for fam, aic in sorted(fit0.aic.items(), key=lambda x: x[1]):
        print(f"| {fam} | {aic:.1f} | " + ", ".join(f"{k} {v:.4g}" for k, v in
                                                   fit0.params[fam].items()) + " |")

    strag = Exponential(1.0)
    cal = train(prob, n, "sync", cluster=client, straggler=strag, time_unit_s=UNIT_S,
                max_iterations=100, horizon=120, lr=LR, seed=99)
    fit = fit_response_model(np.concatenate(cal.response_times_s))
    m = cal.extra["master_s_per_iteration"]
    model = WithOverhead(fit.model, m)
    mu = model.order_stat_means(n)
    print(f"\nwith injected Exp(mean {UNIT_S * 1e3:.0f} ms) delays, {cal.iterations} all-worker "
          f"rounds: fitted {fit.spec} (AIC "
          + ", ".join(f"{f} {a:.0f}" for f, a in sorted(fit.aic.items(), key=lambda x: x[1]))
          + f"); master's own time m = {m * 1e3:.2f} ms per iteration; measured mean X_(8) "
          f"{cal.wait_s.mean() * 1e3:.1f} ms, fitted E[X_(8)] "
          f"{fit.model.order_stat_mean(n, n) * 1e3:.1f} ms")
    print("prediction model: mu_k + m = " + ", ".join(f"{x * 1e3:.1f}" for x in mu) + " ms")

    # seeds outside, policies inside: a change in the machine's load during the run falls
    # on every policy alike instead of on whichever ran then
    real = {p: [] for p in FIXED + ADAPTIVE}
    for s in range(args.seeds):
        for p in FIXED + ADAPTIVE:
            kw = dict(model=model) if p == "bound" else {}
            real[p].append(train(prob, n, p, cluster=client, straggler=strag,
                                 time_unit_s=UNIT_S, horizon=H, lr=LR, target_error=TARGET,
                                 seed=s, **kw))
        print(f"  ran seed {s} of every policy (load {_load()})", flush=True)
    sim = {p: [run(prob, n, p, model=model, lr=LR, horizon=H, seed=s, record_every=1)
               for s in range(args.sim_seeds)] for p in FIXED + ADAPTIVE}

    print(f"\n| policy | measured s to F − F* ≤ {TARGET:g} (median; seeds) | simulator (median; "
          f"range) | iterations to it: measured / simulated | uplink gradients to it | s per "
          f"iteration: measured (master's own) / µ_k + m | lowest F − F*: measured / simulated |\n"
          + "|---" * 7 + "|")
    for p in FIXED + ADAPTIVE:
        t_real = [r.time_to_error(TARGET) for r in real[p]]
        t_sim = np.array([r.time_to_error(TARGET) for r in sim[p]])
        reached = [r for r in real[p] if np.isfinite(r.time_to_error(TARGET))]
        its = [_iterations_to(r, n) for r in reached]
        its_sim = [_iterations_to(r, n) for r in sim[p] if np.isfinite(r.time_to_error(TARGET))]
        ups = [r.messages_to_error(TARGET)[0] for r in reached]
        seeds = ", ".join("—" if not np.isfinite(t) else f"{t:.2f}" for t in t_real)
        sim_txt = _fmt(t_sim) + (f" ({t_sim.min():.2f}–{t_sim.max():.2f})"
                                 if np.isfinite(t_sim).all() else "")
        own = np.median([r.extra["master_s_per_iteration"] for r in real[p]])
        measured_it = (f"{np.median([r.wall_s / r.iterations for r in real[p]]) * 1e3:.1f} "
                       f"({own * 1e3:.2f})")
        if p.startswith("fixed") or p == "sync":
            k = n if p == "sync" else int(p.split(":")[1])
            per_it = f"{measured_it} / {mu[k - 1] * 1e3:.1f} ms"
        else:                             # simulated: its mean iteration up to the target
            sim_it = [r.time_to_error(TARGET) / _iterations_to(r, n) for r in sim[p]
                      if np.isfinite(r.time_to_error(TARGET))]
            per_it = f"{measured_it} / {np.median(sim_it) * 1e3:.1f} ms (means)"
        lowest = ("stops at the target" if len(reached) == len(real[p]) else
                  f"{np.median([r.error.min() for r in real[p]]):.2g} / "
                  f"{np.median([r.error.min() for r in sim[p]]):.2g}")
        print(f"| {p} | {_fmt(t_real)} ({seeds}) | {sim_txt} | {_median_int(its)} / "
              f"{_median_int(its_sim)} | {_median_int(ups)} | {per_it} | {lowest} |")

    for p in ("fixed:1", "fixed:4"):        # the first k against the injected delays
        k = int(p.split(":")[1])
        exact, excess = [], []
        for r in real[p]:
            for d, ch in zip(r.delays_s, r.chosen):
                exact.append(set(ch) == set(np.argsort(d)[:k]))
                excess.append(d[ch].max() - np.sort(d)[k - 1])
        print(f"{p}: the k workers with the smallest injected delays won {np.mean(exact):.0%} "
              f"of {len(exact)} iterations; the largest chosen delay exceeded the k-th smallest "
              f"by at most {np.quantile(excess, 0.9) * 1e3:.2f} ms in 90% of them, "
              f"{np.max(excess) * 1e3:.1f} ms at worst")

    print("\nk(t): seconds at which each k is first used (median over the seeds; the real run "
          "stops at the target)")
    print("| k | " + " | ".join(f"{p} measured | {p} simulated" for p in ADAPTIVE) + " |\n|---|"
          + "---|" * (2 * len(ADAPTIVE)))
    for k in range(2, n + 1):
        cells = []
        for p in ADAPTIVE:
            for runs in (real[p], sim[p]):
                cells.append(_fmt([_first_use(r, k) for r in runs]))
        print(f"| {k} | " + " | ".join(cells) + " |")
    if args.plot:
        from distalloc.plots import sgd_error
        sgd_error([real[p][0] for p in FIXED + ADAPTIVE], args.plot,
                  title=f"local:{n}, injected Exp({UNIT_S * 1e3:.0f} ms), seed 0 (measured)")
    client.close()
    cluster.close()
    print(f"\n{time.perf_counter() - t_script:.0f} s in all; load average {load0} at the start, "
          f"{_load()} at the end")


if __name__ == "__main__":
    main()
