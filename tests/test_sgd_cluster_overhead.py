"""The master-overhead model of real runs (SPEC 2.5): ``WithOverhead(model, m)`` prices an
iteration at X_(k) + m, in mu_k (bound schedule, DBW) and in the simulator's clock.  No
cluster needed."""
import numpy as np
import pytest

from distalloc import ValidationError
from distalloc.sgd import (Exponential, LogNormal, ShiftedExponential, WithOverhead,
                           bound_schedule, from_arrays, run)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((120, 5))
    return from_arrays(X, X @ rng.standard_normal(5) + rng.standard_normal(120))


@pytest.mark.parametrize("base", [Exponential(3.0), LogNormal(-1.0, 0.5)])
def test_with_overhead_shifts_samples_cdf_and_order_statistics(base):
    m = 0.0123
    model = WithOverhead(base, m)
    assert np.array_equal(model.sample(50, 6, 7), base.sample(50, 6, 7) + m)
    x = np.array([0.0, m, m + 0.1, m + 1.0])
    assert np.allclose(model.cdf(x, 6), base.cdf(x - m, 6))
    assert np.allclose(model.order_stat_means(6), base.order_stat_means(6) + m, rtol=1e-13)
    assert model.order_stat_mean(4, 6) == pytest.approx(base.order_stat_mean(4, 6) + m,
                                                        rel=1e-13)
    assert model.spec == f"{base.spec}+{m!r}"
    assert model.to_dict()["overhead"] == m


def test_with_overhead_of_exponential_is_the_shifted_exponential():
    """Exp(rate) + m is ShiftedExponential(m, rate): same mu_k (closed forms), same draws."""
    a, b = WithOverhead(Exponential(5.0), 0.2), ShiftedExponential(0.2, 5.0)
    assert np.allclose(a.order_stat_means(9), b.order_stat_means(9), rtol=1e-14)
    assert np.allclose(a.sample(20, 9, 3), b.sample(20, 9, 3), rtol=1e-14)


def test_with_overhead_validation():
    with pytest.raises(ValidationError, match="'model' parameter must be a ResponseModel"):
        WithOverhead("exp:1", 0.1)
    with pytest.raises(ValidationError, match="'overhead'"):
        WithOverhead(Exponential(1.0), -0.1)
    with pytest.raises(ValidationError, match="'overhead'"):
        WithOverhead(Exponential(1.0), float("nan"))


def test_simulator_clock_adds_the_overhead_per_iteration_exactly():
    """Same seed, fixed k: the same k fastest workers win every iteration (a constant shift
    keeps the order), so the error sequence is identical and the clock gains m per
    iteration."""
    prob, m = _problem(), 0.25
    base = run(prob, 6, "fixed:3", model=Exponential(1.0), lr=0.05, horizon=40.0, seed=11,
               record_every=1)
    slow = run(prob, 6, "fixed:3", model=WithOverhead(Exponential(1.0), m), lr=0.05,
               horizon=40.0, seed=11, record_every=1)
    j = min(base.error.size, slow.error.size)
    assert slow.iterations < base.iterations and j > 20
    assert np.array_equal(slow.error[:j], base.error[:j])
    iters = np.arange(j)
    assert np.allclose(slow.time[:j], base.time[:j] + m * iters, rtol=1e-12, atol=1e-12)


def test_bound_schedule_plans_with_the_iteration_cost():
    """mu_k + m makes small k relatively dearer: the bound schedule leaves k = 1 no later
    (here strictly earlier) than without the overhead."""
    kw = dict(lr=0.001, smoothness=2.0, strong_convexity=1.0, noise_var=10.0, batch=10,
              initial_gap=100.0)
    plain = bound_schedule(5, model=Exponential(1.0), **kw)
    dear = bound_schedule(5, model=WithOverhead(Exponential(1.0), 2.0), **kw)
    assert np.array_equal(plain.k_values, dear.k_values)
    assert dear.switch_errors[0] > plain.switch_errors[0]
