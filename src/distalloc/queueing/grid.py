"""``approximate`` over arrays of parameters, in a parallel Numba kernel (SPEC 5.3)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from distalloc import _compiled
from distalloc._validation import ValidationError, as_float_array, check_number, describe
from distalloc.queueing.approx import (LAGUERRE_ORDER, PURGE_BIAS, _harmonic, _relaxation,
                                       light_traffic_slope)
from distalloc.queueing.mixes import (COMPILED_PER_SECOND, WORK_PER_SECOND, check_work,
                                      log_factorials, race_tables, race_work)
from distalloc.queueing.model import MAX_SERVERS, MAX_VALUE, _vector
from distalloc.queueing.stability import QUICK_LOOKS, decide_rates, measurement_seconds

__all__ = ["approximate_grid", "approximate_rows", "DEFAULT_GRID_MAX_SECONDS"]

#: default limit on the estimated time of one approximate_grid call
DEFAULT_GRID_MAX_SECONDS = 600.0
_KEYS = ("mean_jobs", "mean_response", "energy_per_job", "mean_power")
_EXTRA_KEYS = ("saturation_load", "light_traffic_response", "beta")


def _rates(rates: Any) -> np.ndarray:
    try:
        arr = np.asarray(rates)
    except (TypeError, ValueError):          # ragged
        arr = None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "fiu":
        raise ValidationError(f"The 'rates' parameter must be a 1-D array of floats. Got "
                              f"{describe(rates)} (shape {getattr(arr, 'shape', '?')}) instead.")
    arr = np.ascontiguousarray(arr, dtype=float)
    bad = ~((arr >= 1 / MAX_VALUE) & (arr <= MAX_VALUE))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(f"The 'rates[{i}]' parameter must be a float in "
                              f"[{1 / MAX_VALUE:g}, {MAX_VALUE:g}]. Got {arr[i]!r} instead.")
    return arr


def _probs(probs: Any, N: int, levels: int, group: np.ndarray, n_groups: int,
           kern: Any) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities per level, normalised; per distinct speed), one row or N rows."""
    try:
        ndim = np.asarray(probs).ndim
    except (TypeError, ValueError):
        ndim = 1                                   # ragged: as_float_array says so
    arr = as_float_array(probs, "probs", ndim=ndim if ndim in (1, 2) else 1)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != levels or arr.shape[0] not in (1, N):
        raise ValidationError(f"The 'probs' parameter must have shape ({levels},) or "
                              f"({N}, {levels}) (one row per rate). Got {np.shape(probs)} "
                              f"instead.")
    arr = np.ascontiguousarray(arr)
    p_norm = np.empty_like(arr)
    merged = np.empty((arr.shape[0], n_groups))
    ok = np.empty(arr.shape[0], dtype=bool)
    kern.prepare_rows(arr, group, n_groups, p_norm, merged, ok)
    if not ok.all():
        i = int(np.argmin(ok))
        row = arr[i]
        bad = ~((row >= 0) & (row <= 1))
        if bad.any():
            l = int(np.argmax(bad))
            raise ValidationError(f"The 'probs[{i}][{l}]' parameter must be a float in [0, 1]. "
                                  f"Got {row[l]!r} instead.")
        raise ValidationError(f"Each row of 'probs' must sum to 1. Got row {i} = "
                              f"{row.tolist()} (sum {row.sum():.12g}) instead.")
    return p_norm, merged


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, row index of each input row): a 64-bit hash of each row's bits,
    sorted as one key (numpy.unique over rows sorts row by row, 20x slower), checked
    against the rows themselves (np.unique over rows if two rows collide)."""
    a = np.ascontiguousarray(a)
    if a.shape[0] <= 1:
        return a, np.zeros(a.shape[0], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, (a[1:] != a[:-1]).any(axis=1)])
    if starts.size * 4 <= a.shape[0]:                 # runs of equal rows: dedupe the runs
        rows, inv = _unique_rows(a[starts])
        return rows, np.repeat(inv, np.diff(np.r_[starts, a.shape[0]]))
    bits = a.view(np.uint64)
    h = np.zeros(a.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(a.shape[1]):
            h = (h ^ bits[:, c]) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(29)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    rows = a[first]
    if not np.array_equal(rows[inverse], a):         # a hash collision: the slow way
        rows, inverse = np.unique(a, axis=0, return_inverse=True)
    return rows, np.ascontiguousarray(inverse.ravel(), dtype=np.int64)


class _Kernels:
    """The parallel kernels, or their one-thread twins."""

    def __init__(self, parallel: bool):
        mod = _compiled.queue_grid
        suffix = "" if parallel else "_serial"
        self.prepare_rows = getattr(mod, "prepare_rows" + suffix)
        self.mix_terms = getattr(mod, "mix_terms" + suffix)
        self.grid_points = getattr(mod, "grid_points" + suffix)


def _grid(servers, needed, speeds, powers, rates, probs, idle_power,
          max_seconds, parallel: bool = True) -> dict[str, np.ndarray]:
    n = check_number(servers, "servers", low=1, high=MAX_SERVERS, integer=True)
    k = check_number(needed, "needed", low=1, high=n, integer=True)
    mu_l = _vector(speeds, "speeds", low=1 / MAX_VALUE)
    P_l = np.ones_like(mu_l) if powers is None else _vector(powers, "powers", low=0)
    if P_l.size != mu_l.size:
        raise ValidationError(f"'speeds' and 'powers' must have the same length. Got "
                              f"{mu_l.size} and {P_l.size} instead.")
    idle = check_number(idle_power, "idle_power", low=0, high=MAX_VALUE)
    lam = _rates(rates)
    N, levels = lam.size, mu_l.size
    # distinct speeds (fixed for the grid); each row's probability per distinct speed
    values = np.unique(mu_l)
    group = np.searchsorted(values, mu_l).astype(np.int64)
    kern = _Kernels(parallel)
    p_l, merged = _probs(probs if probs is not None else np.full(levels, 1 / levels), N,
                         levels, group, values.size, kern)
    mixes, which = _unique_rows(merged)
    if p_l.shape[0] == 1:
        which = np.zeros(N, dtype=np.int64)
    s = values.size
    M = len(mixes)
    # stability tiers, vectorised over the mixes (stability.stability, decide_rates)
    live = mixes > 0
    single = live.sum(axis=1) == 1
    with np.errstate(divide="ignore"):
        lower = n / (k * (mixes / values).sum(axis=1))
    upper = n * (mixes * values).sum(axis=1) / k
    closed = single | (k == 1) | (k == n)
    band = ~closed[which] & (lam >= lower[which]) & (lam < upper[which])
    band_mixes = np.unique(which[band])
    per_mix = race_work(n, k, s) + (LAGUERRE_ORDER ** 2 * s * s if k == n else 0) + 2000 * s
    slope_steps = 0.5 * k * k if 1 < k < n else 0.0
    check_work((per_mix * M + 10.0 * N * levels) / COMPILED_PER_SECOND
               + (slope_steps + race_work(n, k, s)) / WORK_PER_SECOND
               + band_mixes.size * measurement_seconds(n),
               f"approximate_grid() over {N} points and {M} speed mixes of a ({n},{k}) system "
               f"with {s} distinct speed(s) ({band_mixes.size} mixes whose stability needs a "
               f"saturated run)", max_seconds)
    out = np.full((N, 7), np.nan)
    if N == 0:
        return _pack(out)
    # rate-independent terms per mix, in parallel
    tables = race_tables(n, s, k)
    offsets = np.cumsum([0] + [len(t[0]) for t in tables]).astype(np.int64)
    table_mixes = np.ascontiguousarray(np.vstack([t[0] for t in tables]), dtype=np.int64)
    table_down = np.ascontiguousarray(np.vstack([t[1] for t in tables]), dtype=np.int64)
    nodes, weights = np.polynomial.laguerre.laggauss(LAGUERRE_ORDER)
    slope = light_traffic_slope(n, k) if 1 < k < n else 0.0
    scalar = np.empty((M, 4))
    q0 = np.empty((M, s))
    qsat = np.empty((M, s))
    kern.mix_terms(n, k, values, np.ascontiguousarray(mixes), table_mixes, table_down,
                   offsets, nodes, weights, slope, PURGE_BIAS, 200, log_factorials(n),
                   scalar, q0, qsat)
    # closed forms (single speed, k = 1 race, k = n), bounds, and the measured band
    capacity = np.where(single, n * (values[np.argmax(live, axis=1)]) / k,
                        scalar[:, 0] if k == 1 else
                        1.0 / (mixes / values).sum(axis=1) if k == n else np.inf)
    stable = np.where(closed[which], lam < capacity[which], lam < lower[which])
    pts = np.nonzero(band)[0]
    pts = pts[np.argsort(which[pts], kind="stable")]
    cuts = np.searchsorted(which[pts], band_mixes)
    for m, lo, hi in zip(band_mixes, cuts, np.append(cuts[1:], pts.size)):
        stable[pts[lo:hi]] = decide_rates(n, k, values[live[m]], mixes[m][live[m]],
                                          lam[pts[lo:hi]], QUICK_LOOKS)
    phi = 2.0 * (7.0 * _harmonic(n) / 1.5 + 4.0) / 8.0 - 1.0
    kern.grid_points(n, k, lam, p_l if p_l.shape[0] == N else np.repeat(p_l, N, axis=0),
                     merged if merged.shape[0] == N else np.repeat(merged, N, axis=0),
                     group, which, stable, mu_l, P_l, idle, scalar, q0, qsat, phi,
                     _relaxation(n, k), out)
    return _pack(out)


def _pack(out: np.ndarray) -> dict[str, np.ndarray]:
    return {key: out[:, c] for c, key in enumerate(_KEYS + _EXTRA_KEYS)}


def approximate_grid(servers: int, needed: int, speeds: Sequence[float],
                     powers: Sequence[float] | None, rates: Any, probs: Any = None,
                     idle_power: float = 0.0, *,
                     max_seconds: float | None = DEFAULT_GRID_MAX_SECONDS,
                     parallel: bool = True) -> dict[str, np.ndarray]:
    """:func:`approximate` over N points at once (parallel Numba kernel).

    Parameters
    ----------
    servers, needed : int
        n and k, shared by every point.
    speeds, powers : sequence of float, length s
        the levels (powers None: 1 each).
    rates : array, shape (N,)
        arrival rate of each point.
    probs : array, shape (N, s) or (s,)
        speed-level probabilities per point, or one mix for every point (default uniform).
    idle_power : float
    max_seconds : float or None
        refuse (before any work) if the estimated time exceeds this.
    parallel : bool
        True: Numba's threads (``numba.set_num_threads`` limits them); False: the calling
        thread only -- for callers that run in threads of their own (Numba's fork-safe
        threading layer, chosen by distalloc so that sweeps may fork, is not thread-safe).

    Returns
    -------
    dict of arrays, shape (N,)
        ``mean_jobs``, ``mean_response``, ``energy_per_job``, ``mean_power``: equal to
        ``approximate(ForkJoin(servers, needed, rates[j], speeds, powers, probs[j],
        idle_power))`` to 1e-12 relative, and NaN where that call refuses (an unstable
        system, or a load beyond the approximation's capacity estimate).

    Raises
    ------
    ValidationError
        bad shapes or values (naming the first bad entry), or an estimated time over
        ``max_seconds``.

    Notes
    -----
    Two parallel kernels (kernels/queue_grid.py): the rate-independent terms once per
    distinct speed mix, then the formula once per point.  Stability is decided per mix by
    :func:`distalloc.queueing.stability` (closed form or bounds; a saturated run only for
    mixes with rates between the bounds).  Cost: O(mixes x C(n + s, s) s + N s) compiled;
    the first call in a fresh environment compiles the kernels (cached on disk after).

    Examples
    --------
    >>> import numpy as np
    >>> from distalloc.queueing import approximate_grid
    >>> out = approximate_grid(4, 2, [1.0], None, np.array([0.5, 1.0, 2.5]))
    >>> np.isnan(out["mean_jobs"]).tolist()          # 2.5 >= n mu / k = 2: unstable
    [False, False, True]
    """
    full = _grid(servers, needed, speeds, powers, rates, probs, idle_power, max_seconds,
                 bool(parallel))
    return {key: full[key] for key in _KEYS}


def _group_key(params: dict) -> str:
    import json
    rest = {k: v for k, v in params.items() if k not in ("rate", "probs")}
    return json.dumps(rest, sort_keys=True, default=repr)


def approximate_rows(points: list[dict], scalar: Callable[[dict], dict],
                     ) -> list[dict | Exception]:
    """Batched ``queue.approx`` sweep rows: for each parameter dict (``servers``,
    ``needed``, ``rate``, ``speeds``, ``powers``, ``probs``, ``idle_power``) what
    ``scalar(params)`` (the scalar sweep target) returns, or the exception it raises.

    Points sharing everything but ``rate`` and ``probs`` go through one
    :func:`approximate_grid` call (one thread: sweep workers are one thread each); a group with any invalid point, and every point the grid
    marks NaN (unstable, or beyond the approximation), is redone by ``scalar`` so that rows
    and one-line errors are exactly the scalar ones (values equal to 1e-12)."""
    from distalloc.queueing.model import ForkJoin

    def one(params: dict) -> dict | Exception:
        try:
            return scalar(params)
        except Exception as exc:  # noqa: BLE001 - handed to the sweep like a raise
            return exc

    out: list[dict | Exception | None] = [None] * len(points)
    groups: dict[str, list[int]] = {}
    for i, params in enumerate(points):
        groups.setdefault(_group_key(params), []).append(i)
    for idx in groups.values():
        first = points[idx[0]]
        try:
            base = ForkJoin(first["servers"], first["needed"], first["rate"],
                            first.get("speeds", (1.0,)), first.get("powers"),
                            first.get("probs"), first.get("idle_power", 0.0))
            rates = np.array([points[i]["rate"] for i in idx], dtype=float)
            probs = np.array([points[i].get("probs") if points[i].get("probs") is not None
                              else np.full(base.num_levels, 1 / base.num_levels)
                              for i in idx], dtype=float)
            g = _grid(base.servers, base.needed, base.speeds, base.powers, rates, probs,
                      base.idle_power, DEFAULT_GRID_MAX_SECONDS, parallel=False)
        except (ValidationError, KeyError, TypeError, ValueError):
            for i in idx:                           # the scalar path names the bad point
                out[i] = one(points[i])
            continue
        p_norm = probs / probs.sum(axis=1, keepdims=True)
        load = rates * base.needed * (p_norm / base.speeds).sum(axis=1) / base.servers
        for j, i in enumerate(idx):
            if not np.isfinite(g["mean_jobs"][j]):
                out[i] = one(points[i])
                continue
            row = {"method": "approx"}
            row.update({key: float(g[key][j]) for key in _KEYS})
            row["load"] = float(load[j])
            row.update({key: float(g[key][j]) for key in _EXTRA_KEYS})
            if base.needed == 1:
                row["exact"] = True
            out[i] = row
    return out  # type: ignore[return-value]
