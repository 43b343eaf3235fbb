"""Fastest-k SGD on a real Dask LocalCluster of 8 worker processes (SPEC 2.5): the master's
time per iteration against a plain Dask loop that waits for every worker (same shards, same
gradient function, no injected delay), and the wall-clock to reach a target error, adaptive
against fixed k, with injected Exp delays.  Smoke mode (--benchmark-disable) runs few
iterations; the README's tables come from bench/reproduce_sgd_cluster.py."""
import logging
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import reproduce_sgd_cluster as rsc  # noqa: E402
from distalloc.sgd import Exponential, synthetic_regression, train  # noqa: E402
from distalloc.sgd.cluster import shard_gradient  # noqa: E402

N = 8
PROBLEM = synthetic_regression(num_samples=800, dim=10, seed=1)
LR = 0.005


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=N, threads_per_worker=2, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster, direct_to_workers=True)
    yield client
    client.close()
    cluster.close()


def _plain_gradient(shard, w):
    return shard_gradient(*shard, w)


def _plain_loop(client, iterations, direct):
    """The simplest Dask SGD master: scatter once, submit one task per worker, gather all
    (through the scheduler, or ``direct`` from the workers)."""
    addrs = sorted(client.scheduler_info()["workers"])
    s = PROBLEM.num_samples // N
    shards = [client.scatter([(PROBLEM.X[i * s:(i + 1) * s], PROBLEM.y[i * s:(i + 1) * s],
                               "least_squares")], workers=[a], hash=False)[0]
              for i, a in enumerate(addrs)]
    w = np.zeros(PROBLEM.dim)

    def step(w):
        futs = [client.submit(_plain_gradient, shards[i], w, workers=[a],
                              allow_other_workers=False, pure=False) for i, a in enumerate(addrs)]
        return w - LR * np.sum(client.gather(futs, direct=direct), axis=0) / (N * s)
    for _ in range(3):                                # warm-up
        w = step(w)
    t0 = time.perf_counter()
    for _ in range(iterations):
        w = step(w)
    return (time.perf_counter() - t0) / iterations, w


def test_master_overhead_per_iteration(client, benchmark):
    """Per iteration (ms), alternating twice in the same process: the plain loop gathering
    through the scheduler and directly from the workers, and distalloc.sgd.train at sync,
    fixed:4 and fixed:1; medians of the two rounds."""
    iterations = 10 if benchmark.disabled else 150

    def measure():
        rows = {name: [] for name in ("plain", "plain direct", "sync", "fixed:4", "fixed:1",
                                      "sync master")}
        for _ in range(1 if benchmark.disabled else 2):
            rows["plain"].append(_plain_loop(client, iterations, False)[0])
            rows["plain direct"].append(_plain_loop(client, iterations, True)[0])
            for p in ("sync", "fixed:4", "fixed:1"):
                r = train(PROBLEM, N, p, cluster=client, max_iterations=iterations, lr=LR,
                          horizon=600)
                k = N if p == "sync" else int(p.split(":")[1])
                assert r.iterations == iterations and r.uplink_gradients == k * iterations
                assert r.downlink_models == N * iterations and r.workers_lost == []
                rows[p].append(r.wall_s / iterations)
                if p == "sync":
                    rows["sync master"].append(r.extra["master_s_per_iteration"])
        return {name: float(np.median(v)) * 1e3 for name, v in rows.items()}
    ms = benchmark.pedantic(measure, rounds=1, iterations=1)
    print(f"\nlocal:{N}, no injected delay, {iterations} iterations, ms per iteration: plain Dask "
          f"loop waiting for all {ms['plain']:.1f} (direct gather {ms['plain direct']:.1f}); "
          f"distalloc.sgd.train sync {ms['sync']:.1f} (of which the master's own "
          f"{ms['sync master']:.2f}), fixed:4 {ms['fixed:4']:.1f}, fixed:1 {ms['fixed:1']:.1f}; "
          f"plain / sync = {ms['plain'] / ms['sync']:.1f}")
    benchmark.extra_info.update({f"{name} ms": v for name, v in ms.items()})
    if not benchmark.disabled:
        assert ms["sync"] < ms["plain"]


def test_adaptive_vs_fixed_to_target(client, benchmark):
    """The README experiment in small (bench/reproduce_sgd_cluster.py, seed 0): injected
    Exp(20 ms) delays, target F - F* <= 1e-4, which no fixed k < 8 reaches; measured
    seconds to it for sync, fixed:4, pflug 1:1:2:10 and bound planning from its own 10
    calibration rounds (fit + the master's own time), and the ratios sync / adaptive."""
    prob = rsc.problem()
    horizon = 2.0 if benchmark.disabled else 15.0
    kw = dict(cluster=client, straggler=Exponential(1.0), time_unit_s=rsc.UNIT_S, lr=rsc.LR,
              horizon=horizon, target_error=rsc.TARGET, seed=0)
    pflug = rsc.ADAPTIVE[1]
    results = {p: train(prob, N, p, **kw) for p in ("sync", "fixed:4", pflug)}
    results["bound"] = benchmark.pedantic(train, args=(prob, N, "bound"), kwargs=kw, rounds=1,
                                          iterations=1)
    times = {p: r.time_to_error(rsc.TARGET) for p, r in results.items()}
    for p, t in times.items():
        r = results[p]
        print(f"\n{p}: {'%.2f s' % t if np.isfinite(t) else 'not reached'} to F - F* <= "
              f"{rsc.TARGET:g} ({r.iterations} iterations, k up to {r.k.max()}, lowest "
              f"{r.error.min():.2g})")
    ratios = {f"sync / {p}": times["sync"] / times[p] for p in ("bound", pflug)}
    print("wall-clock to the target, " + ", ".join(f"{name} = {v:.2f}"
                                                   for name, v in ratios.items()))
    assert all(r.iterations > 0 and np.all(np.isfinite(r.error)) for r in results.values())
    assert results["bound"].fit is not None and results["bound"].k.max() > 1
    assert results["fixed:4"].k.max() == 4 and results["sync"].k.min() == N
    if not benchmark.disabled:
        assert np.isfinite(times["sync"]) and times["bound"] < times["sync"]
        assert not np.isfinite(times["fixed:4"])
        assert results[pflug].k.max() > 1               # it adapted before the target
    benchmark.extra_info.update({f"{p} s": t for p, t in times.items()})
    benchmark.extra_info.update(ratios)
