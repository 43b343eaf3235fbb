"""User speed rules (SPEC 5.2): a numba.cfunc called by the Cython simulator through a C
function pointer.  The built-in fixed-probability rule written as a callback reproduces the
built-in run record for record; the queue lengths the kernel passes are checked against a
plain event simulation of the same draws; wrong callbacks are one-line errors."""
import ctypes
import heapq
from collections import deque

import numba
import numpy as np
import pytest
import scipy
from hypothesis import given, settings, strategies as st

from distalloc import ValidationError
from distalloc._compiled import queue_kernels
from distalloc.queueing import (ForkJoin, UnstableError, compiled_speed_rule, simulate,
                                stability)
from distalloc.queueing.simulation import _run, grow_queues, new_queues


@numba.cfunc("int64(int64, int64, float64)")
def half_half(core, queue_length, u):
    """The built-in draw for probs (0.5, 0.5): the first l with u < cum[l]."""
    if u < 0.5:
        return 0
    return 1


@numba.cfunc("int64(int64, int64, float64)")
def three_levels(core, queue_length, u):
    """The built-in draw for probs (0.3, 0.4, 0.3); cum = (0.3, 0.7, inf) as the kernel
    builds it from numpy.cumsum."""
    if u < 0.3:
        return 0
    if u < 0.3 + 0.4:
        return 1
    return 2


@numba.cfunc("int64(int64, int64, float64)")
def rush(core, queue_length, u):
    """Speed up a core whose queue is long: the fast level from 3 waiting tasks on."""
    return 1 if queue_length >= 3 else 0


@numba.cfunc("int64(int64, int64, float64)")
def by_core(core, queue_length, u):
    """Core 0 always fast, the others slow while short."""
    if core == 0:
        return 1
    return 1 if queue_length >= 2 else 0


@pytest.mark.parametrize("speeds, powers, probs, rule", [
    ([1.0, 3.0], [1.0, 6.0], [0.5, 0.5], half_half),
    ([0.5, 1.0, 2.0], [0.3, 1.0, 3.5], [0.3, 0.4, 0.3], three_levels)])
@pytest.mark.parametrize("replications", [1, 3])
def test_builtin_rule_as_callback_is_identical(speeds, powers, probs, rule, replications):
    """Same seed, same draws, same levels: every accumulated record equal, not just close."""
    system = ForkJoin(6, 3, 1.5, speeds, powers, probs, idle_power=0.1)
    n_jobs, warm, batches = 30_000, 3_000, 16
    for seed in (0, 11):
        a = _run(system, n_jobs, np.random.default_rng(seed), warm, batches, 0)
        b = _run(system, n_jobs, np.random.default_rng(seed), warm, batches,
                 compiled_speed_rule(rule).address)
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    m_a = simulate(system, 40_000, seed=5, replications=replications)
    m_b = simulate(system, 40_000, seed=5, replications=replications, speed_rule=rule)
    d_a, d_b = m_a.to_dict(), m_b.to_dict()
    for key in ("mean_jobs", "mean_response", "energy_per_job", "mean_power",
                "completion_fraction", "mean_jobs_ci", "energy_per_job_ci", "trend_p_value",
                "num_jobs"):
        assert d_a[key] == d_b[key], key


def _event_simulation(n, k, arrivals, work, u, speeds, rule):
    """Per-core FIFO queues and a heap of completions; the rule sees the number of tasks
    at the core (in service or waiting) when the job arrives.  Returns departure times."""
    B = len(arrivals)
    queues = [deque() for _ in range(n)]
    level = np.zeros((B, n), dtype=int)
    serving = [None] * n
    version = [0] * n
    finished = [0] * B
    departure = np.full(B, np.nan)
    gone = [False] * B
    heap = []

    def start(core, now):
        while queues[core]:
            job = queues[core][0]
            if gone[job]:
                queues[core].popleft()
                continue
            serving[core] = job
            version[core] += 1
            heapq.heappush(heap, (now + work[job, core] / speeds[level[job, core]], core,
                                  job, version[core]))
            return
        serving[core] = None

    j = 0
    while j < B or heap:
        if j < B and (not heap or arrivals[j] < heap[0][0]):
            t = arrivals[j]
            for core in range(n):
                present = sum(1 for x in queues[core] if not gone[x])
                level[j, core] = rule(core, present, u[j, core])
                queues[core].append(j)
                if serving[core] is None:
                    start(core, t)
            j += 1
            continue
        t, core, job, ver = heapq.heappop(heap)
        if ver != version[core] or serving[core] != job:
            continue
        queues[core].popleft()
        serving[core] = None
        finished[job] += 1
        if finished[job] == k:
            departure[job] = t
            gone[job] = True
            for other in range(n):
                if serving[other] == job:
                    queues[other].popleft()
                    start(other, t)
        start(core, t)
    return departure


@pytest.mark.parametrize("rule", [rush, by_core])
@pytest.mark.parametrize("n, k, lam", [(3, 2, 1.2), (4, 4, 0.6), (5, 1, 2.0), (6, 3, 2.0)])
def test_queue_length_against_event_simulation(rule, n, k, lam):
    """The kernel's ring + heap give the rule the same queue lengths as counting the tasks
    in each core's queue: every departure time agrees (same draws)."""
    rng = np.random.default_rng(n * 10 + k)
    B = 3000
    gaps = rng.standard_exponential(B) / lam
    work = rng.standard_exponential((B, n))
    u = rng.random((B, n))
    speeds = np.array([1.0, 2.5])
    want = _event_simulation(n, k, np.cumsum(gaps), work, u, speeds, rule.ctypes)
    resp = np.zeros(B)
    jobs = np.zeros(B, dtype=np.int64)
    zeros = np.zeros(B)
    queue_buf, queue_state = new_queues(n, 2)   # tiny: the kernel must stop and resume
    errors = np.zeros(4, dtype=np.int64)
    clock = np.zeros(2)
    core_free = np.zeros(n)
    start = 0
    while start < B:
        start = queue_kernels.fork_join_chunk(
            gaps, work, u, np.array([0.5, np.inf]), speeds, np.ones(2), k, core_free, clock,
            0, 0, 1, resp, zeros.copy(), zeros.copy(), zeros.copy(), jobs,
            np.zeros(2, dtype=np.int64), np.zeros(2), np.empty(4 * n),
            compiled_speed_rule(rule).address, queue_buf, queue_state, errors, np.empty(0),
            start)
        if start < B:
            queue_buf = grow_queues(queue_buf, queue_state)
    assert queue_buf.shape[2] > 2                  # the resumption path was taken
    assert errors[0] == 0
    np.testing.assert_allclose(resp + np.cumsum(gaps), want, rtol=1e-12)


def test_rule_that_speeds_up_long_queues_measures_between_the_fixed_rules():
    """rush: slow while the queue is short, fast when it is long.  Fewer jobs than all-slow,
    less energy per job than all-fast (the README example)."""
    base = ForkJoin(10, 5, 1.8, [1.0, 3.0], [1.0, 6.0], [1.0, 0.0], idle_power=0.1)
    slow = simulate(base, 200_000, seed=2)
    fast = simulate(base.with_probs([0.0, 1.0]), 200_000, seed=2)
    ruled = simulate(base, 200_000, seed=2, speed_rule=rush)
    assert ruled.extra["speed_rule"] == "rush" and ruled.extra["stable"]
    assert ruled.mean_jobs + 4 * ruled.extra["mean_jobs_ci"] < slow.mean_jobs
    assert ruled.energy_per_job + 4 * ruled.extra["energy_per_job_ci"] < fast.energy_per_job
    assert 0 < ruled.completion_fraction[1] < 1


def test_stability_with_a_rule():
    """With a rule only n mu_min / k <= Lambda <= n mu_max / k is known; in between the
    saturated run applies the rule (long queues: rush is always fast there)."""
    base = ForkJoin(4, 2, 1.0, [1.0, 3.0])
    rule = compiled_speed_rule(rush)
    assert stability(base.with_rate(1.9), speed_rule=rule).source == "bound"
    with pytest.raises(UnstableError, match="upper bound"):
        simulate(base.with_rate(6.0), 10_000, speed_rule=rule)
    st_ = stability(base.with_rate(4.0), speed_rule=rule)
    assert st_.source == "measured" and st_.stable        # all-fast capacity 6
    assert st_.capacity == pytest.approx(6.0, rel=0.05)


def test_wrong_callbacks_are_one_line_errors():
    def plain(core, queue_length, u):
        return 0

    with pytest.raises(ValidationError, match=r"int64\(int64, int64, float64\).*plain Python "
                                              r"function 'plain'"):
        compiled_speed_rule(plain)
    wrong = numba.cfunc("float64(float64, int64, float64)")(lambda a, b, c: a)
    with pytest.raises(ValidationError, match=r"Got a cfunc with signature float64"):
        compiled_speed_rule(wrong)
    with pytest.raises(ValidationError, match="Got int 3 instead"):
        compiled_speed_rule(3)
    bad_llc = scipy.LowLevelCallable(
        numba.cfunc("float64(float64)")(lambda x: x).ctypes)
    with pytest.raises(ValidationError, match="LowLevelCallable with signature"):
        compiled_speed_rule(bad_llc)


def test_low_level_callable_is_accepted_and_identical():
    system = ForkJoin(4, 2, 1.2, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5])
    llc = scipy.LowLevelCallable(half_half.ctypes)
    a = simulate(system, 20_000, seed=1, speed_rule=llc)
    b = simulate(system, 20_000, seed=1)
    assert a.mean_jobs == b.mean_jobs and a.energy_per_job == b.energy_per_job
    # a ctypes C function of the right signature (any compiled code would do)
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_double)
    c_rule = proto(lambda core, q, u: 0 if u < 0.5 else 1)
    c = simulate(system, 20_000, seed=1,
                 speed_rule=scipy.LowLevelCallable(c_rule, signature="int64_t (int64_t, "
                                                           "int64_t, double)"))
    assert c.mean_jobs == b.mean_jobs


def test_rule_returning_a_bad_level_is_reported():
    @numba.cfunc("int64(int64, int64, float64)")
    def broken(core, queue_length, u):
        return 7 if queue_length > 2 else 0

    system = ForkJoin(4, 2, 1.5, [1.0, 3.0])
    with pytest.raises(ValidationError, match=r"returned level 7 for core \d+ \(queue "
                                              r"length \d+\), outside 0\.\.1"):
        simulate(system, 20_000, seed=0, speed_rule=broken)


@given(st.integers(1, 5), st.data(), st.floats(0.2, 0.9), st.integers(0, 2 ** 31))
@settings(max_examples=10)
def test_rule_runs_conserve_physics(n, data, rho, seed):
    """Any state rule: power never above what the cores can draw, completion shares sum to
    1, E[N] = rate x E[T]."""
    k = data.draw(st.integers(1, n))
    system = ForkJoin(n, k, rho * n * 1.0 / k, [1.0, 2.0], [2.0, 5.0], idle_power=0.5)
    m = simulate(system, 20_000, seed=seed, speed_rule=rush)
    assert m.mean_power <= n * 5.0 + 1e-9
    assert sum(m.completion_fraction) == pytest.approx(1.0)
    assert m.mean_jobs == pytest.approx(system.rate * m.mean_response)
