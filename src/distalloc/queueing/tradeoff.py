"""Latency-energy trade-off over the speed mix, and the best mix under a constraint
(SPEC 3.1, 3.3)."""
from __future__ import annotations

import time

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.optimize import minimize

from distalloc._validation import ValidationError, check_number
from distalloc.queueing.approx import approximate
from distalloc.queueing.grid import approximate_grid
from distalloc.queueing.mixes import check_max_seconds, check_work
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.stability import SECONDS_PER_TASK, UnstableError

#: default limit on the estimated time of one tradeoff() call
DEFAULT_TRADEOFF_MAX_SECONDS = 600.0

__all__ = ["Tradeoff", "tradeoff", "OptimalMix", "optimize"]


def _evaluate(system: ForkJoin, method: str, **kw) -> QueueMetrics | None:
    from distalloc.queueing.exact import exact
    from distalloc.queueing.simulation import simulate
    fn: Callable[..., QueueMetrics] = {"approx": approximate, "exact": exact,
                                       "simulate": simulate}[method]
    try:
        return fn(system, **kw)
    except UnstableError:
        return None  # unstable at this mix (or beyond the approximation's range)


@dataclass(eq=False)
class Tradeoff:
    """E[N] and energy per job along the switching probability p of the fast level
    (NaN where the system is unstable)."""

    switch_prob: np.ndarray
    mean_jobs: np.ndarray
    mean_response: np.ndarray
    energy_per_job: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        clean = lambda a: [None if not np.isfinite(x) else float(x) for x in a]  # noqa: E731
        return {"switch_prob": clean(self.switch_prob), "mean_jobs": clean(self.mean_jobs),
                "mean_response": clean(self.mean_response),
                "energy_per_job": clean(self.energy_per_job)}


def tradeoff(system: ForkJoin, num_points: int = 51, method: str = "approx", *,
             max_seconds: float | None = DEFAULT_TRADEOFF_MAX_SECONDS, **kw) -> Tradeoff:
    """The E[N]-energy curve of a two-level system as the probability p of the second
    (high) speed level goes from 0 to 1.

    Parameters
    ----------
    system : ForkJoin
        two speed levels; its own ``probs`` are ignored.
    num_points : int
        2 .. 10^6.
    method : {'approx', 'exact', 'simulate'}
        'approx' runs :func:`approximate_grid` (one parallel kernel call).
    max_seconds : float or None
        refuse (before any work) if the estimated time exceeds this; with 'exact' it bounds
        the whole curve: each point's chain gets the time left and is refused before it is
        built if its own estimate exceeds that.
    **kw
        passed to :func:`exact` or :func:`simulate`.

    Returns
    -------
    Tradeoff
        NaN where the system is unstable at that mix (:func:`stability`) or the
        approximation does not reach its load.

    Raises
    ------
    ValidationError
        not two levels, an unknown method, or an estimated time over ``max_seconds``.

    Examples
    --------
    >>> from distalloc.queueing import ForkJoin, tradeoff
    >>> t = tradeoff(ForkJoin(10, 5, 2.0, [1.0, 3.0], [1.0, 6.0]), 5)
    >>> [round(float(x), 3) for x in t.mean_jobs[1:]]   # p = 0: all slow, unstable (NaN)
    [2.587, 1.248, 0.777, 0.552]
    """
    if system.num_levels != 2:
        raise ValidationError(f"tradeoff() sweeps the switching probability of a two-level "
                              f"system. Got {system.num_levels} levels instead.")
    if method not in ("approx", "exact", "simulate"):
        raise ValidationError(f"The 'method' parameter must be approx, exact or simulate. "
                              f"Got {method!r} instead.")
    num_points = check_number(num_points, "num_points", low=2, high=10 ** 6, integer=True)
    ps = np.linspace(0.0, 1.0, num_points)
    if method == "approx":
        if kw:
            raise ValidationError(f"tradeoff(method='approx') takes no options. Got "
                                  f"{sorted(kw)} instead.")
        probs = np.column_stack([1.0 - ps, ps])
        g = approximate_grid(system.servers, system.needed, system.speeds, system.powers,
                             np.full(num_points, system.rate), probs, system.idle_power,
                             max_seconds=max_seconds)
        return Tradeoff(ps, g["mean_jobs"], g["mean_response"], g["energy_per_job"])
    if method == "simulate":
        jobs = kw.get("num_jobs", 1_000_000) * kw.get("replications", 1)
        per_point = float(jobs) * system.servers * SECONDS_PER_TASK
    else:
        per_point = 1.0
    check_work(per_point * num_points, f"tradeoff(method={method!r}) over {num_points} points",
               max_seconds)
    out = np.full((3, num_points), np.nan)
    t0 = time.perf_counter()
    for i, p in enumerate(ps):
        pkw = kw
        if method == "exact" and max_seconds is not None:
            # the whole curve within max_seconds: each chain gets what is left, and exact()
            # refuses (before building) a chain whose estimated time exceeds it
            left = max_seconds - (time.perf_counter() - t0)
            pkw = {**kw, "max_seconds": max(left, 1e-3)}
        m = _evaluate(system.with_probs([1.0 - p, p]), method, **pkw)
        if m is not None:
            out[:, i] = m.mean_jobs, m.mean_response, m.energy_per_job
    return Tradeoff(ps, out[0], out[1], out[2])


@dataclass(eq=False)
class OptimalMix:
    """The best speed mix found, its metrics, and whether the constraint can be met."""

    probs: np.ndarray
    metrics: QueueMetrics | None
    feasible: bool
    objective: str
    constraint: str

    def to_dict(self) -> dict[str, Any]:
        return {"probs": [float(x) for x in self.probs], "feasible": self.feasible,
                "objective": self.objective, "constraint": self.constraint,
                **(self.metrics.to_dict() if self.metrics is not None else {})}


DEFAULT_OPTIMIZE_SECONDS = 60.0


def optimize(system: ForkJoin, *, max_jobs: float | None = None,
             max_response: float | None = None, max_energy: float | None = None,
             starts: int = 8, seed: int = 0,
             max_seconds: float | None = DEFAULT_OPTIMIZE_SECONDS) -> OptimalMix:
    """The speed mix (any number of levels) that minimises energy per job subject to
    E[N] <= ``max_jobs`` or E[T] <= ``max_response``; or, with ``max_energy``, the mix that
    minimises E[N] subject to energy per job <= ``max_energy``.  Uses the approximation,
    SLSQP on the probability simplex from several starts (a grid for two levels).

    Each mix is evaluated once (its stability decided as in :func:`approximate`, measured
    by a saturated simulation where the bounds cannot tell); SLSQP needs a few thousand
    evaluations for three levels, seconds to tens of seconds.

    Raises
    ------
    ValidationError
        no constraint, or more than one; or the search took longer than ``max_seconds``
        (None: no limit), stopped at the first evaluation past it.
    """
    given = [(name, v) for name, v in (("max_jobs", max_jobs), ("max_response", max_response),
                                       ("max_energy", max_energy)) if v is not None]
    if len(given) != 1:
        raise ValidationError("optimize() needs exactly one of max_jobs, max_response, "
                              f"max_energy. Got {[g[0] for g in given] or 'none'} instead.")
    name, bound = given[0]
    bound = check_number(bound, name, low=0, low_open=True)
    max_seconds = check_max_seconds(max_seconds)
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    s = system.num_levels

    seen: dict[bytes, Any] = {}
    evaluated = 0

    def metrics(x):
        nonlocal evaluated
        # SLSQP asks for the objective and the constraint at the same points (and their
        # finite differences): each mix is evaluated once (its stability may be measured)
        x = np.clip(np.asarray(x, dtype=float), 0, None)
        total = x.sum()
        x = x / total if total > 0 else x
        key = x.tobytes()
        if key not in seen:
            if deadline is not None and time.perf_counter() > deadline:
                raise ValidationError(
                    f"optimize() did not finish within max_seconds = {max_seconds:g} s "
                    f"({evaluated} mixes evaluated); raise it with max_seconds "
                    "(--max-seconds) if you mean it.")
            if len(seen) >= 4096:
                seen.clear()
            evaluated += 1
            seen[key] = None if total <= 0 else _evaluate(system.with_probs(x), "approx")
        return seen[key]

    def split(m):
        if m is None:
            return np.inf, np.inf
        latency = m.mean_jobs if name in ("max_jobs", "max_energy") else m.mean_response
        return m.energy_per_job, latency

    def objective_and_slack(x):
        e, lat = split(metrics(x))
        if name == "max_energy":
            return lat, bound - e
        return e, bound - lat

    candidates = []
    if s == 2:
        for p in np.linspace(0, 1, 201):
            candidates.append(np.array([1 - p, p]))
    rng = np.random.default_rng(seed)
    starts_x = [np.full(s, 1.0 / s), *np.eye(s), *rng.dirichlet(np.ones(s), size=starts)]
    for x0 in starts_x:
        res = minimize(lambda x: min(objective_and_slack(x)[0], 1e12), x0, method="SLSQP",
                       bounds=[(0, 1)] * s,
                       constraints=[{"type": "eq", "fun": lambda x: np.sum(x) - 1},
                                    {"type": "ineq",
                                     "fun": lambda x: max(objective_and_slack(x)[1], -1e12)}],
                       options={"maxiter": 200, "ftol": 1e-10})
        candidates.append(np.clip(res.x, 0, 1))
    best, best_val = None, np.inf
    for x in candidates:
        if x.sum() <= 0:
            continue
        x = x / x.sum()
        val, slack = objective_and_slack(x)
        if slack >= -1e-9 and val < best_val:
            best, best_val = x, val
    objective = "mean_jobs" if name == "max_energy" else "energy_per_job"
    if best is None:
        return OptimalMix(system.probs, None, False, objective, f"{name} <= {bound:g}")
    return OptimalMix(best, metrics(best), True, objective, f"{name} <= {bound:g}")
