"""Routing on the feasible-link DAG (SPEC 1.1, 1.5, 1.6).

Link (i, j) is feasible iff ``first_j <= end_i <= end_j - 1``; server j then processes
``k_j = end_j - end_i`` blocks.  Every routing rule in this library is a shortest path
whose link cost is ``alpha[c, j] + beta[j] * k_j`` (+ a penalty when j lacks cache for k_j
blocks), so one compiled dynamic program in block order serves them all:

=====================  ==========================================  ==================
rule                   alpha[c, j]                                 beta[j]
=====================  ==========================================  ==================
per-token (CG-BPRR)    rtt_ms[c, j]                                decode_ms[j]
request time           prefill_rtt + (l_out - 1) * rtt             prefill + (l_out-1) decode
PETALS                 rtt_ms[c, j] / 2 + 18 ms (+10 s no cache)   decode_ms[j]
=====================  ==========================================  ==================
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distalloc._compiled import llm_kernels
from distalloc._validation import ValidationError, as_float_array, as_int_array, check_real
from distalloc.llm.model import Placement, check_placement
from distalloc.llm.scenario import Scenario

__all__ = ["Routes", "shortest_routes", "per_token_costs", "petals_costs", "feasible_links",
           "PETALS_HOP_MS", "PETALS_NO_CACHE_PENALTY_MS"]

PETALS_HOP_MS = 18.0
PETALS_NO_CACHE_PENALTY_MS = 10_000.0


@dataclass(frozen=True, eq=False)
class Routes:
    """Shortest chains, one per row of the cost matrix: ``cost[c]`` (inf if no chain
    covers all blocks) and ``path(c)`` (server indices in order)."""

    cost: np.ndarray
    paths: np.ndarray
    path_len: np.ndarray

    def path(self, c: int) -> list[int]:
        return self.paths[c, : self.path_len[c]].tolist()


def shortest_routes(placement: Placement, num_blocks_total: int, alpha: np.ndarray,
                    beta: np.ndarray, free_blocks: np.ndarray | None = None,
                    penalty: float = 0.0) -> Routes:
    """Cheapest chain for each row of ``alpha`` (see the module docstring).

    Parameters
    ----------
    placement : Placement
    num_blocks_total : int
        L.
    alpha : (rows, servers) array
        per-visit cost of server j for this row (client).
    beta : (servers,) array
        cost per block processed on j.
    free_blocks : (servers,) int array, optional
        largest k_j that j can take without ``penalty`` (default: no penalty).
    penalty : float
        added to a link whose k_j exceeds ``free_blocks[j]``; ``inf`` forbids it.

    Raises
    ------
    ValidationError
        a placement that does not fit [0, L), arrays whose widths differ from the
        placement's number of servers, NaN or -inf costs, a NaN or negative penalty.

    Notes
    -----
    Block-ordered dynamic program: O(rows x (servers + sum_j num_blocks_j)); exact
    because every feasible link strictly increases the end block.
    """
    if not isinstance(placement, Placement):
        raise ValidationError(f"'placement' must be a Placement. Got "
                              f"{type(placement).__name__} instead.")
    S = placement.num_blocks.shape[0]
    check_placement(placement, num_blocks_total)
    L = int(num_blocks_total)
    try:
        one_row = np.ndim(alpha) == 1
    except ValueError:  # ragged: reported by as_float_array
        one_row = False
    alpha = np.atleast_2d(as_float_array(alpha, "alpha", ndim=1 if one_row else 2,
                                         allow_inf=True))
    if alpha.shape[1] != S:
        raise ValidationError(f"'alpha' must have one column per server ({S}). Got shape "
                              f"{alpha.shape} instead.")
    beta = as_float_array(beta, "beta", shape=(S,), allow_inf=True)
    for name, arr in (("alpha", alpha), ("beta", beta)):
        if np.isneginf(arr).any():
            raise ValidationError(f"'{name}' must not hold -inf.")
    if free_blocks is None:
        free_blocks = np.full(S, L, dtype=np.int64)
    free_blocks = as_int_array(free_blocks, "free_blocks", shape=(S,))
    penalty = check_real(penalty, "penalty", low=0) if penalty != math.inf else math.inf
    rows = alpha.shape[0]
    cost = np.empty(rows)
    paths = np.empty((rows, max(L, 1)), dtype=np.int64)
    path_len = np.empty(rows, dtype=np.int64)
    llm_kernels.shortest_routes(placement.first_block, placement.num_blocks, L, alpha, beta,
                                free_blocks, float(penalty), cost, paths, path_len)
    return Routes(cost, paths, path_len)


def per_token_costs(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) whose shortest path minimises the per-token time."""
    return scenario.rtt_ms, scenario.decode_ms


def request_time_costs(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) whose shortest path minimises the request time T(r, p)."""
    n = scenario.output_tokens - 1
    return (scenario.prefill_rtt_ms + n * scenario.rtt_ms,
            scenario.prefill_ms + n * scenario.decode_ms)


def petals_costs(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of PETALS's Dijkstra: rtt/2 + 18 ms per hop, decode time per block."""
    return scenario.rtt_ms / 2.0 + PETALS_HOP_MS, scenario.decode_ms


def feasible_links(placement: Placement, num_blocks_total: int) -> list[tuple[int, int]]:
    """All feasible links of the DAG, -1 standing for the dummy start and -2 for the dummy
    end (for inspection and plotting; routing never builds the DAG explicitly)."""
    a, m = placement.first_block, placement.num_blocks
    used = np.flatnonzero(m > 0)
    ends = {-1: 0, **{int(j): int(a[j] + m[j]) for j in used}}
    links = []
    for i, e_i in ends.items():
        links.extend((i, int(j)) for j in used if a[j] <= e_i <= a[j] + m[j] - 1)
        if i != -1 and e_i == num_blocks_total:
            links.append((i, -2))
    return links
