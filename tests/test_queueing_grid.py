"""approximate_grid (SPEC 5.3): the Numba kernels against the scalar approximate on random
grids (hypothesis), NaN exactly where the scalar refuses, shapes and bad input, and the
batched queue.approx sweep path against the scalar one.

This file also runs under NUMBA_DISABLE_JIT=1 (.ci/run), where the kernels are plain
Python: the example counts shrink there so the run stays short."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distalloc import ValidationError
from distalloc.queueing import ForkJoin, UnstableError, approximate, approximate_grid

PURE_PYTHON = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"
KEYS = ("mean_jobs", "mean_response", "energy_per_job", "mean_power")


def scalar_grid(n, k, speeds, powers, rates, probs, idle):
    out = np.full((len(rates), 4), np.nan)
    for j, (lam, p) in enumerate(zip(rates, probs)):
        try:
            m = approximate(ForkJoin(n, k, lam, speeds, powers, p, idle))
        except UnstableError:
            continue
        out[j] = m.mean_jobs, m.mean_response, m.energy_per_job, m.mean_power
        assert np.all(np.isfinite(out[j])) and out[j, 0] > 0     # a number, never NaN
    return out


def assert_same(grid, want):
    got = np.column_stack([grid[key] for key in KEYS])
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=0)


@st.composite
def grids(draw):
    n = draw(st.integers(1, 6 if PURE_PYTHON else 14))
    k = draw(st.integers(1, n))
    s = draw(st.integers(1, 3))
    speeds = draw(st.lists(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0, 7.5]), min_size=s,
                           max_size=s))
    powers = draw(st.lists(st.floats(0.0, 10.0), min_size=s, max_size=s))
    N = draw(st.integers(1, 4 if PURE_PYTHON else 12))
    probs = []
    for _ in range(N):
        w = draw(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0]), min_size=s,
                          max_size=s).filter(lambda x: sum(x) > 0))
        probs.append(np.array(w) / sum(w))
    base = n * min(speeds) / k
    rates = [base * draw(st.floats(0.05, 2.5)) for _ in range(N)]
    idle = draw(st.sampled_from([0.0, 0.1, 1.0]))
    return n, k, speeds, powers, np.array(rates), np.array(probs), idle


@given(grids())
@settings(max_examples=6 if PURE_PYTHON else 40)
def test_grid_equals_scalar(case):
    n, k, speeds, powers, rates, probs, idle = case
    g = approximate_grid(n, k, speeds, powers, rates, probs, idle)
    assert_same(g, scalar_grid(n, k, speeds, powers, rates, probs, idle))


@pytest.mark.parametrize("n, k", [(4, 2), (5, 1), (4, 4), (10, 5)])
def test_one_mix_for_every_rate(n, k):
    """probs of shape (levels,) is the same mix at every point; rates span the stability
    boundary, so some points are NaN."""
    speeds, powers, p = [1.0, 3.0], [1.0, 6.0], np.array([0.5, 0.5])
    rates = np.linspace(0.1, 1.6, 9 if PURE_PYTHON else 31) * n * 2.0 / k
    g = approximate_grid(n, k, speeds, powers, rates, p, 0.1)
    assert np.isnan(g["mean_jobs"]).any() and np.isfinite(g["mean_jobs"]).any()
    assert_same(g, scalar_grid(n, k, speeds, powers, rates, [p] * rates.size, 0.1))


def test_contract_keys_and_shapes():
    g = approximate_grid(4, 2, [1.0], None, np.array([0.5, 1.0, 2.5]))
    assert sorted(g) == sorted(KEYS)
    assert all(v.shape == (3,) for v in g.values())
    assert np.isnan(g["mean_jobs"][2])                     # 2.5 >= n mu / k
    empty = approximate_grid(4, 2, [1.0], None, np.array([]))
    assert all(v.shape == (0,) for v in empty.values())


@pytest.mark.parametrize("kwargs, needle", [
    (dict(rates=np.array([1.0, np.nan])), r"'rates\[1\]'"),
    (dict(rates=np.array([[1.0]])), "1-D array"),
    (dict(rates=np.array([1.0, 2.0]), probs=np.ones((3, 2)) / 2), r"shape \(2,\) or \(2, 2\)"),
    (dict(rates=np.array([1.0]), probs=np.array([0.7, 0.7])), "sum to 1"),
    (dict(rates=np.array([1.0]), probs=np.array([-0.5, 1.5])), r"'probs\[0\]\[0\]'"),
    (dict(rates=np.array([1e300])), r"'rates\[0\]'"),
])
def test_bad_input_is_one_line(kwargs, needle):
    args = dict(servers=4, needed=2, speeds=[1.0, 3.0], powers=None, probs=None)
    args.update(kwargs)
    with pytest.raises(ValidationError, match=needle) as info:
        approximate_grid(**args)
    assert "\n" not in str(info.value)


def test_absurd_grids_are_refused_before_work():
    with pytest.raises(ValidationError, match="--max-seconds"):
        approximate_grid(60, 30, list(np.linspace(1, 5, 12)), None, np.array([1.0]))


def test_sweep_batch_rows_equal_scalar_rows():
    """The batched queue.approx path (sweep hook) returns the scalar target's rows, and the
    scalar target's exception for every point it refuses."""
    from distalloc.sweep import TARGETS
    target = TARGETS["queue.approx"]
    points = []
    for lam in (0.5, 1.5, 1.99, 2.5, 3.4, 3.6, 9.0):
        for probs in ([0.5, 0.5], [1.0, 0.0], [0.1, 0.9], None):
            points.append(dict(servers=4, needed=2, rate=lam, speeds=[1.0, 3.0],
                               powers=[1.0, 6.0], probs=probs, idle_power=0.1))
    points.append(dict(servers=3, needed=1, rate=1.0, speeds=[1.0, 2.0]))
    points.append(dict(servers=4, needed=9, rate=1.0))                     # invalid
    rows = target.batch(points)
    for params, row in zip(points, rows):
        try:
            want = target(seed=0, **params)
        except Exception as exc:  # noqa: BLE001
            assert isinstance(row, type(exc)) and str(row) == str(exc)
            continue
        assert sorted(row) == sorted(want)
        for key, v in want.items():
            if isinstance(v, float):
                assert row[key] == pytest.approx(v, rel=1e-12), key
            else:
                assert row[key] == v, key


def test_sweep_uses_the_batch_path(tmp_path):
    """A queue.approx sweep through the batch hook writes the same table as per-task
    evaluation (the hook removed)."""
    from distalloc.sweep import TARGETS, load_sweep, run_chunk
    config = load_sweep({"sweep": {"target": "queue.approx", "seeds": 2},
                         "fixed": {"servers": 6, "needed": 3, "speeds": [1.0, 2.0]},
                         "grid": {"rate": [0.5, 1.0, 2.0, 3.0],
                                  "probs": [[0.5, 0.5], [0.2, 0.8]]}})
    tasks = [t for t in config.tasks() if t[0]["rate"] < 3.0]
    batched = run_chunk(config.target, config.fixed, tasks)
    target = TARGETS["queue.approx"]
    hook = target.batch
    try:
        del target.batch
        plain = run_chunk(config.target, config.fixed, tasks)
    finally:
        target.batch = hook
    assert len(batched) == len(plain)
    for a, b in zip(batched, plain):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-12)
            else:
                assert a[key] == b[key]


def test_processes_fork_after_a_parallel_kernel(tmp_path):
    """Sweeps fork worker processes; with Numba's default OpenMP layer a child forked after
    a parallel kernel ran is killed ("fork() called from a process already using GNU
    OpenMP").  distalloc selects the fork-safe layer; the serial twins equal the parallel
    kernels."""
    import csv

    from distalloc.sweep import load_sweep, run_sweep
    rates = np.linspace(0.2, 3.0, 15)
    par = approximate_grid(6, 3, [1.0, 2.0], None, rates, [0.3, 0.7])
    ser = approximate_grid(6, 3, [1.0, 2.0], None, rates, [0.3, 0.7], parallel=False)
    for key in KEYS:
        np.testing.assert_array_equal(par[key], ser[key])
    config = load_sweep({"sweep": {"target": "queue.approx"},
                         "fixed": {"servers": 6, "needed": 3, "speeds": [1.0, 2.0],
                                   "probs": [0.3, 0.7]},
                         "grid": {"rate": [0.5, 1.0, 1.5]}})
    out = tmp_path / "fork.csv"
    summary = run_sweep(config, out, n_jobs=2, chunk_size=1, progress=False)
    assert summary["written"] == 3
    rows = list(csv.DictReader(out.open()))
    got = {float(r["rate"]): float(r["mean_jobs"]) for r in rows}
    want = approximate_grid(6, 3, [1.0, 2.0], None, np.array([0.5, 1.0, 1.5]), [0.3, 0.7])
    assert [got[lam] for lam in (0.5, 1.0, 1.5)] == pytest.approx(list(want["mean_jobs"]),
                                                                  rel=1e-12)


def test_equal_near_capacity():
    """Close to the capacity E[T] amplifies the last bits of its inputs by 1 / (1 - rho); the
    grid still equals the scalar function to 1e-12 because both do the same operations in
    the same order (the k = 1 race moments, the normalised probabilities)."""
    from distalloc.queueing.approx import saturation_capacity
    from distalloc.queueing.mixes import race_k1
    rng = np.random.default_rng(7)
    for _ in range(4 if PURE_PYTHON else 25):
        n = int(rng.integers(2, 12))
        k = int(rng.integers(1, n + 1))
        s = int(rng.integers(1, 4))
        speeds = list(rng.choice([0.5, 1.0, 2.0, 3.0], s))
        powers = list(rng.uniform(0, 5, s))
        p = rng.dirichlet(np.ones(s))
        system = ForkJoin(n, k, 1.0, speeds, powers, p, 0.1)
        mu, pg, _ = system.distinct
        cap = (1 / race_k1(n, mu, pg)[0] if k == 1
               else saturation_capacity(n, k, mu, pg)[0])
        rates = cap * (1 - 10.0 ** -rng.uniform(1, 6, 6))
        g = approximate_grid(n, k, speeds, powers, rates, p, 0.1)
        assert_same(g, scalar_grid(n, k, speeds, powers, rates, [p] * rates.size, 0.1))
