"""Fastest-k SGD: one synthetic run of 6 000 time units, the fused kernel against a
numpy-per-iteration loop (tests/naive.py), and batched aggregation throughput."""
import numpy as np
import pytest

import naive
from conftest import best_time
from distalloc.sgd import fastest_k_average, run, synthetic_regression

PROBLEM = synthetic_regression()


def test_synthetic_run_6000(benchmark):
    r = benchmark(run, PROBLEM, 50, "pflug:10:10:10:200", k_max=40, seed=0)
    assert r.time[-1] >= 6000 and r.error[-1] < 1e-3 * r.error[0]
    benchmark.extra_info.update(iterations=r.iterations, kernel_s=r.wall_s)
    print(f"\nsynthetic, 6000 time units: {r.iterations} iterations, kernel {r.wall_s:.3f} s")


@pytest.mark.parametrize("k", [10, 20, 40])
def test_fused_kernel_vs_numpy_loop(benchmark, k):
    """Same work on both sides: the same response times, the k fastest workers' gradients,
    the step, the clock, and the error F(w) - F* recorded after every iteration.  The
    compiled side is the whole ``run()`` call (drawing the times included); the numpy loop
    gets the times pre-drawn.  Best of 3, alternating, in this process."""
    horizon = 1500.0
    r = benchmark(run, PROBLEM, 50, f"fixed:{k}", horizon=horizon, seed=1)
    assert r.extra["record_every"] == 1
    rng = np.random.default_rng(1)
    times = rng.standard_exponential((4 * r.iterations, 50))
    H, w_star = PROBLEM.H, PROBLEM.w_star

    def error(w):
        dw = w - w_star
        return 0.5 * dw @ (H @ dw)

    def numpy_loop():
        return naive.sgd_reference(PROBLEM.X, PROBLEM.y, 50, times, 0.0005, horizon,
                                   lambda t: k, error=error)
    t_fast, t_slow = np.inf, np.inf
    for _ in range(3):
        t_fast = min(t_fast, best_time(lambda: run(PROBLEM, 50, f"fixed:{k}", horizon=horizon,
                                                   seed=1), repeat=1))
        t_slow = min(t_slow, best_time(numpy_loop, repeat=1, min_total_s=0))
    _, _, it, _, errors = numpy_loop()
    # same seed, same response-time stream: the same run, record for record
    assert it == r.iterations and np.allclose(errors, r.error, rtol=1e-8, atol=0)
    benchmark.extra_info.update(k=k, iterations=r.iterations, compiled_s=t_fast,
                                numpy_loop_s=t_slow, speedup=t_slow / t_fast)
    print(f"\nfixed k = {k}, {r.iterations} iterations: compiled {t_fast * 1e3:.1f} ms, numpy "
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
