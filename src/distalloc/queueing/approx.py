"""Closed-form approximation of (n, k) fork-join systems with speed levels (SPEC 3.3).

Derivation
----------
Write the mean response time as a light-traffic term plus a Kingman-type waiting term,

    E[T] = T_0 + rho / (1 - rho) * beta(rho) / Lambda,        E[N] = lambda E[T],

with Lambda the saturation capacity in jobs per unit time and rho = lambda / Lambda.  For
one speed Lambda = n mu / k and rho is SPEC 3.3's load; with several speeds purging cuts
slow tasks, so Lambda exceeds n / (k sum_l p_l / mu_l) (see ``saturation_capacity``).
The pieces are derived, except three calibrated ones, each named below and checked on the
published grid: the relaxation constant theta, the purge-bias exponent of the capacity,
and the variability weighting of the light-traffic slope for 1 < k < n.

* T_0, the response time of a lone job, is exact: the first k finishers of a race of n
  cores, each with a speed drawn from p.  A dynamic program over the speed mix of the cores
  still racing gives it (and which levels win: q_l^0).  One speed: (H_n - H_{n-k}) / mu.
* beta(0) is the exact light-traffic slope: a job that arrives while one earlier job is at
  level i (which happens for a fraction 1 / ((n - i) mu) of time per earlier arrival)
  starts on the i cores that left it and on the others as they finish or are purged; a
  recursion over the two jobs' levels gives the extra delay D_1 = dE[T]/dlambda at 0, and
  beta(0) = D_1 Lambda^2.  It depends on (n, k) only.  For (2,2) it gives 11/8, the exact
  value of the two-server fork-join queue (Flatto-Hahn), whose E[T] is exactly of this form.
* beta(1), the heavy-traffic constant.  For k < n purging keeps the cores together: in
  saturation all n cores are busy, task completions form a Poisson process of rate n mu and
  departures are every k-th completion up to a bounded lag, so the departure process has
  index of dispersion 1/k and Kingman's constant is (c_a^2 + c_s^2) / 2 = (1 + 1/k) / 2.
  With several speeds the task time is hyperexponential (cut by purges), its squared
  coefficient of variation c_x^2 = 2 sum p/r^2 / (sum p/r)^2 - 1 (r = mu + purge rate)
  replaces 1: (1 + c_x^2 / k) / 2.
  For k = n nothing resynchronises the cores; we take Nelson and Tantawi's heavy-traffic
  constant NT_n = (7 H_n / H_2 + 4) / 8, exact for n = 2, and write it as
  (1 + phi_n) / 2: a common part driven by the shared arrivals (weight c_a^2 = 1) and an
  independent part driven by each core's service (weight c_x^2), whose maximum over n
  cores is phi_n = 2 NT_n - 1 times larger.  Non-exponential tasks scale only the
  independent part: beta(1) = (1 + c_x^2 phi_n) / 2.
* beta(rho) moves from beta(0) to beta(1) as the queue becomes long compared with the
  relaxation time of the saturated head of the line:
  beta(rho) = beta(1) + (beta(0) - beta(1)) (1 - rho) / (1 - rho + rho / theta).
  theta = 1 for k = n (linear, as in Nelson-Tantawi); for k < n the head relaxes slowly
  when few tasks are purged, and theta = 1.7 + 0.87 k / (n - k + 1) fits simulations over
  n <= 20 (README lists the resulting errors).

Several speeds enter through the race (T_0 and q^0), through Lambda and through c_x^2.  For
k = n the light-traffic slope is exact for any mix (no purging: the cores are independent
given the two jobs; see fork_join_light_traffic_slope).  For 1 < k < n it is the
single-speed value scaled by 1 + (c_x^2 - 1)/2 x (k - 1)/(n - 1): the Pollaczek-Khinchine
factor (1 + c^2)/2, weighted by how little purging there is (none for k = 1, whose race is
exact anyway).  This weighting is a heuristic, checked on the published grid.

Energy per job (SPEC 3.2 identity): busy energy k sum_l q_l P_l / mu_l, with q_l the
fraction of task completions won by level l, plus idle power times idle core-time
n/lambda - k sum_l q_l / mu_l.  In light traffic q = q^0 from the race; in saturation every
core is always busy and a task ends by completion or purge, and since purges hit the tasks
still running, slow ones, completions lean to fast levels less than in a fresh race; we
interpolate q = (1 - rho) q^0 + rho q^sat with q^sat the completion shares of n always-busy
cores racing to k completions and restarting after each completion (a renewal race).

Stability is decided first, by :func:`distalloc.queueing.stability` (closed form, bounds
or a measured saturated run), never by Lambda above: Lambda is an approximation (within 1%
of the measured capacity for speed ratios up to ~4, but up to 14% high for ratios of 10 or
more), used only inside the formula.  A stable system whose rate reaches Lambda is outside
the formula's range and refused as such.

Levels with equal speeds are merged for the timing computations (they differ only in
power) and levels of probability 0 dropped; completion shares are split back per level.

Cost: O(k^2) for beta(0) (cached per (n, k)), O(C(n + s, s) s) for the race with s distinct
speeds (vectorised over the mixes of the cores still racing), O(80^2 s^2) for the k = n
slope; closed form otherwise.  A call estimated over ``max_seconds`` is refused before it
starts.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from distalloc.queueing.mixes import (WORK_PER_SECOND, check_work, log_multinomial, race_k1,
                                      race_tables, race_work)
from distalloc._validation import ValidationError
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.stability import QUICK_LOOKS, UnstableError, check_stable

__all__ = ["approximate", "light_traffic_race", "light_traffic_slope",
           "fork_join_light_traffic_slope", "heavy_traffic_constant", "saturation_capacity",
           "approx_work", "DEFAULT_MAX_SECONDS", "LAGUERRE_ORDER"]

#: default limit on the estimated time of one ``approximate`` call
DEFAULT_MAX_SECONDS = 60.0
LAGUERRE_ORDER = 80


def _harmonic(m: int) -> float:
    return float(np.sum(1.0 / np.arange(1, m + 1))) if m > 0 else 0.0


@lru_cache(maxsize=4096)
def light_traffic_slope(n: int, k: int) -> float:
    """beta(0) = Lambda^2 dE[T]/dlambda at lambda = 0, single speed (scale free).  O(k^2)."""
    mu = 1.0
    t0 = _harmonic(n) - _harmonic(n - k)
    f: dict[tuple[int, int], float] = {}
    tail = [0.0] * (k + 1)                   # tail[b] = sum_{j=b}^{k-1} 1 / ((n - j) mu)
    for j in range(k - 1, -1, -1):
        tail[j] = tail[j + 1] + 1.0 / ((n - j) * mu)
    for a in range(k - 1, -1, -1):           # level of the earlier job P
        for b in range(a, -1, -1):           # level of the tagged job (never above P's)
            rp, rt = (n - a) * mu, (a - b) * mu
            after_p = f[(a + 1, b)] if a + 1 < k else tail[b]
            after_t = f[(a, b + 1)] if rt > 0 else 0.0
            f[(a, b)] = (1.0 + rp * after_p + rt * after_t) / (rp + rt)
    d1 = sum((f[(i, 0)] - t0) / ((n - i) * mu) for i in range(k))
    return d1 * (n * mu / k) ** 2


@lru_cache(maxsize=8)
def _laguerre(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Laguerre nodes and weights (read-only): numpy finds them by an eigenvalue
    problem of size ``order`` (~10 ms at the default order), so they are computed once;
    an optimisation over mixes evaluates the slope thousands of times (issue 16: 41 s for
    one `queue optimize`, 33 of them in eigvalsh)."""
    u, w = np.polynomial.laguerre.laggauss(order)
    u.flags.writeable = False
    w.flags.writeable = False
    return u, w


def fork_join_light_traffic_slope(n: int, speeds: np.ndarray, probs: np.ndarray,
                                  order: int = LAGUERRE_ORDER) -> float:
    """beta(0) for k = n, any speed mix, exactly: without purging each core serves the
    earlier job's task, then the tagged job's, independently of the others, so with the
    earlier job arriving tau before, the tagged job's response is max_i Y_i with
    Y = (X_P - tau)^+ + X_T, and D_1 = int_0^inf dtau int_0^inf (G(x)^n - F_tau(x)^n) dx
    (G: task-time CDF, a hyperexponential; F_tau: the CDF of Y, a mixture of G and of
    hypoexponentials).  Gauss-Laguerre quadrature in both variables (relative error
    ~1e-7; one speed reproduces light_traffic_slope(n, n), 11/8 for n = 2).

    Without cancellation: G - F_tau = sum_l q_l(tau) (G - H_l), q_l = p_l exp(-mu_l tau)
    (the earlier task still running), and G - H_l = P(X <= x < X + E_l) = sum_l2 p_l2
    b e^{-bx} (1 - e^{-(a-b)x}) / (a - b) (a = mu_l, b = mu_l2; b x e^{-bx} if a = b), so
    G^n - F^n = G^n (1 - (1 - (G - F)/G)^n) by expm1/log1p.  ``speeds``/``probs``: levels
    of probability 0 contribute nothing."""
    mu = np.asarray(speeds, dtype=float)
    p = np.asarray(probs, dtype=float)
    u, wts = _laguerre(int(order))
    mu_min = float(mu[p > 0].min())
    x = u / mu_min
    wx = wts * np.exp(u) / mu_min
    G = (p[None, :] * -np.expm1(-np.outer(x, mu))).sum(axis=1)
    a, b, xx = mu[:, None, None], mu[None, :, None], x[None, None, :]
    lo, gap_ab = np.minimum(a, b), np.abs(a - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        # b (e^{-bx} - e^{-ax}) / (a - b) = b e^{-min x} (1 - e^{-|a - b| x}) / |a - b|
        term = np.where(gap_ab == 0, b * xx * np.exp(-b * xx),
                        b * np.exp(-lo * xx) * -np.expm1(-gap_ab * xx)
                        / np.where(gap_ab == 0, 1.0, gap_ab))
    gap = (p[None, :, None] * term).sum(axis=1)               # G - H_l, shape (s, order)
    q = p[None, :] * np.exp(-np.outer(x, mu))                 # earlier task still running
    with np.errstate(divide="ignore"):
        ratio = (q @ gap) / G[None, :]                        # (G - F_tau) / G
        diff = G[None, :] ** n * -np.expm1(n * np.log1p(-ratio))
    d1 = float((diff @ wx) @ wx)
    return d1 / float(np.sum(p / mu)) ** 2


def heavy_traffic_constant(n: int, k: int, task_scv: float = 1.0) -> float:
    """beta(1): (1 + c_x^2 / k) / 2 for k < n; for k = n Nelson-Tantawi's
    (7 H_n/H_2 + 4)/8, scaled by (1 + c_x^2) / 2 for non-exponential tasks."""
    if k < n:
        return 0.5 * (1.0 + task_scv / k)
    phi = 2.0 * (7.0 * _harmonic(n) / 1.5 + 4.0) / 8.0 - 1.0
    return 0.5 * (1.0 + task_scv * phi)


PURGE_BIAS = 0.24


def saturation_capacity(n: int, k: int, speeds: np.ndarray, probs: np.ndarray,
                        iterations: int = 200) -> tuple[float, float]:
    """Jobs per unit time when every core is always busy, and the mean purge rate per core.

    A departure purges the n - k tasks still running on the departing job, so a core sees
    purges at rate gamma = Lambda (n - k) / n on average.  A core at level l has purge
    hazard gamma w_l s with w_l = mu_l^(-b), s normalising the time average to gamma: its
    task lasts Exp(mu_l + gamma w_l s) and completes with probability mu_l / (that rate),
    and the core completes tasks at rate c = sum_l pi_l mu_l with pi_l proportional to
    p_l / (mu_l + gamma w_l s).  Lambda = n c / k is a fixed point (iterated).
    b = 0: purges hit every core alike, exact for k = 1 (all cores race on one job) and
    irrelevant for k = n (no purges).  In between, the purged cores are the slow survivors
    of the top job's race; b = 0.24 ln(n/2) (k - 1)/(n - 1), fitted to capacities measured
    by overloaded simulation for n = 4..20 (b = 0 was up to 3.6% low there)."""
    lam_sat = n / (k * float(np.sum(probs / speeds)))
    bias = PURGE_BIAS * math.log(n / 2.0) * (k - 1) / (n - 1) if n > 2 else 0.0
    w = speeds ** (-bias)
    for _ in range(iterations):
        gamma = lam_sat * (n - k) / n
        scale = 1.0
        for _ in range(50):
            pi = probs / (speeds + gamma * w * scale)
            pi = pi / pi.sum()
            new_scale = 1.0 / float(np.sum(pi * w))
            if abs(new_scale - scale) <= 1e-13 * new_scale:
                break
            scale = new_scale
        r = speeds + gamma * w * scale
        pi = probs / r
        c = float(np.sum(pi * speeds) / np.sum(pi))
        new = n * c / k
        if abs(new - lam_sat) <= 1e-12 * new:
            lam_sat = new
            break
        lam_sat = new
    return lam_sat, lam_sat * (n - k) / n


def _relaxation(n: int, k: int) -> float:
    return 1.0 if k == n else 1.7 + 0.87 * k / (n - k + 1)


def light_traffic_race(n: int, k: int, speeds: np.ndarray, probs: np.ndarray,
                       ) -> tuple[float, np.ndarray]:
    """(E[time to the k-th completion], share of the k completions won by each level) for a
    lone job on n cores with i.i.d. speeds.  ``speeds``/``probs``: distinct speeds (levels
    of probability 0 allowed).  The distribution over the mixes of the cores still racing
    is advanced completion by completion (:func:`mixes.race_tables`)."""
    s = speeds.size
    tables = race_tables(n, s, k)
    dist = np.exp(log_multinomial(tables[0][0], probs))
    t = 0.0
    wins = np.zeros(s)
    for step, (mixes, down) in enumerate(tables):
        rate = mixes @ speeds
        t += float(np.sum(dist / rate))
        last = step == len(tables) - 1
        nxt = None if last else np.zeros(len(tables[step + 1][0]))
        for l in range(s):
            w = dist * mixes[:, l] * speeds[l] / rate
            wins[l] += float(np.sum(w))
            if not last:
                has = mixes[:, l] > 0
                np.add.at(nxt, down[has, l], w[has])
        dist = nxt
    return t, wins / k


def approx_work(n: int, k: int, s: int) -> float:
    """Estimated steps of ``approximate`` with s distinct live speeds (for refusals; at
    ~WORK_PER_SECOND steps per second)."""
    if k == 1:
        return race_work(n, 0, s) + s
    slope = 0.5 * k * k
    fork_join = LAGUERRE_ORDER ** 2 * s * s if k == n else 0.0
    return race_work(n, k, s) + slope + fork_join / 50.0


@lru_cache(maxsize=65536)
def _mix_terms(n: int, k: int, speeds_key: bytes, probs_key: bytes):
    """Everything that does not depend on the arrival rate, cached per (n, k, distinct
    speeds, their probabilities): the approximate saturation capacity and purge rate, the
    race (T_0, q^0), the task-time SCV under purging, the saturated completion shares and
    beta(0)."""
    mu = np.frombuffer(speeds_key)
    p = np.frombuffer(probs_key)
    capacity, purge_rate = saturation_capacity(n, k, mu, p)
    t0, q0 = light_traffic_race(n, k, mu, p)
    r = mu + purge_rate
    mean_d = float(np.sum(p / r))
    scv = 2.0 * float(np.sum(p / r ** 2)) / mean_d ** 2 - 1.0
    q_sat = p * mu / r
    if k == n:
        b0 = fork_join_light_traffic_slope(n, mu, p)
    else:
        b0 = light_traffic_slope(n, k) * (1.0 + 0.5 * (scv - 1.0) * (k - 1) / (n - 1))
    return capacity, t0, q0, scv, q_sat / q_sat.sum(), b0


def _per_level(system: ForkJoin, shares: np.ndarray, group: np.ndarray,
               merged: np.ndarray) -> np.ndarray:
    """Split shares of the distinct speeds back onto the levels, in proportion to p_l."""
    q = np.zeros(system.num_levels)
    live = group >= 0
    q[live] = shares[group[live]] * system.probs[live] / merged[group[live]]
    return q


def approximate(system: ForkJoin, *,
                max_seconds: float | None = DEFAULT_MAX_SECONDS) -> QueueMetrics:
    """Closed-form approximation of E[N], E[T], energy per job and mean power.

    Parameters
    ----------
    system : ForkJoin
        any (n, k), any number of speed levels.
    max_seconds : float or None
        refuse (before any work) if the estimated time exceeds this; None: no limit.

    Returns
    -------
    QueueMetrics
        with ``load`` and the pieces ``saturation_load``, ``light_traffic_response``,
        ``beta`` in ``extra``.

    Raises
    ------
    UnstableError
        the system is unstable (decided by :func:`stability`), or stable but at or beyond
        the approximation's own capacity estimate (use simulate()).
    ValidationError
        the estimated time exceeds ``max_seconds`` (e.g. hundreds of speed levels on many
        cores: the race enumerates C(n + s - 1, s - 1) mixes).

    Notes
    -----
    See the module docstring for the derivation.  Accuracy against simulation is published
    in the README (grid, worst cases, heavy traffic).

    Examples
    --------
    >>> from distalloc.queueing import ForkJoin, approximate
    >>> round(approximate(ForkJoin(1, 1, 0.5)).mean_jobs, 6)   # M/M/1: rho / (1 - rho)
    1.0
    """
    n, k, lam = system.servers, system.needed, system.rate
    mu, pg, group = system.distinct
    check_work(approx_work(n, k, mu.size) / WORK_PER_SECOND, f"approximate() of a ({n},{k}) "
               f"system with {mu.size} distinct speed(s)", max_seconds)
    st = check_stable(system, max_looks=QUICK_LOOKS)
    rho = system.load
    if k == 1:
        m1, m2, wins = race_k1(n, mu, pg)
        resp = m1 + lam * m2 / (2.0 * (1.0 - lam * m1))
        q = _per_level(system, wins, group, pg)
        energy = system.energy_from_completions(q)
        return QueueMetrics(method="approx", mean_jobs=lam * resp, mean_response=resp,
                            energy_per_job=energy, mean_power=lam * energy,
                            completion_fraction=q,
                            extra={"load": rho, "saturation_load": lam * m1,
                                   "light_traffic_response": m1, "beta": 1.0, "exact": True})
    capacity, t0, q0, scv, q_sat, b0 = _mix_terms(n, k, mu.tobytes(), pg.tobytes())
    load = lam / capacity
    if load >= 1.0:
        raise UnstableError(
            f"The approximation does not reach this load: rate {lam:.6g} >= its saturation "
            f"estimate {capacity:.6g}, although the system is stable (saturation throughput "
            f"{st.capacity:.6g} +- {st.capacity_ci:.2g}, {st.source}); use simulate().")
    b1 = heavy_traffic_constant(n, k, scv)
    theta = _relaxation(n, k)
    beta = b1 + (b0 - b1) * (1.0 - load) / (1.0 - load + load / theta)
    resp = t0 + load / (1.0 - load) * beta / capacity
    shares = (1.0 - load) * q0 + load * q_sat
    q = _per_level(system, shares, group, pg)
    energy = system.energy_from_completions(q)
    if not (math.isfinite(resp) and math.isfinite(energy)):
        raise ValidationError(f"approximate() failed numerically for this system (E[T] "
                              f"{resp!r}, energy {energy!r}); use simulate().")
    return QueueMetrics(method="approx", mean_jobs=lam * resp, mean_response=resp,
                        energy_per_job=energy, mean_power=lam * energy, completion_fraction=q,
                        extra={"load": rho, "saturation_load": load,
                               "light_traffic_response": t0, "beta": beta})
