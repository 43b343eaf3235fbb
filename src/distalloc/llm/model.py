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
from typing import Sequence

import numpy as np

from distalloc._compiled import llm_kernels
from distalloc._validation import ValidationError
from distalloc.llm.scenario import Scenario

__all__ = ["Placement", "RouteMetrics", "evaluate_routes", "ROUTE_STATUS"]

#: meaning of the per-route status codes returned by the kernel
ROUTE_STATUS = {0: "valid", 1: "empty route", 2: "server unused or out of range",
                3: "infeasible link (gap in blocks or no new block)",
                4: "route does not reach the last block"}


@dataclass(frozen=True, eq=False)
class Placement:
    """Server j hosts blocks ``[first_block[j], first_block[j] + num_blocks[j])``;
    ``num_blocks[j] == 0`` means unused."""

    first_block: np.ndarray
    num_blocks: np.ndarray

    @classmethod
    def from_arrays(cls, first_block, num_blocks) -> "Placement":
        a = np.ascontiguousarray(first_block, dtype=np.int64)
        m = np.ascontiguousarray(num_blocks, dtype=np.int64)
        a = np.where(m > 0, a, 0)
        return cls(a, m)

    def covers_all_blocks(self, num_blocks_total: int) -> bool:
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


def _csr(routes: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, routes), dtype=np.int64, count=len(routes))
    indptr = np.zeros(len(routes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    servers = np.fromiter(chain.from_iterable(routes), dtype=np.int64, count=int(indptr[-1]))
    return indptr, servers


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
        (0 = valid, see ``ROUTE_STATUS``) and ``memory_gb`` of every (placement, server)
        with the caches of all valid routes of that placement.

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
    if isinstance(placements, Placement):
        placements = [placements]
    if len(placements) == 1:  # the common case: views, no copies
        first = np.ascontiguousarray(placements[0].first_block, dtype=np.int64)[None, :]
        num = np.ascontiguousarray(placements[0].num_blocks, dtype=np.int64)[None, :]
    else:
        first = np.ascontiguousarray(np.stack([p.first_block for p in placements]), dtype=np.int64)
        num = np.ascontiguousarray(np.stack([p.num_blocks for p in placements]), dtype=np.int64)
    if first.shape[1] != scenario.num_servers:
        raise ValidationError(f"Placement must have one entry per server ({scenario.num_servers}). "
                              f"Got {first.shape[1]} instead.")
    n = len(routes)
    clients = np.ascontiguousarray(clients, dtype=np.int64)
    if clients.shape != (n,):
        raise ValidationError(f"'clients' must have one entry per route ({n}). Got {clients.shape} instead.")
    if n and (clients.min() < 0 or clients.max() >= scenario.num_clients):
        raise ValidationError(f"'clients' must be in [0, {scenario.num_clients}). Got {clients.tolist()} instead.")
    plan_idx = (np.zeros(n, dtype=np.int64) if route_placement is None
                else np.ascontiguousarray(route_placement, dtype=np.int64))
    if plan_idx.shape != (n,) or (n and (plan_idx.min() < 0 or plan_idx.max() >= len(placements))):
        raise ValidationError(f"'route_placement' must index the {len(placements)} placements.")
    indptr, servers = _csr(routes)
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
