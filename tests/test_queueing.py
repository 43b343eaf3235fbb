"""(n,k) fork-join: exact chain against published values and closed forms; simulation
against both with confidence intervals (any seed); the approximation against the chain."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distalloc import ValidationError
from distalloc.queueing import ForkJoin, approximate, exact, optimize, simulate, tradeoff
from distalloc.queueing.approx import light_traffic_slope


@pytest.mark.parametrize("n, k, lam, mean_jobs", [(4, 2, 1.6, 3.457), (4, 2, 1.8, 7.290),
                                                  (6, 3, 1.6, 3.277)])
def test_exact_reference_values(n, k, lam, mean_jobs):
    """SPEC 3.2 reference values (mu = 1)."""
    m = exact(ForkJoin(n, k, lam))
    assert m.mean_jobs == pytest.approx(mean_jobs, abs=6e-4)
    assert m.extra["tail_mass"] < 1e-6
    assert m.energy_per_job == pytest.approx(k * 1.0 / 1.0, rel=1e-6)  # kP/mu, single speed


def mm1(lam, mu):
    rho = lam / mu
    return rho / (1 - rho)


def race_mg1(n, lam, speeds, probs):
    """Pollaczek-Khinchine for the k = 1 race, by brute-force enumeration of speed draws."""
    import itertools
    m1 = m2 = 0.0
    for draw in itertools.product(range(len(speeds)), repeat=n):
        pr = np.prod([probs[d] for d in draw])
        rate = sum(speeds[d] for d in draw)
        m1 += pr / rate
        m2 += 2 * pr / rate ** 2
    return lam * (m1 + lam * m2 / (2 * (1 - lam * m1)))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_simulate_mm1_within_ci(seed):
    sys_ = ForkJoin(1, 1, 0.7, [1.0])
    m = simulate(sys_, 400_000, seed=seed)
    assert abs(m.mean_jobs - mm1(0.7, 1.0)) <= 4 * m.extra["mean_jobs_ci"]
    assert abs(m.energy_per_job - 1.0) <= 4 * m.extra["energy_per_job_ci"] + 1e-3


@pytest.mark.parametrize("seed", [0, 3])
def test_k1_race_is_mg1(seed):
    n, lam, mu, p = 3, 1.5, [1.0, 3.0], [0.6, 0.4]
    want = race_mg1(n, lam, mu, p)
    sys_ = ForkJoin(n, 1, lam, mu, [1.0, 4.0], p)
    assert approximate(sys_).mean_jobs == pytest.approx(want, rel=1e-12)   # exact for k = 1
    assert exact(sys_).mean_jobs == pytest.approx(want, rel=1e-6)
    m = simulate(sys_, 400_000, seed=seed)
    assert abs(m.mean_jobs - want) <= 4 * m.extra["mean_jobs_ci"]
    # single speed k = 1 is M/M/1 with rate n mu
    assert exact(ForkJoin(3, 1, 2.0)).mean_jobs == pytest.approx(mm1(2.0, 3.0), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 5])
def test_simulate_matches_exact_two_speeds(seed):
    sys_ = ForkJoin(4, 2, 1.5, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5], idle_power=0.2)
    e = exact(sys_)
    m = simulate(sys_, 600_000, seed=seed)
    assert abs(m.mean_jobs - e.mean_jobs) <= 4 * m.extra["mean_jobs_ci"]
    assert abs(m.energy_per_job - e.energy_per_job) <= 4 * m.extra["energy_per_job_ci"]
    assert np.allclose(m.completion_fraction, e.completion_fraction, atol=0.01)
    # fast cores win more races than their share
    assert e.completion_fraction[1] > 0.5


@given(st.integers(1, 6), st.data(), st.floats(0.1, 0.9), st.integers(0, 2**31))
@settings(max_examples=15)
def test_single_speed_energy_identity(n, data, rho, seed):
    k = data.draw(st.integers(1, n))
    lam = rho * n / k
    sys_ = ForkJoin(n, k, lam, [2.0], [3.0], [1.0], idle_power=0.5)
    m = simulate(sys_, 60_000, seed=seed)
    want = k * 3.0 / 2.0 + 0.5 * (n / lam - k / 2.0)   # busy kP/mu + idle power x idle time
    assert abs(m.energy_per_job - want) <= 4 * m.extra["energy_per_job_ci"] + 1e-2 * want
    assert approximate(sys_).energy_per_job == pytest.approx(want, rel=1e-12)


def test_two_server_fork_join_slope_is_exact():
    """For (2,2), E[T] = (12 - rho) / (8 (mu - lambda)) exactly (Flatto-Hahn / Nelson-
    Tantawi); its light-traffic slope beta(0) is 11/8."""
    assert light_traffic_slope(2, 2) == pytest.approx(11 / 8)
    for rho in (0.2, 0.5, 0.8):
        want = rho * (12 - rho) / (8 * (1 - rho))
        assert exact(ForkJoin(2, 2, rho)).mean_jobs == pytest.approx(want, rel=1e-5)
        assert approximate(ForkJoin(2, 2, rho)).mean_jobs == pytest.approx(want, rel=0.01)


@pytest.mark.parametrize("n, k, rho", [(3, 2, 0.3), (3, 2, 0.6), (3, 2, 0.85), (4, 2, 0.3),
                                       (4, 2, 0.6), (4, 2, 0.85), (3, 3, 0.3), (3, 3, 0.6),
                                       (3, 3, 0.75), (4, 3, 0.3), (4, 3, 0.6)])
def test_approximation_single_speed_against_exact(n, k, rho):
    sys_ = ForkJoin(n, k, rho * n / k)
    a, e = approximate(sys_), exact(sys_)
    assert a.mean_jobs == pytest.approx(e.mean_jobs, rel=0.05)


@pytest.mark.parametrize("probs", [[0.8, 0.2], [0.5, 0.5], [0.2, 0.8]])
def test_approximation_energy_two_speeds_against_exact(probs):
    sys_ = ForkJoin(4, 2, 1.0, [1.0, 3.0], [1.0, 6.0], probs, idle_power=0.1)
    a, e = approximate(sys_), exact(sys_)
    assert a.energy_per_job == pytest.approx(e.energy_per_job, rel=0.02)
    assert a.mean_jobs == pytest.approx(e.mean_jobs, rel=0.08)


def test_exact_refuses_unstable_and_large_tails():
    with pytest.raises(ValidationError, match="unstable"):
        exact(ForkJoin(4, 2, 2.0))
    with pytest.raises(ValidationError, match="tail mass"):
        exact(ForkJoin(4, 2, 1.8), max_jobs=8)
    with pytest.raises(ValidationError, match="unstable"):
        approximate(ForkJoin(4, 2, 2.5))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(servers=4, needed=5, rate=1.0), "'needed'"),
    (dict(servers=4, needed=2, rate=-1.0), "'rate'"),
    (dict(servers=4, needed=2, rate=1.0, speeds=[1.0, 0.0]), "speeds[1]"),
    (dict(servers=4, needed=2, rate=1.0, speeds=[1, 2], probs=[0.5, 0.6]), "sum to 1"),
    (dict(servers=4, needed=2, rate=1.0, speeds=[1, 2], probs=[0.5]), "same length"),
    (dict(servers=4, needed=2, rate=math.nan), "'rate'"),
    (dict(servers=4, needed=2, rate=1.0, powers=[-1.0]), "powers[0]"),
])
def test_bad_parameters(kwargs, needle):
    with pytest.raises(ValidationError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        ForkJoin(**kwargs)


def test_tradeoff_and_optimize():
    sys_ = ForkJoin(10, 5, 2.0, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5], idle_power=0.1)
    t = tradeoff(sys_, 21)
    ok = np.isfinite(t.mean_jobs)
    assert not ok[0]                                   # all-slow is unstable at this rate
    assert np.all(np.diff(t.mean_jobs[ok]) < 0)        # faster mix, fewer jobs
    assert np.all(np.diff(t.energy_per_job[ok]) > 0)   # ... and more energy (P/mu: 1 < 2)
    o = optimize(sys_, max_jobs=2.0)
    assert o.feasible and o.metrics.mean_jobs <= 2.0 + 1e-6
    best_grid = min(e for n_, e in zip(t.mean_jobs[ok], t.energy_per_job[ok]) if n_ <= 2.0)
    assert o.metrics.energy_per_job <= best_grid + 1e-9
    rev = optimize(sys_, max_energy=8.0)
    assert rev.feasible and rev.metrics.energy_per_job <= 8.0 + 1e-6
    assert not optimize(sys_, max_energy=1.0).feasible
    with pytest.raises(ValidationError, match="exactly one"):
        optimize(sys_)
    three = ForkJoin(10, 5, 2.0, [0.5, 1.0, 3.0], [0.2, 1.0, 6.0], [0.3, 0.4, 0.3])
    o3 = optimize(three, max_response=1.5)
    assert o3.feasible and o3.metrics.mean_response <= 1.5 + 1e-6
    start = approximate(three)   # the given mix: no better than the optimum if it qualifies
    assert start.mean_response > 1.5 or o3.metrics.energy_per_job <= start.energy_per_job + 1e-9


def test_fork_join_light_traffic_slope_matches_recursion():
    """Two derivations of beta(0) for k = n agree for one speed: the two-job level
    recursion (light_traffic_slope) and the independent-cores integral
    (fork_join_light_traffic_slope), the latter also for speed mixes."""
    from distalloc.queueing.approx import fork_join_light_traffic_slope
    for n in (2, 3, 5, 8):
        one = fork_join_light_traffic_slope(n, np.array([2.0]), np.array([1.0]))
        assert one == pytest.approx(light_traffic_slope(n, n), rel=1e-6)
    # a mix against the exact chain's slope at small rates (finite difference)
    sys_ = ForkJoin(3, 3, 0.02, [1.0, 3.0], [1.0, 1.0], [0.5, 0.5])
    lo, hi = exact(sys_.with_rate(0.01)), exact(sys_.with_rate(0.02))
    slope = (hi.mean_response - lo.mean_response) / 0.01
    cap = 1.0 / (0.5 / 1.0 + 0.5 / 3.0)
    b0 = fork_join_light_traffic_slope(3, np.array([1.0, 3.0]), np.array([0.5, 0.5]))
    assert b0 / cap ** 2 == pytest.approx(slope, rel=0.03)


@pytest.mark.parametrize("n, k, speeds, probs", [(20, 10, [1.0, 3.0], [0.5, 0.5]),
                                                 (10, 5, [0.5, 1.0, 2.0], [0.3, 0.4, 0.3]),
                                                 (6, 1, [1.0, 3.0], [0.5, 0.5])])
def test_saturation_capacity_against_overloaded_simulation(n, k, speeds, probs):
    """Push 1.5x the estimated capacity through the simulator: jobs then leave at the
    capacity rate, so the mean response of jobs 1..N grows as (N/2)(1/capacity - 1/rate)."""
    from distalloc.queueing.approx import saturation_capacity
    cap, _ = saturation_capacity(n, k, np.array(speeds), np.array(probs))
    lam, N = 1.5 * cap, 400_000
    m = simulate(ForkJoin(n, k, lam, speeds, None, probs), N, seed=3, warmup_fraction=0.0,
                 batches=2, transient=True)
    assert not m.extra["stable"] and not m.extra["steady_state"]
    measured = 1.0 / (2 * m.mean_response / N + 1.0 / lam)
    assert cap == pytest.approx(measured, rel=0.02)


@given(st.integers(2, 40), st.lists(st.floats(0.05, 20.0), min_size=1, max_size=3),
       st.integers(0, 10 ** 6))
@settings(max_examples=40)
def test_fork_join_slope_is_finite_for_any_mix(n, speeds, seed):
    """The cancellation-free form of the k = n slope: finite, positive, and one speed gives
    the two-job recursion (large speed ratios made the earlier form overflow to NaN)."""
    from distalloc.queueing.approx import fork_join_light_traffic_slope
    mu = np.array(speeds)
    p = np.random.default_rng(seed).dirichlet(np.ones(mu.size))
    b0 = fork_join_light_traffic_slope(n, mu, p)
    assert np.isfinite(b0) and b0 > 0
    one = fork_join_light_traffic_slope(n, mu[:1], np.ones(1))
    assert one == pytest.approx(light_traffic_slope(n, n), rel=1e-6)
