"""The bound-optimal k schedule of SPEC 2.2.

With fixed k, after wall-clock time t the error bound is
e_k(t) = a_k + (1 - eta c)^{t / mu_k} (e_0 - a_k),  a_k = eta L sigma^2 / (2 c k s).
Small k decays fast (mu_k small), large k has a lower floor a_k.  Starting from k = 1, the
schedule moves to k' = k + step as soon as the bound of k' decreases faster at the current
error value e:  d e / dt = ln(1 - eta c) (e - a_k) / mu_k, so k' is faster iff
(e - a_k) / mu_k < (e - a_k') / mu_k', i.e. once e falls to

    e*_k = (a_k mu_k' - a_k' mu_k) / (mu_k' - mu_k).

Reaching e* from the value e_prev at the previous switch takes
mu_k ln((e* - a_k) / (e_prev - a_k)) / ln(1 - eta c), which for step 1 is SPEC 2.2's
t_k - t_{k-1} = mu_k / (-ln(1 - eta c)) [ln(mu_{k+1} - mu_k) - ln(eta L sigma^2 mu_k)
+ ln(2 c k (k+1) s e_{k-1} - eta L (k+1) sigma^2)]: substitute a_k and simplify
(e_prev - a_k) / (e* - a_k) = (e_prev - a_k)(mu_k' - mu_k) / ((a_k - a_k') mu_k) and
a_k - a_k' = eta L sigma^2 / (2 c s k (k+1)).  If e_prev <= e* already the switch is
immediate (a log argument <= 0 in SPEC's form).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, check_number, range_error
from distalloc.sgd.models import Exponential, ResponseModel, check_workers

__all__ = ["Schedule", "bound_schedule"]


@dataclass(eq=False)
class Schedule:
    """k_values[j] is used from switch_times[j-1] (0 for j = 0) on; ``switch_errors`` is the
    bound's value at each switch."""

    k_values: np.ndarray
    switch_times: np.ndarray
    switch_errors: np.ndarray
    order_stat_means: np.ndarray

    def k_at(self, t: float) -> int:
        return int(self.k_values[np.searchsorted(self.switch_times, t, side="right")])

    def to_dict(self) -> dict[str, Any]:
        return {"k_values": self.k_values.tolist(), "switch_times": self.switch_times.tolist(),
                "switch_errors": self.switch_errors.tolist(),
                "order_stat_means": self.order_stat_means.tolist()}


def bound_schedule(workers: int, lr: float, smoothness: float, strong_convexity: float,
                   noise_var: float, batch: int, initial_gap: float,
                   model: ResponseModel | None = None, rate: float = 1.0, step: int = 1,
                   k_start: int = 1, mu: np.ndarray | None = None) -> Schedule:
    """Switching times t_1 .. of the bound-optimal schedule k = k_start, k_start + step, ...

    Parameters
    ----------
    workers : int
        n.
    lr, smoothness, strong_convexity, noise_var, batch, initial_gap : float
        eta, L, c, sigma^2, s (rows per worker), F(w0) - F*.  Needs c <= L (true of
        every loss) and eta c < 1.
    model : ResponseModel, optional
        response times (default Exponential(rate)); mu_k from its order statistics.
    mu : (n,) array, optional
        mu_1 .. mu_n already computed from ``model``.

    Returns
    -------
    Schedule
        The schedule stops at the last k it ever leaves: a switch whose time is infinite
        never happens (no noise floor, sigma^2 = 0: the bound of k never gets slower than
        that of a larger k; or an infinite mean E[X_(k')] of the next k'), so
        ``switch_times`` may have fewer than (n - k_start) / step entries, and k stays at
        ``k_values[-1]``.

    Raises
    ------
    ValidationError
        bad input, c > L (impossible), eta c >= 1, an infinite E[X_(k_start)], or a switch time beyond float64
        (an lr so small that the bound's contraction 1 - eta c rounds away).

    Examples
    --------
    >>> s = bound_schedule(5, 0.001, 2, 1, 10, 10, 100)
    >>> [round(t, 1) for t in s.switch_times]
    [2484.6, 3108.1, 3968.3, 5512.6]
    """
    n = check_workers(workers)
    eta = check_number(lr, "lr", low=0, low_open=True)
    L = check_number(smoothness, "smoothness", low=0, low_open=True)
    c = check_number(strong_convexity, "strong_convexity", low=0, low_open=True)
    if c > L:    # c |x|^2 <= x' H x <= L |x|^2: no loss is more convex than it is smooth
        raise range_error("strong_convexity", None, "a float", f"(0, smoothness = {L:g}]", c,
                          " (c <= L holds for every loss)")
    sigma2 = check_number(noise_var, "noise_var", low=0)
    s = check_number(batch, "batch", low=1, integer=True)
    e = check_number(initial_gap, "initial_gap", low=0)
    step = check_number(step, "step", low=1, integer=True)
    k = check_number(k_start, "k_start", low=1, high=n, integer=True)
    if eta * c >= 1:
        raise ValidationError(f"The bound needs lr x strong_convexity < 1. Got {eta * c:g} instead.")
    log_contraction = math.log1p(-eta * c)           # < 0 unless eta c underflows
    if not log_contraction < 0:
        raise ValidationError(f"lr x strong_convexity = {eta:g} x {c:g} underflows to 0: the "
                              "bound would never contract.")
    if model is None:
        model = Exponential(check_number(rate, "rate", low=0, low_open=True))
    elif not isinstance(model, ResponseModel):
        raise ValidationError(f"The 'model' parameter must be a ResponseModel. Got "
                              f"{type(model).__name__} instead.")
    if mu is None:
        mu = model.order_stat_means(n)
    else:
        try:
            mu = np.asarray(mu, dtype=float)
        except (TypeError, ValueError):
            raise ValidationError("'mu' must be an array of n numbers.") from None
        if mu.shape != (n,) or np.any(np.isnan(mu)) or np.any(mu <= 0):
            raise ValidationError(f"'mu' must hold E[X_(k)] for k = 1..{n}: {n} positive "
                                  f"numbers. Got shape {mu.shape} instead.")
    if not math.isfinite(mu[k - 1]):
        raise ValidationError(f"The schedule starts at k = {k}, whose mean response time is "
                              f"infinite: {model.infinite_mean_reason(k, n)}.")

    def a(kk):
        return eta * L * sigma2 / (2 * c * kk * s)
    ks, times, errors = [k], [], []
    t = 0.0
    with np.errstate(all="ignore"):    # every value is checked below
        while k + step <= n:
            k2 = k + step
            mu_k, mu_k2 = mu[k - 1], mu[k2 - 1]
            # k2 is faster once e - a_k falls to (a_k - a_k2) mu_k / (mu_k2 - mu_k) > 0
            excess = (a(k) - a(k2)) * mu_k / (mu_k2 - mu_k)
            if not (math.isfinite(mu_k2) and excess > 0 and math.isfinite(excess)):
                break                                # the switch never happens
            if e - a(k) > excess:
                dt = mu_k * (math.log(excess) - math.log(e - a(k))) / log_contraction
                t += dt
                if not math.isfinite(t):
                    raise ValidationError(
                        f"The switch from k = {k} to {k2} would come after {t:g} time units, "
                        f"beyond float64 (lr x strong_convexity = {eta * c:.3g} contracts the "
                        "bound too slowly); use a larger lr.")
                e = a(k) + excess
            times.append(t)
            errors.append(e)
            k = k2
            ks.append(k)
    return Schedule(np.array(ks), np.array(times), np.array(errors), mu)
