"""Chain composition with cache reservation: GBP-CR, GCA and the search over the reservation
c (SPEC 1.10).

Reference: T. Sun, T. He, I-H. Hou, "Serving Chain-structured Jobs with Large Memory
Footprints with Application to Large Foundation Model Serving", arXiv 2604.14993 (MobiHoc
2026); ``../shared/papers/chain-composition.md`` (the notes) gives the method, the
ambiguities and the readings built here.

The swarm is cut into *chains* (paths start -> end of the feasible-link DAG, SPEC 1.1), each
with cache reserved for c_k concurrent jobs; a chain with c_k slots behaves as c_k parallel
servers of rate 1/T_k.  In the paper's terms, server j has a per-job communication time
tau^c_j and a per-block computation time tau^p_j; here they are SPEC 1.1's request time split
by server::

    tau^c_j = prefill_rtt_ms[c, j] + (output_tokens - 1) * rtt_ms[c, j]    (per visit)
    tau^p_j = prefill_ms[j] + (output_tokens - 1) * decode_ms[j]           (per block)

so T_k = sum_{j in k} (tau^c_j + tau^p_j k_j) is exactly the performance model's request time.
How the paper's "RTT + 18 ms" adds up over a job's tokens (notes §7.2) is therefore a
property of the scenario's ``rtt_ms``/``prefill_rtt_ms``, made explicit by the
``communication`` option of the paper scenarios (:mod:`distalloc.llm.paper_scenarios`).

Several clients (beyond the paper, :mod:`distalloc.llm.chain_groups`): chains are composed
per **client group**, each group with its clients' arrival-weighted tau^c and its own share
of the rate; GBP-CR places servers for all groups at once (pairs (group, server) in
increasing amortised time), GCA runs per group on the group's servers and then once more on
what is left for everyone, and JFFC sends a job to its group's chains first (each client
ranks chains by its own T_k).  The search over c also picks the grouping, from one group of
every client (the arrival-weighted mean of tau^c, the paper's single-orchestrator reading)
to one group per client.  With one client everything is exactly the paper's algorithm.
The weights are ``client_weights`` if given, else the workload's (the scenario's
``client_weights``, or the realised arrivals in simulation), else the frequencies of the
scenario's offline request set.

Slot counts are float-floor safe: (2 - 1) / 0.1 is 10 slots, not 9 (notes §3.4).
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np

from distalloc._compiled import chain_kernels
from distalloc._validation import (ValidationError, check_choice, check_count, check_number,
                                   check_real)
from distalloc.llm.limits import MAX_COUNT, MAX_RPS, MIN_RPS, check_output_tokens
from distalloc.llm.chain_groups import ClientGroups, client_costs, client_groupings
from distalloc.llm.chain_types import (CHAIN_METHODS, DEFAULT_TARGET_LOAD, OBJECTIVES, Chain,
                                       ChainComposition, ChainPlacement, NoChainsError,
                                       ReservationSearch, _checked_placement,
                                       placement_from_list, whole_model_placement)
from distalloc.llm.model import Placement
from distalloc.llm.scenario import Scenario, check_scenario

__all__ = ["Chain", "ChainPlacement", "ChainComposition", "ReservationSearch", "ClientGroups",
           "gbp_cr", "gca",
           "compose_chains", "search_reservation", "chain_costs", "whole_model_placement",
           "placement_from_list", "max_reservation",
           "resolve_client_weights", "NoChainsError", "CHAIN_METHODS", "DEFAULT_TARGET_LOAD"]


# ------------------------------------------------------------------------------------------
# Costs and placements
# ------------------------------------------------------------------------------------------
def resolve_client_weights(scenario: Scenario, client_weights=None) -> np.ndarray:
    """Arrival weights of the clients (sum 1): ``client_weights``, else the scenario's online
    ``client_weights``, else the frequencies of its offline request set."""
    from distalloc.llm.workload import client_probs
    if client_weights is None:
        client_weights = scenario.online.get("client_weights")
    if client_weights is None:
        counts = np.bincount(scenario.requests, minlength=scenario.num_clients)
        return counts / counts.sum()
    return client_probs(scenario, client_weights)


def chain_costs(scenario: Scenario, client_weights=None,
                output_tokens: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) in ms: a chain visiting j and processing k_j blocks there costs
    sum_j alpha_j + beta_j k_j = T_k, with alpha the arrival-weighted per-visit time
    (tau^c) over all clients and beta the per-block time (tau^p) of the module docstring,
    for jobs of ``output_tokens`` tokens (default: the scenario's static length; the
    simulator passes the workload's mean, the paper's l̄_out)."""
    w = resolve_client_weights(scenario, client_weights)
    if output_tokens is not None:
        output_tokens = check_output_tokens(scenario, output_tokens)
    alpha, beta = client_costs(scenario, output_tokens)
    return np.ascontiguousarray(w @ alpha), beta


def _groupings(scenario: Scenario, weights: np.ndarray, output_tokens: float | None,
               client_groups: Any) -> list[ClientGroups]:
    alpha, beta = client_costs(scenario, output_tokens)
    return client_groupings(weights, alpha, beta, client_groups)


def _slots(scenario: Scenario, placement: Placement) -> np.ndarray:
    slots = np.empty(scenario.num_servers, dtype=np.int64)
    chain_kernels.slot_counts(scenario.usable_memory_gb, placement.num_blocks,
                              scenario.block_gb, scenario.cache_gb, slots)
    return slots


# ------------------------------------------------------------------------------------------
# GBP-CR and GCA
# ------------------------------------------------------------------------------------------
def _group_targets_per_ms(c: int, rate_per_s: float, target_load: float,
                          groups: ClientGroups) -> np.ndarray:
    """Each group's chain-rate target w_g λ / (ρ̄ c) in 1/ms, as GBP-CR(c) uses it."""
    target_per_s = rate_per_s / (target_load * c)
    # a group with arrivals needs a chain even when its target underflows (tiny weights)
    return np.where(groups.weight > 0, np.maximum(groups.weight * (target_per_s / 1000.0),
                                                  np.finfo(float).tiny), 0.0)


def _gbp_cr(scenario: Scenario, c: int, rate_per_s: float, target_load: float,
            groups: ClientGroups, rate_needing_per_ms: np.ndarray | None = None
            ) -> ChainPlacement:
    S, G = scenario.num_servers, groups.num_groups
    first, num, group, owner, order = (np.empty(S, dtype=np.int64) for _ in range(5))
    amortised = np.empty(S)
    group_rate = np.empty(G)
    group_chains = np.empty(G, dtype=np.int64)
    if rate_needing_per_ms is None:
        rate_needing_per_ms = np.empty(G)
    target_per_s = rate_per_s / (target_load * c)
    target_per_ms = _group_targets_per_ms(c, rate_per_s, target_load, groups)
    K, nu, done, _, _ = chain_kernels.gbp_cr(
        scenario.usable_memory_gb, groups.alpha_ms, groups.beta_ms, scenario.block_gb,
        scenario.cache_gb, c, scenario.num_blocks, target_per_ms,
        first, num, group, owner, amortised, order, group_rate, group_chains,
        rate_needing_per_ms)
    n_used = int(np.count_nonzero(np.isfinite(amortised)))
    return ChainPlacement(first, num, reservation=c, group=group, num_chains=int(K),
                          rate_per_s=float(nu) * 1000.0, target_rate_per_s=target_per_s,
                          feasible=bool(done), amortised_ms=amortised, order=order[:n_used],
                          client_groups=groups, owner=owner,
                          group_rate_per_s=group_rate * 1000.0, group_chains=group_chains)


def gbp_cr(scenario: Scenario, reservation: int, rate_per_s: float,
           target_load: float = DEFAULT_TARGET_LOAD, *, client_weights=None,
           client_groups: Any = "one") -> ChainPlacement:
    """GBP-CR: Greedy Block Placement with Cache Reservation (Alg. 1 of 2604.14993).

    Parameters
    ----------
    scenario : Scenario
    reservation : int
        c, the number of concurrent jobs each chain reserves cache for.
    rate_per_s : float
        λ, the arrival rate the chains are built for.
    target_load : float
        ρ̄ in (0, 1); chains are added until their total rate reaches λ / (ρ̄ c).
    client_weights : sequence of float, optional
        arrival weights of the clients (default: see the module docstring).
    client_groups : 'one', 'each', 'auto' or list of int
        the client groups to place servers for (:mod:`distalloc.llm.chain_groups`): 'one'
        (default) the paper's algorithm with the arrival-weighted mean tau^c; 'each' one
        group per client with arrivals; 'auto' the grouping of the family with the lowest
        Theorem-4 lower bound at this c; or one group label per client.

    Returns
    -------
    ChainPlacement
        a :class:`~distalloc.llm.model.Placement` (m_j(c) = min(⌊M_j / (s_m + s_c c)⌋, L)
        blocks per reached server, 0 for the others) with the chains' grouping, K(c), the
        group each server was placed for (``owner``) and ``feasible`` (false when the
        servers ran out before some group reached its rate target; GCA can still use what
        was placed).

    Raises
    ------
    ValidationError
        bad parameters.

    Notes
    -----
    Notes §2.2, 0-based (§2.4): servers in increasing amortised time
    t~_j = (tau^c_j + tau^p_j m_j) / m_j (ties by index) tile disjoint chains over
    [0, L); a server that would run past L is shifted back to end at L.  O(S log S).
    Theorem 2: with equal memories it minimises the number of chains of Eq. (7).
    Several groups: the pairs (g, j) in increasing t~_gj (group g's tau^c), ties by
    (j, g); each free server goes to the group of its first pair that still needs rate,
    group g's chains are tiled as above until their rate reaches w_g λ / (ρ̄ c).  With one
    group this is the paper's loop.  O(G S log(G S)).

    Examples
    --------
    >>> from distalloc.llm import clustered, gbp_cr
    >>> p = gbp_cr(clustered(), reservation=80, rate_per_s=0.5)
    >>> p.feasible, p.num_chains, p.to_list()
    (True, 1, [{'server': 0, 'first_block': 0, 'num_blocks': 41}, {'server': 1, 'first_block': 29, 'num_blocks': 41}])
    """
    check_scenario(scenario, "gbp_cr")
    c = check_count(reservation, "reservation", low=1, high=MAX_COUNT)  # int64 in the kernel
    lam = check_real(rate_per_s, "rate_per_s", low=MIN_RPS, high=MAX_RPS)
    rho = check_number(target_load, "target_load", low=0, high=1, low_open=True, high_open=True)
    weights = resolve_client_weights(scenario, client_weights)
    return _best_at(scenario, c, lam, rho, _groupings(scenario, weights, None, client_groups))[0]


def _gca_arrays(scenario: Scenario, placement: Placement, alpha: np.ndarray,
                beta: np.ndarray) -> tuple[np.ndarray, ...]:
    """GCA per client group on a GBP-CR placement (its ``owner``), then shared; on any
    other placement the paper's GCA with the per-visit times ``alpha``.  The kernel's
    arrays (servers, blocks, offsets, capacities, cost_ms, home)."""
    S = scenario.num_servers
    groups = getattr(placement, "client_groups", None)
    if groups is not None:
        owner, group_alpha, alpha = placement.owner, groups.alpha_ms, groups.shared_alpha_ms
    else:
        owner, group_alpha = np.full(S, -1, dtype=np.int64), np.zeros((0, S))
    return chain_kernels.gca(placement.first_block, placement.num_blocks, scenario.num_blocks,
                             group_alpha, beta, _slots(scenario, placement), owner, alpha)


def _gca(scenario: Scenario, placement: Placement, alpha: np.ndarray,
         beta: np.ndarray) -> list[Chain]:
    """:func:`_gca_arrays` as :class:`Chain` objects."""
    servers, blocks, offsets, caps, cost, home = _gca_arrays(scenario, placement, alpha, beta)
    return [Chain(tuple(servers[offsets[q]:offsets[q + 1]].tolist()),
                  tuple(blocks[offsets[q]:offsets[q + 1]].tolist()), int(caps[q]),
                  float(cost[q]) / 1000.0, int(home[q]))
            for q in range(caps.size)]


def gca(scenario: Scenario, placement: Placement | Sequence[dict], *,
        client_weights=None) -> list[Chain]:
    """GCA: Greedy Cache Allocation (Alg. 2 of 2604.14993) on any placement.

    Parameters
    ----------
    scenario : Scenario
    placement : Placement or list of {server, first_block, num_blocks}
        a :func:`gbp_cr` placement composed for client groups gives each group its own
        chains (see Notes); any other placement is shared by every client.
    client_weights : sequence of float, optional
        arrival weights of the clients for T_k of a shared placement (default: see the
        module docstring).

    Returns
    -------
    list of Chain
        in GCA order (non-decreasing ``service_s`` within each group, then the shared
        chains); ``capacity`` c_k >= 1 jobs each.  Empty if no chain covers every block
        with one job's cache.

    Notes
    -----
    Free slots start at M~_j = ⌊(M_j - s_m m_j) / s_c⌋ (float-floor safe).  Repeatedly:
    the fastest chain whose every server j has at least k_j free slots (k_j blocks
    processed on j), capacity c = min_j ⌊free_j / k_j⌋, free_j -= c k_j; a link whose
    server lacks the slots is gone for good (the global pruning of step (d)).  The
    shortest path is a block-ordered DP on the feasible-link DAG, O(S + Σ m_j); at most one
    round per link.  Theorem 3: JFFC over all chains loses nothing when limited to these.
    Client groups: GCA runs on each group's servers at its own tau^c (chains ``group`` g),
    then once more on every placed server with the slots left, at the mean tau^c over all
    clients (``group`` -1, shared); with one group the last pass finds nothing.

    Examples
    --------
    >>> from distalloc.llm import clustered, gbp_cr, gca
    >>> sc = clustered()
    >>> [(ch.servers, ch.capacity, round(ch.service_s, 1)) for ch in gca(sc, gbp_cr(sc, 80, 0.5))]
    [((0, 1), 82, 70.0)]
    """
    check_scenario(scenario, "gca")
    placement = _checked_placement(scenario, placement)
    alpha, beta = chain_costs(scenario, client_weights)
    return _gca(scenario, placement, alpha, beta)


# ------------------------------------------------------------------------------------------
# The search over c (and the client grouping)
# ------------------------------------------------------------------------------------------
def _bounds(chains: list[Chain], rate_per_s: float) -> tuple[float, float]:
    from distalloc.llm.jffc import jffc_bounds_arrays
    if not chains:
        return math.inf, math.inf
    mu = np.array([1.0 / ch.service_s for ch in chains])
    cap = np.array([ch.capacity for ch in chains], dtype=np.int64)
    return jffc_bounds_arrays(mu, cap, rate_per_s)


def _group_bounds_arrays(mu_per_s: np.ndarray, capacities: np.ndarray, home: np.ndarray,
                         rate_per_s: float, groups: ClientGroups | None) -> tuple[float, float]:
    """Theorem 4 for chains of rates ``mu_per_s``: with one group (or none) on every chain;
    with several, the arrival-weighted mean of each group's bounds on its own chains at its
    own rate w_g λ (exact bounds for the groups' systems without overflow; inf if a group
    has no chain or λ_g >= its chains' rate)."""
    from distalloc.llm.jffc import jffc_bounds_arrays
    if groups is None or groups.num_groups <= 1:
        if mu_per_s.size == 0:
            return math.inf, math.inf
        return jffc_bounds_arrays(mu_per_s, capacities, rate_per_s)
    lo = up = 0.0
    for g in range(groups.num_groups):
        w = float(groups.weight[g])
        mine = home == g
        if not np.any(mine):
            return math.inf, math.inf
        glo, gup = jffc_bounds_arrays(mu_per_s[mine], capacities[mine], rate_per_s * w)
        lo += w * glo
        up += w * gup
    return lo, up


def _group_bounds(chains: list[Chain], rate_per_s: float,
                  groups: ClientGroups | None) -> tuple[float, float]:
    return _group_bounds_arrays(np.array([1.0 / ch.service_s for ch in chains]),
                                np.array([ch.capacity for ch in chains], dtype=np.int64),
                                np.array([ch.group for ch in chains], dtype=np.int64),
                                rate_per_s, groups)


def _evaluate(scenario: Scenario, c: int, lam: float, rho: float, groups: ClientGroups,
              rate_needing_per_ms: np.ndarray | None = None):
    """GBP-CR(c), GCA and the bounds: (placement, ν, lower, upper, status)."""
    pl = _gbp_cr(scenario, c, lam, rho, groups, rate_needing_per_ms)
    if not pl.feasible:
        return pl, math.nan, math.nan, math.nan, "infeasible"
    _, _, _, caps, cost, home = _gca_arrays(scenario, pl, groups.shared_alpha_ms,
                                            groups.beta_ms)
    mu = 1.0 / (cost / 1000.0)                 # as Chain.service_rate_per_s
    nu = float(np.dot(caps, mu))
    lo, up = _group_bounds_arrays(mu, caps, home, lam, groups)
    if not math.isfinite(lo):
        return pl, nu, math.nan, math.nan, "unstable"
    return pl, nu, lo, up, "ok"


def _best_at(scenario: Scenario, c: int, lam: float, rho: float,
             groupings: list[ClientGroups]) -> tuple[ChainPlacement, ClientGroups]:
    """At a fixed c: the grouping whose GBP-CR is feasible with the lowest lower bound
    (ties: the finer grouping); the one-group reading if none is."""
    best = None
    if len(groupings) > 1:
        for groups in reversed(groupings):
            pl, _, lo, _, status = _evaluate(scenario, c, lam, rho, groups)
            if status == "ok" and (best is None or lo < best[0]):
                best = (lo, pl, groups)
    if best is None:
        return _gbp_cr(scenario, c, lam, rho, groupings[0]), groupings[0]
    return best[1], best[2]


def max_reservation(scenario: Scenario) -> int:
    """c_max = ⌊(max_j M_j - s_m) / s_c⌋: the largest c at which some server still holds
    one block."""
    top = float(np.max(scenario.usable_memory_gb)) - scenario.block_gb
    return max(0, int(math.floor(top / scenario.cache_gb * (1 + 1e-12) + 1e-9)))


def search_reservation(scenario: Scenario, rate_per_s: float,
                       target_load: float = DEFAULT_TARGET_LOAD, *, objective: str = "lower",
                       client_weights=None, prune: bool = True,
                       max_c: int | None = None, output_tokens: float | None = None,
                       client_groups: Any = "auto",
                       skip_identical: bool = True) -> ReservationSearch:
    """The 1-D search over the reservation c (notes §5.4), for each client grouping.

    For each grouping of ``client_groups`` (:func:`~distalloc.llm.chain_groups.client_groupings`;
    'auto': the nested family from one group to one per client) and c = 1, 2, ...: GBP-CR(c)
    (skip c if some group cannot reach its share of λ/(ρ̄c)), GCA on its placement, then the
    objective: Theorem 4's ``'lower'`` bound (the paper's recommendation, default), its
    ``'upper'`` bound, or the ``'surrogate'`` c·K(c)/λ of Eq. (9); with several groups the
    bounds are the arrival-weighted mean of each group's bound on its own chains at its own
    rate (skip c if one is unstable).  The minimiser over (grouping, c) wins (ties: the
    finer grouping, then the smallest c).  With one client this is the paper's search.

    The groupings are scanned finest first; each scan stops at c_max, once Σ_j m_j(c) < L
    (no larger c can hold the model), or, with ``prune`` and a Theorem-4 objective, once
    Σ_g w_g (⌈L / max_j m_j(c)⌉ · min_j tau^c_gj + L · min_j tau^p_j) reaches the best
    objective found so far (over every grouping): that term is a lower bound on group g's
    fastest chain at this and every larger c (every chain makes at least that many hops
    and processes L blocks), and both bounds are >= the fastest chain's time, so no larger
    c of this grouping can win.  On large swarms the coarse groupings (whose mean tau^c
    is far from every client) then stop at their first c.  ``max_c`` caps the scan (for
    plots).

    With ``skip_identical`` (default) a run of c that gives the same GBP-CR placement is
    evaluated once, at its first c: the placement depends on c only through the block
    counts m_j(c) and the groups' targets w_g λ/(ρ̄c), and it stays the same while the counts
    do and every target stays above the rate at which its group last needed rate (the
    kernel reports it); GCA and Theorem 4 do not depend on c, so every c of the run has the
    same bounds and the first one wins every objective (the surrogate c·K(c)/λ grows with c).
    The run's end is found by a galloping search on both conditions (O(S log c) per run).
    Without it, sessions with a tiny cache (c_max in the 10^5–10^11) made the scan take
    minutes to days; with it, the scan costs one evaluation per distinct placement.  The
    returned arrays then hold the first c of each run (``reservation``), so a curve over
    c is a step function through them.

    Cost: per (grouping, run of c) one GBP-CR, O(G S log(G S)), one GCA on the servers it
    placed and O(S log c) to find the run's end; O(log C) groupings.
    """
    check_choice(objective, "objective", OBJECTIVES)
    check_scenario(scenario, "search_reservation")
    t0 = time.perf_counter()
    lam = check_real(rate_per_s, "rate_per_s", low=MIN_RPS, high=MAX_RPS)
    target_load = check_number(target_load, "target_load", low=0, high=1, low_open=True,
                               high_open=True)
    if max_c is not None:
        max_c = check_count(max_c, "max_c", low=1, high=MAX_COUNT)
    weights = resolve_client_weights(scenario, client_weights)
    if output_tokens is not None:
        output_tokens = check_output_tokens(scenario, output_tokens)
    groupings = _groupings(scenario, weights, output_tokens, client_groups)
    L = scenario.num_blocks
    c_max = max_reservation(scenario)
    if max_c is not None:
        c_max = min(c_max, max_c)
    beta_min = float(groupings[0].beta_ms.min())
    counts = np.empty(scenario.num_servers, dtype=np.int64)
    gs, cs, ks, status, nus, lows, ups = [], [], [], [], [], [], []
    best, best_g, best_obj, stop = None, None, math.inf, "c_max"
    # finest grouping first: its objective is usually the best on large swarms, and the
    # exact bound then ends the coarser groupings' scans early
    for gi in reversed(range(len(groupings))):
        groups = groupings[gi]
        alpha_min = groups.alpha_ms.min(axis=1)
        stop = "c_max"
        needing = np.empty(groups.num_groups)
        c = 1
        while c <= c_max:
            if chain_kernels.block_counts(scenario.usable_memory_gb, scenario.block_gb,
                                          scenario.cache_gb, c, L, counts) < L:
                stop = "blocks"
                break
            if prune and objective != "surrogate" and best is not None:
                hops = -(-L // int(counts.max()))
                if float(np.dot(groups.weight, hops * alpha_min + L * beta_min)) / 1000.0 \
                        >= best_obj:
                    stop = "bound"
                    break
            pl, nu, lo, up, st = _evaluate(scenario, c, lam, target_load, groups, needing)
            c_now = c
            c = _end_of_run(scenario, c, c_max, counts, lam, target_load, groups,
                            needing) + 1 if skip_identical else c + 1
            gs.append(gi)
            cs.append(c_now)
            ks.append(pl.num_chains if pl.feasible else 0)
            status.append(st)
            nus.append(nu)
            lows.append(lo)
            ups.append(up)
            if st != "ok":
                continue
            obj = {"lower": lo, "upper": up, "surrogate": c_now * pl.num_chains / lam}[objective]
            if obj < best_obj:
                best, best_g, best_obj = c_now, gi, obj
    return ReservationSearch(objective, np.array(cs, dtype=np.int64),
                             np.array(ks, dtype=np.int64), status, np.array(nus),
                             np.array(lows), np.array(ups), best, stop,
                             time.perf_counter() - t0, np.array(gs, dtype=np.int64),
                             groupings, best_g)


def _end_of_run(scenario: Scenario, c: int, c_max: int, counts: np.ndarray, lam: float,
                rho: float, groups: ClientGroups, needing_per_ms: np.ndarray) -> int:
    """The last c' in [c, c_max] whose GBP-CR placement equals GBP-CR(c)'s: the same block
    counts (``counts``, m_j(c)) and every group's target above ``needing_per_ms`` (the
    kernel's rates at which each group last needed rate).  Both conditions hold up to some
    c' and fail after it (counts and targets only fall as c grows): galloping, then
    bisection, each step one O(S) count."""
    L = scenario.num_blocks
    other = np.empty_like(counts)

    def same(c2: int) -> bool:
        if not np.all(_group_targets_per_ms(c2, lam, rho, groups) > needing_per_ms):
            return False
        chain_kernels.block_counts(scenario.usable_memory_gb, scenario.block_gb,
                                   scenario.cache_gb, c2, L, other)
        return bool(np.array_equal(other, counts))

    lo, step = c, 1
    while lo + step <= c_max and same(lo + step):
        lo += step
        step *= 2
    hi = min(lo + step, c_max + 1)          # same(lo) holds; same(hi) fails or hi > c_max
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if same(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _fallback_reservation(scenario, search, lam, rho, groups):
    """When no c reaches λ/(ρ̄c) with stable chains (overload, or a target load the swarm
    cannot offer): GCA on what GBP-CR placed (one group of every client) at every scanned
    c, then the c with the lowest Theorem-4 lower bound among stable ones, else the largest
    service rate ν (the queue then grows without bound).  Returns (c, placement, note)."""
    best = None
    for c in search.reservation[search.grouping == 0].tolist():
        pl = _gbp_cr(scenario, c, lam, rho, groups)
        chains = _gca(scenario, pl, groups.shared_alpha_ms, groups.beta_ms)
        if not chains:
            continue
        nu = float(sum(ch.capacity / ch.service_s for ch in chains))
        lo = _bounds(chains, lam)[0] if lam < nu else math.inf
        key = (lo, -nu, c)
        if best is None or key < best[0]:
            best = (key, c, pl)
    if best is None:
        raise NoChainsError(
            f"No reservation c gives a chain that covers all {scenario.num_blocks} blocks "
            f"(scanned c = 1..{int(search.reservation[search.grouping == 0].max(initial=0))}, "
            f"stopped: {search.stop}).")
    (lo, neg_nu, c), pl = best[0], best[2]
    how = ("the lowest lower bound among them" if math.isfinite(lo) else
           f"the largest service rate, {-neg_nu:.4g} jobs/s < λ: unstable")
    return c, pl, (f"no c reaches λ/(ρ̄c) = {lam:g}/({rho:g} c) with GBP-CR alone; c = {c} "
                   f"uses GCA on every server GBP-CR placed ({how})")


# ------------------------------------------------------------------------------------------
# Composition: placement + chains + bounds, for plan and simulate
# ------------------------------------------------------------------------------------------
def _reservation_arg(reservation: Any) -> int | str:
    if reservation is None or (isinstance(reservation, str) and reservation == "auto"):
        return "auto"
    if isinstance(reservation, str):
        try:
            reservation = int(reservation)
        except ValueError:
            raise ValidationError(f"The 'reservation' parameter must be a positive int or "
                                  f"'auto'. Got {reservation!r} instead.") from None
    # bounded (issue 16): c enters the kernels as an int64 and s_c c must stay finite
    return check_count(reservation, "reservation", low=1, high=MAX_COUNT)


def compose_chains(scenario: Scenario, method: str = "chains", *, reservation: Any = "auto",
                   rate_per_s: float | None = None, target_load: float = DEFAULT_TARGET_LOAD,
                   placement: Placement | Sequence[dict] | None = None, client_weights=None,
                   objective: str = "lower", output_tokens: float | None = None,
                   client_groups: Any = "auto") -> ChainComposition:
    """Compose the chains of ``method`` ('chains' or 'jffc-whole') for arrival rate λ.

    'chains': GBP-CR(c) then GCA, with c = ``reservation`` or, for 'auto', the
    :func:`search_reservation` minimiser (if no c reaches λ/(ρ̄c) with stable chains:
    :func:`_fallback_reservation`, said in ``note``); with ``placement`` GCA runs on that
    placement instead (GBP-CR and the search are skipped; its chains are shared by every
    client).  ``client_groups`` (:mod:`distalloc.llm.chain_groups`): 'auto' (default) lets
    the search also choose the client grouping, from one group of every client (the
    paper's reading) to one per client; 'one', 'each' or a label per client fix it; with a
    fixed ``reservation`` and 'auto' the grouping with the lowest lower bound at that c.
    'jffc-whole': every server that holds the whole model is a chain of one (GCA on
    :func:`whole_model_placement`, shared).  ``rate_per_s`` defaults to the scenario's
    ``rate_per_s`` (else 0.5 req/s, the simulator's default).  The Theorem-4 bounds are
    evaluated at λ (inf when λ >= ν; with several groups, see :func:`search_reservation`).
    ``output_tokens``: the job length T_k is computed for (default: the scenario's).

    Raises
    ------
    ValidationError
        bad parameters, no reservation c for which GBP-CR reaches the rate with stable
        chains ('auto'), or no chain at all.
    """
    check_scenario(scenario, "compose_chains")
    t0 = time.perf_counter()
    check_choice(method, "method", CHAIN_METHODS)
    lam = check_number(rate_per_s if rate_per_s is not None
                       else scenario.online.get("rate_per_s", 0.5),
                       "rate_per_s", low=MIN_RPS, high=MAX_RPS)
    rho = check_number(target_load, "target_load", low=0, high=1, low_open=True, high_open=True)
    res = _reservation_arg(reservation)
    weights = resolve_client_weights(scenario, client_weights)
    alpha, beta = chain_costs(scenario, weights, output_tokens)
    groupings = _groupings(scenario, weights, output_tokens, client_groups)
    search, c, note, groups = None, None, None, None
    if method == "jffc-whole":
        pl = whole_model_placement(scenario)
        if not np.any(pl.num_blocks):
            raise NoChainsError("No server can hold all blocks with the cache of one job "
                                  "(jffc-whole needs at least one).")
    elif placement is not None:
        pl = _checked_placement(scenario, placement)
    elif res == "auto":
        search = search_reservation(scenario, lam, rho, objective=objective,
                                    client_weights=weights, output_tokens=output_tokens,
                                    client_groups=client_groups)
        if search.best is not None:
            c, groups = search.best, search.best_groups
            pl = _gbp_cr(scenario, c, lam, rho, groups)
        else:
            groups = groupings[0]
            c, pl, note = _fallback_reservation(scenario, search, lam, rho, groups)
    else:
        c = int(res)
        pl, groups = _best_at(scenario, c, lam, rho, groupings)
        if not pl.feasible:
            note = (f"GBP-CR(c = {c}) ran out of servers before λ/(ρ̄c): GCA uses what was "
                    f"placed")
    chains = _gca(scenario, pl, alpha, beta)
    if not chains:
        raise NoChainsError(f"No chain covers all {scenario.num_blocks} blocks with the "
                              f"cache of one job" + (f" at reservation c = {c}." if c else "."))
    lo, up = _group_bounds(chains, lam, groups)
    return ChainComposition(method, c, pl, chains, lam, rho, weights, lo, up, search,
                            time.perf_counter() - t0, note, groups)
