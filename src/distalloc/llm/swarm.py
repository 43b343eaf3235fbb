"""The online engine a scheduler embeds: :class:`Swarm` (SPEC 5.1).

A swarm coordinator or a serving gateway keeps one :class:`Swarm` and asks it for decisions
as events happen: where a request goes now (:meth:`Swarm.route`), that a session ended
(:meth:`Swarm.finish`), that a server left or joined (:meth:`Swarm.leave`,
:meth:`Swarm.join`), and to re-choose blocks (:meth:`Swarm.rebalance`).  Every decision runs
in the compiled engine (``distalloc._kernels.swarm_kernels.Engine``) that the simulator
(:func:`distalloc.llm.simulate`) drives with its event loop, so what a user measures in
simulation is what they embed.  This module validates, converts seconds to the engine's
milliseconds, and wraps the answers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from distalloc._compiled import swarm_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.llm.model import Placement
from distalloc.llm.placement import (cg_bp_placement, conservative_block_counts,
                                     petals_block_counts, petals_placement)
from distalloc.llm.routing import PETALS_NO_CACHE_PENALTY_MS, petals_costs
from distalloc.llm.scenario import Scenario

__all__ = ["Swarm", "Assignment", "Rebalance", "SWARM_METHODS", "SWARM_POLICIES"]

#: placement method -> the join/rebalance rule it brings
SWARM_METHODS = {"cg-bprr": "cg-bp", "petals": "petals"}
#: routing policies; 'jffc' (join the fastest free chain, SPEC 1.10) has its slot in the
#: engine's per-policy dispatch and is not wired in yet
SWARM_POLICIES = ("ws-rr", "petals", "jffc")
PETALS_BALANCE_QUALITY = 0.75


@dataclass(frozen=True)
class Assignment:
    """Where a session goes: its id, its chain (server indices in order), when it starts
    (``start_s`` = decision time + ``wait_s``) and its predicted finish (seconds)."""

    session: int
    servers: list[int]
    start_s: float
    finish_s: float
    wait_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session, "servers": self.servers, "start_s": self.start_s,
                "finish_s": self.finish_s, "wait_s": self.wait_s}


@dataclass(frozen=True)
class Rebalance:
    """What :meth:`Swarm.rebalance` moved: each moved server's new blocks (``llm plan``
    form) and the sessions that lost a server (to re-route); ``reason`` when the rule
    declined to re-plan."""

    moves: list[dict[str, int]]
    interrupted: list[int]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"moves": self.moves, "interrupted": self.interrupted, "reason": self.reason}


def _ms_to_s(x: float) -> float | None:
    return None if x == math.inf else x / 1000.0


def placement_from_any(scenario: Scenario, placement: Any) -> Placement:
    """A :class:`Placement` from a Placement or the ``llm plan`` list form
    (``[{server, first_block, num_blocks}, ...]``), checked against the scenario: blocks
    inside [0, L), every server's blocks fit its usable memory."""
    S, L = scenario.num_servers, scenario.num_blocks
    if isinstance(placement, Placement):
        first = np.asarray(placement.first_block)
        num = np.asarray(placement.num_blocks)
        if first.shape != (S,) or num.shape != (S,):
            raise ValidationError(f"The 'placement' must have one entry per server ({S}). "
                                  f"Got {first.shape[0] if first.ndim else 0} instead.")
    elif isinstance(placement, (list, tuple)):
        first = np.zeros(S, dtype=np.int64)
        num = np.zeros(S, dtype=np.int64)
        for i, row in enumerate(placement):
            where = f"placement[{i}]"
            if not isinstance(row, dict) or set(row) != {"server", "first_block", "num_blocks"}:
                raise ValidationError(f"'{where}' must be an object with keys server, "
                                      f"first_block, num_blocks. Got {row!r} instead.")
            j = check_number(row["server"], "server", where, low=0, high=S - 1, integer=True)
            first[j] = check_number(row["first_block"], "first_block", where, low=0,
                                    high=L - 1, integer=True)
            num[j] = check_number(row["num_blocks"], "num_blocks", where, low=0, high=L,
                                  integer=True)
    else:
        raise ValidationError(f"The 'placement' parameter must be a Placement or a list of "
                              f"{{server, first_block, num_blocks}}. Got {type(placement).__name__} instead.")
    pl = Placement.from_arrays(first, num)
    a, m = pl.first_block, pl.num_blocks
    for j in range(S):
        if m[j] < 0 or (m[j] > 0 and (a[j] < 0 or a[j] + m[j] > L)):
            raise ValidationError(f"The 'placement' of server {j} must lie in [0, {L}). "
                                  f"Got first_block {a[j]}, num_blocks {m[j]} instead.")
    over = np.flatnonzero(scenario.block_gb * m > scenario.usable_memory_gb * (1 + 1e-12))
    if over.size:
        j = int(over[0])
        raise ValidationError(f"The 'placement' gives server {j} {m[j]} blocks "
                              f"({scenario.block_gb * m[j]:.4g} GB), more than its usable "
                              f"memory {scenario.usable_memory_gb[j]:.4g} GB.")
    return pl


def make_engine(scenario: Scenario, placement: Placement, *, policy: str, join_rule: str,
                join_blocks: np.ndarray, join_rank: np.ndarray | None = None,
                planned_requests: int = 1,
                balance_quality: float = PETALS_BALANCE_QUALITY) -> Any:
    """The compiled engine on ``placement`` (shared by :class:`Swarm` and the simulator).

    ``join_rule`` ('cg-bp' or 'petals') and ``join_blocks`` (blocks each server takes when
    it joins) are the placement method's; ``join_rank`` orders the servers holding blocks
    as PETALS's join order did (default: by index); ``planned_requests`` is CG-BP's |R|.
    """
    S = scenario.num_servers
    p_alpha, p_beta = petals_costs(scenario)
    forward, network = scenario.throughput_profile()
    rank = np.arange(S, dtype=np.float64) if join_rank is None else np.asarray(join_rank, float)
    return swarm_kernels.Engine(
        placement.first_block, placement.num_blocks, scenario.num_blocks, scenario.rtt_ms,
        scenario.prefill_rtt_ms, scenario.decode_ms, scenario.prefill_ms, p_alpha, p_beta,
        scenario.usable_memory_gb, scenario.max_rtt_ms, forward, network,
        np.asarray(join_blocks, dtype=np.int64), rank, scenario.block_gb, scenario.cache_gb,
        int(planned_requests), swarm_kernels.POLICIES[policy],
        swarm_kernels.JOIN_RULES[join_rule], PETALS_NO_CACHE_PENALTY_MS, balance_quality)


class Swarm:
    """A long-lived online engine: placement, free cache per server, sessions in progress,
    and the decisions on them (SPEC 5.1).

    Parameters
    ----------
    scenario : Scenario
    placement : Placement or list of {server, first_block, num_blocks}, optional
        the blocks each server hosts; default: the method's placement of ``scenario``.
    method : {'cg-bprr', 'petals'}
        the placement rule, also used when a server joins and by :meth:`rebalance`:
        CG-BP (conservative block counts for |R| planned sessions, its greedy window rule)
        or PETALS (fixed-cache block counts, the weakest window by throughput, random join
        order from ``seed``).
    policy : {'ws-rr', 'petals'}
        routing: WS-RR (shortest request time plus the wait for cache; the session is
        booked at once and starts when its chain has the cache) or PETALS's Dijkstra
        (rtt/2 + 18 ms per hop, +10 s where a server lacks free cache; a chain without
        free cache is not booked: :meth:`route` returns None and the caller backs off,
        1, 2, 4 ... 60 s, as PETALS clients do).  'jffc' has its slot in the engine's
        per-policy dispatch and is not wired in yet.
    planned_requests : int, optional
        CG-BP's |R| (default: the scenario's request set size).
    block_counts : array of int, optional
        blocks each server takes when it joins (default: the method's rule).
    seed : int or Generator
        PETALS's random join order.

    Notes
    -----
    Times are seconds on the caller's clock, which never goes backwards.  A session's
    ``finish_s`` is its predicted finish (SPEC 1.1).  A session still not finished at a
    call after its predicted finish is late: it holds its cache until :meth:`finish`, and
    every session not yet started is re-booked behind it in booking order (its ``start_s``
    moves, shown by :meth:`to_dict`: to when the cache it needs is released, never before
    it was first planned nor before the previous call; None while it waits for a late
    session), so the cache of sessions that have started is never over-booked.  A session
    counts as started once a call comes after its ``start_s``.  Finishing a session that
    was still waiting for a late one cancels it.

    Cost: :meth:`route` is O(chain) when the client's cheapest chain has free cache, else
    one block-ordered DP over the placement, O(S + sum_j m_j) plus the sessions of servers
    short of cache; :meth:`finish` O(chain x sessions per server); :meth:`leave` and
    :meth:`join` O(S + L) plus the window rule (O(sum_j m_j + L m)), no re-plan.

    Examples
    --------
    >>> from distalloc.llm import Swarm, clustered
    >>> swarm = Swarm(clustered(), planned_requests=20)
    >>> a = swarm.route(client=0, now_s=0.0)
    >>> a.servers, round(a.finish_s, 1)
    ([0, 1], 82.2)
    >>> swarm.finish(a.session, now_s=a.finish_s)
    """

    def __init__(self, scenario: Scenario, placement: Any = None, method: str = "cg-bprr",
                 policy: str = "ws-rr", *, planned_requests: int | None = None,
                 block_counts: Sequence[int] | None = None, seed: Any = 0,
                 balance_quality: float = PETALS_BALANCE_QUALITY):
        if not isinstance(scenario, Scenario):
            raise ValidationError(f"The 'scenario' parameter must be a Scenario. "
                                  f"Got {type(scenario).__name__} instead.")
        if method not in SWARM_METHODS:
            raise ValidationError(f"The 'method' parameter must be one of "
                                  f"{', '.join(SWARM_METHODS)}. Got {method!r} instead.")
        if policy not in SWARM_POLICIES:
            raise ValidationError(f"The 'policy' parameter must be one of "
                                  f"{', '.join(SWARM_POLICIES)}. Got {policy!r} instead.")
        if policy == "jffc":
            raise ValidationError("The 'policy' parameter 'jffc' is not wired into the online "
                                  "engine yet; use 'ws-rr' or 'petals' (the chain methods "
                                  "run in simulate(method='chains')).")
        S = scenario.num_servers
        R = (scenario.num_requests if planned_requests is None else
             check_number(planned_requests, "planned_requests", low=1, integer=True))
        quality = check_number(balance_quality, "balance_quality", low=0, low_open=True)
        rng = as_generator(seed)
        rule = SWARM_METHODS[method]
        rank = None
        if placement is None:
            if rule == "cg-bp":
                cg = cg_bp_placement(scenario, R)
                if not cg.feasible:
                    raise ValidationError(f"CG-BP cannot place the model for |R| = {R}: {cg.reason}")
                placement = cg.placement
            else:
                order = rng.permutation(S)
                placement, thr = petals_placement(scenario, order)
                if not placement.covers_all_blocks(scenario.num_blocks):
                    raise ValidationError(f"PETALS's placement leaves block "
                                          f"{int(np.flatnonzero(thr == 0)[0])} unserved.")
                rank = np.empty(S)
                rank[order] = np.arange(S)
        else:
            placement = placement_from_any(scenario, placement)
        if block_counts is None:
            counts = (conservative_block_counts(scenario, R) if rule == "cg-bp"
                      else petals_block_counts(scenario))
        else:
            counts = np.asarray([check_number(x, f"block_counts[{j}]", low=0,
                                              high=scenario.num_blocks, integer=True)
                                 for j, x in enumerate(block_counts)], dtype=np.int64)
            if counts.shape != (S,):
                raise ValidationError(f"'block_counts' must have {S} entries (one per server). "
                                      f"Got {counts.shape[0]} instead.")
            if np.any(scenario.block_gb * counts > scenario.usable_memory_gb * (1 + 1e-12)):
                j = int(np.flatnonzero(scenario.block_gb * counts > scenario.usable_memory_gb)[0])
                raise ValidationError(f"'block_counts[{j}]' = {counts[j]} blocks do not fit "
                                      f"server {j}'s usable memory.")
        self.scenario = scenario
        self.method = method
        self.policy = policy
        self.planned_requests = R
        self._join_rank = np.arange(S, dtype=np.float64) if rank is None else rank
        self._engine = make_engine(scenario, placement, policy=policy, join_rule=rule,
                                   join_blocks=counts, join_rank=self._join_rank,
                                   planned_requests=R,
                                   balance_quality=quality)
        self._now_s = 0.0
        self._num_clients = scenario.num_clients
        self._max_tokens = scenario.output_tokens

    # -- validation (all of it before any state changes) --------------------------------
    def _time(self, now_s: Any) -> float:
        if type(now_s) is not float or not math.isfinite(now_s):
            now_s = check_number(now_s, "now_s")
        if now_s < self._now_s:
            raise ValidationError(f"The 'now_s' parameter must be >= the swarm's clock "
                                  f"{self._now_s!r} s (time cannot go backwards). "
                                  f"Got {now_s!r} instead.")
        return now_s

    def _index(self, value: Any, name: str, high: int) -> int:
        if type(value) is int and 0 <= value < high:
            return value
        return check_number(value, name, low=0, high=high - 1, integer=True)

    def _session(self, session: Any) -> int:
        sid = session if type(session) is int else check_number(session, "session", low=0,
                                                                integer=True)
        state = self._engine.session_state(sid)
        if state != 1:
            why = "it already finished or was interrupted" if state == 2 else "no such session"
            raise ValidationError(f"The 'session' parameter must be a session in progress. "
                                  f"Got {session!r} instead ({why}).")
        return sid

    # -- decisions -------------------------------------------------------------------------
    def route(self, client: int, now_s: float, output_tokens: int | None = None
              ) -> Assignment | None:
        """Route a new session of ``client`` at ``now_s`` and book its cache on every
        server of its chain.

        Parameters
        ----------
        client : int
            client index.
        now_s : float
            the decision time (>= every earlier call's).
        output_tokens : int, optional
            tokens to generate (1 .. the scenario's static maximum, the default).

        Returns
        -------
        Assignment or None
            None when the session cannot be booked now: no live chain covers every block
            (or the request is larger than a server's whole cache), or, under the PETALS
            policy, the chosen chain lacks free cache (retry after a back-off).

        Raises
        ------
        ValidationError
            bad client, time going backwards, bad output_tokens; the state is unchanged.
        """
        c = self._index(client, "client", self._num_clients)
        now = self._time(now_s)
        if output_tokens is None:
            lo = self._max_tokens
        elif type(output_tokens) is int and 1 <= output_tokens <= self._max_tokens:
            lo = output_tokens
        else:
            lo = check_number(output_tokens, "output_tokens", low=1, high=self._max_tokens,
                              integer=True)
        now_ms = now * 1000.0
        status, sid, chain, start_ms, end_ms = self._engine.route(c, lo, now_ms)
        self._now_s = now
        if status != 0:
            return None
        wait = (start_ms - now_ms) / 1000.0
        return Assignment(sid, chain, now + wait, end_ms / 1000.0, wait)

    def advance(self, now_s: float) -> None:
        """Move the clock to ``now_s`` without a decision: sessions whose predicted finish
        passed without :meth:`finish` become late, and the sessions booked behind them move
        (call it when a timer fires, e.g. before starting a session at its ``start_s``;
        a session counts as started once a call comes after its ``start_s``)."""
        now = self._time(now_s)
        self._engine.advance(now * 1000.0)
        self._now_s = now

    def finish(self, session: int, now_s: float) -> None:
        """Session ``session`` ended at ``now_s``: release its cache.  A late finish
        (after the predicted ``finish_s``) holds the cache until ``now_s`` and moves the
        sessions booked behind it.

        Raises
        ------
        ValidationError
            unknown session, one already finished or interrupted, time going backwards.
        """
        sid = self._session(session)
        now = self._time(now_s)
        self._engine.finish(sid, now * 1000.0)
        self._now_s = now

    def leave(self, server: int, now_s: float) -> list[int]:
        """Server ``server`` left at ``now_s``: it holds no blocks and no cache any more.
        Returns the sessions that lost it (released everywhere; re-route or re-queue them,
        their progress is lost)."""
        j = self._index(server, "server", self.scenario.num_servers)
        now = self._time(now_s)
        if not self._engine.alive[j]:
            raise ValidationError(f"The 'server' parameter must be a server in the swarm. "
                                  f"Got {server!r} instead (it left).")
        lost = self._engine.leave(j, now * 1000.0)
        self._now_s = now
        return lost.tolist()

    def join(self, server: int, now_s: float) -> tuple[int, int]:
        """Server ``server`` (one that left) joins at ``now_s`` and picks its blocks by the
        method's rule against the current coverage: CG-BP's window rule on the capacity
        and amortised time of the servers holding blocks now (credited in CG-BP's order),
        or PETALS's weakest window by throughput.  Returns (first_block, num_blocks)."""
        j = self._index(server, "server", self.scenario.num_servers)
        now = self._time(now_s)
        if self._engine.alive[j]:
            raise ValidationError(f"The 'server' parameter must be a server that left. "
                                  f"Got {server!r} instead (it is in the swarm).")
        out = self._engine.join(j, now * 1000.0)
        self._now_s = now
        return out

    def rebalance(self, now_s: float) -> Rebalance:
        """Re-run the method's rule (PETALS's periodic re-choice of blocks; CG-BP's re-plan
        on the servers alive now) and move the servers it says.  A server that moves loses
        its sessions (reported in ``interrupted``)."""
        now = self._time(now_s)
        eng = self._engine
        if self.method == "petals":
            moves, lost = eng.rebalance_petals(now * 1000.0)
        else:
            sc = self.scenario
            alive = eng.alive.astype(bool)
            masked = replace(sc, memory_gb=np.where(alive, sc.memory_gb, sc.reserve_gb))
            cg = cg_bp_placement(masked, self.planned_requests)
            if not cg.feasible:
                return Rebalance([], [], f"CG-BP cannot re-place the model on the servers "
                                         f"alive now: {cg.reason}")
            moves, lost = eng.set_placement(cg.placement.first_block, cg.placement.num_blocks,
                                            now * 1000.0)
        self._now_s = now
        return Rebalance([{"server": j, "first_block": a, "num_blocks": m} for j, a, m in moves],
                         lost.tolist())

    # -- state -----------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        """The clock: the time of the latest call."""
        return self._now_s

    @property
    def placement(self) -> Placement:
        return Placement(self._engine.first_block.copy(), self._engine.num_blocks.copy())

    @property
    def alive(self) -> np.ndarray:
        return self._engine.alive.astype(bool)

    @property
    def num_sessions(self) -> int:
        return int(self._engine.nactive)

    @property
    def free_cache_gb(self) -> np.ndarray:
        """Cache a new session can take on each server without waiting (GB): the cache
        budget next to its blocks minus what sessions in progress or booked ahead hold."""
        eng = self._engine
        free = np.maximum(eng.cache_budget - eng.cache_used, 0)
        return free * self.scenario.cache_gb

    def session(self, session: int) -> dict[str, Any]:
        """One session in progress: {session, client, servers, start_s, finish_s}."""
        sid = self._session(session)
        client, start, end, chain = self._engine.session(sid)
        return {"session": sid, "client": int(client), "servers": chain,
                "start_s": _ms_to_s(start), "finish_s": _ms_to_s(end)}

    def to_dict(self) -> dict[str, Any]:
        """The state (SPEC 5.1 contract keys): ``placement`` (``llm plan`` form),
        ``sessions`` in progress ({session, client, servers, start_s, finish_s}; None
        while a session waits for a late one), ``free_cache_gb`` and ``alive`` per server,
        plus ``now_s``, ``method``, ``policy``, ``planned_requests``, ``interrupted``
        (sessions that lost a server so far) and ``lost_token_s`` (their serving time
        lost)."""
        eng = self._engine
        return {
            "method": self.method,
            "policy": self.policy,
            "now_s": self._now_s,
            "planned_requests": self.planned_requests,
            "placement": self.placement.to_list(),
            "alive": [bool(x) for x in eng.alive],
            "free_cache_gb": [float(x) for x in self.free_cache_gb],
            "sessions": [{"session": int(sid), "client": int(c), "servers": chain,
                          "start_s": _ms_to_s(start), "finish_s": _ms_to_s(end)}
                         for sid, c, start, end, chain in eng.sessions()],
            "interrupted": int(eng.interrupted),
            "lost_token_s": eng.lost_ms / 1000.0,
        }

    def __repr__(self) -> str:
        return (f"Swarm({self.scenario.name!r}, method={self.method!r}, policy={self.policy!r}, "
                f"servers alive {int(self._engine.alive.sum())}/{self.scenario.num_servers}, "
                f"sessions {self.num_sessions}, now_s={self._now_s:g})")
