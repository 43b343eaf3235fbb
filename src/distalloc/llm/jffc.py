"""JFFC (Join-the-Fastest-Free-Chain) on composed chains: Theorem 4's bounds on the mean
response time and the discrete-event simulation (SPEC 1.10; 2604.14993 §3.2).

JFFC: an arrival takes a free slot on its client's fastest chain that has one (with client
groups, its group's chains first: :mod:`distalloc.llm.chain_groups`), else it waits in one
central FCFS queue; a finishing job's slot goes to the head of the queue; no migration.
The rule itself is ``_jffc_arrive``/``_jffc_complete`` in ``kernels/llm_core.pxd``
(shared with the online engine); the event loop is the online engine's
(``swarm_kernels.simulate``, see :mod:`distalloc.llm.swarm_chains`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from distalloc._validation import (ValidationError, as_float_array, as_int_array, check_number,
                                   check_real)
from distalloc.llm.limits import MAX_CHURN_EVENTS, MAX_COUNT, MAX_RPS, MIN_RPS
from distalloc.llm.chains import (DEFAULT_TARGET_LOAD, ChainComposition, compose_chains)
from distalloc.llm.scenario import Scenario
from distalloc.llm.simulation import SimulationResult
from distalloc.llm.swarm_chains import chain_times_ms
from distalloc.llm.workload import Workload

__all__ = ["jffc_bounds", "jffc_bounds_arrays", "simulate_chains", "chain_times_ms",
           "chain_groups_arrays", "response_curve"]


# ------------------------------------------------------------------------------------------
# Theorem 4
# ------------------------------------------------------------------------------------------
#: job slots Σ c_k the bounds are computed for (three float64 arrays of that length)
MAX_JOB_SLOTS = 10_000_000

def _mean_jobs(log_d: np.ndarray, lam: float, nu: float) -> float:
    """E[N] of the birth-death chain with birth rate lam, death rates exp(log_d[n-1]) for
    n = 1..C and nu beyond, in log space (Eqs. 16-18)."""
    C = log_d.size
    n = np.arange(C + 1)
    logw = n * math.log(lam) - np.concatenate(([0.0], np.cumsum(log_d)))   # log phi_n / phi_0
    rho = lam / nu
    top = logw.max()
    w = np.exp(logw - top)
    tail = w[C] / (1.0 - rho)                     # sum_{n >= C} phi_n / phi_0 (scaled)
    norm = w[:C].sum() + tail
    mean = (np.dot(n[:C], w[:C]) + w[C] * (rho / (1.0 - rho) ** 2 + C / (1.0 - rho))) / norm
    return float(mean)


def jffc_bounds_arrays(mu_per_s: np.ndarray, capacities: np.ndarray,
                       rate_per_s: float) -> tuple[float, float]:
    """Theorem 4 on validated arrays; (inf, inf) when λ >= ν = Σ c_k μ_k."""
    cap = np.asarray(capacities, dtype=np.int64)
    mu = np.asarray(mu_per_s, dtype=np.float64)
    keep = cap > 0
    mu, cap = mu[keep], cap[keep]
    nu = float(np.dot(mu, cap))
    lam = float(rate_per_s)
    if cap.size == 0 or lam >= nu:
        return math.inf, math.inf
    slots_total = int(cap.sum())
    if slots_total > MAX_JOB_SLOTS:     # O(C) memory and time below (issue 16)
        raise ValidationError(f"Theorem 4's bounds need one term per job slot: the chains' "
                              f"capacities sum to {slots_total} slots (about "
                              f"{slots_total * 40 / 1e9:.3g} GB), more than the limit of "
                              f"{MAX_JOB_SLOTS:g}.")
    order = np.lexsort((np.arange(mu.size), -mu))          # fastest first
    slots = np.repeat(mu[order], cap[order])              # one entry per job slot
    fast = np.cumsum(slots)                               # ν̄_n: n jobs in the fastest slots
    slow = np.cumsum(slots[::-1])                         # ν̲_n: n jobs in the slowest slots
    lower = _mean_jobs(np.log(fast), lam, nu) / lam
    upper = _mean_jobs(np.log(slow), lam, nu) / lam
    return lower, upper


def jffc_bounds(service_rates_per_s: Sequence[float], capacities: Sequence[int],
                rate_per_s: float) -> tuple[float, float]:
    """Theorem 4 of 2604.14993: lower and upper bounds on JFFC's mean response time (s).

    Parameters
    ----------
    service_rates_per_s : sequence of float
        μ_k = 1 / T_k of each chain (any order).
    capacities : sequence of int
        c_k, the concurrent jobs (job slots) of each chain.
    rate_per_s : float
        Poisson arrival rate λ.

    Returns
    -------
    (lower_s, upper_s) : tuple of float
        ``(inf, inf)`` when λ >= ν = Σ_k c_k μ_k (no stationary regime).

    Notes
    -----
    Exponential service (Exp(1) work x T_k), Poisson arrivals.  Grouping JFFC's CTMC states
    by the number of jobs n gives a birth-death chain with birth rate λ and an unknown death
    rate between ν̲_n (the n jobs in the slowest slots) and ν̄_n (in the fastest); solving it
    with ν̄ gives the lower bound, with ν̲ the upper (Eqs. 14-18); both are E[N]/λ (Little).
    With one chain, or equal rates, both equal the M/M/C (Erlang C) response time.
    Computed in log space (products of λ/d_i over- or underflow for C in the hundreds);
    O(C + K log K) for C = Σ c_k job slots.

    Examples
    --------
    >>> from distalloc.llm import jffc_bounds
    >>> [round(x, 4) for x in jffc_bounds([1.0], [3], 2.0)]      # M/M/3, Erlang C
    [1.4444, 1.4444]
    >>> [round(x, 3) for x in jffc_bounds([1.0, 0.25], [2, 4], 1.5)]
    [1.348, 2.898]
    """
    # shapes and types before any arithmetic (issue 16): ragged lists, dicts, strings
    mu = as_float_array(service_rates_per_s, "service_rates_per_s", ndim=1)
    cap = as_int_array(capacities, "capacities", shape=(mu.size,), low=0, high=MAX_COUNT)
    for k in range(mu.size):
        check_number(float(mu[k]), f"service_rates_per_s[{k}]", low=0, low_open=True)
    lam = check_real(rate_per_s, "rate_per_s", low=MIN_RPS, high=MAX_RPS)
    # ν = Σ c_k μ_k and the partial sums of the slots' rates must stay finite
    with np.errstate(over="ignore"):
        nu = float(np.dot(mu, cap.astype(np.float64)))
    if not np.isfinite(nu):
        raise ValidationError(f"The total service rate Σ c_k μ_k of 'service_rates_per_s' and "
                              f"'capacities' must be finite. Got {nu!r} instead.")
    return jffc_bounds_arrays(mu, cap, lam)


# ------------------------------------------------------------------------------------------
# Simulation
# ------------------------------------------------------------------------------------------
def chain_groups_arrays(comp: ChainComposition) -> tuple[np.ndarray, np.ndarray]:
    """(home, client_group) for the JFFC kernels: the group each chain was composed for
    (-1 shared) and each client's group (-1 none); both empty without client groups."""
    if comp.client_groups is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return (np.array([ch.group for ch in comp.chains], dtype=np.int64),
            np.ascontiguousarray(comp.client_groups.labels, dtype=np.int64))


def simulate_chains(scenario: Scenario, method: str, workload: Workload, factor: np.ndarray,
                    delay_s: float, *, reservation: Any = "auto",
                    target_load: float = DEFAULT_TARGET_LOAD, placement=None,
                    design_rate_per_s: float | None = None,
                    composition: ChainComposition | None = None,
                    client_groups: Any = "auto",
                    service: str = "model", churn: tuple[float, float] | None = None,
                    churn_key: int = 0, max_attempts: int = 10_000, dispatch: Any = None,
                    max_churn_events: int = MAX_CHURN_EVENTS,
                    **unknown: Any) -> SimulationResult:
    """Serve ``workload`` by JFFC on the chains of ``method`` ('chains' or 'jffc-whole').

    Called by :func:`distalloc.llm.simulate` (which draws the workload, the service
    factors and the churn key); see it for the parameters.  The chains are composed for
    the realised client mix and ``design_rate_per_s`` (default: the workload's rate),
    unless ``composition`` is given; chains are composed and ranked for the workload's mean
    output length (l̄_out of the paper; the scenario's static length for Poisson
    workloads).  Job r of client c on chain k runs (prefill + (l_out,r - 1) x per-token
    time) x factor[r]; the factor is 1, the log-normal noise, and/or an Exp(1) job size.
    ``client_groups`` ('auto', 'one', 'each' or a label per client) is passed to
    :func:`~distalloc.llm.chains.compose_chains`.

    The event loop is the online engine's (``swarm_kernels.simulate`` around the 'jffc'
    engine of :func:`~distalloc.llm.swarm_chains.chain_engine`), so every decision is the
    one :class:`~distalloc.llm.Swarm` makes: an arrival takes a free slot by JFFC (or the
    user's ``dispatch`` score) or waits in the central queue, a completion hands its slot
    to the queue's head; with ``churn`` (MTBF s, MTTR s) a failure removes the chains
    through the server (their jobs re-routed, progress lost) and a repair re-joins by the
    chain method's rule.
    """
    if unknown:
        raise ValidationError(f"Unknown option '{sorted(unknown)[0]}' for the chain methods "
                              f"(reservation, target_load, placement, design_rate_per_s, "
                              f"client_groups).")
    from distalloc.llm.simulation import run_event_loop
    from distalloc.llm.swarm_chains import chain_engine
    if design_rate_per_s is not None:
        design_rate_per_s = check_real(design_rate_per_s, "design_rate_per_s", low=MIN_RPS,
                                       high=MAX_RPS)
    mean_tokens = float(np.mean(workload.output_tokens))
    if composition is None:
        counts = np.bincount(workload.client, minlength=scenario.num_clients)
        rate = (design_rate_per_s if design_rate_per_s is not None else workload.rate_per_s)
        if not math.isfinite(rate):
            raise ValidationError("The chains need a finite design rate: give "
                                  "design_rate_per_s (one request has no rate).")
        composition = compose_chains(scenario, method, reservation=reservation,
                                     rate_per_s=rate, target_load=target_load,
                                     placement=placement, client_weights=counts / counts.sum(),
                                     output_tokens=mean_tokens,
                                     client_groups=client_groups)
    comp = composition
    engine = chain_engine(scenario, comp, rank_tokens=mean_tokens, dispatch=dispatch)
    extra = {**{k: v for k, v in comp.to_dict().items() if k != "chains"},
             "service": service}
    if dispatch is not None:
        extra["dispatch"] = str(dispatch)
    return run_event_loop(scenario, method, engine, workload, factor, delay_s,
                          comp.placement, None, extra, churn, churn_key, max_attempts,
                          max_churn_events)


def response_curve(scenario: Scenario, workload: Workload, factor: np.ndarray,
                   rate_per_s: float, target_load: float = DEFAULT_TARGET_LOAD, *,
                   client_weights=None, max_points: int = 30,
                   max_c: int | None = None) -> dict[str, np.ndarray]:
    """Mean response time against the reservation c: Theorem 4's bounds at the first c of
    every run of c with the same placement (an unpruned scan), and the simulated JFFC mean (on ``workload`` with ``factor``) at up to
    ``max_points`` of the stable c, always including the lower bound's minimiser; for the
    client grouping the search picks."""
    from distalloc.llm.chains import _gbp_cr, _gca, search_reservation
    s = search_reservation(scenario, rate_per_s, target_load, client_weights=client_weights,
                           prune=False, max_c=max_c,
                           output_tokens=float(np.mean(workload.output_tokens)))
    gi = s.best_grouping if s.best_grouping is not None else 0
    groups = s.groupings[gi]
    mine = np.flatnonzero(s.grouping == gi)
    status = np.array(s.status)[mine]
    ok = np.flatnonzero(status == "ok")
    pick = ok if ok.size <= max_points else ok[np.unique(
        np.round(np.linspace(0, ok.size - 1, max_points)).astype(int))]
    if s.best is not None:
        pick = np.union1d(pick, np.flatnonzero(s.reservation[mine] == s.best))
    sim = np.full(mine.size, np.nan)
    for i in pick:
        c = int(s.reservation[mine][i])
        pl = _gbp_cr(scenario, c, rate_per_s, target_load, groups)
        chains = _gca(scenario, pl, groups.shared_alpha_ms, groups.beta_ms)
        comp = ChainComposition("chains", c, pl, chains, rate_per_s, target_load,
                                np.asarray(client_weights, dtype=float), math.nan, math.nan,
                                None, 0.0, client_groups=groups)
        res = simulate_chains(scenario, "chains", workload, factor, 0.0, composition=comp)
        sim[i] = float(np.nanmean(res.end_s - workload.arrival_s))
    return {"reservation": s.reservation[mine], "lower_s": s.lower_s[mine],
            "upper_s": s.upper_s[mine], "simulated_s": sim, "best": s.best,
            "status": status}
