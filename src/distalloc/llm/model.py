"""The performance model of SPEC 1.1: what a placement and its routes cost.

Per-token time of a request of client c on path p is
``sum_{j in p} (rtt_ms[c, j] + decode_ms[j] * k_j)``; its request time adds the prefill
(time to first token) ``sum_j (prefill_rtt_ms[c, j] + prefill_ms[j] * k_j)`` to
``(output_tokens - 1)`` per-token times; server j uses
``block_gb * m_j + cache_gb * sum_r k_j^r`` of memory.  All of it is computed for many
routes (and many placements) in one call of the compiled kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from numbers import Integral
from typing import Any, Sequence

import numpy as np

from distalloc._compiled import llm_kernels
from distalloc._validation import ValidationError, as_int_array, check_count, describe
from distalloc.llm.limits import MAX_BLOCKS
from distalloc.llm.scenario import Scenario, check_scenario

__all__ = ["Placement", "RouteMetrics", "evaluate_routes", "check_placement", "ROUTE_STATUS",
           "check_covers_all_blocks"]

#: meaning of the per-route status codes returned by the kernel
ROUTE_STATUS = {0: "valid", 1: "empty route", 2: "server unused (holds no block)",
                3: "infeasible link (gap in blocks or no new block)",
                4: "route does not reach the last block"}


@dataclass(frozen=True, eq=False)
class Placement:
    """Server j hosts blocks ``[first_block[j], first_block[j] + num_blocks[j])``;
    ``num_blocks[j] == 0`` means unused.

    Both arrays are stored as C-contiguous int64 of one length, with non-negative entries
    (checked when the placement is made); whether the ranges fit a model of L blocks is
    checked by every function that knows L (:func:`check_placement`).

    Raises
    ------
    ValidationError
        arrays that are not 1-D integer arrays of equal length with entries >= 0.
    """

    first_block: np.ndarray
    num_blocks: np.ndarray

    def __post_init__(self) -> None:
        a = as_int_array(self.first_block, "first_block", low=0)
        m = as_int_array(self.num_blocks, "num_blocks", low=0)
        if a.shape != m.shape:
            raise ValidationError(f"'first_block' and 'num_blocks' must have one entry per "
                                  f"server each. Got {a.shape[0]} and {m.shape[0]} instead.")
        object.__setattr__(self, "first_block", a)
        object.__setattr__(self, "num_blocks", m)

    @classmethod
    def from_arrays(cls, first_block, num_blocks) -> "Placement":
        """A placement from two integer sequences (``first_block`` of unused servers is
        ignored and stored as 0)."""
        m = as_int_array(num_blocks, "num_blocks", low=0)
        a = as_int_array(first_block, "first_block")
        if a.shape != m.shape:
            raise ValidationError(f"'first_block' and 'num_blocks' must have one entry per "
                                  f"server each. Got {a.shape[0]} and {m.shape[0]} instead.")
        return cls(np.where(m > 0, a, 0), m)

    def covers_all_blocks(self, num_blocks_total: int) -> bool:
        check_placement(self, num_blocks_total)
        cover = np.zeros(num_blocks_total + 1, dtype=np.int64)
        used = self.num_blocks > 0
        np.add.at(cover, self.first_block[used], 1)
        np.add.at(cover, (self.first_block + self.num_blocks)[used], -1)
        return bool(np.all(np.cumsum(cover)[:num_blocks_total] > 0))

    def to_list(self) -> list[dict[str, int]]:
        """The contract form: ``{server, first_block, num_blocks}`` per used server."""
        return [{"server": int(j), "first_block": int(self.first_block[j]),
                 "num_blocks": int(self.num_blocks[j])}
                for j in np.flatnonzero(self.num_blocks > 0)]


def check_placement(placement: Any, num_blocks_total: int,
                    num_servers: int | None = None) -> "Placement":
    """Check that every used server's range lies in [0, L) (and, given ``num_servers``,
    that there is one entry per server); the precondition of every kernel that takes a
    placement.

    Raises
    ------
    ValidationError
        naming the first server whose range does not fit.
    """
    if not isinstance(placement, Placement):
        raise ValidationError(f"'placement' must be a Placement. Got "
                              f"{type(placement).__name__} instead.")
    L = check_count(num_blocks_total, "num_blocks_total", low=1, high=MAX_BLOCKS)
    a, m = placement.first_block, placement.num_blocks
    if num_servers is not None and a.shape[0] != num_servers:
        raise ValidationError(f"Placement must have one entry per server ({num_servers}). "
                              f"Got {a.shape[0]} instead.")
    bad = (m > L) | ((m > 0) & (a > L - m))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"Placement of server {j} must lie in blocks [0, {L}): got "
                              f"first_block {int(a[j])}, num_blocks {int(m[j])}.")
    return placement


@dataclass(frozen=True, eq=False)
class RouteMetrics:
    """Per-route arrays (ms) and per-(placement, server) memory (GB)."""

    token_ms: np.ndarray
    ttft_ms: np.ndarray
    request_ms: np.ndarray
    status: np.ndarray
    memory_gb: np.ndarray  # (num_placements, num_servers)

    @property
    def all_valid(self) -> bool:
        return bool(np.all(self.status == 0))


def _csr(routes: Sequence[Sequence[int]], num_servers: int) -> tuple[np.ndarray, np.ndarray]:
    """Routes as CSR arrays; server entries must be integers in [0, ``num_servers``): a
    route through a server the swarm does not have is a wrong input, not a route (the
    kernel still checks every index: status 2, never read)."""
    try:
        lengths = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
        indptr = np.zeros(len(routes) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = list(chain.from_iterable(routes))
    except TypeError:
        raise ValidationError("'routes' must be a sequence of sequences of server indices.") from None
    if not all(isinstance(j, (Integral, np.integer)) and not isinstance(j, (bool, np.bool_))
               for j in flat):
        raise ValidationError("'routes' must hold integer server indices. Got "
                              f"{describe(next(j for j in flat if not isinstance(j, (Integral, np.integer)) or isinstance(j, (bool, np.bool_))))} instead.")
    for k, j in enumerate(flat):
        if not 0 <= int(j) < num_servers:
            i = int(np.searchsorted(indptr, k, side="right")) - 1
            raise ValidationError(f"The 'routes' entry routes[{i}][{k - int(indptr[i])}] must be a "
                                  f"server index in [0, {num_servers - 1}]. Got {int(j)} instead.")
    servers = np.fromiter((int(j) for j in flat), dtype=np.int64, count=len(flat))
    return indptr, servers


def check_covers_all_blocks(first_block: np.ndarray, num_blocks: np.ndarray, num_blocks_total: int,
                            what: str = "placement") -> None:
    """Refuse a placement (already in range) that leaves a block on no server, naming the
    first such block: no request could ever be served."""
    L = int(num_blocks_total)
    a = np.asarray(first_block, dtype=np.int64)
    m = np.asarray(num_blocks, dtype=np.int64)
    held = np.zeros(L + 1, dtype=np.int64)       # servers holding each block (difference array)
    used = m > 0
    np.add.at(held, a[used], 1)
    np.add.at(held, a[used] + m[used], -1)
    uncovered = np.flatnonzero(np.cumsum(held[:L]) == 0)
    if uncovered.size:
        raise ValidationError(f"The '{what}' leaves block {int(uncovered[0])} on no server "
                              f"(blocks 0 to {L - 1} must each be held by one server at least); "
                              f"{uncovered.size} of {L} blocks are uncovered.")


def evaluate_routes(scenario: Scenario, placements: Placement | Sequence[Placement],
                    routes: Sequence[Sequence[int]], clients: Sequence[int] | np.ndarray,
                    route_placement: Sequence[int] | np.ndarray | None = None) -> RouteMetrics:
    """Evaluate the performance model for many routes, on one or many placements.

    Parameters
    ----------
    scenario : Scenario
    placements : Placement or sequence of Placement
    routes : sequence of sequences of server indices, in chain order
    clients : client index of each route
    route_placement : index into ``placements`` of each route (default all 0)

    Returns
    -------
    RouteMetrics
        ``token_ms``, ``ttft_ms``, ``request_ms`` (NaN for invalid routes), ``status``
        (0 = valid, see ``ROUTE_STATUS``: a route through an unused server, with a gap, or
        short of the last block is invalid) and ``memory_gb`` of every (placement, server)
        with the caches of all valid routes of that placement.

    Raises
    ------
    ValidationError
        a placement that does not fit the scenario, a client or ``route_placement`` out of
        range, a route entry that is not a server index in [0, S).

    Notes
    -----
    O(total route length + placements x servers), one pass of a compiled kernel.

    Examples
    --------
    >>> from distalloc.llm import clustered, Placement, evaluate_routes
    >>> sc = clustered()
    >>> pl = Placement.from_arrays([0, 35] + [0] * 7, [35, 35] + [0] * 7)
    >>> round(float(evaluate_routes(sc, pl, [[0, 1]], [0]).token_ms[0]), 3)
    625.379
    """
    check_scenario(scenario, "evaluate_routes")
    if isinstance(placements, Placement):
        placements = [placements]
    if not isinstance(placements, (list, tuple)) or not placements:
        raise ValidationError("'placements' must be a Placement or a non-empty sequence of them.")
    for p in placements:
        check_placement(p, scenario.num_blocks, scenario.num_servers)
    if len(placements) == 1:  # the common case: views, no copies
        first = np.ascontiguousarray(placements[0].first_block, dtype=np.int64)[None, :]
        num = np.ascontiguousarray(placements[0].num_blocks, dtype=np.int64)[None, :]
    else:
        first = np.ascontiguousarray(np.stack([p.first_block for p in placements]), dtype=np.int64)
        num = np.ascontiguousarray(np.stack([p.num_blocks for p in placements]), dtype=np.int64)
    if first.shape[1] != scenario.num_servers:
        raise ValidationError(f"Placement must have one entry per server ({scenario.num_servers}). "
                              f"Got {first.shape[1]} instead.")
    indptr, servers = _csr(routes, scenario.num_servers)
    n = len(routes)
    clients = as_int_array(clients, "clients", shape=(n,), low=0, high=scenario.num_clients - 1)
    plan_idx = (np.zeros(n, dtype=np.int64) if route_placement is None
                else as_int_array(route_placement, "route_placement", shape=(n,), low=0,
                                  high=len(placements) - 1))
    token = np.empty(n)
    ttft = np.empty(n)
    req = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    memory = np.empty(first.shape)
    llm_kernels.evaluate_routes(first, num, scenario.num_blocks, plan_idx, clients, indptr, servers,
                                scenario.rtt_ms, scenario.prefill_rtt_ms, scenario.decode_ms,
                                scenario.prefill_ms, scenario.output_tokens, scenario.block_gb,
                                scenario.cache_gb, token, ttft, req, status, memory)
    return RouteMetrics(token, ttft, req, status, memory)
