"""Stability of (n, k) fork-join systems, decided once, the same way, for every method
(SPEC 3.3 "Stability, everywhere").

The system is stable iff the arrival rate is below its *saturation throughput* Lambda: the
departure rate when an infinite supply of jobs is waiting (the saturation rule for
monotone queueing networks, Baccelli and Foss 1995).  ``stability`` decides in three tiers,
stopping at the first that decides:

1. **Closed forms** where Lambda is known exactly.  One distinct speed: all n cores are
   always busy, task completions are Poisson(n mu) and every job takes exactly k of them,
   so Lambda = n mu / k.  k = 1: every core races on the head job, Lambda = 1 / E[S] with S
   the race time (SPEC 3.2).  k = n: nothing is purged and each core is its own queue,
   Lambda = 1 / sum_l p_l / mu_l.
2. **Bounds** that hold for any speed mix (1 < k < n).  In saturation every core is always
   busy; a task at level l ends by completion (rate mu_l) or by a purge at a time T that
   the core's own draw cannot influence, so it completes with probability
   f_l = E[1 - exp(-mu_l T)], increasing in mu_l, while f_l / mu_l decreases.  A core
   completes tasks at rate c = sum p f / sum p f / mu, and Chebyshev's sum inequality on
   those two orderings gives 1 / sum(p / mu) <= c <= sum(p mu); Lambda = n c / k.  So
   L = n / (k sum p/mu) (SPEC 3.3's rho = 1) and U = n sum(p mu) / k bound Lambda, and a
   rate below L is stable, one at or above U unstable.  With a speed rule (levels chosen
   by state) only the monotonicity of the recursion is left: n mu_min / k and
   n mu_max / k.
3. **Measurement** in between: a saturated run of the compiled simulator (every job
   present at time 0; the running maximum of the departure times is the clock), a fixed
   seed (``SATURATION_SEED``, so the decision never depends on the caller's seed) and
   fixed checkpoints of 512..4096 x 2^c jobs (at most ``MAX_TASKS`` core-tasks).  At each
   checkpoint the first eighth of the jobs is dropped and the rest split into 32 batches;
   their times per job give a t-interval at level ``LOOK_LEVEL`` (99.9% per look, so under
   1% over the at most 7 looks).  The run goes on until the interval for 1/Lambda excludes
   1/rate; a rate still inside it at the last checkpoint is refused as "cannot be shown
   stable".  The approximation (approximate, approximate_grid, tradeoff, optimize) looks
   at most ``QUICK_LOOKS`` = 3 times (~16 000 jobs): near the capacity, where its accuracy
   is poor anyway, it refuses a little sooner and stays fast on grids of many mixes.  Checkpoints are cached per system, so a decision is a fixed function of the
   system and the rate, however many decisions came before.

Cost: tiers 1-2 are O(1) (the k = 1 race O(C(n+s-1, s-1) s)); a measurement is
O(jobs x n) in compiled code, ~1 ms at the first checkpoint for n = 10, at most ~1 s.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from distalloc._compiled import queue_kernels
from distalloc._validation import ValidationError
from distalloc.queueing.mixes import distinct_speeds, race_k1

__all__ = ["Stability", "UnstableError", "stability", "check_stable", "saturation_bounds",
           "measure_saturation", "decide_rates", "measurement_seconds", "SECONDS_PER_TASK",
           "QUICK_LOOKS", "SATURATION_SEED", "MAX_TASKS", "LOOK_LEVEL"]

SATURATION_SEED = 2108_08199        # arXiv 2108.08199; any fixed constant would do
#: measured cost of one (core, job) step of the simulator, randomness included (~3e7 per
#: second here); used only to estimate run times before runs start
SECONDS_PER_TASK = 3.5e-8
MAX_TASKS = 2 ** 25                 # core-tasks of the longest saturated run (~1 s)
LOOK_LEVEL = 0.999                  # confidence of each look at a checkpoint
BATCHES = 32
#: looks of the quick measurement used by the approximation (approximate, approximate_grid,
#: tradeoff, optimize): at most 4 x the first checkpoint (~16 000 jobs); a rate it cannot
#: separate from the capacity is refused as "cannot be shown stable"
QUICK_LOOKS = 3
_CACHE_STEPS = 2 ** 22              # clock samples kept over all cached runs
_CACHE_RUNS = 64                    # and at most this many runs (an optimiser visits thousands
                                    # of mixes: summing over every cached run per call was
                                    # quadratic, 20 s of a 41 s `queue optimize`)


class UnstableError(ValidationError):
    """The system has no steady state at this rate (or cannot be shown to have one)."""


@dataclass(frozen=True)
class Stability:
    """How a system's stability was decided.

    ``capacity``: the saturation throughput Lambda (exact, or the measured estimate with its
    95% half-width ``capacity_ci``); ``lower``/``upper``: what is known for sure
    (equal to ``capacity`` for a closed form); ``source``: which tier decided
    ('single speed', 'k = 1 race', 'k = n', 'bound', 'measured'); ``stable``: rate <
    Lambda shown; ``measured_jobs``: length of the saturated run used (0 if none)."""

    rate: float
    capacity: float
    capacity_ci: float
    lower: float
    upper: float
    source: str
    stable: bool
    servers: int
    needed: int
    measured_jobs: int = 0

    def message(self) -> str:
        """The one-line refusal for an unstable system."""
        where = f"n = {self.servers}, k = {self.needed}"
        lam = f"rate {self.rate:.6g}"
        if self.source in ("single speed", "k = 1 race", "k = n"):
            form = {"single speed": "n mu / k", "k = 1 race": "1 / E[S] of the k = 1 race",
                    "k = n": "1 / sum_l p_l / mu_l"}[self.source]
            return (f"The system is unstable: {lam} >= saturation throughput "
                    f"{self.capacity:.6g} jobs per unit time ({form}; {where}).")
        if self.source == "bound":
            return (f"The system is unstable: {lam} >= {self.upper:.6g}, an upper bound on the "
                    f"saturation throughput ({where}).")
        run = f"saturated run of {self.measured_jobs} jobs; {where}"
        if self.rate >= self.upper:
            return (f"The system is unstable: {lam} >= the measured saturation throughput "
                    f"{self.capacity:.6g} +- {self.capacity_ci:.2g} jobs per unit time ({run}).")
        return (f"The system may be unstable: {lam} is within the uncertainty of the measured "
                f"saturation throughput {self.capacity:.6g} +- {self.capacity_ci:.2g} ({run}), "
                f"so it cannot be shown stable.")

    def to_dict(self) -> dict[str, Any]:
        return {"stable": self.stable, "capacity": self.capacity,
                "capacity_ci": self.capacity_ci, "capacity_source": self.source}


def _first_checkpoint(n: int) -> int:
    return min(4096, max(512, MAX_TASKS // (8 * n) // 256 * 256))


def measurement_seconds(n: int) -> float:
    """Typical time of one saturated-run decision (two checkpoints' worth of jobs)."""
    return 3 * _first_checkpoint(n) * n * SECONDS_PER_TASK


def saturation_bounds(n: int, k: int, speeds: np.ndarray, probs: np.ndarray,
                      rule: bool = False) -> tuple[float, float]:
    """(L, U) with L <= Lambda <= U (module docstring, tier 2)."""
    if rule:
        return n * float(speeds.min()) / k, n * float(speeds.max()) / k
    live = probs > 0
    return (n / (k * float(np.sum(probs[live] / speeds[live]))),
            n * float(np.sum(probs[live] * speeds[live])) / k)


def _closed_form(n: int, k: int, speeds: np.ndarray, probs: np.ndarray,
                 ) -> tuple[float, str] | None:
    """(Lambda, source) where a closed form is known; ``speeds``/``probs`` distinct live."""
    if speeds.size == 1:
        return n * float(speeds[0]) / k, "single speed"
    if k == 1:
        m1, _, _ = race_k1(n, speeds, probs)
        return 1.0 / m1, "k = 1 race"
    if k == n:
        return 1.0 / float(np.sum(probs / speeds)), "k = n"
    return None


# ------------------------------------------------------------------------------------------
# Tier 3: the saturated run
# ------------------------------------------------------------------------------------------
class _SaturatedRun:
    """A saturated run extended checkpoint by checkpoint; keeps the running maximum of the
    departure times at every ``grain`` jobs and each checkpoint's interval for 1/Lambda."""

    def __init__(self, n: int, k: int, speeds: np.ndarray, probs: np.ndarray | None,
                 rule_address: int = 0):
        self.n, self.k = n, k
        self.speeds = np.ascontiguousarray(speeds, dtype=float)
        s = self.speeds.size
        cum = np.cumsum(probs) if probs is not None else np.ones(s)
        cum[-1] = np.inf
        self.cum = cum
        self.rule = rule_address
        first = _first_checkpoint(n)
        self.checkpoints = [first]
        while self.checkpoints[-1] * 2 * n <= MAX_TASKS and len(self.checkpoints) < 7:
            self.checkpoints.append(self.checkpoints[-1] * 2)
        self.grain = first // 256
        self.rng = np.random.default_rng(SATURATION_SEED)
        self.core_free = np.zeros(n)
        self.clock = np.zeros(2)
        self.jobs = 0
        self.samples = [0.0]             # running max of departures after each grain
        self.running_max = 0.0
        self.looks: list[tuple[int, float, float]] = []   # (jobs, mean tau, half-width tau)

    @property
    def stored(self) -> int:
        return len(self.samples)

    def _extend(self, until: int) -> None:
        n, s = self.n, self.speeds.size
        sub = max(self.grain, (2 ** 21 // n) // self.grain * self.grain)
        dummy = np.zeros(s)
        batch = np.zeros(1)
        batch_i = np.zeros(1, dtype=np.int64)
        scratch = np.empty(4 * n)
        queue_buf = np.empty((2, n, 1))
        queue_state = np.zeros((3, n), dtype=np.int64)
        errors = np.zeros(4, dtype=np.int64)
        while self.jobs < until:
            B = min(sub, until - self.jobs)
            work = self.rng.standard_exponential((B, n))
            u = self.rng.random((B, n))
            dep = np.empty(B)
            queue_kernels.fork_join_chunk(
                np.zeros(B), work, u, self.cum, self.speeds, dummy, self.k, self.core_free,
                self.clock, self.jobs, 2 ** 62, 1, batch, batch, batch, batch, batch_i,
                np.zeros(s, dtype=np.int64), dummy.copy(), scratch, self.rule, queue_buf,
                queue_state, errors, dep, 0, True)
            if errors[0]:
                raise ValidationError(
                    f"The speed rule returned level {errors[3]} for core {errors[1]} (queue "
                    f"length {errors[2]}), outside 0..{s - 1} ({errors[0]} times in the "
                    f"saturated run).")
            acc = np.maximum.accumulate(np.maximum(dep, self.running_max))
            self.running_max = float(acc[-1])
            self.samples.extend(acc[self.grain - 1::self.grain].tolist())
            self.jobs += B

    def look(self, c: int) -> tuple[int, float, float]:
        """(jobs, mean time per job, half-width at LOOK_LEVEL) at checkpoint c."""
        while len(self.looks) <= c:
            m = self.checkpoints[len(self.looks)]
            self._extend(m)
            t = np.asarray(self.samples[: m // self.grain + 1])
            warm = m // 8 // self.grain
            edges = warm + (np.arange(BATCHES + 1) * (m // self.grain - warm)) // BATCHES
            tau = np.diff(t[edges]) / (np.diff(edges) * self.grain)
            half = (_t_quantile(0.5 + LOOK_LEVEL / 2) * tau.std(ddof=1)
                    / math.sqrt(BATCHES))
            self.looks.append((m, float(tau.mean()), float(half)))
        return self.looks[c]


_RUNS: OrderedDict[tuple, _SaturatedRun] = OrderedDict()


@lru_cache(maxsize=4)
def _t_quantile(q: float) -> float:
    """Student's t quantile with BATCHES - 1 degrees of freedom (scipy's ppf costs ~0.2 ms;
    an optimiser decides stability thousands of times)."""
    return float(stats.t.ppf(q, BATCHES - 1))


def _run_for(key: tuple, make) -> _SaturatedRun:
    run = _RUNS.pop(key, None) or make()
    _RUNS[key] = run
    while len(_RUNS) > _CACHE_RUNS:
        _RUNS.popitem(last=False)
    total = sum(r.stored for r in _RUNS.values())
    while total > _CACHE_STEPS and len(_RUNS) > 1:
        total -= _RUNS.popitem(last=False)[1].stored
    return run


def _looks(run: _SaturatedRun, max_looks: int | None) -> int:
    return len(run.checkpoints) if max_looks is None else min(max_looks, len(run.checkpoints))


def _decide_measured(run: _SaturatedRun, rate: float, max_looks: int | None = None,
                     ) -> tuple[bool, int, float, float, float]:
    """(stable, jobs, capacity, capacity 95% half-width, upper end) from the first
    checkpoint whose interval for 1/Lambda excludes 1/rate (or the last one looked at)."""
    looks = _looks(run, max_looks)
    for c in range(looks):
        m, tau, half = run.look(c)
        lo_tau, hi_tau = tau - half, tau + half
        decided = rate * hi_tau < 1.0 or rate * lo_tau >= 1.0
        if decided or c == looks - 1:
            ci95 = half / _t_quantile(0.5 + LOOK_LEVEL / 2) * \
                _t_quantile(0.975)
            upper = 1.0 / lo_tau if lo_tau > 0 else math.inf
            return rate * hi_tau < 1.0, m, 1.0 / tau, ci95 / tau ** 2, upper
    raise AssertionError("unreachable")  # pragma: no cover


def _decide_many(run: _SaturatedRun, rates: np.ndarray,
                 max_looks: int | None = None) -> np.ndarray:
    """:func:`_decide_measured`'s ``stable`` for many rates of one system at once (the same
    checkpoints, so the same decisions)."""
    stable = np.zeros(rates.size, dtype=bool)
    open_ = np.ones(rates.size, dtype=bool)
    looks = _looks(run, max_looks)
    for c in range(looks):
        _, tau, half = run.look(c)
        below = rates * (tau + half) < 1.0
        above = rates * (tau - half) >= 1.0
        last = c == looks - 1
        stable[open_ & below] = True
        open_ &= ~(below | above)
        if last or not open_.any():
            break
    return stable


def decide_rates(n: int, k: int, speeds: np.ndarray, probs: np.ndarray,
                 rates: np.ndarray, max_looks: int | None = None) -> np.ndarray:
    """``stability(ForkJoin(n, k, rate, speeds, probs=probs)).stable`` for an array of
    rates (``speeds``/``probs``: distinct live speeds), vectorised; the grid's door to the
    same decisions."""
    rates = np.asarray(rates, dtype=float)
    closed = _closed_form(n, k, speeds, probs)
    if closed is not None:
        return rates < closed[0]
    lower, upper = saturation_bounds(n, k, speeds, probs)
    stable = rates < lower
    band = ~stable & (rates < upper)
    if band.any():
        run = _run_for((n, k, speeds.tobytes(), probs.tobytes()),
                       lambda: _SaturatedRun(n, k, speeds, probs))
        stable[band] = _decide_many(run, rates[band], max_looks)
    return stable


def measure_saturation(n: int, k: int, speeds, probs=None, *, checkpoint: int = -1,
                       speed_rule=None) -> tuple[float, float, int]:
    """The measured saturation throughput at one checkpoint (default: the last):
    (estimate, 95% half-width, jobs).  Bypasses the closed forms (for tests and users who
    want the number).  ``speed_rule``: a :func:`compiled_speed_rule` (probs ignored)."""
    speeds = np.asarray(speeds, dtype=float)
    if speed_rule is None:
        probs = np.asarray(probs if probs is not None else np.full(speeds.size, 1 / speeds.size),
                           dtype=float)
        mu, p, _ = distinct_speeds(speeds, probs)
        run = _run_for((n, k, mu.tobytes(), p.tobytes()), lambda: _SaturatedRun(n, k, mu, p))
    else:
        run = _run_for((n, k, speeds.tobytes(), "rule", speed_rule.address),
                       lambda: _SaturatedRun(n, k, speeds, None, speed_rule.address))
    c = checkpoint % len(run.checkpoints)
    m, tau, half = run.look(c)
    ci95 = half / _t_quantile(0.5 + LOOK_LEVEL / 2) * _t_quantile(0.975)
    return 1.0 / tau, ci95 / tau ** 2, m


# ------------------------------------------------------------------------------------------
def stability(system, *, speed_rule=None, max_looks: int | None = None) -> Stability:
    """Decide whether ``system`` (a :class:`ForkJoin`) has a steady state at its rate.

    Parameters
    ----------
    system : ForkJoin
    speed_rule : SpeedRule, optional
        a :func:`compiled_speed_rule`: levels chosen by state instead of ``system.probs``.
    max_looks : int, optional
        stop a measurement after this many checkpoints (the approximation uses
        ``QUICK_LOOKS``); a rate still undecided then is "cannot be shown stable".

    Returns
    -------
    Stability

    Notes
    -----
    See the module docstring for the three tiers and their cost.  Used by ``approximate``,
    ``approximate_grid``, ``exact``, ``simulate``, ``tradeoff`` and ``optimize``.
    """
    n, k, lam = system.servers, system.needed, system.rate
    common = dict(rate=lam, servers=n, needed=k)
    if speed_rule is None:
        mu, p, _ = system.distinct
        closed = _closed_form(n, k, mu, p)
        if closed is not None:
            cap, source = closed
            return Stability(capacity=cap, capacity_ci=0.0, lower=cap, upper=cap,
                             source=source, stable=lam < cap, **common)
        lower, upper = saturation_bounds(n, k, mu, p)
        key = (n, k, mu.tobytes(), p.tobytes())
        make = lambda: _SaturatedRun(n, k, mu, p)  # noqa: E731
    else:
        mu = system.speeds
        lower, upper = saturation_bounds(n, k, mu, None, rule=True)
        key = (n, k, mu.tobytes(), "rule", speed_rule.address)
        make = lambda: _SaturatedRun(n, k, mu, None, speed_rule.address)  # noqa: E731
    mid = 0.5 * (lower + upper)
    if lam < lower:
        return Stability(capacity=mid, capacity_ci=upper - mid, lower=lower, upper=upper,
                         source="bound", stable=True, **common)
    if lam >= upper:
        return Stability(capacity=mid, capacity_ci=upper - mid, lower=lower, upper=upper,
                         source="bound", stable=False, **common)
    stable, jobs, cap, ci, up = _decide_measured(_run_for(key, make), lam, max_looks)
    return Stability(capacity=cap, capacity_ci=ci, lower=lower, upper=min(up, upper),
                     source="measured", stable=stable, measured_jobs=jobs, **common)


def check_stable(system, *, speed_rule=None, max_looks: int | None = None) -> Stability:
    """:func:`stability`, raising :class:`UnstableError` (one line) unless stable."""
    st = stability(system, speed_rule=speed_rule, max_looks=max_looks)
    if not st.stable:
        raise UnstableError(st.message())
    return st
