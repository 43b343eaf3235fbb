"""Online serving: CG-BP + WS-RR, PETALS's online behaviour, and a discrete-event
simulator of sessions on a fixed placement (SPEC 1.7-1.9).

A :class:`Workload` (Poisson or trace replay) is drawn once from the seed, so every method
run with that seed sees the same arrivals and the same service-time noise.  The placement
is chosen at the slow time scale (CG-BP with a planned |R|, PETALS's join rule, or the
MILP), then the compiled event loop routes each request at arrival
(+ ``allocation_delay_s``) and holds its cache on every server of its chain until it
completes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from distalloc._compiled import llm_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.llm.model import Placement
from distalloc.llm.placement import (cg_bp_placement, conservative_block_counts,
                                     petals_block_counts, petals_placement)
from distalloc.llm.routing import (PETALS_NO_CACHE_PENALTY_MS, petals_costs,
                                   request_time_costs, shortest_routes)
from distalloc.llm.scenario import Scenario
from distalloc.llm.workload import (Workload, client_probs, poisson_workload, trace_workload,
                                    workload_from_args)

__all__ = ["Workload", "poisson_workload", "trace_workload", "SimulationResult", "simulate",
           "choose_planned_requests", "max_planned_requests", "ONLINE_METHODS",
           "parse_allocation_delay", "SERVICE_MODELS"]

#: method -> (placement rule, routing rule)
ONLINE_METHODS = {
    "cg-bprr": ("cg-bp", "ws-rr"),
    "petals": ("petals", "petals"),
    "petals-cg-order": ("petals-cg-order", "petals"),
    "petals-cg-counts": ("petals-cg-counts", "petals"),
    "petals-opt-routing": ("petals", "ws-rr"),
    "milp": ("milp", "ws-rr"),
    # chain composition (SPEC 1.10): served by distalloc.llm.jffc, see simulate()
    "chains": ("gbp-cr", "jffc"),
    "jffc-whole": ("whole", "jffc"),
}
#: service-time models of every method: the performance model, or Exp(1) work x model time
SERVICE_MODELS = ("model", "exponential")
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0


# ------------------------------------------------------------------------------------------
# Planned concurrency for CG-BP (SPEC 1.7)
# ------------------------------------------------------------------------------------------
def max_planned_requests(scenario: Scenario, limit: int = 1 << 20) -> int:
    """R_max: the largest |R| for which the greedy placement still covers every block
    (doubling, then bisection; 0 if not even |R| = 1 is covered)."""
    def ok(R):
        return cg_bp_placement(scenario, R).feasible
    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _request_time_s(scenario: Scenario, placement: Placement, probs: np.ndarray) -> float:
    alpha, beta = request_time_costs(scenario)
    best = shortest_routes(placement, scenario.num_blocks, alpha, beta)
    return float(np.dot(probs, best.cost)) / 1000.0


def choose_planned_requests(scenario: Scenario, rate_per_s: float, client_weights=None,
                            max_iter: int = 100) -> int:
    """The default design parameter |R| = min(round(λ T1 + sqrt(λ T1)), R_max), iterated
    from |R| = 1 to a fixed point (T1, the request time without waiting, depends on the
    placement, which depends on |R|)."""
    probs = client_probs(scenario, client_weights)
    r_max = max_planned_requests(scenario)
    if r_max == 0:
        raise ValidationError("No |R| >= 1 lets CG-BP cover every block: the servers cannot "
                              "host the model with cache for one session.")
    R, seen = 1, set()
    for _ in range(max_iter):
        cg = cg_bp_placement(scenario, R)
        load = rate_per_s * _request_time_s(scenario, cg.placement, probs)
        nxt = max(1, min(int(round(load + math.sqrt(load))), r_max))
        if nxt == R or nxt in seen:
            return max(R, nxt) if nxt in seen else R
        seen.add(R)
        R = nxt
    return R


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------
@dataclass(eq=False)
class SimulationResult:
    """Per-request arrays (seconds) and summaries of one simulation run.

    ``token_s`` is the average per-token time (completion - arrival) / output tokens;
    ``ttft_s`` the time to first token from arrival; ``wait_s`` the time between the
    routing decision (arrival + allocation delay) and the session's start (memory waits
    and back-off).  Dropped requests (never served) are NaN and counted in ``dropped``.
    """

    method: str
    workload: Workload
    placement: Placement
    planned_requests: int | None
    allocation_delay_s: float
    start_s: np.ndarray
    end_s: np.ndarray
    first_token_s: np.ndarray
    wait_s: np.ndarray
    retries: np.ndarray
    path_offset: np.ndarray
    path_len: np.ndarray
    chains: np.ndarray
    events: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def served(self) -> np.ndarray:
        return ~np.isnan(self.end_s)

    @property
    def dropped(self) -> int:
        return int(np.sum(~self.served))

    @property
    def token_s(self) -> np.ndarray:
        return (self.end_s - self.workload.arrival_s) / self.workload.output_tokens

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.workload.arrival_s

    @property
    def response_s(self) -> np.ndarray:
        """Completion - arrival (waiting + service), seconds."""
        return self.end_s - self.workload.arrival_s

    def route(self, r: int) -> list[int]:
        o = self.path_offset[r]
        return [] if o < 0 else self.chains[o: o + self.path_len[r]].tolist()

    def to_dict(self) -> dict[str, Any]:
        """The ``llm simulate --json`` contract keys, plus a few more."""
        ok = self.served
        tok = self.token_s[ok]

        def mean(x):
            return float(np.mean(x)) if x.size else None
        return {
            "method": self.method,
            "num_requests": int(ok.sum()),
            "mean_token_s": mean(tok),
            "mean_ttft_s": mean(self.ttft_s[ok]),
            "mean_wait_s": mean(self.wait_s[ok]),
            "p50_token_s": float(np.percentile(tok, 50)) if tok.size else None,
            "p95_token_s": float(np.percentile(tok, 95)) if tok.size else None,
            "mean_response_s": mean(self.response_s[ok]),
            "p95_response_s": (float(np.percentile(self.response_s[ok], 95)) if tok.size
                               else None),
            "dropped": self.dropped,
            "mean_retries": float(np.mean(self.retries)),
            "planned_requests": self.planned_requests,
            "allocation_delay_s": self.allocation_delay_s,
            "events": self.events,
            "wall_s": self.wall_s,
            **self.extra,
        }


# ------------------------------------------------------------------------------------------
# The simulator
# ------------------------------------------------------------------------------------------
def parse_allocation_delay(spec: Any, method: str) -> float:
    """``allocation_delay_s`` as a number, a mapping method -> seconds, or a string
    ``"petals=250,cg-bprr=60"`` (methods not named get 0)."""
    if spec is None:
        return 0.0
    if isinstance(spec, str):
        table: dict[str, Any] = {}
        try:
            return check_number(float(spec), "allocation_delay", low=0)
        except ValueError:
            pass
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValidationError(f"The 'allocation_delay' parameter must be seconds or "
                                      f"'method=seconds,...'. Got {spec!r} instead.")
            try:
                table[name.strip()] = float(value)
            except ValueError:
                raise ValidationError(f"The 'allocation_delay' parameter has a bad value for "
                                      f"{name.strip()!r}: {value!r}.") from None
        spec = table
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(ONLINE_METHODS))
        if unknown:
            raise ValidationError(f"The 'allocation_delay' parameter names unknown method "
                                  f"{unknown[0]!r} (known: {', '.join(ONLINE_METHODS)}).")
        return check_number(spec.get(method, 0.0), f"allocation_delay[{method}]", low=0)
    return check_number(spec, "allocation_delay", low=0)


def _placement_for(scenario: Scenario, rule: str, rng: np.random.Generator, planned: int | None,
                   workload: Workload, time_limit_s: float):
    info: dict[str, Any] = {}
    if rule == "cg-bp":
        cg = cg_bp_placement(scenario, planned)
        if not cg.feasible:
            raise ValidationError(f"CG-BP cannot place the model for |R| = {planned}: {cg.reason}")
        return cg.placement, info
    if rule == "milp":
        from distalloc.llm.milp import solve_milp
        plan = solve_milp(scenario.with_requests(planned), time_limit_s=time_limit_s)
        if not plan.feasible:   # proven infeasible, or nothing found in time by anyone
            raise ValidationError(f"The MILP found no placement for |R| = {planned} "
                                  f"(status {plan.status}): {plan.reason}")
        # at the time limit this is the best placement known (the heuristics' at least)
        info.update(milp_status=plan.status, milp_gap=plan.gap, milp_bound_ms=plan.bound_ms)
        return plan.placement, info
    if rule == "petals-cg-order":
        order = cg_bp_placement(scenario, planned).order
    else:
        order = rng.permutation(scenario.num_servers)
    counts = (conservative_block_counts(scenario, planned) if rule == "petals-cg-counts"
              else petals_block_counts(scenario))
    placement, thr = petals_placement(scenario, order, counts)
    if not placement.covers_all_blocks(scenario.num_blocks):
        b = int(np.flatnonzero(thr == 0)[0])
        raise ValidationError(f"PETALS's placement leaves block {b} unserved.")
    info["join_order"] = [int(j) for j in order]
    return placement, info


def simulate(scenario: Scenario, method: str = "cg-bprr", *, rate_per_s: float | None = None,
             num_requests: int | None = None, client_weights=None, trace: str | None = None,
             time_scale: float | None = None, planned_requests: int | None = None,
             allocation_delay_s: Any = 0.0, noise: float = 0.0, seed: Any = 0,
             max_attempts: int = 10_000, time_limit_s: float = 60.0,
             workload: Workload | None = None, service: str = "model",
             **chain_options: Any) -> SimulationResult:
    """Simulate online serving of ``scenario`` with ``method``.

    Parameters
    ----------
    scenario : Scenario
    method : str
        'cg-bprr' (CG-BP placement, WS-RR routing), 'petals' (random join order, Dijkstra
        with a 10 s no-cache penalty, back-off 1, 2, 4 ... 60 s with re-routing),
        'petals-cg-order', 'petals-cg-counts', 'petals-opt-routing' (PETALS placement,
        WS-RR routing), 'milp' (exact placement for |R| requests, WS-RR; small instances).
    rate_per_s, num_requests, client_weights : Poisson workload (defaults from the
        scenario's workload section).
    trace, time_scale : replay a trace instead (SPEC 1.9).
    planned_requests : int, optional
        CG-BP's design parameter |R|; default: the fixed point of SPEC 1.7.
    allocation_delay_s : float, mapping or str
        fixed delay before a session is set up, per method ("petals=250,cg-bprr=60");
        0 shows the algorithms alone, the paper's simulator used 250 s / 60 s.
    noise : float
        sigma of a mean-one log-normal factor on every service time (0: the model exactly).
    seed : int
        draws, in this order, the arrivals, the noise and PETALS's join order, so methods
        run with one seed see the same arrivals.
    workload : Workload, optional
        use these arrivals instead of drawing them.
    service : {'model', 'exponential'}
        'model': service times from the performance model (times the noise factor);
        'exponential': each job's time is additionally multiplied by an Exp(1) work draw
        (the chain-composition paper's analysis model), drawn after the noise so every
        method of a seed sees the same work draws.
    **chain_options
        'chains' and 'jffc-whole' only (:func:`distalloc.llm.jffc.simulate_chains`):
        ``reservation`` (int or 'auto'), ``target_load`` ρ̄, ``placement`` (GCA on it),
        ``design_rate_per_s`` (the rate the chains are composed for; default the
        workload's).

    Returns
    -------
    SimulationResult

    Notes
    -----
    Events: arrivals, completions, PETALS retries, each O(log N) in the event heap;
    routing a request is O(chain length) when its client's static cheapest chain has free
    cache, and a DP over the placement, O(S + sum m_j) plus the sessions of short servers,
    otherwise.  No quadratic term in requests or servers.
    """
    if method not in ONLINE_METHODS:
        raise ValidationError(f"The 'method' parameter must be one of {', '.join(ONLINE_METHODS)}. "
                              f"Got {method!r} instead.")
    delay_s = parse_allocation_delay(allocation_delay_s, method)
    sigma = check_number(noise, "noise", low=0)
    max_attempts = check_number(max_attempts, "max_attempts", low=1, integer=True)
    rng = as_generator(seed)
    if workload is None:
        workload = workload_from_args(scenario, rng, rate_per_s, num_requests, client_weights,
                                       trace, time_scale)
    N = workload.num_requests
    factor = (np.exp(sigma * rng.standard_normal(N) - sigma ** 2 / 2) if sigma > 0
              else np.ones(N))
    if service not in SERVICE_MODELS:
        raise ValidationError(f"The 'service' parameter must be one of "
                              f"{', '.join(SERVICE_MODELS)}. Got {service!r} instead.")
    if service == "exponential":
        factor = factor * rng.exponential(1.0, N)
    rule, routing = ONLINE_METHODS[method]
    if routing == "jffc":   # chain composition + JFFC (SPEC 1.10): distalloc.llm.jffc
        from distalloc.llm.jffc import simulate_chains
        return simulate_chains(scenario, method, workload, factor, delay_s, service=service,
                               **chain_options)
    if chain_options:
        raise ValidationError(f"Option '{sorted(chain_options)[0]}' applies only to the "
                              f"chain methods (chains, jffc-whole), not {method!r}.")
    planned = None
    if rule in ("cg-bp", "milp", "petals-cg-order", "petals-cg-counts"):
        if planned_requests is not None:
            planned = check_number(planned_requests, "planned_requests", low=1, integer=True)
        else:
            counts = np.bincount(workload.client, minlength=scenario.num_clients)
            planned = choose_planned_requests(scenario, workload.rate_per_s,
                                              counts / counts.sum())
    placement, info = _placement_for(scenario, rule, rng, planned, workload, time_limit_s)
    spare = scenario.usable_memory_gb - scenario.block_gb * placement.num_blocks
    budget = np.maximum(np.floor(spare / scenario.cache_gb), 0).astype(np.int64)
    p_alpha, p_beta = petals_costs(scenario)
    start = np.empty(N)
    end = np.empty(N)
    first_tok = np.empty(N)
    wait = np.empty(N)
    retries = np.empty(N, dtype=np.int64)
    offset = np.empty(N, dtype=np.int64)
    plen = np.empty(N, dtype=np.int64)
    t0 = time.perf_counter()
    chains, events = llm_kernels.simulate(
        placement.first_block, placement.num_blocks, scenario.num_blocks,
        np.ascontiguousarray(workload.arrival_s * 1000.0), workload.client,
        workload.output_tokens, factor, delay_s * 1000.0, scenario.rtt_ms,
        scenario.prefill_rtt_ms, scenario.decode_ms, scenario.prefill_ms, budget,
        0 if routing == "ws-rr" else 1, np.ascontiguousarray(p_alpha), p_beta,
        PETALS_NO_CACHE_PENALTY_MS, BACKOFF_BASE_S * 1000.0, BACKOFF_CAP_S * 1000.0,
        max_attempts, start, end, first_tok, wait, retries, offset, plen)
    wall = time.perf_counter() - t0
    return SimulationResult(method, workload, placement, planned, delay_s, start / 1000.0,
                            end / 1000.0, first_tok / 1000.0, wait / 1000.0, retries, offset,
                            plen, chains,
                            int(events), wall, extra=info)
