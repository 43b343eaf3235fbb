"""Fastest-k SGD: order statistics, aggregation and fused kernels against numpy references,
the bound-optimal schedule against SPEC 2.2, and the paper's finding."""
import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from distalloc import ValidationError
from distalloc.cli import main
from distalloc.sgd import (Empirical, Exponential, Heterogeneous, LogNormal, Pareto,
                           ShiftedExponential, bound_schedule, fastest_k_average, run,
                           synthetic_regression)
from distalloc.sgd.models import ResponseModel


def test_schedule_spec_example():
    """SPEC 2.2 example.  Derivation of the first switch: mu_1 = 1/5, mu_2 = 1/5 + 1/4,
    a_1 = eta L sigma^2 / (2 c s) = 1e-3, e_0 = 100; t_1 = mu_1 / -ln(0.999) x
    [ln(mu_2 - mu_1) - ln(eta L sigma^2 mu_1) + ln(2 c 1 2 s e_0 - eta L 2 sigma^2)]
    = 0.2 / 0.0010005 x [ln 0.25 - ln 0.004 + ln 3999.96] = 2484.6."""
    s = bound_schedule(5, 0.001, 2, 1, 10, 10, 100)
    mu1, mu2 = 0.2, 0.45
    t1 = mu1 / -math.log(0.999) * (math.log(mu2 - mu1) - math.log(0.001 * 2 * 10 * mu1)
                                   + math.log(2 * 1 * 1 * 2 * 10 * 100 - 0.001 * 2 * 2 * 10))
    assert s.switch_times[0] == pytest.approx(t1, rel=1e-12)
    assert np.allclose(s.switch_times, [2484.6, 3108.1, 3968.3, 5512.6], atol=0.05)
    assert s.k_values.tolist() == [1, 2, 3, 4, 5]
    # at each switch the bound equals the crossing value (a_k mu_k+1 - a_k+1 mu_k)/(mu_k+1 - mu_k)
    a = lambda k: 0.001 * 2 * 10 / (2 * 1 * k * 10)  # noqa: E731
    mu = s.order_stat_means
    for k in range(1, 5):
        cross = (a(k) * mu[k] - a(k + 1) * mu[k - 1]) / (mu[k] - mu[k - 1])
        assert s.switch_errors[k - 1] == pytest.approx(cross, rel=1e-9)


def test_schedule_immediate_switch_and_validation():
    s = bound_schedule(5, 0.001, 2, 1, 10, 10, 1e-9)  # already below every crossing
    assert np.all(s.switch_times == 0)
    with pytest.raises(ValidationError, match="lr x strong_convexity < 1"):
        bound_schedule(5, 2.0, 2, 1, 10, 10, 100)
    with pytest.raises(ValidationError, match="'batch'"):
        bound_schedule(5, 0.001, 2, 1, 10, 0, 100)


MODELS = [Exponential(2.0), ShiftedExponential(0.5, 1.0), Pareto(1.0, 3.0), LogNormal(0.0, 0.5),
          Heterogeneous([0.5, 1.0, 2.0, 4.0, 1.0, 3.0]),
          Empirical(np.random.default_rng(0).gamma(2.0, 1.0, size=300))]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_order_stat_means_against_monte_carlo(model):
    n = 6
    x = np.sort(model.sample(200_000, n, seed=1), axis=1)
    mc, se = x.mean(axis=0), x.std(axis=0) / math.sqrt(x.shape[0])
    mu = model.order_stat_means(n)
    assert np.all(np.abs(mu - mc) <= 5 * se + 1e-9)
    assert np.all(np.diff(mu) > 0)


def test_exponential_closed_form_equals_quadrature():
    m = Exponential(1.5)
    for k in (1, 3, 6):
        generic = ResponseModel.order_stat_mean(m, k, 6)
        assert m.order_stat_mean(k, 6) == pytest.approx(generic, rel=1e-8)
        assert m.order_stat_mean(k, 6) == pytest.approx(sum(1 / j for j in range(7 - k, 7)) / 1.5)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_fastest_k_average_matches_argsort(seed):
    rng = np.random.default_rng(seed)
    B, n, d = int(rng.integers(1, 20)), int(rng.integers(1, 12)), int(rng.integers(1, 6))
    times = rng.integers(0, 4, size=(B, n)).astype(float)   # many ties
    grads = rng.standard_normal((B, n, d))
    k = rng.integers(1, n + 1, size=B)
    out, chosen = fastest_k_average(times, grads, k)
    ref, order = naive.fastest_k_reference(times, grads, k)
    assert np.allclose(out, ref)
    for b in range(B):
        assert chosen[b, : k[b]].tolist() == order[b, : k[b]].tolist()


def _controller(n, *, switch_times=np.zeros(0), k_values=np.array([1]), adapt="schedule",
                k0=1, k_max=None, mu=None, lr=0.0, smoothness=0.0, callback=None):
    from distalloc._compiled import sgd_kernels as K
    mu = np.arange(1.0, n + 1) if mu is None else mu
    return K.KCore(K.K_KIND[adapt], n, k0, k_max or n, 3, 5, 20, switch_times, k_values, mu,
                   lr, smoothness, 0.9, callback.address if callback else 0, callback)


def _kernel_run(prob, n, times, lr, horizon, *, switch_times=np.zeros(0),
                k_values=np.array([1]), adapt="schedule", k0=1, k_max=None, mu=None,
                complement=1, chunks=1, callback=None, trace=False):
    """run_fastest_k over ``times`` cut into ``chunks`` successive calls, as run() does.
    Returns (w, records, istate, controller[, trace])."""
    from distalloc._compiled import sgd_kernels as K
    X, y, d = prob.X, prob.y, prob.dim
    least_squares = prob.loss == "least_squares"
    offset = (-(X.T @ (y - X @ prob.w_star)) / X.shape[0] if least_squares else np.zeros(d))
    smoothness = prob.constants(np.zeros(d))["smoothness"]
    ctl = _controller(n, switch_times=switch_times, k_values=k_values, adapt=adapt, k0=k0,
                      k_max=k_max, mu=mu, lr=lr, smoothness=smoothness, callback=callback)
    w = np.zeros(d)
    rec = [np.zeros(len(times) + 2), np.zeros(len(times) + 2)] + \
        [np.zeros(len(times) + 2, dtype=np.int64) for _ in range(3)]
    istate = np.zeros(K.INT_STATE_SIZE, dtype=np.int64)
    istate[K.STATE["pending"]] = 1
    g_prev = np.zeros(d)
    tr = np.full((len(times), 3), np.nan) if trace else np.zeros((0, 3))
    row = 0
    for part in np.array_split(times, chunks):
        K.run_fastest_k(X, y, n, 0 if least_squares else 1, prob.reg, np.ascontiguousarray(part),
                        lr, w, horizon, ctl, prob.w_star, prob.H, prob.f_star, offset, complement,
                        1, *rec, istate, g_prev, tr[row:row + len(part)] if trace else tr)
        row += len(part)
    return (w, rec, istate, ctl) + ((tr,) if trace else ())


def _small_problem(loss, n, s, d, seed=3):
    from distalloc.sgd.problems import _least_squares, _logistic
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n * s, d))
    if loss == "least_squares":
        return _least_squares("t", X, X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n * s))
    return _logistic("t", X, (rng.random(n * s) < 0.5).astype(float), 0.01)


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
@pytest.mark.parametrize("schedule", ["fixed", "switch"])
@pytest.mark.parametrize("shape", [(8, 5, 4), (6, 7, 37), (5, 9, 100)])   # (n, s, d)
@pytest.mark.parametrize("complement", [0, 1])
def test_fused_kernel_matches_numpy_loop(loss, schedule, shape, complement):
    """Iterates, times, counters and the error at every record equal a numpy loop; shapes
    cover the vector-width and 32-column remainders of fastk_gradient.h, and k both below
    and above n / 2 (where least squares takes the complement of the slowest workers).
    Cutting the response times into chunks (a resumed run) changes nothing at all."""
    n, s, d = shape
    prob = _small_problem(loss, n, s, d)
    rng = np.random.default_rng(4)
    times = np.round(rng.exponential(1.0, size=(400, n)), 1)   # ties on purpose
    switch_times, k_values = ((np.zeros(0), np.array([n // 2 + 1])) if schedule == "fixed"
                              else (np.array([20.0, 60.0]), np.array([2, n // 2 + 1, n])))
    k_of_time = lambda t: int(k_values[np.searchsorted(switch_times, t, side="right")])  # noqa
    lr = 0.005 if (loss == "least_squares" and d > 50) else 0.05
    w_ref, t_ref, it_ref, ks, err_ref = naive.sgd_reference(
        prob.X, prob.y, n, times, lr, 150.0, k_of_time, loss, prob.reg,
        error=lambda w: prob.value(w) - prob.f_star)
    from distalloc._compiled import sgd_kernels as K
    w, rec, istate, ctl = _kernel_run(prob, n, times, lr, 150.0, switch_times=switch_times,
                                      k_values=k_values, complement=complement)
    it, nrec, uplink = (istate[K.STATE[key]] for key in ("iterations", "records", "uplink"))
    assert it == it_ref and uplink == sum(ks) and nrec == it + 1
    assert rec[3][nrec - 1] == it and rec[4][nrec - 1] == uplink   # counters at each record
    assert np.array_equal(rec[4][1:nrec], np.cumsum(ks)[rec[3][1:nrec] - 1])
    assert ctl.time == pytest.approx(t_ref)
    assert np.allclose(w, w_ref, rtol=1e-10, atol=1e-12)
    assert np.allclose(rec[1][:nrec], err_ref, rtol=1e-8, atol=1e-12)
    assert err_ref[-1] < 0.5 * err_ref[0]          # the runs do converge
    w3, rec3, istate3, ctl3 = _kernel_run(prob, n, times, lr, 150.0, switch_times=switch_times,
                                             k_values=k_values, complement=complement, chunks=7)
    assert np.array_equal(w3, w) and np.array_equal(istate3, istate)
    assert all(np.array_equal(a[:nrec], b[:nrec]) for a, b in zip(rec3, rec))


@pytest.mark.parametrize("loss", ["least_squares", "logistic"])
@pytest.mark.parametrize("adapt", ["pflug", "dbw"])
def test_adaptive_k_in_kernel_matches_numpy_and_resumes(loss, adapt):
    """Pflug's counter and DBW's estimates live in the resumable state: 1 call and 5
    chunked calls agree exactly; DBW's k sequence equals the numpy reference's."""
    from distalloc._compiled import sgd_kernels as K
    n, s, d = 10, 6, 12
    prob = _small_problem(loss, n, s, d, seed=5)
    rng = np.random.default_rng(6)
    times = rng.exponential(1.0, size=(600, n))
    mu = np.cumsum(1.0 / np.arange(n, 0, -1))          # Exp(1) order-statistic means
    runs = [_kernel_run(prob, n, times, 0.2, 1e9, adapt=adapt, k0=2, k_max=9, mu=mu, chunks=c)
            for c in (1, 5)]
    (w, rec, istate, _), (w5, rec5, istate5, _) = runs
    assert np.array_equal(w, w5) and np.array_equal(istate, istate5)
    assert np.array_equal(rec[2], rec5[2])
    ks = rec[2][: istate[K.STATE["records"]]]
    assert ks.min() >= 1 and ks.max() <= 9
    if adapt == "dbw":
        smooth = prob.constants(np.zeros(d))["smoothness"]
        w_ref, _, it_ref, ks_ref, _ = naive.sgd_reference(
            prob.X, prob.y, n, times, 0.2, 1e9, None, loss, prob.reg,
            dbw=dict(k0=2, k_max=9, mu=mu, smoothness=smooth, decay=0.9))
        assert it_ref == istate[K.STATE["iterations"]] == 600
        assert ks[:-1].tolist() == ks_ref          # rec_k[j] = k used in iteration j + 1
        assert np.allclose(w, w_ref, rtol=1e-9, atol=1e-12)
        assert len(set(ks_ref)) > 2                # k does move
    else:
        assert np.all(np.diff(ks) >= 0) and ks[-1] > 2


def test_long_runs_draw_response_times_in_chunks(monkeypatch):
    """A run longer than one chunk of response times continues where it stopped: with a
    tiny chunk cap the result is the same, record for record, as with one big draw."""
    mod = sys.modules["distalloc.sgd.run"]     # the module (the package exports run())
    prob = synthetic_regression(num_samples=400, dim=10)
    for policy in ("fixed:5", "pflug:2:3:5:50", "dbw"):
        whole = run(prob, 20, policy, horizon=400, seed=2, record_every=3)
        monkeypatch.setattr(mod, "MAX_CHUNK_VALUES", 20 * 50)     # chunks of 1 000 rows
        parts = run(prob, 20, policy, horizon=400, seed=2, record_every=3)
        monkeypatch.undo()
        assert parts.iterations == whole.iterations > 1000
        for a in ("time", "error", "k", "uplink_at"):
            assert np.array_equal(getattr(parts, a), getattr(whole, a)), (policy, a)


def test_dbw_raises_k_as_the_error_falls():
    """DBW waits for few workers while the gradient dominates its noise and for more near
    the noise floor; k never exceeds k_max; bad k0 / k_max are one-line errors."""
    r = run("synthetic", 50, "dbw", horizon=3000, seed=0, k_max=40)
    early = r.k[(r.time > 5) & (r.time < 100)].mean()
    late = r.k[r.time > 2500].mean()
    assert early < late and r.k.max() <= 40 and late > 35
    assert r.error[-1] < 1e-6 * r.error[0]
    with pytest.raises(ValidationError, match="dbw k0"):
        run("synthetic", 50, "dbw:1", horizon=10)
    with pytest.raises(ValidationError, match="k_max"):
        run("synthetic", 50, "dbw", horizon=10, k_max=51)


def test_pflug_moves_k_up_and_respects_caps():
    prob = synthetic_regression(num_samples=400, dim=10)
    r = run(prob, 20, "pflug:2:3:5:50", horizon=800, k_max=14)
    assert r.k[0] == 2 and r.k.max() <= 14 and np.all(np.diff(r.k) >= 0)
    assert set(np.unique(r.k)) <= {2, 5, 8, 11, 14}
    assert r.uplink_gradients >= 2 * r.iterations and r.downlink_models == 20 * r.iterations
    # messages to a target come from the counters recorded with the error, not a pro rata
    target = r.error[len(r.error) // 2]
    up, down = r.messages_to_error(target)
    i = int(np.flatnonzero(r.error <= target)[0])
    assert up == r.uplink_at[i] and down == 20 * (r.downlink_at[i] // 20)
    assert up <= r.uplink_gradients and r.uplink_at[-1] == r.uplink_gradients


def test_policies_and_async():
    prob = synthetic_regression(num_samples=400, dim=10)
    for policy in ("fixed:4", "sync", "bound", "async"):
        r = run(prob, 20, policy, horizon=300, seed=2)
        assert r.time[-1] <= 300 + 50 and np.all(np.isfinite(r.error))
        assert r.error[-1] < r.error[0]
    with pytest.raises(ValidationError, match="'policy k' parameter"):
        run(prob, 20, "fixed:0")
    with pytest.raises(ValidationError, match="'policy'"):
        run(prob, 20, "greedy")
    with pytest.raises(ValidationError, match="'record_every' parameter .* Got 0"):
        run(prob, 20, "fixed:4", record_every=0)


def test_paper_finding_adaptive_beats_fixed_40():
    """SPEC 2.4: synthetic regression, n = 50, Exp(1), eta = 0.0005.  Averaged over 5 seeds,
    the bound schedule and the Pflug heuristic (paper setting: k from 10 to 40 in steps of
    10, thresh 10, burnin 200) reach fixed k = 40's lowest error at least 2x sooner."""
    prob = synthetic_regression()
    speedups = {"bound": [], "pflug": []}
    for seed in range(5):
        f40 = run(prob, 50, "fixed:40", seed=seed)
        target = f40.error.min()
        t40 = f40.time_to_error(target)
        speedups["bound"].append(t40 / run(prob, 50, "bound", seed=seed).time_to_error(target))
        speedups["pflug"].append(t40 / run(prob, 50, "pflug:10:10:10:200", seed=seed,
                                           k_max=40).time_to_error(target))
    assert np.mean(speedups["bound"]) >= 2.0
    assert np.mean(speedups["pflug"]) >= 2.0


def test_cli_sgd_contract(capsys):
    assert main(["sgd", "schedule", "--workers", "5", "--lr", "0.001", "--smoothness", "2",
                 "--strong-convexity", "1", "--noise-var", "10", "--batch", "10",
                 "--initial-gap", "100", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"switch_times", "switch_errors"} <= set(d) and len(d["switch_times"]) == 4
    assert main(["sgd", "run", "--problem", "synthetic", "--workers", "50", "--policy",
                 "fixed:10", "--horizon", "200", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"time", "error", "k", "uplink_gradients", "downlink_models"} <= set(d)
    assert len(d["time"]) == len(d["error"]) == len(d["k"])
    assert d["uplink_gradients"] == 10 * d["iterations"]


def test_real_data_problems():
    pytest.importorskip("sklearn", reason="scikit-learn ships the diabetes and digits data")
    for problem, policy in (("diabetes", "bound"), ("digits", "pflug:1:2:10:200")):
        r = run(problem, 10, policy, horizon=300)
        assert np.all(r.error >= -1e-9) and r.error[-1] < 0.1 * r.error[0]
