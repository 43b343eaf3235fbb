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

Several clients: JFFC ranks chains by T_k of the arriving client; chain composition (GBP-CR's
amortised order and stopping rule, GCA's "fastest chain") uses the arrival-weighted mean
of tau^c_j over clients.  The weights are ``client_weights`` if given, else the workload's
(the scenario's ``client_weights``, or the realised arrivals in simulation), else the
frequencies of the scenario's offline request set.

Slot counts are float-floor safe: (2 - 1) / 0.1 is 10 slots, not 9 (notes §3.4).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from distalloc._compiled import chain_kernels
from distalloc._validation import ValidationError, check_keys, check_number
from distalloc.llm.model import Placement
from distalloc.llm.scenario import Scenario

__all__ = ["Chain", "ChainPlacement", "ChainComposition", "ReservationSearch", "gbp_cr", "gca",
           "compose_chains", "search_reservation", "chain_costs", "whole_model_placement",
           "placement_from_list", "max_reservation",
           "resolve_client_weights", "NoChainsError", "CHAIN_METHODS", "DEFAULT_TARGET_LOAD"]

CHAIN_METHODS = ("chains", "jffc-whole")


class NoChainsError(ValidationError):
    """The inputs are valid but admit no chain composition (no chain covers the model, or
    no reservation reaches the rate with stable chains)."""

DEFAULT_TARGET_LOAD = 0.7
OBJECTIVES = ("lower", "upper", "surrogate")


# ------------------------------------------------------------------------------------------
# Result types
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Chain:
    """One chain of GCA: ``servers`` in path order, ``blocks`` processed on each,
    ``capacity`` concurrent jobs (c_k) and ``service_s`` T_k (arrival-weighted over clients,
    at the scenario's static lengths)."""

    servers: tuple[int, ...]
    blocks: tuple[int, ...]
    capacity: int
    service_s: float

    @property
    def service_rate_per_s(self) -> float:
        return 1.0 / self.service_s

    def to_dict(self) -> dict[str, Any]:
        """The ``llm plan --json`` form: ``servers``, ``capacity``, ``service_s``."""
        return {"servers": list(self.servers), "capacity": self.capacity,
                "service_s": self.service_s}


@dataclass(frozen=True, eq=False)
class ChainPlacement(Placement):
    """GBP-CR's placement for one reservation c, with how it was built.

    ``group[j]`` is the chain server j was placed in (-1: never reached, no blocks);
    ``num_chains`` K(c) complete chains; ``rate_per_s`` their total rate as GBP-CR counts
    it (sum of 1/T with each server's full m_j(c), a conservative estimate, Lemma 1);
    ``feasible`` is false when the servers ran out before the rate reached
    ``target_rate_per_s`` = λ / (ρ̄ c) (the last, incomplete group keeps its blocks).
    """

    reservation: int = 1
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    num_chains: int = 0
    rate_per_s: float = 0.0
    target_rate_per_s: float = 0.0
    feasible: bool = False
    amortised_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ReservationSearch:
    """The 1-D search over c (notes §5.4): one entry per c scanned (1..last).

    ``num_chains`` is K(c) (0 where GBP-CR cannot reach the rate target), ``status`` 'ok',
    'infeasible' (GBP-CR) or 'unstable' (λ >= the chains' service rate); ``lower_s`` and
    ``upper_s`` are Theorem 4's bounds (NaN unless ok).  ``stop`` says why the scan ended:
    'c_max', 'blocks' (sum_j m_j(c) < L) or 'bound' (every larger c has a fastest chain at
    least as slow as the best lower bound found: exact, see :func:`search_reservation`).
    """

    objective: str
    reservation: np.ndarray
    num_chains: np.ndarray
    status: list[str]
    service_rate_per_s: np.ndarray
    lower_s: np.ndarray
    upper_s: np.ndarray
    best: int | None
    stop: str
    search_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "best": self.best, "stop": self.stop,
                "evaluated": int(self.reservation.size), "search_s": self.search_s}


@dataclass(eq=False)
class ChainComposition:
    """Placement + GCA chains + Theorem-4 bounds at the design rate."""

    method: str
    reservation: int | None
    placement: Placement
    chains: list[Chain]
    rate_per_s: float
    target_load: float
    client_weights: np.ndarray
    bound_lower_s: float
    bound_upper_s: float
    search: ReservationSearch | None
    solve_s: float
    note: str | None = None

    @property
    def service_rate_per_s(self) -> float:
        """ν = Σ_k c_k / T_k."""
        return float(sum(ch.capacity / ch.service_s for ch in self.chains))

    @property
    def capacity(self) -> int:
        return int(sum(ch.capacity for ch in self.chains))

    def to_dict(self) -> dict[str, Any]:
        d = {"reservation": self.reservation, "chains": [ch.to_dict() for ch in self.chains],
             "service_rate_per_s": self.service_rate_per_s,
             "bound_lower_s": _finite_or_none(self.bound_lower_s),
             "bound_upper_s": _finite_or_none(self.bound_upper_s),
             "design_rate_per_s": self.rate_per_s, "target_load": self.target_load,
             "num_chains": len(self.chains), "job_slots": self.capacity}
        if self.search is not None:
            d["search"] = self.search.to_dict()
        if self.note:
            d["note"] = self.note
        return d


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


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
    (tau^c) and beta the per-block time (tau^p) of the module docstring, for jobs of
    ``output_tokens`` tokens (default: the scenario's static length; the simulator passes
    the workload's mean, the paper's l̄_out)."""
    w = resolve_client_weights(scenario, client_weights)
    n = scenario.output_tokens - 1 if output_tokens is None else check_number(
        output_tokens, "output_tokens", low=1) - 1
    alpha = scenario.prefill_rtt_ms + n * scenario.rtt_ms
    beta = scenario.prefill_ms + n * scenario.decode_ms
    return np.ascontiguousarray(w @ alpha), np.ascontiguousarray(beta, dtype=np.float64)


def _slots(scenario: Scenario, placement: Placement) -> np.ndarray:
    slots = np.empty(scenario.num_servers, dtype=np.int64)
    chain_kernels.slot_counts(scenario.usable_memory_gb, placement.num_blocks,
                              scenario.block_gb, scenario.cache_gb, slots)
    return slots


def whole_model_placement(scenario: Scenario) -> Placement:
    """Every server that holds all L blocks and the cache of one job on each: blocks
    [0, L); the others nothing (the ``jffc-whole`` baseline)."""
    L = scenario.num_blocks
    fits = scenario.usable_memory_gb >= scenario.block_gb * L + scenario.cache_gb * L * (1 - 1e-12)
    m = np.where(fits, L, 0).astype(np.int64)
    return Placement.from_arrays(np.zeros(scenario.num_servers, dtype=np.int64), m)


def placement_from_list(data: Any, scenario: Scenario) -> Placement:
    """A placement from its contract form, a list of {server, first_block, num_blocks}
    (servers not listed hold nothing).

    Raises
    ------
    ValidationError
        not a list, unknown or missing keys, a server out of range or listed twice, a block
        range outside [0, L), a server whose memory cannot hold its blocks.
    """
    if not isinstance(data, list):
        raise ValidationError(f"A placement must be a list of {{server, first_block, "
                              f"num_blocks}}. Got {type(data).__name__} instead.")
    S, L = scenario.num_servers, scenario.num_blocks
    first = np.zeros(S, dtype=np.int64)
    num = np.zeros(S, dtype=np.int64)
    seen = set()
    for i, item in enumerate(data):
        where = f"placement[{i}]"
        check_keys(item, where, {"server", "first_block", "num_blocks"})
        j = check_number(item["server"], "server", where, low=0, high=S - 1, integer=True)
        if j in seen:
            raise ValidationError(f"The 'server' parameter of {where} lists server {j} twice.")
        seen.add(j)
        m = check_number(item["num_blocks"], "num_blocks", where, low=0, high=L, integer=True)
        a = check_number(item["first_block"], "first_block", where, low=0, high=L - m,
                         integer=True)
        first[j], num[j] = a, m
    return _checked_placement(scenario, Placement.from_arrays(first, num))


def _checked_placement(scenario: Scenario, placement: Placement) -> Placement:
    if not isinstance(placement, Placement):
        return placement_from_list(placement, scenario)
    S, L = scenario.num_servers, scenario.num_blocks
    a, m = placement.first_block, placement.num_blocks
    if a.shape != (S,) or m.shape != (S,):
        raise ValidationError(f"Placement must have one entry per server ({S}). "
                              f"Got {a.shape[0]} instead.")
    bad = np.flatnonzero((m < 0) | (m > L) | ((m > 0) & ((a < 0) | (a + m > L))))
    if bad.size:
        j = int(bad[0])
        raise ValidationError(f"The placement of server {j} must lie in [0, {L}). "
                              f"Got first_block {a[j]}, num_blocks {m[j]} instead.")
    over = np.flatnonzero(scenario.block_gb * m > scenario.usable_memory_gb * (1 + 1e-12))
    if over.size:
        j = int(over[0])
        raise ValidationError(f"Server {j} cannot hold {m[j]} blocks "
                              f"({scenario.usable_memory_gb[j]:g} GB usable).")
    return placement


# ------------------------------------------------------------------------------------------
# GBP-CR and GCA
# ------------------------------------------------------------------------------------------
def _gbp_cr(scenario: Scenario, c: int, rate_per_s: float, target_load: float,
            alpha: np.ndarray, beta: np.ndarray) -> ChainPlacement:
    S = scenario.num_servers
    first = np.empty(S, dtype=np.int64)
    num = np.empty(S, dtype=np.int64)
    group = np.empty(S, dtype=np.int64)
    amortised = np.empty(S)
    order = np.empty(S, dtype=np.int64)
    target_per_s = rate_per_s / (target_load * c)
    K, nu, done, _, _ = chain_kernels.gbp_cr(
        scenario.usable_memory_gb, alpha, beta, scenario.block_gb, scenario.cache_gb, c,
        scenario.num_blocks, target_per_s / 1000.0, first, num, group, amortised, order)
    n_used = int(np.count_nonzero(np.isfinite(amortised)))
    return ChainPlacement(first, num, reservation=c, group=group, num_chains=int(K),
                          rate_per_s=float(nu) * 1000.0, target_rate_per_s=target_per_s,
                          feasible=bool(done), amortised_ms=amortised, order=order[:n_used])


def gbp_cr(scenario: Scenario, reservation: int, rate_per_s: float,
           target_load: float = DEFAULT_TARGET_LOAD, *, client_weights=None) -> ChainPlacement:
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

    Returns
    -------
    ChainPlacement
        a :class:`~distalloc.llm.model.Placement` (m_j(c) = min(⌊M_j / (s_m + s_c c)⌋, L)
        blocks per reached server, 0 for the others) with the chains' grouping, K(c) and
        ``feasible`` (false when the servers ran out before the rate target; GCA can
        still use what was placed).

    Notes
    -----
    Notes §2.2, 0-based (§2.4): servers in increasing amortised time
    t~_j = (tau^c_j + tau^p_j m_j) / m_j (ties by index) tile disjoint chains over
    [0, L); a server that would run past L is shifted back to end at L.  O(S log S).
    Theorem 2: with equal memories it minimises the number of chains of Eq. (7).

    Examples
    --------
    >>> from distalloc.llm import clustered, gbp_cr
    >>> p = gbp_cr(clustered(), reservation=80, rate_per_s=0.5)
    >>> p.feasible, p.num_chains, p.to_list()
    (True, 1, [{'server': 0, 'first_block': 0, 'num_blocks': 41}, {'server': 1, 'first_block': 29, 'num_blocks': 41}])
    """
    c = check_number(reservation, "reservation", low=1, integer=True)
    lam = check_number(rate_per_s, "rate_per_s", low=0, low_open=True)
    rho = check_number(target_load, "target_load", low=0, high=1, low_open=True, high_open=True)
    alpha, beta = chain_costs(scenario, client_weights)
    return _gbp_cr(scenario, c, lam, rho, alpha, beta)


def _gca(scenario: Scenario, placement: Placement, alpha: np.ndarray,
         beta: np.ndarray) -> list[Chain]:
    servers, blocks, offsets, caps, cost = chain_kernels.gca(
        placement.first_block, placement.num_blocks, scenario.num_blocks, alpha, beta,
        _slots(scenario, placement))
    return [Chain(tuple(servers[offsets[q]:offsets[q + 1]].tolist()),
                  tuple(blocks[offsets[q]:offsets[q + 1]].tolist()), int(caps[q]),
                  float(cost[q]) / 1000.0)
            for q in range(caps.size)]


def gca(scenario: Scenario, placement: Placement | Sequence[dict], *,
        client_weights=None) -> list[Chain]:
    """GCA: Greedy Cache Allocation (Alg. 2 of 2604.14993) on any placement.

    Parameters
    ----------
    scenario : Scenario
    placement : Placement or list of {server, first_block, num_blocks}
    client_weights : sequence of float, optional
        arrival weights of the clients for T_k (default: see the module docstring).

    Returns
    -------
    list of Chain
        in GCA order (non-decreasing ``service_s``); ``capacity`` c_k >= 1 jobs each.
        Empty if no chain covers every block with one job's cache.

    Notes
    -----
    Free slots start at M~_j = ⌊(M_j - s_m m_j) / s_c⌋ (float-floor safe).  Repeatedly:
    the fastest chain whose every server j has at least k_j free slots (k_j blocks
    processed on j), capacity c = min_j ⌊free_j / k_j⌋, free_j -= c k_j; a link whose
    server lacks the slots is gone for good (the global pruning of step (d)).  The
    shortest path is a block-ordered DP on the feasible-link DAG, O(S + Σ m_j); at most one
    round per link.  Theorem 3: JFFC over all chains loses nothing when limited to these.

    Examples
    --------
    >>> from distalloc.llm import clustered, gbp_cr, gca
    >>> sc = clustered()
    >>> [(ch.servers, ch.capacity, round(ch.service_s, 1)) for ch in gca(sc, gbp_cr(sc, 80, 0.5))]
    [((0, 1), 82, 70.0)]
    """
    placement = _checked_placement(scenario, placement)
    alpha, beta = chain_costs(scenario, client_weights)
    return _gca(scenario, placement, alpha, beta)


# ------------------------------------------------------------------------------------------
# The search over c
# ------------------------------------------------------------------------------------------
def _bounds(chains: list[Chain], rate_per_s: float) -> tuple[float, float]:
    from distalloc.llm.jffc import jffc_bounds_arrays
    if not chains:
        return math.inf, math.inf
    mu = np.array([1.0 / ch.service_s for ch in chains])
    cap = np.array([ch.capacity for ch in chains], dtype=np.int64)
    return jffc_bounds_arrays(mu, cap, rate_per_s)


def max_reservation(scenario: Scenario) -> int:
    """c_max = ⌊(max_j M_j - s_m) / s_c⌋: the largest c at which some server still holds
    one block."""
    top = float(np.max(scenario.usable_memory_gb)) - scenario.block_gb
    return max(0, int(math.floor(top / scenario.cache_gb * (1 + 1e-12) + 1e-9)))


def search_reservation(scenario: Scenario, rate_per_s: float,
                       target_load: float = DEFAULT_TARGET_LOAD, *, objective: str = "lower",
                       client_weights=None, prune: bool = True,
                       max_c: int | None = None,
                       output_tokens: float | None = None) -> ReservationSearch:
    """The 1-D search over the reservation c (notes §5.4).

    For c = 1, 2, ...: GBP-CR(c) (skip c if it cannot reach λ/(ρ̄c)), GCA on its placement
    (skip if λ >= Σ c_k/T_k), then the objective: Theorem 4's ``'lower'`` bound (the paper's
    recommendation, default), its ``'upper'`` bound, or the ``'surrogate'`` c·K(c)/λ of
    Eq. (9).  The minimiser wins (ties: the smallest c).

    The scan stops at c_max, once Σ_j m_j(c) < L (no larger c can hold the model), or, with
    ``prune`` and a Theorem-4 objective, once
    ⌈L / max_j m_j(c)⌉ · min_j tau^c_j + L · min_j tau^p_j reaches the best bound found: that
    is a lower bound on the fastest chain's T_1 at this and every larger c (every chain
    makes at least that many hops and processes L blocks), and both bounds are >= T_1, so
    no larger c can win.  ``max_c`` caps the scan (for plots).

    Cost: per c one GBP-CR, O(S log S), and one GCA on the servers it placed.
    """
    if objective not in OBJECTIVES:
        raise ValidationError(f"The 'objective' parameter must be one of {', '.join(OBJECTIVES)}. "
                              f"Got {objective!r} instead.")
    t0 = time.perf_counter()
    lam = rate_per_s
    alpha, beta = chain_costs(scenario, client_weights, output_tokens)
    L = scenario.num_blocks
    c_max = max_reservation(scenario)
    if max_c is not None:
        c_max = min(c_max, max_c)
    alpha_min, beta_min = float(alpha.min()), float(beta.min())
    counts = np.empty(scenario.num_servers, dtype=np.int64)
    cs, ks, status, nus, lows, ups = [], [], [], [], [], []
    best, best_obj, stop = None, math.inf, "c_max"
    for c in range(1, c_max + 1):
        if chain_kernels.block_counts(scenario.usable_memory_gb, scenario.block_gb,
                                      scenario.cache_gb, c, L, counts) < L:
            stop = "blocks"
            break
        if prune and objective != "surrogate" and best is not None:
            hops = -(-L // int(counts.max()))
            if (hops * alpha_min + L * beta_min) / 1000.0 >= best_obj:
                stop = "bound"
                break
        pl = _gbp_cr(scenario, c, lam, target_load, alpha, beta)
        cs.append(c)
        ks.append(pl.num_chains if pl.feasible else 0)
        if not pl.feasible:
            status.append("infeasible")
            nus.append(math.nan), lows.append(math.nan), ups.append(math.nan)
            continue
        chains = _gca(scenario, pl, alpha, beta)
        nu = float(sum(ch.capacity / ch.service_s for ch in chains))
        nus.append(nu)
        if lam >= nu:
            status.append("unstable")
            lows.append(math.nan), ups.append(math.nan)
            continue
        lo, up = _bounds(chains, lam)
        status.append("ok")
        lows.append(lo)
        ups.append(up)
        obj = {"lower": lo, "upper": up, "surrogate": c * pl.num_chains / lam}[objective]
        if obj < best_obj:
            best, best_obj = c, obj
    return ReservationSearch(objective, np.array(cs, dtype=np.int64),
                             np.array(ks, dtype=np.int64), status, np.array(nus),
                             np.array(lows), np.array(ups), best, stop,
                             time.perf_counter() - t0)


def _fallback_reservation(scenario, search, lam, rho, alpha, beta):
    """When no c reaches λ/(ρ̄c) with stable chains (overload, or a target load the swarm
    cannot offer): GCA on what GBP-CR placed at every scanned c, then the c with the lowest
    Theorem-4 lower bound among stable ones, else the largest service rate ν (the queue
    then grows without bound).  Returns (c, placement, note)."""
    best = None
    for c in search.reservation.tolist():
        pl = _gbp_cr(scenario, c, lam, rho, alpha, beta)
        chains = _gca(scenario, pl, alpha, beta)
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
            f"(scanned c = 1..{int(search.reservation.size)}, stopped: {search.stop}).")
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
    return check_number(reservation, "reservation", low=1, integer=True)


def compose_chains(scenario: Scenario, method: str = "chains", *, reservation: Any = "auto",
                   rate_per_s: float | None = None, target_load: float = DEFAULT_TARGET_LOAD,
                   placement: Placement | Sequence[dict] | None = None, client_weights=None,
                   objective: str = "lower",
                   output_tokens: float | None = None) -> ChainComposition:
    """Compose the chains of ``method`` ('chains' or 'jffc-whole') for arrival rate λ.

    'chains': GBP-CR(c) then GCA, with c = ``reservation`` or, for 'auto', the
    :func:`search_reservation` minimiser (if no c reaches λ/(ρ̄c) with stable chains:
    :func:`_fallback_reservation`, said in ``note``); with ``placement`` GCA runs on that placement
    instead (GBP-CR and the search are skipped).  'jffc-whole': every server that holds
    the whole model is a chain of one (GCA on :func:`whole_model_placement`).
    ``rate_per_s`` defaults to the scenario's ``rate_per_s`` (else 0.5 req/s, the
    simulator's default).  The Theorem-4 bounds are evaluated at λ (inf when λ >= ν).
    ``output_tokens``: the job length T_k is computed for (default: the scenario's).

    Raises
    ------
    ValidationError
        bad parameters, no reservation c for which GBP-CR reaches the rate with stable
        chains ('auto'), or no chain at all.
    """
    t0 = time.perf_counter()
    if method not in CHAIN_METHODS:
        raise ValidationError(f"The 'method' parameter must be one of {', '.join(CHAIN_METHODS)}. "
                              f"Got {method!r} instead.")
    lam = check_number(rate_per_s if rate_per_s is not None
                       else scenario.online.get("rate_per_s", 0.5),
                       "rate_per_s", low=0, low_open=True)
    rho = check_number(target_load, "target_load", low=0, high=1, low_open=True, high_open=True)
    res = _reservation_arg(reservation)
    weights = resolve_client_weights(scenario, client_weights)
    alpha, beta = chain_costs(scenario, weights, output_tokens)
    search, c, note = None, None, None
    if method == "jffc-whole":
        pl = whole_model_placement(scenario)
        if not np.any(pl.num_blocks):
            raise NoChainsError("No server can hold all blocks with the cache of one job "
                                  "(jffc-whole needs at least one).")
    elif placement is not None:
        pl = _checked_placement(scenario, placement)
    elif res == "auto":
        search = search_reservation(scenario, lam, rho, objective=objective,
                                    client_weights=weights, output_tokens=output_tokens)
        if search.best is not None:
            c = search.best
            pl = _gbp_cr(scenario, c, lam, rho, alpha, beta)
        else:
            c, pl, note = _fallback_reservation(scenario, search, lam, rho, alpha, beta)
    else:
        c = int(res)
        pl = _gbp_cr(scenario, c, lam, rho, alpha, beta)
        if not pl.feasible:
            note = (f"GBP-CR(c = {c}) ran out of servers before λ/(ρ̄c): GCA uses what was "
                    f"placed")
    chains = _gca(scenario, pl, alpha, beta)
    if not chains:
        raise NoChainsError(f"No chain covers all {scenario.num_blocks} blocks with the "
                              f"cache of one job" + (f" at reservation c = {c}." if c else "."))
    lo, up = _bounds(chains, lam)
    return ChainComposition(method, c, pl, chains, lam, rho, weights, lo, up, search,
                            time.perf_counter() - t0, note)
