"""Faults the fuzz suite found, fixed by kind (issues 14, 16), each with its right value:
bounded work in the SGD family (n <= MAX_WORKERS, O(n) order-statistic means), the exact
chain's time limit, unhashable or wrongly typed arguments as one-line errors, data sizes
refused before allocating."""
from __future__ import annotations

import math
import re
import sys
import time

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc.cli import main


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


# --- SGD: bounded work --------------------------------------------------------------------
def test_huge_worker_counts_are_refused_at_once_everywhere():
    from distalloc.sgd import (KController, bound_schedule, expected_order_statistics,
                               parse_model, run)
    from distalloc.sgd.models import MAX_WORKERS
    big = 13530859385           # the fuzz's reproducer: hung in order_stat_means (O(n^2))
    t0 = time.perf_counter()
    with pytest.raises(ValidationError) as e:
        bound_schedule(big, 0.001, 5, 0.65, 84.8, 57, 6144.0, rate=1.3, step=5)
    assert f"The 'workers' parameter must be an int in [1, {MAX_WORKERS}]" in one_line(e)
    with pytest.raises(ValidationError, match="'workers'"):
        KController("fixed:1", big)
    with pytest.raises(ValidationError, match="'workers'"):
        run("synthetic", MAX_WORKERS + 1, "fixed:1", horizon=1.0)
    for spec in ("exp:1", "pareto:1:2", "lognormal:0:1", "shifted-exp:1:1"):
        with pytest.raises(ValidationError, match="'n'"):
            parse_model(spec).order_stat_mean(1, 2**40)
        with pytest.raises(ValidationError, match="'n'"):
            parse_model(spec).order_stat_means(2**40)
    with pytest.raises(ValidationError, match="at most 10000"):
        expected_order_statistics("exponential", 2**40, 2**40, 1.0)
    assert time.perf_counter() - t0 < 5.0


def test_order_statistic_grids_refuse_absurd_sizes_before_allocating():
    from distalloc.sgd import expected_order_statistics
    with pytest.raises(ValidationError, match="broadcast to 1e\\+10 elements") as e:
        expected_order_statistics("exponential", np.arange(1, 10_001)[:, None],
                                  np.ones((1, 1_000_000), dtype=np.int64), 1.0)
    one_line(e)
    with pytest.raises(ValidationError, match="kernel steps"):
        expected_order_statistics("exponential", 10_000, np.full(10**6, 10_000), 1.0)
    with pytest.raises(ValidationError, match="'family'"):
        expected_order_statistics(["exponential"], 3, 1, 1.0)


def test_order_stat_means_are_linear_and_equal_the_scalar_means():
    from distalloc.sgd import Exponential, Heterogeneous, LogNormal, Pareto, ShiftedExponential
    from distalloc.sgd.models import MAX_WORKERS
    n = MAX_WORKERS
    t0 = time.process_time()             # CPU seconds: a shared machine's load cannot fail it
    mu = Exponential(2.0).order_stat_means(n)
    assert time.process_time() - t0 < 1.0    # O(n) closed form: about 0.1 ms
    harmonic = math.fsum(1.0 / j for j in range(1, n + 1))
    assert mu[-1] == pytest.approx(harmonic / 2.0, rel=1e-13)
    assert mu[0] == pytest.approx(1.0 / (2.0 * n), rel=1e-13)
    assert ShiftedExponential(0.5, 2.0).order_stat_means(n)[-1] == pytest.approx(
        0.5 + harmonic / 2.0, rel=1e-13)
    # Pareto(1, 0.9), n = 20: E[X_(10)] = 2.167 (issue 14), infinite iff 0.9 (21 - k) <= 1
    p = Pareto(1.0, 0.9).order_stat_means(20)
    assert p[9] == pytest.approx(2.1670034111, rel=1e-9)
    assert np.all(np.isfinite(p[:19])) and math.isinf(p[19])
    for model, m in ((Pareto(1.0, 2.5), 50), (Heterogeneous(np.linspace(0.5, 2.0, 12)), 12),
                     (LogNormal(0.3, 0.8), 300)):
        fast = model.order_stat_means(m)
        for k in (1, m // 2, m):
            assert fast[k - 1] == pytest.approx(model.order_stat_mean(k, m), rel=1e-10)


def test_models_refuse_what_they_cannot_compute_quickly():
    from distalloc.sgd import Empirical, Heterogeneous, parse_model
    with pytest.raises(ValidationError, match="at most 256 workers"):
        Heterogeneous(np.ones(300)).order_stat_means(300)
    with pytest.raises(ValidationError, match="has 3 rates"):
        Heterogeneous([1.0, 2.0, 3.0]).order_stat_mean(1, 5)
    with pytest.raises(ValidationError, match="thin the samples"):
        Empirical(np.arange(20_000.0)).order_stat_means(5_000)
    m = parse_model("pareto:1:1.5")
    with pytest.raises(ValidationError, match="'iterations'"):
        m.sample(False, 28, np.random.default_rng(0))
    with pytest.raises(ValidationError, match="draw in chunks") as e:
        m.sample(2**40, 28, np.random.default_rng(0))
    assert "GiB" in one_line(e)
    assert m.sample(3, 4, 0).shape == (3, 4)


def test_bound_schedule_at_the_largest_n_is_quick_and_checks_mu():
    from distalloc.sgd import bound_schedule
    from distalloc.sgd.models import MAX_WORKERS
    t0 = time.perf_counter()
    s = bound_schedule(MAX_WORKERS, 1e-3, 2.0, 1.0, 10.0, 10, 100.0, step=50)
    assert time.perf_counter() - t0 < 5.0
    assert s.k_values[0] == 1 and np.all(np.diff(s.k_values) == 50)
    assert np.all(np.diff(s.switch_times) >= 0)
    with pytest.raises(ValidationError, match="'mu' must hold"):
        bound_schedule(5, 1e-3, 2, 1, 10, 10, 100, mu=[1.0, 2.0])
    with pytest.raises(ValidationError, match="'model'"):
        bound_schedule(5, 1e-3, 2, 1, 10, 10, 100, model="exp:1")


def test_problem_and_aggregation_inputs_are_checked_before_any_work():
    from distalloc.sgd import fastest_k_average, from_arrays, run, synthetic_regression
    with pytest.raises(ValidationError, match="'problem' parameter") as e:
        run([[]], 24, "fixed:5")
    one_line(e)
    with pytest.raises(ValidationError, match="GiB"):
        synthetic_regression(num_samples=2**31, dim=2)
    with pytest.raises(ValidationError, match="dimension d = 9007199254740993"):
        synthetic_regression(num_samples=127, dim=2**53 + 1)
    with pytest.raises(ValidationError, match="dimension"):
        from_arrays(np.ones((2, 3000)), np.ones(2))
    t, g = np.array([[3.0, 1.0, 2.0]]), np.arange(3.0).reshape(1, 3, 1)
    avg, chosen = fastest_k_average(t, g, 2)
    assert avg.tolist() == [[1.5]] and chosen.tolist() == [[1, 2]]
    for bad_times, bad_k in (({}, 1), (t, [[]]), (t, {}), (t, True), (t, [1, 2])):
        with pytest.raises(ValidationError):
            fastest_k_average(bad_times, g, bad_k)


# --- queueing: the exact chain's time ------------------------------------------------------
def test_exact_refuses_a_chain_over_its_time_limit(capsys):
    """The fuzz's reproducer took ~20 s (498 078 states at max_jobs = 62) with no limit."""
    argv = ["queue", "exact", "--servers", "4", "--needed", "3", "--rate", "0.805",
            "--max-jobs", "62", "--speeds", "1,2.968", "--probs", "0.9,0.1", "--max-seconds", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "4.98e+05 states at max_jobs = 62" in err[0]
    assert "--max-seconds" in err[0]
    from distalloc.queueing import ForkJoin, exact
    with pytest.raises(ValidationError, match="'max_seconds'"):
        exact(ForkJoin(4, 2, 1.6), max_seconds=math.nan)
    assert round(exact(ForkJoin(4, 2, 1.6), max_seconds=30).mean_jobs, 3) == 3.457


# --- LLM: wrongly typed names --------------------------------------------------------------
def test_unhashable_or_non_string_names_are_one_line_errors():
    from distalloc import llm
    sc = llm.resolve_scenario("clustered")
    for call in (lambda: llm.plan(sc, {}), lambda: llm.simulate(sc, []),
                 lambda: llm.resolve_scenario(2**63), lambda: llm.resolve_scenario(True),
                 lambda: llm.builtin_scenario(["clustered"])):
        with pytest.raises(ValidationError) as e:
            call()
        one_line(e)
    from distalloc.sweep import resolve_target
    with pytest.raises(ValidationError, match="sweep target must be a name"):
        resolve_target(["queue.approx"])


def test_exact_solver_iterations_stop_at_the_time_limit():
    """Load 0.973 (k = 1 race capacity 2.1013): the truncation is large and the iterative
    solve converges slowly; the fuzz saw it run past 30 s under --max-seconds 4."""
    from distalloc.queueing import ForkJoin, exact
    system = ForkJoin(3, 1, 2.044984407054883, speeds=[0.2193, 3.085, 4.55],
                      probs=[0.6, 0.2, 0.2])
    t0 = time.perf_counter()
    # refused by the solve's deadline, or (on a loaded machine, where the smaller
    # truncations already took long) by the estimate before the next chain is built; an
    # idle machine may finish within the 3 s: then the answer must be a real one
    try:
        m = exact(system, max_seconds=3.0)
    except ValidationError as exc:
        assert re.search("did not converge within max_seconds|over the limit of 3 s",
                         str(exc)), str(exc)
        assert "\n" not in str(exc)
    else:
        assert np.isfinite(m.mean_jobs) and m.mean_jobs > 0
    assert time.perf_counter() - t0 < 20.0


# --- found by the 2000-case run: wrongly typed arguments, tiny times ------------------------
def test_controller_grid_and_fit_inputs_are_one_line_errors():
    from distalloc.queueing import approximate_grid
    from distalloc.sgd import KController, fit_response_model, parse_model
    ctl = KController("fixed:2", 5)
    for kw in ({"gradient_sq_norm": [0]}, {"gradient_dot": "x"}, {"worker_variance": None}):
        with pytest.raises(ValidationError, match=f"'{next(iter(kw))}' parameter") as e:
            ctl.observe([1.0, 2.0], **kw)
        one_line(e)
    with pytest.raises(ValidationError, match="response_times_s"):
        ctl.observe({})
    assert ctl.observe([1.0, 2.0, 3.0], 0.5) == 2 and ctl.time == 2.0
    rates = np.array([1.0, 2.0])
    for probs in ("", {}, [[1.0], [0.5, 0.5]], "0.5", [True]):
        with pytest.raises(ValidationError, match="'probs'"):
            approximate_grid(5, 1, [4.0], None, rates, probs)
    with pytest.raises(ValidationError, match="below 1e-200") as e:
        fit_response_model([0.0, 0.0, 5e-324, 0.0])
    one_line(e)
    # an infinite mean is the right answer, not an error: Pareto shape 0.9, n = k = 1
    assert math.isinf(parse_model("pareto:1:0.9").order_stat_mean(1, 1))


def test_grid_rates_and_overflowing_samples_are_one_line_errors():
    from distalloc.queueing import approximate_grid
    from distalloc.sgd import parse_model
    for rates in ("", {}, 2.0, [[1.0]], [1.0, math.nan]):
        with pytest.raises(ValidationError, match="'rates"):
            approximate_grid(4, 1, [2.0], None, rates)
    out = approximate_grid(4, 2, [1.0], None, [0.5, 1.0, 2.5])["mean_jobs"]
    assert np.isnan(out[2]) and out[1] == pytest.approx(1.004192073170732, rel=1e-12)
    with pytest.raises(ValidationError, match="overflow float64") as e:
        parse_model("lognormal:1000:1").sample(5, 1, 0)
    one_line(e)


def test_service_below_the_clock_resolution_still_completes():
    """Fuzz finding (10^4 budget): with speed 1e20 a task's service rounds to 0 (S + w/mu == S);
    the task that starts at the departure instant completed there, it was not purged, so the
    single level's completion fraction is 1, not 0."""
    from distalloc.queueing import ForkJoin, simulate
    s = ForkJoin(servers=2, needed=1, rate=0.3214789292053116, speeds=[1e20], powers=[3.72])
    m = simulate(s, num_jobs=67, seed=3, replications=3, batches=22)
    assert m.completion_fraction.tolist() == [1.0]
    assert m.mean_response < 1e-12


def test_exact_tradeoff_is_bounded_by_max_seconds_as_a_whole():
    """Fuzz finding (10^4 budget): an exact trade-off ran every point under exact()'s own
    60 s limit (47 s of work, then a refusal); max_seconds now bounds the whole curve, so a
    point whose chain needs more than the time left is refused before it is built."""
    import time
    from distalloc.queueing import ForkJoin, tradeoff
    s = ForkJoin(servers=6, needed=2, rate=1.0, speeds=[0.3333, 0.704], powers=[1.0, 1.0],
                 idle_power=1.0)
    t0 = time.perf_counter()
    with pytest.raises(ValidationError, match=r"over the limit of 2\d\.\d+ s"):
        tradeoff(s, 21, method="exact", max_seconds=30)
    assert time.perf_counter() - t0 < 25


def test_optimize_is_bounded_by_max_seconds_and_evaluates_each_mix_once(monkeypatch):
    """Fuzz finding (10^4 budget): `queue optimize` of a 3-level (5,2) system took 41 s
    (each mix evaluated twice, the Gauss-Laguerre nodes recomputed per call, a quadratic
    cache sweep); now each mix once, and max_seconds (default 60) bounds the search."""
    from distalloc.queueing import ForkJoin, optimize
    tr = sys.modules["distalloc.queueing.tradeoff"]    # the package exports the function
    s = ForkJoin(servers=5, needed=2, rate=5.9532885887915805,
                 speeds=[2.572186624820653, 0.7577568130619352, 4.525300592744211],
                 idle_power=1.4964854247473005)
    t0 = time.perf_counter()
    with pytest.raises(ValidationError, match=r"did not finish within max_seconds = 0.5 s "
                       r"\(\d+ mixes evaluated\); raise it with max_seconds") as e:
        optimize(s, max_response=2.7042515282839865, max_seconds=0.5)
    assert time.perf_counter() - t0 < 10 and "\n" not in str(e.value)
    with pytest.raises(ValidationError, match="'max_seconds'"):
        optimize(s, max_response=2.7, max_seconds=float("nan"))
    calls = []
    real = tr._evaluate
    monkeypatch.setattr(tr, "_evaluate", lambda system, method: calls.append(
        tuple(system.probs)) or real(system, method))
    two = ForkJoin(servers=4, needed=2, rate=1.0, speeds=[1.0, 3.0], powers=[1.0, 6.0])
    o = optimize(two, max_jobs=2.0)
    assert o.feasible and len(calls) == len(set(calls))


def test_light_traffic_slope_nodes_are_cached_and_unchanged():
    from distalloc.queueing.approx import _laguerre, fork_join_light_traffic_slope
    u, w = _laguerre(80)
    ref_u, ref_w = np.polynomial.laguerre.laggauss(80)
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(w, ref_w)
    assert _laguerre(80)[0] is u and not u.flags.writeable
    assert fork_join_light_traffic_slope(2, np.array([1.0]), np.array([1.0])) == \
        pytest.approx(11 / 8, rel=1e-6)


@pytest.mark.parametrize("value", [float("nan"), -1.0, 0.0, "abc", True, [1.0]])
def test_every_max_seconds_is_validated(value):
    """Review finding: simulate(), approximate() (check_work) compared est > max_seconds
    unchecked: NaN meant no limit, a string gave TypeError.  One checker for every queue
    entry point; inf means no limit, like None."""
    from distalloc.queueing import ForkJoin, approximate, optimize, simulate, tradeoff
    s = ForkJoin(4, 2, 1.0, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5])
    for call in (lambda: simulate(s, 2000, max_seconds=value),
                 lambda: approximate(s, max_seconds=value),
                 lambda: tradeoff(s, 3, max_seconds=value),
                 lambda: optimize(s, max_jobs=2.0, max_seconds=value)):
        with pytest.raises(ValidationError, match="'max_seconds' parameter must be") as e:
            call()
        assert "\n" not in str(e.value)
    assert simulate(s, 2000, max_seconds=float("inf")).mean_jobs > 0


def test_max_memory_gb_of_plan_is_checked_for_every_method(capsys):
    from distalloc.llm import clustered, plan
    for method in ("cg-bprr", "petals", "chains"):
        with pytest.raises(ValidationError, match="'max_memory_gb' parameter"):
            plan(clustered(), method, max_memory_gb="abc")
    assert main(["llm", "plan", "clustered", "--max-memory-gb", "-5"]) == 2
    assert "'max_memory_gb'" in capsys.readouterr().err


def test_search_reservation_checks_its_arguments():
    from distalloc.llm import clustered
    from distalloc.llm.chains import search_reservation
    for kw, name in (({"rate_per_s": float("nan")}, "rate_per_s"),
                     ({"rate_per_s": -1.0}, "rate_per_s"),
                     ({"rate_per_s": 1.0, "target_load": 0.0}, "target_load"),
                     ({"rate_per_s": 1.0, "target_load": 5.0}, "target_load"),
                     ({"rate_per_s": 1.0, "max_c": 0}, "max_c")):
        with pytest.raises(ValidationError, match=f"'{name}'"):
            search_reservation(clustered(), **kw)


def test_sgd_sweeps_take_max_iterations(tmp_path):
    from distalloc.sweep import load_sweep, run_sweep
    cfg = {"sweep": {"target": "sgd.run"},
           "fixed": {"workers": 10, "policy": "fixed:2", "max_iterations": 10},
           "grid": {"horizon": [1.0, 1000.0]}}
    run_sweep(load_sweep(cfg), tmp_path / "o.csv", progress=False)
    import csv
    rows = {r["horizon"]: r for r in csv.DictReader(open(tmp_path / "o.csv"))}
    assert rows["1.0"]["status"] == "ok"
    assert "more than max_iterations = 10" in rows["1000.0"]["status"]
