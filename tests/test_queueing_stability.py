"""Stability decided first, everywhere (SPEC 3.3; issues 14 and 16): one function, three
tiers (closed forms, proven bounds, a measured saturated run), used by every method and
command; the field reports as regression tests."""
import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.queueing import (ForkJoin, UnstableError, approximate, exact, optimize,
                                simulate, stability, tradeoff)
from distalloc.queueing.mixes import race_k1
from distalloc.queueing.stability import (_RUNS, decide_rates, measure_saturation,
                                          saturation_bounds)


def run_cli(capsys, *args):
    code = main(["queue", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------------------
# The reports (issue 14 "Stability is decided first", issue 16 "Hangs")
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", ["2.5", "2.0"])
def test_simulate_refuses_at_and_above_capacity(capsys, rate):
    """(4,2) single speed: capacity n mu / k = 2.  It used to print E[N] ~ 1.4e5 and 5 W
    from four 1 W cores at 2.5, and 250 +- 62 at exactly 2.0."""
    code, out, err = run_cli(capsys, "simulate", "--servers", "4", "--needed", "2", "--rate",
                             rate, "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unstable" in err and "--transient" in err


def test_simulate_transient_opt_in_is_labelled(capsys):
    code, out, err = run_cli(capsys, "simulate", "--servers", "4", "--needed", "2", "--rate",
                             "2.5", "--jobs", "100000", "--transient", "--json")
    d = json.loads(out)
    assert code == 0 and err == ""
    assert d["stable"] is False and d["steady_state"] is False
    assert d["trend_p_value"] < 1e-6                      # the backlog grows
    assert d["mean_power"] <= 4.0                         # never above four 1 W cores


@pytest.mark.parametrize("args", [
    ["--servers", "2", "--needed", "1", "--rate", "3.5", "--speeds", "1,3", "--probs",
     "0.5,0.5"],                                          # k = 1 race: 1/E[S] = 3.4286
    ["--servers", "3", "--needed", "2", "--rate", "50", "--speeds", "2,2"],   # one speed
    ["--servers", "4", "--needed", "2", "--rate", "10", "--speeds", "1,3"],   # bound
    ["--servers", "6", "--needed", "5", "--rate", "2.5", "--speeds", "1,10"],  # measured
])
@pytest.mark.parametrize("command", ["exact", "approx", "simulate"])
def test_every_command_refuses_unstable_at_once(capsys, command, args):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, command, *args)
    assert time.perf_counter() - t0 < 20
    assert code == 2 and out == "" and err.count("\n") == 1 and "unstable" in err


def test_k1_race_capacity_in_the_message(capsys):
    code, _, err = run_cli(capsys, "exact", "--servers", "2", "--needed", "1", "--rate", "3.5",
                           "--speeds", "1,3", "--probs", "0.5,0.5")
    assert "3.42857" in err


def test_approximation_no_longer_trusts_its_own_capacity():
    """(6,5) with speeds 1 and 10: the approximation's capacity (2.53) is 3% above the
    measured saturation throughput (2.46); at rate 2.5 it returned a number for an unstable
    system.  Now stability is measured."""
    system = ForkJoin(6, 5, 2.5, [1.0, 10.0], None, [0.5, 0.5])
    from distalloc.queueing.approx import saturation_capacity
    assert saturation_capacity(6, 5, system.speeds, system.probs)[0] > 2.5
    st_ = stability(system)
    assert st_.source == "measured" and not st_.stable
    with pytest.raises(UnstableError):
        approximate(system)
    t = tradeoff(system.with_rate(2.5), 3)
    assert np.isnan(t.mean_jobs[1])                       # p = 0.5 is this system


def test_tradeoff_and_optimize_use_the_same_decision():
    system = ForkJoin(4, 2, 2.5, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5])
    t = tradeoff(system, 11)
    for p, x in zip(t.switch_prob, t.mean_jobs):
        st_ = stability(system.with_probs([1 - p, p]))
        if not st_.stable:
            assert np.isnan(x)
        if np.isfinite(x):
            assert st_.stable
    o = optimize(system, max_jobs=3.0)
    assert o.feasible and stability(system.with_probs(o.probs)).stable


# ------------------------------------------------------------------------------------------
# The tiers
# ------------------------------------------------------------------------------------------
def test_closed_forms():
    assert stability(ForkJoin(4, 2, 1.0, [2.0])).capacity == 4.0
    assert stability(ForkJoin(5, 5, 1.0, [1.0, 3.0], None, [0.5, 0.5])).capacity == \
        pytest.approx(1 / (0.5 + 0.5 / 3))
    m1 = race_k1(3, np.array([1.0, 3.0]), np.array([0.6, 0.4]))[0]
    brute = sum(np.prod([[0.6, 0.4][d] for d in draw]) / sum([1.0, 3.0][d] for d in draw)
                for draw in np.ndindex(2, 2, 2))
    assert m1 == pytest.approx(brute, rel=1e-13)
    st_ = stability(ForkJoin(3, 1, 1.0, [1.0, 3.0], None, [0.6, 0.4]))
    assert st_.source == "k = 1 race" and st_.capacity == pytest.approx(1 / brute)
    # equal speeds are one speed; zero-probability levels do not count
    assert stability(ForkJoin(3, 2, 1.0, [2.0, 2.0])).source == "single speed"
    assert stability(ForkJoin(3, 2, 1.0, [2.0, 9.0], None, [1.0, 0.0])).capacity == 3.0


@pytest.mark.parametrize("n, k, speeds, probs, want", [
    (4, 2, [1.0], [1.0], 2.0),
    (4, 4, [1.0, 3.0], [0.5, 0.5], 1.5),
    (5, 1, [1.0, 3.0], [0.5, 0.5], None),
])
def test_measurement_agrees_with_closed_forms(n, k, speeds, probs, want):
    """The saturated run, applied where the answer is known, finds it (99.9% band)."""
    if want is None:
        want = 1 / race_k1(n, np.array(speeds), np.array(probs))[0]
    cap, ci95, jobs = measure_saturation(n, k, speeds, probs)
    assert jobs >= 100_000
    assert abs(cap - want) <= ci95 * 3.3 / 1.96


@given(st.integers(3, 12), st.data(), st.integers(0, 10 ** 6))
@settings(max_examples=8)
def test_bounds_hold_against_measurement(n, data, seed):
    """L = n / (k sum p/mu) <= Lambda <= n sum(p mu) / k (the Chebyshev argument of the
    stability module), checked against the measured throughput of random systems."""
    k = data.draw(st.integers(2, n - 1))
    rng = np.random.default_rng(seed)
    s = int(rng.integers(2, 4))
    mu = np.exp(rng.uniform(np.log(0.2), np.log(10), s))
    p = rng.dirichlet(np.ones(s))
    lower, upper = saturation_bounds(n, k, mu, p)
    cap, ci95, _ = measure_saturation(n, k, mu, p, checkpoint=2)
    assert lower <= cap + 2 * ci95 and cap - 2 * ci95 <= upper


def test_measured_decision_is_a_function_of_system_and_rate():
    """Checkpoints are fixed and cached, the seed is fixed: the decision for a rate does not
    depend on the caller's seed or on which rates were decided before."""
    system = ForkJoin(10, 5, 3.0, [1.0, 3.0], None, [0.5, 0.5])
    rates = [3.45, 3.5, 3.53, 3.62]
    first = [stability(system.with_rate(r)) for r in rates]
    _RUNS.clear()
    second = [stability(system.with_rate(r)) for r in reversed(rates)][::-1]
    assert first == second
    flags = [s.stable for s in first]
    assert flags[0] and not flags[-1] and flags == sorted(flags, reverse=True)
    assert all(s.source == "measured" for s in first)
    # the vectorised door used by approximate_grid gives the same decisions
    mu, p = np.array([1.0, 3.0]), np.array([0.5, 0.5])
    grid = np.linspace(2.9, 4.1, 41)
    assert decide_rates(10, 5, mu, p, grid).tolist() == \
        [stability(system.with_rate(r)).stable for r in grid]


def test_measured_capacity_against_an_overloaded_simulation():
    """Independent check of the saturated run: push 1.4x the capacity through the ordinary
    simulator; jobs then leave at the capacity rate."""
    n, k, speeds, probs = 10, 5, [1.0, 3.0], [0.5, 0.5]
    cap, ci95, _ = measure_saturation(n, k, speeds, probs)
    lam, N = 1.4 * cap, 400_000
    m = simulate(ForkJoin(n, k, lam, speeds, None, probs), N, seed=3, warmup_fraction=0.0,
                 batches=2, transient=True)
    measured = 1.0 / (2 * m.mean_response / N + 1.0 / lam)
    assert cap == pytest.approx(measured, rel=0.01)


def test_simulate_reports_stability_and_trend():
    m = simulate(ForkJoin(4, 2, 1.5, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5]), 200_000, seed=4)
    d = m.to_dict()
    assert d["stable"] is True and d["capacity_source"] in ("bound", "measured")
    assert 1e-6 < d["trend_p_value"] <= 1.0 and d["steady_state"] is True


@given(st.integers(1, 6), st.data(), st.floats(0.05, 2.0), st.integers(0, 2 ** 31))
@settings(max_examples=12)
def test_mean_power_never_exceeds_the_cores(n, data, rho, seed):
    """Transient or not, the mean power is energy over elapsed time: at most n P_max."""
    k = data.draw(st.integers(1, n))
    system = ForkJoin(n, k, rho * n / k, [1.0, 2.0], [1.0, 4.0], [0.5, 0.5], idle_power=0.3)
    m = simulate(system, 5_000, seed=seed, transient=True)
    assert m.mean_power <= n * 4.0 * (1 + 1e-9)
    assert m.extra["steady_state"] is False or m.extra["stable"]


# ------------------------------------------------------------------------------------------
# Exact chain sizing (issue 14)
# ------------------------------------------------------------------------------------------
def test_light_load_five_by_five_is_small(capsys):
    """(5,5) at rho 0.3 was refused ("needs more than 400000 states (max_jobs = 32)")."""
    code, out, err = run_cli(capsys, "exact", "--servers", "5", "--needed", "5", "--rate",
                             "0.3", "--json")
    d = json.loads(out)
    assert code == 0 and d["tail_mass"] <= 1e-8 and d["max_jobs"] < 32
    m = simulate(ForkJoin(5, 5, 0.3), 300_000, seed=1)
    assert abs(d["mean_jobs"] - m.mean_jobs) <= 4 * m.extra["mean_jobs_ci"]


@pytest.mark.parametrize("system, N", [
    (ForkJoin(4, 2, 1.0), 10), (ForkJoin(4, 3, 1.0, [1.0, 3.0]), 8),
    (ForkJoin(3, 2, 1.0, [1.0, 2.0, 3.0]), 6), (ForkJoin(5, 5, 0.3), 12),
    (ForkJoin(4, 2, 1.0, [1.0, 1.0, 3.0], [1.0, 2.0, 5.0]), 7)])
def test_state_count_is_exact(system, N):
    from distalloc.queueing.exact import _Chain, count_states
    from distalloc.queueing.mixes import distinct_speeds
    s = distinct_speeds(system.speeds, system.probs)[0].size
    states = _Chain(system, N).build(10 ** 7)[0]
    assert len(states) == count_states(system.servers, system.needed, s, N)


def test_memory_is_estimated_before_building():
    t0 = time.perf_counter()
    with pytest.raises(ValidationError, match=r"states \(~.* GB\).*--max-memory-gb"):
        exact(ForkJoin(12, 6, 3.0, [1.0, 3.0]))
    assert time.perf_counter() - t0 < 5


def test_gauss_seidel_sweeps_equal_the_direct_solve():
    """The chain's order makes the lower triangle a Gauss-Seidel sweep; the iterative
    solution equals SciPy's sparse LU on a chain large enough to take that path."""
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.linalg import spsolve

    from distalloc.queueing.exact import _Chain, _solve
    system = ForkJoin(4, 2, 1.5, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5])
    states, rows, cols, vals = _Chain(system, 40).build(10 ** 7)
    assert len(states) > 2000
    pi = _solve(states, rows, cols, vals)
    N = len(states)
    Q = coo_matrix((vals, (rows, cols)), shape=(N, N)).tocsr()
    Q = Q - csr_matrix((np.asarray(Q.sum(axis=1)).ravel(), (range(N), range(N))), shape=(N, N))
    At = Q.T.tocsc()
    x = spsolve(At[1:, 1:].tocsc(), -At[1:, 0].toarray().ravel())
    direct = np.r_[1.0, x] / (1.0 + x.sum())
    np.testing.assert_allclose(pi, direct, rtol=1e-7, atol=1e-14)


# ------------------------------------------------------------------------------------------
# Unbounded work, overflow, one-line errors (issue 16)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["exact", "--servers", "99999999999999999999", "--needed", "2", "--rate", "1"],
     "'servers' parameter must be an int in [1, 1e+06]"),
    (["approx", "--servers", "10", "--needed", "5", "--rate", "1", "--speeds",
      ",".join(str(1 + i / 10) for i in range(200))], "--max-seconds"),
    (["simulate", "--servers", "4", "--needed", "2", "--rate", "1", "--jobs",
      "100000000000000000000"], "'num_jobs'"),
    (["simulate", "--servers", "40", "--needed", "2", "--rate", "1", "--jobs",
      "1000000000000"], "--max-seconds"),
    (["tradeoff", "--servers", "4", "--needed", "2", "--rate", "1", "--speeds", "1,3",
      "--points", "10000000"], "'num_points'"),
    (["approx", "--servers", "4", "--needed", "2", "--rate", "1e308"], "'rate'"),
    (["approx", "--servers", "4", "--needed", "2", "--rate", "1", "--speeds", "1e308"],
     "speeds[0]"),
    (["approx", "--servers", "4", "--needed", "2", "--rate", "1", "--powers", "inf"],
     "powers[0]"),
    (["approx", "--servers", "1000000", "--needed", "500000", "--rate", "1"],
     "--max-seconds"),
    (["exact", "--servers", "1000", "--needed", "1000", "--rate", "0.1"], "--max-memory-gb"),
    (["exact", "--servers", "40", "--needed", "20", "--rate", "1"], "--max-memory-gb"),
    (["exact", "--servers", "4", "--needed", "2", "--rate", "1", "--max-jobs",
      "1000000000"], "--max-memory-gb"),
])
def test_absurd_sizes_are_refused_at_once(capsys, args, needle):
    t0 = time.perf_counter()
    code, out, err = run_cli(capsys, *args)
    assert time.perf_counter() - t0 < 10
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err


def test_many_cores_with_k1_are_small():
    """k = 1 keeps one level: a million cores is a 3-state chain (mixes of one speed)."""
    m = exact(ForkJoin(10 ** 6, 1, 1.0), max_jobs=2)
    assert m.extra["num_states"] == 3


def test_warnings_never_come_before_the_error_or_on_stdout(capsys, monkeypatch):
    import warnings

    import distalloc.queueing as q

    def noisy(system, **kw):
        warnings.warn("overflow encountered in exp", RuntimeWarning)
        raise UnstableError("The system is unstable: test.")
    monkeypatch.setattr(q, "approximate", noisy)
    code, out, err = run_cli(capsys, "approx", "--servers", "4", "--needed", "2", "--rate", "1")
    assert code == 2 and out == "" and err == "distalloc: error: The system is unstable: test.\n"

    def noisy_ok(system, **kw):
        warnings.warn("something benign", RuntimeWarning)
        return approximate(system)
    monkeypatch.setattr(q, "approximate", noisy_ok)
    code, out, err = run_cli(capsys, "approx", "--servers", "4", "--needed", "2", "--rate",
                             "1", "--json")
    assert code == 0 and json.loads(out)["mean_jobs"] > 0
    assert err == "distalloc: warning: something benign\n"


def test_optimize_command_runs(capsys):
    """`queue optimize` had no handler (a traceback)."""
    code, out, _ = run_cli(capsys, "optimize", "--servers", "10", "--needed", "5", "--rate",
                           "2", "--speeds", "1,3", "--powers", "1,6", "--idle-power", "0.1",
                           "--max-jobs", "2", "--json")
    d = json.loads(out)
    assert code == 0 and d["feasible"] and d["mean_jobs"] <= 2 + 1e-6
    assert math.isclose(sum(d["probs"]), 1.0)
