"""Fork-join simulation and approximation: the compiled recursion against a heapq event
simulator of the same model (tests/naive.py), M/M/1 against the ciw simulator, 10^7 jobs of
a (10, 5) two-speed system, and the approximation on a 10^4-point grid."""
import time

import numpy as np
import pytest

import naive
from conftest import best_time
from distalloc.queueing import ForkJoin, approximate, simulate

TWO_SPEED = ForkJoin(10, 5, 2.0, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5], idle_power=0.1)


def test_simulate_ten_million_jobs(benchmark):
    m = benchmark.pedantic(simulate, args=(TWO_SPEED, 10_000_000), kwargs={"seed": 0},
                           rounds=1, iterations=1)
    a = approximate(TWO_SPEED)
    assert m.extra["num_jobs"] == 9_000_000
    assert abs(a.energy_per_job / m.energy_per_job - 1) < 0.02
    benchmark.extra_info.update(jobs=10_000_000, wall_s=m.extra["wall_s"],
                                jobs_per_s=1e7 / m.extra["wall_s"], mean_jobs=m.mean_jobs,
                                mean_jobs_ci=m.extra["mean_jobs_ci"],
                                approx_mean_jobs=a.mean_jobs)
    print(f"\n10^7 jobs of (10,5) two-speed: {m.extra['wall_s']:.2f} s, E[N] {m.mean_jobs:.4f} "
          f"+- {m.extra['mean_jobs_ci']:.4f} (approx {a.mean_jobs:.4f})")


def test_simulate_vs_pure_python(benchmark):
    jobs = 20_000
    m = benchmark(simulate, TWO_SPEED, jobs, seed=1, warmup_fraction=0.1)
    t_fast = best_time(lambda: simulate(TWO_SPEED, jobs, seed=1))
    t0 = time.perf_counter()
    resp, q = naive.fork_join_simulate(10, 5, 2.0, [1.0, 3.0], [0.5, 0.5], jobs, seed=1,
                                       warmup=jobs // 10)
    t_slow = time.perf_counter() - t0
    # same model: a long run of each agrees (checked in tests); here the short runs agree
    # within a loose band
    assert abs(resp / m.mean_response - 1) < 0.1
    benchmark.extra_info.update(jobs=jobs, compiled_s=t_fast, pure_python_s=t_slow,
                                speedup=t_slow / t_fast)
    print(f"\nfork-join {jobs} jobs: compiled {t_fast * 1e3:.1f} ms, heapq Python "
          f"{t_slow * 1e3:.0f} ms, ratio {t_slow / t_fast:.0f}x")


def test_mm1_vs_ciw(benchmark):
    ciw = pytest.importorskip("ciw", reason="ciw is a bench-only dependency (pip install ciw)")
    customers = 20_000
    mm1 = ForkJoin(1, 1, 0.7, [1.0])
    m = benchmark(simulate, mm1, customers, seed=2)
    t_fast = best_time(lambda: simulate(mm1, customers, seed=2))

    def run_ciw():
        net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(rate=0.7)],
                                 service_distributions=[ciw.dists.Exponential(rate=1.0)],
                                 number_of_servers=[1])
        ciw.seed(2)
        sim = ciw.Simulation(net)
        sim.simulate_until_max_customers(customers, method="Finish")
        recs = sim.get_all_records()
        return np.mean([r.exit_date - r.arrival_date for r in recs])
    t0 = time.perf_counter()
    resp = run_ciw()
    t_slow = time.perf_counter() - t0
    assert abs(resp - 1 / 0.3) < 0.5 and abs(m.mean_response - 1 / 0.3) < 0.5
    benchmark.extra_info.update(customers=customers, compiled_s=t_fast, ciw_s=t_slow,
                                speedup=t_slow / t_fast)
    print(f"\nM/M/1 {customers} customers: compiled {t_fast * 1e3:.2f} ms, ciw "
          f"{t_slow * 1e3:.0f} ms, ratio {t_slow / t_fast:.0f}x")


def test_approximate_grid(benchmark):
    """10^4 points: 100 arrival rates x 100 speed mixes of a (10, 5) two-speed system."""
    rates = np.linspace(0.05, 2.0, 100)
    mixes = np.linspace(0.05, 1.0, 100)

    def grid():
        out = 0
        for p in mixes:
            base = TWO_SPEED.with_probs([1 - p, p])
            for lam in rates:
                try:
                    approximate(base.with_rate(lam))
                    out += 1
                except Exception:
                    pass
        return out
    count = benchmark.pedantic(grid, rounds=1, iterations=1)
    t = best_time(grid, repeat=1, min_total_s=0)
    assert count > 5000
    benchmark.extra_info.update(points=10_000, stable_points=count, wall_s=t)
    print(f"\napproximate on 10^4 points: {t:.3f} s ({count} stable)")
