"""The k decision as one object (SPEC 2.5) and users' compiled k policies (SPEC 5.2):
KController replays a simulated run's observations to the same k sequence; every built-in
policy the callback signature can express, written as a Numba cfunc, gives the simulator's
record exactly."""
import math

import numba
import numpy as np
import pytest

from distalloc import ValidationError
from distalloc._compiled import sgd_kernels as K
from distalloc.sgd import KController, Schedule, compiled_policy, run, synthetic_regression
from distalloc.sgd.problems import _least_squares, _logistic
from distalloc.sgd.run import build_controller

SIG = "int64(int64, float64, int64, int64, float64, int64)"


def _problem(loss, n=10, s=6, d=12, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n * s, d))
    if loss == "least_squares":
        return _least_squares("t", X, X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n * s))
    return _logistic("t", X, (rng.random(n * s) < 0.5).astype(float), 0.01)


def _simulate_with_trace(prob, n, ctl, times, lr):
    """The fused kernel, one record per iteration, with each iteration's observation."""
    X, y, d = prob.X, prob.y, prob.dim
    ls = prob.loss == "least_squares"
    offset = (-(X.T @ (y - X @ prob.w_star)) / X.shape[0] if ls else np.zeros(d))
    rows = len(times)
    rec = [np.zeros(rows + 2), np.zeros(rows + 2)] + [np.zeros(rows + 2, dtype=np.int64)
                                                      for _ in range(3)]
    istate = np.zeros(K.INT_STATE_SIZE, dtype=np.int64)
    istate[K.STATE["pending"]] = 1
    trace = np.full((rows, 3), np.nan)
    K.run_fastest_k(X, y, n, 0 if ls else 1, prob.reg, times, lr, np.zeros(d), 1e12, ctl._core,
                    prob.w_star, prob.H, prob.f_star, offset, 1, 1, *rec, istate, np.zeros(d),
                    trace)
    return rec[2][: istate[K.STATE["records"]]], trace


def _controllers(policy, prob, n, lr, mu):
    kw = dict(k_max=8)
    if policy == "bound":     # a schedule whose switches fall inside the 400 iterations
        kw["schedule"] = Schedule(np.array([1, 3, 5, 8]), np.array([20.0, 60.0, 150.0]),
                                  np.zeros(3), mu)
    if policy.startswith("dbw"):
        kw.update(order_stat_means=mu, lr=lr, smoothness=prob.constants(np.zeros(prob.dim))["smoothness"])
    return KController(policy, n, **kw), KController(policy, n, **kw)


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
@pytest.mark.parametrize("policy", ["fixed:3", "bound", "pflug:2:2:3:10", "dbw:2", "callback"])
def test_kcontroller_replays_the_simulated_k_sequence(loss, policy):
    """The simulator's kernel and KController.observe run the same compiled rule: fed the
    simulated run's response times and gradient products, KController returns the k the
    simulator used, iteration for iteration."""
    n, lr = 10, 0.2
    prob = _problem(loss, n)
    mu = np.cumsum(1.0 / np.arange(n, 0, -1))
    if policy == "callback":
        @numba.cfunc(SIG)
        def grow(it, t, last_k, workers, dot, counter):
            if last_k == 0:
                return 1
            return last_k + 1 if dot < 0 and counter > 2 else last_k
        pol = compiled_policy(grow)
        sim, replay = KController(pol, n, k_max=8), KController(pol, n, k_max=8)
    else:
        sim, replay = _controllers(policy, prob, n, lr, mu)
    times = np.random.default_rng(6).exponential(1.0, size=(400, n))
    ks_sim, trace = _simulate_with_trace(prob, n, sim, times, lr)
    assert replay.k == ks_sim[0]
    ks = [replay.observe(times[j], trace[j, 0], worker_variance=trace[j, 1],
                         gradient_sq_norm=trace[j, 2]) for j in range(len(times))]
    assert ks == ks_sim[1:].tolist()
    assert replay.time == sim.time and replay.counter == sim.counter
    if policy != "fixed:3":
        assert len(set(ks)) > 1                      # k does move


def _same_record(a, b):
    for field in ("time", "error", "k", "uplink_at"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.iterations == b.iterations and a.uplink_gradients == b.uplink_gradients


PROB = synthetic_regression(num_samples=400, dim=10)


def test_fixed_as_callback_is_identical():
    @numba.cfunc(SIG)
    def fixed_4(it, t, last_k, workers, dot, counter):
        return 4
    for seed in (0, 1):
        _same_record(run(PROB, 20, "fixed:4", horizon=300, seed=seed, record_every=1),
                     run(PROB, 20, compiled_policy(fixed_4), horizon=300, seed=seed,
                         record_every=1))


def test_bound_schedule_as_callback_is_identical():
    """The bound schedule is a function of the clock: k_values[#switch_times <= t]."""
    ctl, _, schedule, _ = build_controller(PROB.restrict(400), 20, "bound", 0.0005,
                                           __import__("distalloc").sgd.Exponential(1.0), None)
    switch, kvals = schedule.switch_times.copy(), schedule.k_values.astype(np.int64)
    assert switch.size > 3

    @numba.cfunc(SIG)
    def bound(it, t, last_k, workers, dot, counter):
        return kvals[np.searchsorted(switch, t, side="right")]
    for seed in (0, 3):
        ref = run(PROB, 20, "bound", horizon=2000, seed=seed, record_every=1)
        _same_record(ref, run(PROB, 20, compiled_policy(bound), horizon=2000, seed=seed,
                              record_every=1))
        assert len(set(ref.k.tolist())) > 3


@pytest.mark.parametrize("k0,step,thresh,burnin", [(1, 2, 4, 3), (1, 2, 3, 0)])
def test_pflug_as_callback_is_identical_when_burnin_at_most_thresh(k0, step, thresh, burnin):
    """The callback sees the counter but not the iterations since the last switch.  The
    counter restarts at 0 at a switch and moves by 1 per iteration, so counter > thresh
    implies more than thresh iterations: Pflug with burnin <= thresh is expressible
    exactly; the paper's burnin 200 > thresh 10 is not (nor DBW, whose gradient-norm and
    variance estimates are not in the signature)."""
    @numba.cfunc(SIG)
    def pflug(it, t, last_k, workers, dot, counter):
        if last_k == 0:
            return k0
        if counter > thresh and last_k + step <= 14:
            return last_k + step
        return last_k
    for seed in (0, 2):
        ref = run(PROB, 20, f"pflug:{k0}:{step}:{thresh}:{burnin}", horizon=800, seed=seed,
                  k_max=14, record_every=1)
        _same_record(ref, run(PROB, 20, compiled_policy(pflug), horizon=800, seed=seed,
                              k_max=14, record_every=1))
        assert ref.k[-1] > k0


def test_callback_k_is_clipped_and_counted():
    @numba.cfunc(SIG)
    def wild(it, t, last_k, workers, dot, counter):
        return -3 if it % 3 == 0 else workers + 7
    r = run(PROB, 20, compiled_policy(wild), horizon=50, seed=0, k_max=12, record_every=1)
    assert set(r.k.tolist()) == {1, 12}
    assert r.extra["k_clipped"] == r.iterations + 1          # every call, the first included
    ctl = KController(compiled_policy(wild), 20)
    assert ctl.k == 1 and ctl.clipped == 1
    assert ctl.observe(np.ones(20)) == 20 and ctl.clipped == 2


def test_compiled_policy_checks_its_signature():
    def plain(it, t, last_k, workers, dot, counter):
        return 1

    @numba.cfunc("float64(int64, float64, int64, int64, float64, int64)")
    def wrong_return(it, t, last_k, workers, dot, counter):
        return 1.0

    @numba.cfunc("int64(int64, float64, int64, int64, float64)")
    def five_args(it, t, last_k, workers, dot):
        return 1
    for f, got in ((plain, "plain Python function 'plain'"), (wrong_return, "float64"),
                   (five_args, "cfunc with signature"), (42, "int 42")):
        with pytest.raises(ValidationError) as exc:
            compiled_policy(f)
        msg = str(exc.value)
        assert "int64 f(int64 iteration, float64 time, int64 last_k, int64 workers, float64 " \
               "gradient_dot, int64 counter)" in msg and got in msg and "\n" not in msg


def test_kcontroller_validation_and_costs():
    with pytest.raises(ValidationError, match="schedule"):
        KController("bound", 10)
    with pytest.raises(ValidationError, match="order_stat_means"):
        KController("dbw", 10, lr=0.1, smoothness=1.0)
    with pytest.raises(ValidationError, match="async"):
        KController("async", 10)
    ctl = KController("pflug:2:1:0:0", 5)
    with pytest.raises(ValidationError, match="between k = 2 and n = 5"):
        ctl.observe([1.0])
    with pytest.raises(ValidationError, match="finite"):
        ctl.observe([1.0, math.nan])
    with pytest.raises(ValidationError, match="1-d"):
        ctl.observe([[1.0, 2.0]])
    # duration = k-th smallest; Pflug at thresh 0, burnin 0 steps on a negative product
    assert ctl.observe([3.0, 1.0, 2.0]) == 2 and ctl.time == 2.0
    assert ctl.observe([1.0, 1.0], -1.0) == 3 and ctl.counter == 0 and ctl.iterations == 2
