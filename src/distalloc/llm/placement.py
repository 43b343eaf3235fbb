"""Offline block placement and routing: CG-BPRR, the PETALS baseline and its ablations
(SPEC 1.5, 1.6).  The exact MILP lives in :mod:`distalloc.llm.milp`; the result type
:class:`~distalloc.llm.result.Plan` in :mod:`distalloc.llm.result`, and the method registry
with :func:`~distalloc.llm.methods.plan` in :mod:`distalloc.llm.methods`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from distalloc._compiled import llm_kernels
from distalloc._validation import ValidationError, as_generator, as_int_array, check_count
from distalloc.llm.limits import MAX_COUNT
from distalloc.llm.model import Placement
from distalloc.llm.result import Plan, finish_plan
from distalloc.llm.routing import (PETALS_NO_CACHE_PENALTY_MS, petals_costs, per_token_costs,
                                   shortest_routes)
from distalloc.llm.scenario import Scenario, check_scenario

__all__ = ["CGPlacement", "cg_bp_placement", "cg_bprr", "petals", "petals_placement",
           "conservative_block_counts", "theorem2_bound_ms"]

# ------------------------------------------------------------------------------------------
# CG-BPRR
# ------------------------------------------------------------------------------------------
def _floor_div(x: np.ndarray, y: np.ndarray | float, cap: int | None = None) -> np.ndarray:
    """floor(x / y) as int64, the same rounding as ``math.floor(x / y)``, clamped to
    [0, cap] in floating point before the cast (a float beyond int64 would wrap to a
    negative count; validation bounds memory so that it cannot, this keeps it so)."""
    q = np.floor(np.asarray(x, dtype=np.float64) / y)
    return np.clip(q, 0, float(cap) if cap is not None else 2.0 ** 62).astype(np.int64)


def conservative_block_counts(scenario: Scenario, num_requests: int) -> np.ndarray:
    """Step 1 of CG-BPRR: m_j = min(floor(M_j / (s_m + s_c |R|)), L)."""
    R = check_count(num_requests, "num_requests", low=1, high=MAX_COUNT)
    per_block = scenario.block_gb + scenario.cache_gb * R
    return _floor_div(scenario.usable_memory_gb, per_block, cap=scenario.num_blocks)


@dataclass(frozen=True, eq=False)
class CGPlacement:
    """Result of CG-BP (steps 1-2 of CG-BPRR) for a planned number of sessions |R|."""

    placement: Placement
    num_requests: int
    amortised_ms: np.ndarray     # t~_j (inf for servers that hold no block)
    order: np.ndarray            # used servers in increasing t~_j
    sessions: np.ndarray         # s_j, capped at |R|
    capacity: np.ndarray         # C_b per block
    uncovered: int               # blocks with C_b < |R|
    reason: str | None           # why infeasible, or None

    @property
    def feasible(self) -> bool:
        return self.reason is None


def cg_bp_placement(scenario: Scenario, num_requests: int | None = None) -> CGPlacement:
    """CG-BP: the conservative block counts and the greedy window choice of CG-BPRR.

    Parameters
    ----------
    scenario : Scenario
    num_requests : int, optional
        the design parameter |R| (planned concurrent sessions); default: the size of the
        scenario's request set.

    Notes
    -----
    SPEC 1.5 steps 1-2.  O(|V_s| log |V_s| + |V_s| L m) with m the largest block count
    (window sums are exact left-to-right sums, so ties are exact and break by the smallest
    start).
    """
    check_scenario(scenario, "cg_bp_placement")
    R = scenario.num_requests if num_requests is None else check_count(
        num_requests, "num_requests", low=1, high=MAX_COUNT)
    S, L = scenario.num_servers, scenario.num_blocks
    m = np.empty(S, dtype=np.int64)
    amortised = np.empty(S)
    sessions = np.empty(S, dtype=np.int64)
    order = np.empty(S, dtype=np.int64)
    first = np.empty(S, dtype=np.int64)
    capacity = np.empty(L)
    n_used, uncovered = llm_kernels.cg_bp(scenario.usable_memory_gb, scenario.decode_ms,
                                          scenario.max_rtt_ms, scenario.block_gb,
                                          scenario.cache_gb, R, L, m, amortised, sessions,
                                          order, first, capacity)
    order = order[:n_used]
    reason = None
    total = int(m.sum())
    if total < L:
        m[:] = 0
        reason = (f"sum of block counts {total} < L = {L} at |R| = {R} "
                  f"(servers cannot host every block with cache for |R| sessions)")
    elif uncovered:
        b = int(np.flatnonzero(capacity < R)[0])
        reason = (f"{uncovered} block(s) have session capacity below |R| = {R} "
                  f"(block {b}: {int(capacity[b])})")
    return CGPlacement(Placement(first, m), R, amortised, order, sessions, capacity,
                       int(uncovered), reason)


def theorem2_bound_ms(num_blocks_total: int, amortised_ms: np.ndarray, num_blocks: np.ndarray,
                      decode_ms: np.ndarray, order: np.ndarray) -> float:
    """Theorem 2: sum_{j<=K} t~_j m_j - tau_K (sum_{j<=K} m_j - L), servers in t~ order,
    K the fewest leading servers whose block counts reach L."""
    m = num_blocks[order]
    cum = np.cumsum(m)
    K = int(np.searchsorted(cum, num_blocks_total))  # first index with cum >= L
    lead = order[: K + 1]
    return float(np.sum(amortised_ms[lead] * num_blocks[lead])
                 - decode_ms[order[K]] * (cum[K] - num_blocks_total))


def cg_bprr(scenario: Scenario) -> Plan:
    """CG-BPRR (SPEC 1.5): conservative counts, greedy placement, per-client shortest
    per-token routing.  Reports the Theorem-2 guarantee as ``bound_ms``.

    Returns
    -------
    Plan
        status ``feasible`` (the heuristic proves no optimality) or ``infeasible`` with the
        reason when the greedy placement cannot give every block capacity for |R|.

    Notes
    -----
    O(|V_s| log |V_s| + |V_s| L m + |V_c| (|V_s| + sum_j m_j)).

    Examples
    --------
    >>> from distalloc.llm import clustered, cg_bprr
    >>> p = cg_bprr(clustered())
    >>> p.status, round(p.mean_token_ms, 1), round(p.bound_ms, 1)
    ('feasible', 625.4, 841.4)
    """
    check_scenario(scenario, "cg_bprr")
    t0 = time.perf_counter()
    cg = cg_bp_placement(scenario)
    if not cg.feasible:
        return finish_plan(scenario, "cg-bprr", cg.placement, [], t0, reason=cg.reason)
    bound = theorem2_bound_ms(scenario.num_blocks, cg.amortised_ms, cg.placement.num_blocks,
                              scenario.decode_ms, cg.order)
    alpha, beta = per_token_costs(scenario)
    best = shortest_routes(cg.placement, scenario.num_blocks, alpha, beta)
    paths = [best.path(c) for c in range(scenario.num_clients)]
    routes = [paths[c] for c in scenario.requests]
    return finish_plan(scenario, "cg-bprr", cg.placement, routes, t0, bound_ms=bound)


# ------------------------------------------------------------------------------------------
# PETALS and its ablations
# ------------------------------------------------------------------------------------------
def petals_block_counts(scenario: Scenario) -> np.ndarray:
    """m_j = min(floor(M_j / (s_m + c_fixed)), L) with PETALS's fixed cache budget."""
    return _floor_div(scenario.usable_memory_gb, scenario.block_gb + scenario.petals_cache_gb,
                      cap=scenario.num_blocks)


def petals_placement(scenario: Scenario, join_order: np.ndarray,
                     num_blocks: np.ndarray | None = None) -> tuple[Placement, np.ndarray]:
    """PETALS's placement: servers join in ``join_order``; each takes the window whose
    sorted per-block throughputs are lexicographically smallest.  Returns the placement
    and the final per-block throughput."""
    check_scenario(scenario, "petals_placement")
    S, L = scenario.num_servers, scenario.num_blocks
    m = (petals_block_counts(scenario) if num_blocks is None
         else as_int_array(num_blocks, "num_blocks", shape=(S,), low=0, high=L))
    join_order = as_int_array(join_order, "join_order", low=0, high=S - 1)
    throughput = scenario.server_throughput(m)
    first = np.zeros(scenario.num_servers, dtype=np.int64)
    block_thr = np.zeros(scenario.num_blocks)
    llm_kernels.petals_place(np.ascontiguousarray(m, dtype=np.int64), throughput,
                             np.ascontiguousarray(join_order, dtype=np.int64),
                             scenario.num_blocks, first, block_thr)
    return Placement.from_arrays(first, m), block_thr


def _cache_block_budget(scenario: Scenario, placement: Placement) -> np.ndarray:
    """How many (session, block) caches each server can hold next to its blocks."""
    spare = scenario.usable_memory_gb - scenario.block_gb * placement.num_blocks
    return np.maximum(_floor_div(spare, scenario.cache_gb), 0)


def route_sequentially(scenario: Scenario, placement: Placement, alpha: np.ndarray,
                       beta: np.ndarray, penalty: float) -> tuple[list[list[int]], str | None]:
    """Route requests one at a time, reserving cache as they go.  A link to a server with
    too little free cache costs ``penalty`` (inf: forbidden).  Returns the routes and the
    reason the set cannot be served, if any."""
    free = _cache_block_budget(scenario, placement)
    routes: list[list[int]] = []
    a, m = placement.first_block, placement.num_blocks
    for r, c in enumerate(scenario.requests):
        best = shortest_routes(placement, scenario.num_blocks, alpha[c:c + 1], beta, free, penalty)
        if not np.isfinite(best.cost[0]):
            return routes, f"no chain with free cache for request {r}"
        path = best.path(0)
        prev = 0
        for j in path:
            k = int(a[j] + m[j] - prev)
            if k > free[j]:
                return routes, (f"request {r} finds no free cache on server {j} "
                                f"(needs {k} blocks, {int(free[j])} free)")
            free[j] -= k
            prev = int(a[j] + m[j])
        routes.append(path)
    return routes, None


def petals(scenario: Scenario, seed: Any = 0, *, join: str = "random", counts: str = "petals",
           routing: str = "petals", method: str = "petals") -> Plan:
    """The PETALS baseline (SPEC 1.6) and its ablations.

    Parameters
    ----------
    scenario : Scenario
    seed : int or Generator
        seeds the random join order.
    join : {'random', 'cg-order'}
        random join order, or CG-BPRR's increasing amortised-time order.
    counts : {'petals', 'cg-bprr'}
        PETALS's fixed-cache block counts, or CG-BPRR's conservative counts.
    routing : {'petals', 'optimal'}
        PETALS's Dijkstra (rtt/2 + 18 ms per hop, +10 s without free cache) or the
        per-token shortest path among servers with free cache; both route the requests
        one by one and reserve their caches.

    Notes
    -----
    O(|V_s| L m) placement + O(|R| (|V_s| + sum_j m_j)) routing.
    """
    check_scenario(scenario, "petals")
    t0 = time.perf_counter()
    rng = as_generator(seed)
    if counts == "petals":
        m = petals_block_counts(scenario)
    elif counts == "cg-bprr":
        m = conservative_block_counts(scenario, scenario.num_requests)
    else:
        raise ValidationError(f"The 'counts' parameter must be 'petals' or 'cg-bprr'. Got {counts!r} instead.")
    if join == "random":
        order = rng.permutation(scenario.num_servers)
    elif join == "cg-order":
        order = cg_bp_placement(scenario).order
    else:
        raise ValidationError(f"The 'join' parameter must be 'random' or 'cg-order'. Got {join!r} instead.")
    placement, block_thr = petals_placement(scenario, order, m)
    if not placement.covers_all_blocks(scenario.num_blocks):
        b = int(np.flatnonzero(block_thr == 0)[0])
        return finish_plan(scenario, method, placement, [], t0,
                           reason=f"placement leaves block {b} unserved")
    if routing == "petals":
        alpha, beta = petals_costs(scenario)
        routes, reason = route_sequentially(scenario, placement, alpha, beta,
                                            PETALS_NO_CACHE_PENALTY_MS)
    elif routing == "optimal":
        alpha, beta = per_token_costs(scenario)
        routes, reason = route_sequentially(scenario, placement, alpha, beta, math.inf)
    else:
        raise ValidationError(f"The 'routing' parameter must be 'petals' or 'optimal'. Got {routing!r} instead.")
    return finish_plan(scenario, method, placement, routes, t0, reason=reason,
                       extra={"join_order": [int(j) for j in order]})
