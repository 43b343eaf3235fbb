"""Fastest-k SGD: one synthetic run of 6 000 time units, the fused kernel against a
numpy-per-iteration loop (tests/naive.py), and batched aggregation throughput."""
import time

import numpy as np

import naive
from conftest import best_time
from distalloc.sgd import fastest_k_average, run, synthetic_regression

PROBLEM = synthetic_regression()


def test_synthetic_run_6000(benchmark):
    r = benchmark(run, PROBLEM, 50, "pflug:10:10:10:200", k_max=40, seed=0)
    assert r.time[-1] >= 6000 and r.error[-1] < 1e-3 * r.error[0]
    benchmark.extra_info.update(iterations=r.iterations, kernel_s=r.wall_s)
    print(f"\nsynthetic, 6000 time units: {r.iterations} iterations, kernel {r.wall_s:.3f} s")


def test_fused_kernel_vs_numpy_loop(benchmark):
    horizon = 1500.0
    r = benchmark(run, PROBLEM, 50, "fixed:20", horizon=horizon, seed=1)
    t_fast = best_time(lambda: run(PROBLEM, 50, "fixed:20", horizon=horizon, seed=1))
    rng = np.random.default_rng(1)
    times = rng.standard_exponential((int(horizon) * 2, 50))
    t0 = time.perf_counter()
    w, t, it, _ = naive.sgd_reference(PROBLEM.X, PROBLEM.y, 50, times, 0.0005, horizon,
                                      lambda t: 20)
    t_slow = time.perf_counter() - t0
    assert abs(it - r.iterations) < 0.1 * it
    benchmark.extra_info.update(iterations=r.iterations, compiled_s=t_fast, numpy_loop_s=t_slow,
                                speedup=t_slow / t_fast)
    print(f"\nfixed k = 20, {r.iterations} iterations: compiled {t_fast * 1e3:.0f} ms, numpy "
          f"loop {t_slow * 1e3:.0f} ms ({it} iterations), ratio {t_slow / t_fast:.1f}x")


def test_aggregation_throughput(benchmark):
    rng = np.random.default_rng(0)
    B, n, d = 2000, 50, 100
    times = rng.standard_exponential((B, n))
    grads = rng.standard_normal((B, n, d))
    out, _ = benchmark(fastest_k_average, times, grads, 20)
    ref, _ = naive.fastest_k_reference(times, grads, np.full(B, 20))
    assert np.allclose(out, ref)
    t = best_time(lambda: fastest_k_average(times, grads, 20))
    t_ref = best_time(lambda: naive.fastest_k_reference(times, grads, np.full(B, 20)), repeat=1)
    benchmark.extra_info.update(iterations_per_s=B / t, numpy_speedup=t_ref / t)
    print(f"\naggregation: {B / t:,.0f} iterations/s (n = 50, d = 100, k = 20), "
          f"{t_ref / t:.0f}x numpy argsort")
