"""Simulation of (n, k) fork-join systems with speed levels (SPEC 3.3)."""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from scipy import stats

from distalloc._compiled import queue_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.queueing.model import ForkJoin, QueueMetrics

__all__ = ["simulate"]

CHUNK_JOBS = 65_536


def _run(system: ForkJoin, num_jobs: int, rng: np.random.Generator, warmup: int,
         batches: int) -> dict[str, np.ndarray]:
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
    clock = 0.0
    done = 0
    while done < num_jobs:
        B = min(CHUNK_JOBS, num_jobs - done)
        gaps = rng.standard_exponential(B) / system.rate
        work = rng.standard_exponential((B, n))
        u = rng.random((B, n))
        clock = queue_kernels.fork_join_chunk(
            gaps, work, u, cum, system.speeds, system.powers, system.needed, core_free, clock,
            done, warmup, batch_size, acc["response"], acc["busy_time"], acc["busy_energy"],
            acc["first_arrival"], jobs, completions, level_busy, scratch)
        done += B
    return {**acc, "jobs": jobs, "completions": completions, "level_busy": level_busy,
            "end_clock": np.array([clock])}


def _half_width(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.inf
    return float(stats.t.ppf(0.975, x.size - 1) * np.std(x, ddof=1) / math.sqrt(x.size))


def simulate(system: ForkJoin, num_jobs: int = 1_000_000, *, seed: Any = 0,
             replications: int = 1, batches: int = 32,
             warmup_fraction: float = 0.1) -> QueueMetrics:
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

    Returns
    -------
    QueueMetrics
        ``mean_jobs`` (= rate x mean response, Little), ``mean_response``,
        ``energy_per_job`` (busy energy + idle power x idle core-time), ``mean_power``,
        their ``*_ci`` half-widths, and ``completion_fraction`` per speed level.

    Notes
    -----
    O(num_jobs x n) in a compiled recursion (no event heap: every core serves the same job
    sequence FCFS).  Randomness comes from numpy's Generator in chunks of 65 536 jobs.
    """
    num_jobs = check_number(num_jobs, "num_jobs", low=10, integer=True)
    replications = check_number(replications, "replications", low=1, integer=True)
    batches = check_number(batches, "batches", low=2, integer=True)
    warm = check_number(warmup_fraction, "warmup_fraction", low=0, high=0.9)
    rng = as_generator(seed)
    t0 = time.perf_counter()
    warmup = int(warm * num_jobs)
    if num_jobs - warmup < batches:
        raise ValidationError(f"The 'num_jobs' parameter must leave at least {batches} jobs after "
                              f"warm-up. Got {num_jobs} instead.")
    runs = [_run(system, num_jobs, rng, warmup, 1 if replications > 1 else batches)
            for _ in range(replications)]
    lam, n, idle = system.rate, system.servers, system.idle_power

    def per_group(run):
        jobs = run["jobs"].astype(float)
        resp = run["response"] / jobs
        # time spanned by each batch: from its first arrival to the next batch's first
        ends = np.append(run["first_arrival"][1:], run["end_clock"])
        span = ends - run["first_arrival"]
        energy = (run["busy_energy"] + idle * np.maximum(n * span - run["busy_time"], 0)) / jobs
        return resp, energy, run["busy_energy"].sum() + idle * max(
            n * (run["end_clock"][0] - run["first_arrival"][0]) - run["busy_time"].sum(), 0)

    resp_groups, energy_groups = [], []
    total_jobs = total_energy = 0.0
    completions = np.zeros(system.num_levels)
    for run in runs:
        r, e, tot_e = per_group(run)
        resp_groups.append(r)
        energy_groups.append(e)
        total_jobs += run["jobs"].sum()
        total_energy += tot_e
        completions += run["completions"]
    resp = np.concatenate(resp_groups)
    energy = np.concatenate(energy_groups)
    mean_resp = float(sum(run["response"].sum() for run in runs) / total_jobs)
    energy_per_job = float(total_energy / total_jobs)
    return QueueMetrics(
        method="simulate", mean_jobs=lam * mean_resp, mean_response=mean_resp,
        energy_per_job=energy_per_job, mean_power=lam * energy_per_job,
        completion_fraction=completions / completions.sum(),
        extra={"mean_jobs_ci": lam * _half_width(resp), "mean_response_ci": _half_width(resp),
               "energy_per_job_ci": _half_width(energy),
               "mean_power_ci": lam * _half_width(energy), "load": system.load,
               "num_jobs": int(total_jobs), "wall_s": time.perf_counter() - t0})
