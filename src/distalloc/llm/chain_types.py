"""Chain composition (SPEC 1.10): result types and placement inputs of
:mod:`distalloc.llm.chains` (chains, GBP-CR placements, the search over c, compositions;
the whole-model placement of ``jffc-whole`` and placements given as a list)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, check_keys, check_number
from distalloc.llm.chain_groups import ClientGroups
from distalloc.llm.model import Placement, check_covers_all_blocks
from distalloc.llm.scenario import Scenario

__all__ = ["CHAIN_METHODS", "DEFAULT_TARGET_LOAD", "OBJECTIVES", "Chain", "ChainComposition",
           "ChainPlacement", "NoChainsError", "ReservationSearch", "placement_from_list",
           "whole_model_placement"]

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
    ``capacity`` concurrent jobs (c_k), ``service_s`` T_k (arrival-weighted over the clients
    of its group, or over all clients for a shared chain) and ``group``, the client group it
    was composed for (-1: shared by every client)."""

    servers: tuple[int, ...]
    blocks: tuple[int, ...]
    capacity: int
    service_s: float
    group: int = -1

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

    ``group[j]`` is the chain server j was placed in (-1: never reached, no blocks;
    complete chains first); ``num_chains`` K(c) complete chains; ``rate_per_s`` their
    total rate as GBP-CR counts it (sum of 1/T with each server's full m_j(c), a
    conservative estimate, Lemma 1); ``feasible`` is false when the servers ran out before
    the rate reached ``target_rate_per_s`` = λ / (ρ̄ c) (the last, incomplete chain keeps
    its blocks).  Client groups: ``client_groups`` the grouping, ``owner[j]`` the group
    server j was placed for, ``group_rate_per_s``/``group_chains`` per group (every group
    must reach its share w_g λ / (ρ̄ c) for ``feasible``).
    """

    reservation: int = 1
    group: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    num_chains: int = 0
    rate_per_s: float = 0.0
    target_rate_per_s: float = 0.0
    feasible: bool = False
    amortised_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    client_groups: ClientGroups | None = None
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    group_rate_per_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    group_chains: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class ReservationSearch:
    """The search over c (notes §5.4), for each grouping of the clients: one entry per
    (grouping, c) scanned, finest grouping first, c = 1..last of each.

    ``grouping[i]`` indexes ``groupings`` (the one-group reading first);
    ``num_chains`` is K(c) (0 where GBP-CR cannot reach the rate target), ``status`` 'ok',
    'infeasible' (GBP-CR) or 'unstable' (λ >= the service rate of some group's chains);
    ``lower_s`` and ``upper_s`` are Theorem 4's bounds (arrival-weighted over the groups;
    NaN unless ok).  ``best`` is the minimising c, ``best_grouping`` its grouping's index.
    ``stop`` says why the last scan (the one-group reading's) ended: 'c_max', 'blocks'
    (sum_j m_j(c) < L) or 'bound' (every larger c has fastest chains at least as slow as
    the best objective found: exact, see :func:`search_reservation`).
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
    grouping: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    groupings: list[ClientGroups] = field(default_factory=list)
    best_grouping: int | None = None

    @property
    def best_groups(self) -> ClientGroups | None:
        return None if self.best_grouping is None else self.groupings[self.best_grouping]

    def to_dict(self) -> dict[str, Any]:
        best = self.best_groups
        return {"objective": self.objective, "best": self.best, "stop": self.stop,
                "evaluated": int(self.reservation.size), "search_s": self.search_s,
                "groupings": len(self.groupings),
                "client_groups": None if best is None else best.num_groups}


@dataclass(eq=False)
class ChainComposition:
    """Placement + GCA chains + Theorem-4 bounds at the design rate.

    ``client_groups``: the grouping the chains were composed for (None: every chain shared,
    e.g. GCA on a given placement or jffc-whole); ``to_dict()`` gives it as
    ``client_groups`` (group of each client) and ``chain_groups`` (group of each chain,
    null when shared)."""

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
    client_groups: ClientGroups | None = None

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
             "num_chains": len(self.chains), "job_slots": self.capacity,
             "client_groups": (None if self.client_groups is None
                               else self.client_groups.to_list()),
             "chain_groups": [ch.group if ch.group >= 0 else None for ch in self.chains]}
        if self.search is not None:
            d["search"] = self.search.to_dict()
        if self.note:
            d["note"] = self.note
        return d


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------
# Placements given as input
# ------------------------------------------------------------------------------------------
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
    check_covers_all_blocks(a, m, L)
    return placement
