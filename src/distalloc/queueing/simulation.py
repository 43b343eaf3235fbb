"""Simulation of (n, k) fork-join systems with speed levels (SPEC 3.3)."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from scipy import stats

from distalloc._compiled import queue_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.queueing.mixes import check_max_seconds
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.rules import compiled_speed_rule
from distalloc.queueing.stability import SECONDS_PER_TASK, Stability, UnstableError, stability

__all__ = ["simulate", "SECONDS_PER_TASK", "DEFAULT_MAX_SECONDS", "TREND_LEVEL"]

#: default limit on the estimated run time of one simulate() call
DEFAULT_MAX_SECONDS = 3600.0
#: a trend test p-value below this marks the run as not a steady state
TREND_LEVEL = 1e-3
_CHUNK_CELLS = 2 ** 22             # (jobs x cores) per chunk of pre-drawn randomness


def new_queues(n: int, cap: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Empty queue-length buffers for the kernel: (2, n, cap) leave times (ring, heap) and
    (3, n) state (ring head, ring count, heap size); cap a power of two."""
    return np.empty((2, n, cap)), np.zeros((3, n), dtype=np.int64)


def grow_queues(buf: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The buffers at twice the capacity, each ring unrolled to start at 0."""
    _, n, cap = buf.shape
    out = np.empty((2, n, 2 * cap))
    for i in range(n):
        idx = (state[0, i] + np.arange(state[1, i])) & (cap - 1)
        out[0, i, : idx.size] = buf[0, i, idx]
        out[1, i, : state[2, i]] = buf[1, i, : state[2, i]]
    state[0] = 0
    return out


def _run(system: ForkJoin, num_jobs: int, rng: np.random.Generator, warmup: int,
         batches: int, rule_address: int) -> dict[str, np.ndarray]:
    n, s = system.servers, system.num_levels
    cum = np.cumsum(system.probs)
    cum[-1] = np.inf  # guard against rounding: the last level takes the rest
    batch_size = max((num_jobs - warmup) // batches, 1)
    acc = {name: np.zeros(batches) for name in
           ("response", "busy_time", "busy_energy", "first_arrival")}
    jobs = np.zeros(batches, dtype=np.int64)
    completions = np.zeros(s, dtype=np.int64)
    level_busy = np.zeros(s)
    core_free = np.zeros(n)
    scratch = np.empty(4 * n)
    clock = np.zeros(2)                         # last arrival, latest departure
    queue_buf, queue_state = new_queues(n, 64 if rule_address else 1)
    errors = np.zeros(4, dtype=np.int64)
    no_departures = np.empty(0)
    chunk = max(1, min(65_536, _CHUNK_CELLS // n))
    done = 0
    while done < num_jobs:
        B = min(chunk, num_jobs - done)
        gaps = rng.standard_exponential(B) / system.rate
        work = rng.standard_exponential((B, n))
        u = rng.random((B, n))
        start = 0
        while start < B:
            start = queue_kernels.fork_join_chunk(
                gaps, work, u, cum, system.speeds, system.powers, system.needed, core_free,
                clock, done, warmup, batch_size, acc["response"], acc["busy_time"],
                acc["busy_energy"], acc["first_arrival"], jobs, completions, level_busy,
                scratch, rule_address, queue_buf, queue_state, errors, no_departures, start)
            if start < B:                       # a queue-length buffer is full: grow it
                queue_buf = grow_queues(queue_buf, queue_state)
        if errors[0]:
            raise ValidationError(
                f"The speed rule returned level {errors[3]} for core {errors[1]} (queue length "
                f"{errors[2]}), outside 0..{s - 1} ({errors[0]} times in this run).")
        done += B
    return {**acc, "jobs": jobs, "completions": completions, "level_busy": level_busy,
            "end_clock": clock.copy()}


def _half_width(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.inf
    return float(stats.t.ppf(0.975, x.size - 1) * np.std(x, ddof=1) / math.sqrt(x.size))


def simulate(system: ForkJoin, num_jobs: int = 1_000_000, *, seed: Any = 0,
             replications: int = 1, batches: int = 32, warmup_fraction: float = 0.1,
             speed_rule: Any = None, transient: bool = False,
             max_seconds: float | None = DEFAULT_MAX_SECONDS) -> QueueMetrics:
    """Simulate ``num_jobs`` jobs (per replication) and estimate the metrics with 95%
    confidence half-widths.

    Parameters
    ----------
    system : ForkJoin
    num_jobs : int
        jobs per replication, the first ``warmup_fraction`` of them discarded.
    seed : int or Generator
    replications : int
        1: batch means over ``batches`` batches of one long run; > 1: independent
        replications (each its own warm-up), the CI taken across them.
    speed_rule : SpeedRule or numba.cfunc, optional
        choose each task's level by state (:func:`compiled_speed_rule`) instead of
        ``system.probs``; ``system.speeds``/``powers`` give the levels.
    transient : bool
        run even if the system is unstable (a transient study); the result then says
        ``steady_state: False``.  Default: refuse an unstable system.
    max_seconds : float or None
        refuse runs whose estimated time (``SECONDS_PER_TASK`` per core and job) exceeds
        this; None: no limit.

    Returns
    -------
    QueueMetrics
        ``mean_jobs`` (= rate x mean response, Little), ``mean_response``,
        ``energy_per_job`` (busy energy + idle power x idle core-time), ``mean_power``
        (energy over the time from the first measured arrival to the last departure, so
        never above what the cores can draw), their ``*_ci`` half-widths, and
        ``completion_fraction`` per speed level.  In ``extra``: the stability decision
        (``stable``, ``capacity``, ``capacity_ci``, ``capacity_source``), ``trend_p_value``
        (Kendall's tau test for an increasing trend of the batch-mean response times,
        one-sided) and ``steady_state`` (stable and no trend at level 1e-3).

    Raises
    ------
    UnstableError
        the rate is not below the saturation throughput (:func:`stability`: closed form
        where known, else bounds or a short saturated run), unless ``transient``.
    ValidationError
        bad parameters, a run over ``max_seconds``, a speed rule returning a bad level.

    Notes
    -----
    O(num_jobs x n) in a compiled recursion (no event heap: every core serves the same job
    sequence FCFS; with a speed rule each core also keeps its tasks' leave times for the
    queue length: a FIFO ring, and a heap for tasks purged while queued).  Randomness comes from numpy's Generator in
    chunks of at most 65 536 jobs (fewer for large n, so memory stays bounded).

    Examples
    --------
    >>> from distalloc.queueing import ForkJoin, simulate
    >>> m = simulate(ForkJoin(1, 1, 0.5), 200_000, seed=1)   # M/M/1: E[N] = 1
    >>> abs(m.mean_jobs - 1.0) < 4 * m.extra["mean_jobs_ci"]
    True
    """
    num_jobs = check_number(num_jobs, "num_jobs", low=10, high=2 ** 62, integer=True)
    replications = check_number(replications, "replications", low=1, high=10 ** 6,
                                integer=True)
    batches = check_number(batches, "batches", low=2, high=10 ** 6, integer=True)
    warm = check_number(warmup_fraction, "warmup_fraction", low=0, high=0.9)
    if not isinstance(transient, (bool, np.bool_)):
        raise ValidationError(f"The 'transient' parameter must be a bool. Got {transient!r} "
                              f"instead.")
    rule = compiled_speed_rule(speed_rule) if speed_rule is not None else None
    warmup = int(warm * num_jobs)
    if num_jobs - warmup < batches:
        raise ValidationError(f"The 'num_jobs' parameter must leave at least {batches} jobs after "
                              f"warm-up. Got {num_jobs} instead.")
    n = system.servers
    est = float(num_jobs) * replications * n * SECONDS_PER_TASK
    max_seconds = check_max_seconds(max_seconds)
    if max_seconds is not None and est > max_seconds:
        raise ValidationError(
            f"simulate() of {num_jobs:.3g} jobs x {replications} replication(s) on {n} cores "
            f"needs about {est:.3g} s (~{SECONDS_PER_TASK * 1e9:.0f} ns per task), over the "
            f"limit of {max_seconds:g} s; raise it with max_seconds (--max-seconds).")
    st: Stability = stability(system, speed_rule=rule)
    if not st.stable and not transient:
        raise UnstableError(st.message() + " For a transient study pass transient=True "
                            "(--transient).")
    rng = as_generator(seed)
    t0 = time.perf_counter()
    runs = [_run(system, num_jobs, rng, warmup, batches, rule.address if rule else 0)
            for _ in range(replications)]
    lam, idle = system.rate, system.idle_power

    def per_batch(run):
        jobs = np.maximum(run["jobs"], 1).astype(float)
        resp = run["response"] / jobs
        # time spanned by each batch: from its first arrival to the next batch's first
        ends = np.append(run["first_arrival"][1:], run["end_clock"][0])
        span = ends - run["first_arrival"]
        energy = (run["busy_energy"] + idle * np.maximum(n * span - run["busy_time"], 0)) / jobs
        return resp, energy

    def window(run):
        """(energy, time) from the first measured arrival to the last departure."""
        span = run["end_clock"][1] - run["first_arrival"][0]
        busy = run["busy_time"].sum()
        return run["busy_energy"].sum() + idle * max(n * span - busy, 0.0), span

    resp_b = np.array([per_batch(run)[0] for run in runs])        # (replications, batches)
    energy_b = np.array([per_batch(run)[1] for run in runs])
    if replications > 1:     # CI across replications, each summarised by its own mean
        weights = np.array([run["jobs"] for run in runs], dtype=float)
        resp_groups = (resp_b * weights).sum(axis=1) / weights.sum(axis=1)
        energy_groups = (energy_b * weights).sum(axis=1) / weights.sum(axis=1)
    else:
        resp_groups, energy_groups = resp_b[0], energy_b[0]
    total_jobs = float(sum(run["jobs"].sum() for run in runs))
    windows = np.array([window(run) for run in runs])
    completions = np.sum([run["completions"] for run in runs], axis=0)
    mean_resp = float(sum(run["response"].sum() for run in runs) / total_jobs)
    energy_per_job = float(windows[:, 0].sum() / total_jobs)
    mean_power = float(windows[:, 0].sum() / windows[:, 1].sum())
    trend = stats.kendalltau(np.arange(batches), resp_b.mean(axis=0), alternative="greater")
    trend_p = float(trend.pvalue) if np.isfinite(trend.pvalue) else 1.0
    return QueueMetrics(
        method="simulate", mean_jobs=lam * mean_resp, mean_response=mean_resp,
        energy_per_job=energy_per_job, mean_power=mean_power,
        completion_fraction=completions / max(completions.sum(), 1),
        extra={"mean_jobs_ci": lam * _half_width(resp_groups),
               "mean_response_ci": _half_width(resp_groups),
               "energy_per_job_ci": _half_width(energy_groups),
               "mean_power_ci": lam * _half_width(energy_groups), "load": system.load,
               **st.to_dict(), "trend_p_value": trend_p,
               "steady_state": bool(st.stable and trend_p >= TREND_LEVEL),
               **({"speed_rule": rule.name} if rule else {}),
               "num_jobs": int(total_jobs), "wall_s": time.perf_counter() - t0})
