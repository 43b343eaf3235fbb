"""Numba kernels for distalloc.queueing.approximate_grid: the closed-form approximation of
(n, k) fork-join systems over arrays of (arrival rate, speed mix) for one (n, k, speeds).

Layering (as in scikit-learn's _loss): one-mix functions (`_saturation_capacity`,
`_race`, `_race_k1`, `_fork_join_slope`), one-item bodies (`_one_mix`, `_one_point`,
`_one_row`), then loops over them, each in a parallel (prange) and a ``_serial`` version
(sweep workers run one thread each, and a thread pool must not share Numba's fork-safe
workqueue layer):

* ``mix_terms``: for each distinct speed mix, everything that does not depend on the rate
  (approximate capacity, race time T_0 and win shares q^0, task SCV, saturated shares,
  beta(0); for k = 1 the race moments) -- the twin of ``approx._mix_terms``/``race_k1``;
* ``grid_points``: for each point, the formula of ``approx.approximate`` with the
  completion shares split back onto the levels -- NaN where the caller marked the point
  unstable or the load reaches the approximate capacity.

Inputs are contiguous float64/int64 arrays prepared by the caller (the race tables of
``mixes.race_tables`` flattened, Gauss-Laguerre nodes); nothing here validates or touches
Python objects.  ``cache=True`` keeps the compiled code on disk; ``NUMBA_DISABLE_JIT=1``
runs the same code as plain Python (tests, coverage).
"""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _saturation_capacity(n, k, mu, p, purge_bias, iterations):
    """Twin of approx.saturation_capacity (same iteration, same stopping rules)."""
    s = mu.size
    inv = 0.0
    for l in range(s):
        inv += p[l] / mu[l]
    lam_sat = n / (k * inv)
    bias = 0.0
    if n > 2:
        bias = purge_bias * math.log(n / 2.0) * (k - 1) / (n - 1)
    w = np.empty(s)
    for l in range(s):
        w[l] = mu[l] ** (-bias)
    pi = np.empty(s)
    for _ in range(iterations):
        gamma = lam_sat * (n - k) / n
        scale = 1.0
        for _ in range(50):
            tot = 0.0
            for l in range(s):
                pi[l] = p[l] / (mu[l] + gamma * w[l] * scale)
                tot += pi[l]
            acc = 0.0
            for l in range(s):
                pi[l] = pi[l] / tot
                acc += pi[l] * w[l]
            new_scale = 1.0 / acc
            if abs(new_scale - scale) <= 1e-13 * new_scale:
                break
            scale = new_scale
        num = 0.0
        den = 0.0
        for l in range(s):
            x = p[l] / (mu[l] + gamma * w[l] * scale)
            num += x * mu[l]
            den += x
        new = n * (num / den) / k
        if abs(new - lam_sat) <= 1e-12 * new:
            lam_sat = new
            break
        lam_sat = new
    return lam_sat, lam_sat * (n - k) / n


@njit(cache=True)
def _log_multinomial(mix, logp, g, log_fact):
    out = log_fact[g]
    for l in range(mix.size):
        m = mix[l]
        out -= log_fact[m]
        if m > 0:
            out += m * logp[l]
    return out


@njit(cache=True)
def _race(n, k, mu, p, mixes, down, offsets, wins, log_fact):
    """Twin of approx.light_traffic_race: returns T_0, writes the win shares into wins."""
    s = mu.size
    logp = np.empty(s)
    for l in range(s):
        logp[l] = math.log(p[l]) if p[l] > 0 else -np.inf
    first = offsets[0]
    rows0 = offsets[1] - first
    dist = np.empty(rows0)
    for i in range(rows0):
        dist[i] = math.exp(_log_multinomial(mixes[first + i], logp, n, log_fact))
    for l in range(s):
        wins[l] = 0.0
    t = 0.0
    for step in range(k):
        a = offsets[step]
        rows = offsets[step + 1] - a
        last = step == k - 1
        nxt = np.zeros(1 if last else offsets[step + 2] - offsets[step + 1])
        for i in range(rows):
            d = dist[i]
            if d == 0.0:
                continue
            rate = 0.0
            for l in range(s):
                rate += mixes[a + i, l] * mu[l]
            t += d / rate
            for l in range(s):
                m = mixes[a + i, l]
                if m > 0:
                    w = d * m * mu[l] / rate
                    wins[l] += w
                    if not last:
                        nxt[down[a + i, l]] += w
        dist = nxt
    for l in range(s):
        wins[l] /= k
    return t


@njit(cache=True)
def _race_k1(n, mu, p, mixes, rows, wins, log_fact):
    """Twin of mixes.race_k1, operation for operation: (E[S], E[S^2]); win shares into
    wins."""
    s = mu.size
    logp = np.empty(s)
    for l in range(s):
        logp[l] = math.log(p[l]) if p[l] > 0 else -np.inf
        wins[l] = 0.0
    m1 = 0.0
    m2 = 0.0
    for i in range(rows):
        pr = math.exp(_log_multinomial(mixes[i], logp, n, log_fact))
        if pr == 0.0:
            continue
        rate = 0.0
        for l in range(s):
            rate += mixes[i, l] * mu[l]
        m1 += pr / rate
        m2 += 2.0 * pr / rate ** 2
        for l in range(s):
            wins[l] += pr / rate * mixes[i, l] * mu[l]
    return m1, m2


@njit(cache=True)
def _fork_join_slope(n, mu, p, nodes, weights):
    """Twin of approx.fork_join_light_traffic_slope (k = n, any mix; no cancellation)."""
    s = mu.size
    mu_min = np.inf
    inv = 0.0
    for l in range(s):
        if p[l] > 0:
            mu_min = min(mu_min, mu[l])
        inv += p[l] / mu[l]
    order = nodes.size
    x = np.empty(order)
    wx = np.empty(order)
    G = np.empty(order)
    for i in range(order):
        x[i] = nodes[i] / mu_min
        wx[i] = weights[i] * math.exp(nodes[i]) / mu_min
        g = 0.0
        for l in range(s):
            g += p[l] * -math.expm1(-x[i] * mu[l])
        G[i] = g
    # gap[l, i] = G(x_i) - H_l(x_i) = sum_l2 p_l2 P(X <= x_i < X + E_l)
    gap = np.zeros((s, order))
    for l in range(s):
        a = mu[l]
        for i in range(order):
            h = 0.0
            xx = x[i]
            for l2 in range(s):
                b = mu[l2]
                d = abs(a - b)
                if d == 0.0:
                    term = b * xx * math.exp(-b * xx)
                else:
                    term = b * math.exp(-min(a, b) * xx) * -math.expm1(-d * xx) / d
                h += p[l2] * term
            gap[l, i] = h
    d1 = 0.0
    for t in range(order):
        inner = 0.0
        for i in range(order):
            g_f = 0.0
            for l in range(s):
                g_f += p[l] * math.exp(-x[t] * mu[l]) * gap[l, i]
            ratio = g_f / G[i]
            inner += G[i] ** n * -math.expm1(n * math.log1p(-ratio)) * wx[i]
        d1 += inner * wx[t]
    return d1 / inv ** 2


@njit(cache=True)
def _light_traffic_factor(n, k, scv):
    return 1.0 + 0.5 * (scv - 1.0) * (k - 1) / (n - 1)


@njit(cache=True)
def _one_mix(m, n, k, mu, probs, mixes, down, offsets, nodes, weights, slope_nk, purge_bias,
             iterations, log_fact, out_scalar, out_q0, out_qsat):
    s = mu.size
    p = probs[m]
    wins = np.empty(s)
    if k == 1:
        m1, m2 = _race_k1(n, mu, p, mixes, offsets[1] - offsets[0], wins, log_fact)
        out_scalar[m, 0] = 1.0 / m1
        out_scalar[m, 1] = m1
        out_scalar[m, 2] = m2
        out_scalar[m, 3] = 1.0
        for l in range(s):
            out_q0[m, l] = wins[l]
            out_qsat[m, l] = 0.0
        return
    cap, purge = _saturation_capacity(n, k, mu, p, purge_bias, iterations)
    t0 = _race(n, k, mu, p, mixes, down, offsets, wins, log_fact)
    mean_d = 0.0
    sq = 0.0
    tot = 0.0
    for l in range(s):
        r = mu[l] + purge
        mean_d += p[l] / r
        sq += p[l] / r ** 2
        tot += p[l] * mu[l] / r
    scv = 2.0 * sq / mean_d ** 2 - 1.0
    for l in range(s):
        out_q0[m, l] = wins[l]
        out_qsat[m, l] = p[l] * mu[l] / (mu[l] + purge) / tot
    if k == n:
        b0 = _fork_join_slope(n, mu, p, nodes, weights)
    else:
        b0 = slope_nk * _light_traffic_factor(n, k, scv)
    out_scalar[m, 0] = cap
    out_scalar[m, 1] = t0
    out_scalar[m, 2] = scv
    out_scalar[m, 3] = b0


@njit(parallel=True, cache=True)
def mix_terms(n, k, mu, probs, mixes, down, offsets, nodes, weights, slope_nk, purge_bias,
              iterations, log_fact, out_scalar, out_q0, out_qsat):
    """For each row of ``probs`` (a speed mix over the distinct speeds ``mu``):
    out_scalar[m] = (capacity, T_0 or E[S], scv or E[S^2], beta(0));
    out_q0[m] = win shares of the lone-job race; out_qsat[m] = saturated shares (k > 1)."""
    for m in prange(probs.shape[0]):
        _one_mix(m, n, k, mu, probs, mixes, down, offsets, nodes, weights, slope_nk,
                 purge_bias, iterations, log_fact, out_scalar, out_q0, out_qsat)


@njit(cache=True)
def mix_terms_serial(n, k, mu, probs, mixes, down, offsets, nodes, weights, slope_nk,
                     purge_bias, iterations, log_fact, out_scalar, out_q0, out_qsat):
    """``mix_terms`` on the calling thread only (sweep workers, other threads)."""
    for m in range(probs.shape[0]):
        _one_mix(m, n, k, mu, probs, mixes, down, offsets, nodes, weights, slope_nk,
                 purge_bias, iterations, log_fact, out_scalar, out_q0, out_qsat)


@njit(cache=True, inline="always")
def _one_point(j, n, k, rates, level_probs, merged_probs, group, which, stable, speeds,
               powers, idle_power, mix_scalar, mix_q0, mix_qsat, beta1_base, theta, out):
    levels = speeds.size
    lam = rates[j]
    m = which[j]
    for c in range(7):
        out[j, c] = np.nan
    if not stable[j]:
        return
    if k == 1:
        m1 = mix_scalar[m, 1]
        resp = m1 + lam * mix_scalar[m, 2] / (2.0 * (1.0 - lam * m1))
        load = lam * m1
        t0 = m1
        beta = 1.0
        w_q0 = 1.0
        w_sat = 0.0
    else:
        cap = mix_scalar[m, 0]
        load = lam / cap
        if load >= 1.0:
            return
        scv = mix_scalar[m, 2]
        b0 = mix_scalar[m, 3]
        if k < n:
            b1 = 0.5 * (1.0 + scv / k)
        else:
            b1 = 0.5 * (1.0 + scv * beta1_base)
        beta = b1 + (b0 - b1) * (1.0 - load) / (1.0 - load + load / theta)
        t0 = mix_scalar[m, 1]
        resp = t0 + load / (1.0 - load) * beta / cap
        w_q0 = 1.0 - load
        w_sat = load
    busy = 0.0
    busy_energy = 0.0
    for l in range(levels):
        gl = group[l]
        if gl < 0 or level_probs[j, l] == 0.0:
            continue
        share = w_q0 * mix_q0[m, gl] + w_sat * mix_qsat[m, gl]
        q = share * level_probs[j, l] / merged_probs[j, gl]
        busy += q / speeds[l]
        busy_energy += q * powers[l] / speeds[l]
    busy *= k
    busy_energy *= k
    energy = busy_energy + idle_power * max(n / lam - busy, 0.0)
    out[j, 0] = lam * resp
    out[j, 1] = resp
    out[j, 2] = energy
    out[j, 3] = lam * energy
    out[j, 4] = load
    out[j, 5] = t0
    out[j, 6] = beta


@njit(parallel=True, cache=True)
def grid_points(n, k, rates, level_probs, merged_probs, group, which, stable, speeds, powers,
                idle_power, mix_scalar, mix_q0, mix_qsat, beta1_base, theta, out):
    """For each point: out[j] = (mean_jobs, mean_response, energy_per_job, mean_power,
    saturation_load, light_traffic_response, beta); NaN where ``stable[j]`` is False or
    the load reaches the approximate capacity.  ``which[j]``: row of the point's mix in
    the mix tables; ``group[l]``: distinct-speed index of level l."""
    for j in prange(rates.size):
        _one_point(j, n, k, rates, level_probs, merged_probs, group, which, stable, speeds,
                   powers, idle_power, mix_scalar, mix_q0, mix_qsat, beta1_base, theta, out)


@njit(cache=True)
def grid_points_serial(n, k, rates, level_probs, merged_probs, group, which, stable, speeds,
                       powers, idle_power, mix_scalar, mix_q0, mix_qsat, beta1_base, theta,
                       out):
    """``grid_points`` on the calling thread only."""
    for j in range(rates.size):
        _one_point(j, n, k, rates, level_probs, merged_probs, group, which, stable, speeds,
                   powers, idle_power, mix_scalar, mix_q0, mix_qsat, beta1_base, theta, out)


@njit(cache=True, inline="always")
def _one_row(j, probs, group, n_groups, p_norm, merged, row_ok):
    tot = 0.0
    ok = True
    for l in range(probs.shape[1]):
        x = probs[j, l]
        if not (x >= 0.0 and x <= 1.0):
            ok = False
        tot += x
    if not abs(tot - 1.0) <= 1e-9:
        ok = False
    row_ok[j] = ok
    for g in range(n_groups):
        merged[j, g] = 0.0
    for l in range(probs.shape[1]):
        x = probs[j, l] / tot + 0.0
        p_norm[j, l] = x
        merged[j, group[l]] += x


@njit(parallel=True, cache=True)
def prepare_rows(probs, group, n_groups, p_norm, merged, row_ok):
    """Per row of ``probs``: valid (entries in [0, 1], sum within 1e-9 of 1), normalised
    (p / sum, as ForkJoin stores it; -0.0 made 0.0) and summed per distinct speed in level
    order (as distinct_speeds does)."""
    for j in prange(probs.shape[0]):
        _one_row(j, probs, group, n_groups, p_norm, merged, row_ok)


@njit(cache=True)
def prepare_rows_serial(probs, group, n_groups, p_norm, merged, row_ok):
    """``prepare_rows`` on the calling thread only."""
    for j in range(probs.shape[0]):
        _one_row(j, probs, group, n_groups, p_norm, merged, row_ok)
