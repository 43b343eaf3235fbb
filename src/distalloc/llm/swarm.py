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
from distalloc._validation import (ValidationError, describe, as_generator, as_int_array, check_choice, check_count,
                                   check_number, check_real)
from distalloc.llm.limits import MAX_COUNT, MAX_SPAN_S
from distalloc.llm.model import Placement, check_covers_all_blocks
from distalloc.llm.placement import (cg_bp_placement, conservative_block_counts,
                                     petals_block_counts, petals_placement)
from distalloc.llm.routing import PETALS_NO_CACHE_PENALTY_MS, petals_costs
from distalloc.llm.scenario import Scenario

__all__ = ["Swarm", "Assignment", "Rebalance", "SWARM_METHODS", "SWARM_POLICIES"]

#: placement method -> the join/rebalance rule it brings
SWARM_METHODS = {"cg-bprr": "cg-bp", "petals": "petals", "chains": "chains",
                 "jffc-whole": "chains"}
#: routing policies: WS-RR, PETALS's Dijkstra, JFFC on composed chains (SPEC 1.10)
SWARM_POLICIES = ("ws-rr", "petals", "jffc")
CHAIN_METHODS = ("chains", "jffc-whole")
PETALS_BALANCE_QUALITY = 0.75


@dataclass(frozen=True)
class Assignment:
    """Where a session goes: its id, its chain (server indices in order), when it starts
    (``start_s`` = decision time + ``wait_s``) and its predicted finish (seconds).

    Under the ``jffc`` policy a session that waits in the central queue has a predicted
    chain and start (None, and ``servers`` [], when the jobs ahead include late ones); it
    is given a chain only when a slot is handed to it (:meth:`Swarm.take_updates`)."""

    session: int
    servers: list[int]
    start_s: float | None
    finish_s: float | None
    wait_s: float | None

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


def _assignment(sid: int, chain: list[int], start_ms: float, end_ms: float,
                decided_ms: float) -> Assignment:
    if start_ms == math.inf:
        return Assignment(sid, [], None, None, None)
    return Assignment(sid, chain, start_ms / 1000.0, _ms_to_s(end_ms),
                      (start_ms - decided_ms) / 1000.0)


def placement_from_any(scenario: Scenario, placement: Any) -> Placement:
    """A :class:`Placement` from a Placement or the ``llm plan`` list form
    (``[{server, first_block, num_blocks}, ...]``), checked against the scenario: blocks
    inside [0, L), every server's blocks fit its usable memory, every block on some server."""
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
    check_covers_all_blocks(a, m, L)   # no request could ever be served
    return pl


def make_engine(scenario: Scenario, placement: Placement, *, policy: str, join_rule: str,
                join_blocks: np.ndarray, join_rank: np.ndarray | None = None,
                planned_requests: int = 1,
                balance_quality: float = PETALS_BALANCE_QUALITY) -> Any:
    """The compiled engine on ``placement`` (shared by :class:`Swarm` and the simulator).

    ``join_rule`` ('cg-bp', 'petals' or 'chains') and ``join_blocks`` (blocks each server
    takes when it joins) are the placement method's; ``join_rank`` orders the servers
    holding blocks as PETALS's join order did (default: by index); ``planned_requests``
    is CG-BP's |R|.  Policy 'jffc' needs its chains next
    (:func:`distalloc.llm.swarm_chains.chain_engine` does both).
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
        With a chain method, GCA composes the chains on it (shared by every client).
    method : {'cg-bprr', 'petals', 'chains', 'jffc-whole'}
        the placement rule, also used when a server joins and by :meth:`rebalance`:
        CG-BP (conservative block counts for |R| planned sessions, its greedy window rule),
        PETALS (fixed-cache block counts, the weakest window by throughput, random join
        order from ``seed``), or chain composition (SPEC 1.10: GBP-CR + GCA, the
        reservation c searched at ``rate_per_s`` unless given; 'jffc-whole': every server
        holding the whole model is a chain of one).
    policy : {'ws-rr', 'petals', 'jffc'}, optional
        routing (default: 'jffc' for the chain methods, else 'ws-rr'): WS-RR (shortest
        request time plus the wait for cache; the session is booked at once and starts when
        its chain has the cache), PETALS's Dijkstra (rtt/2 + 18 ms per hop, +10 s where a
        server lacks free cache; a chain without free cache is not booked: :meth:`route`
        returns None and the caller backs off, 1, 2, 4 ... 60 s, as PETALS clients do), or
        JFFC (the chain methods only: the fastest chain with a free slot, else the central
        FCFS queue).
    planned_requests : int, optional
        CG-BP's |R| (default: the scenario's request set size).
    block_counts : array of int, optional
        blocks each server takes when it joins (default: the method's rule; the chain
        methods: GBP-CR's m_j(c)).
    seed : int or Generator
        draws PETALS's random join order (when the placement is not given), then the
        stream of PETALS's random re-choice orders (:meth:`rebalance`).
    reservation, rate_per_s, target_load, client_groups : chain methods only
        passed to :func:`~distalloc.llm.chains.compose_chains` (reservation c or 'auto',
        the design rate λ, default the scenario's, ρ̄, the client grouping).
    dispatch : CompiledCallback, optional
        policy 'jffc' only: a user's dispatch score
        (:func:`~distalloc.llm.compiled_dispatch`) instead of JFFC's choice among the
        chains with a free slot.
    reroute_waiting : bool
        policy 'ws-rr' only: when capacity appears (:meth:`join`, :meth:`rebalance`),
        route every session booked but not started yet again, in booking order, and move
        it if it finishes strictly earlier (off by default: it did not help under churn,
        see the README).

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
    was still waiting for a late one cancels it.  A waiting session keeps its chain when
    capacity appears, unless ``reroute_waiting``: then at a join or a rebalance every
    session booked but not started yet is routed again as if it arrived then, and moves to
    the new chain if it finishes strictly earlier there (:meth:`take_updates` reports it).

    JFFC (SPEC 1.10): each chain k reserves c_k job slots on its servers.  An arrival
    takes a free slot of the fastest chain for its client (its client group's chains
    first) and starts at once; when every chain is full it waits in one central FCFS
    queue: :meth:`route` then returns its predicted chain and start (JFFC replayed on the
    predicted finishes of the jobs running: each finishing job hands its slot to the
    queue's head; None while that needs a late job's finish).  The decision is taken when a
    slot frees: :meth:`finish` gives the slot to the queue's head, which starts then, on
    that chain (no migration); :meth:`take_updates` returns the sessions started so.  A
    late job holds its slot until its finish.  :meth:`leave` removes every chain through
    the server (its jobs are interrupted; queued jobs stay queued); :meth:`join` places
    the server by the chain method's rule and adds the chains GCA finds on the slots no
    chain reserves (the queue's head jobs take them); :meth:`rebalance` re-runs GBP-CR on
    the servers alive (the chains through moved servers go) and GCA on the free slots.

    Cost: :meth:`route` is O(chain) when the client's cheapest chain has free cache, else
    one block-ordered DP over the placement, O(S + sum_j m_j) plus the sessions of servers
    short of cache (JFFC: O(K / 64), plus O((R + Q) log R) for a prediction after other
    events; R running, Q queued); :meth:`finish` O(chain x sessions per server);
    :meth:`leave` and :meth:`join` O(S + L) plus the window rule (O(sum_j m_j + L m); JFFC:
    (L - m + 1) GCA runs on the servers with free slots), no re-plan.

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
                 policy: str | None = None, *, planned_requests: int | None = None,
                 block_counts: Sequence[int] | None = None, seed: Any = 0,
                 balance_quality: float = PETALS_BALANCE_QUALITY,
                 reservation: Any = "auto", rate_per_s: float | None = None,
                 target_load: float | None = None, client_groups: Any = "auto",
                 dispatch: Any = None, reroute_waiting: bool = False):
        if not isinstance(scenario, Scenario):
            raise ValidationError(f"The 'scenario' parameter must be a Scenario. "
                                  f"Got {type(scenario).__name__} instead.")
        check_choice(method, "method", SWARM_METHODS)
        chained = method in CHAIN_METHODS
        if policy is None:
            policy = "jffc" if chained else "ws-rr"
        check_choice(policy, "policy", SWARM_POLICIES)
        if chained != (policy == "jffc"):
            raise ValidationError(
                f"The 'policy' parameter 'jffc' goes with the chain methods (chains, "
                f"jffc-whole), and they with it. Got method {method!r} and policy "
                f"{policy!r} instead.")
        if not isinstance(reroute_waiting, (bool, np.bool_)):
            raise ValidationError(f"The 'reroute_waiting' parameter must be True or False. "
                                  f"Got {describe(reroute_waiting)} instead.")
        if not chained:
            if reroute_waiting and policy != "ws-rr":
                raise ValidationError("The 'reroute_waiting' parameter applies only to the "
                                      f"'ws-rr' policy. Got policy {policy!r} instead.")
            given = [k for k, v in (("reservation", reservation != "auto"),
                                    ("rate_per_s", rate_per_s is not None),
                                    ("target_load", target_load is not None),
                                    ("client_groups", client_groups != "auto"),
                                    ("dispatch", dispatch is not None)) if v]
            if given:
                raise ValidationError(f"The '{given[0]}' parameter applies only to the chain "
                                      f"methods (chains, jffc-whole), not {method!r}.")
        S = scenario.num_servers
        R = (scenario.num_requests if planned_requests is None else
             check_number(planned_requests, "planned_requests", low=1, integer=True))
        quality = check_number(balance_quality, "balance_quality", low=0, low_open=True)
        rng = as_generator(seed)
        rule = SWARM_METHODS[method]
        rank = None
        comp = None
        if chained:
            from distalloc.llm.chains import DEFAULT_TARGET_LOAD, compose_chains
            from distalloc.llm.dispatch import compiled_dispatch
            if dispatch is not None:
                dispatch = compiled_dispatch(dispatch)
            comp = compose_chains(scenario, method, reservation=reservation,
                                  rate_per_s=rate_per_s,
                                  target_load=(DEFAULT_TARGET_LOAD if target_load is None
                                               else target_load),
                                  placement=(None if placement is None else
                                             placement_from_any(scenario, placement)),
                                  client_groups=client_groups)
            placement = comp.placement
        elif placement is None:
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
        if block_counts is not None:
            counts = as_int_array(block_counts, "block_counts", shape=(S,), low=0,
                                  high=scenario.num_blocks)
            if np.any(scenario.block_gb * counts > scenario.usable_memory_gb * (1 + 1e-12)):
                j = int(np.flatnonzero(scenario.block_gb * counts > scenario.usable_memory_gb)[0])
                raise ValidationError(f"'block_counts[{j}]' = {counts[j]} blocks do not fit "
                                      f"server {j}'s usable memory.")
        elif chained:
            from distalloc.llm.swarm_chains import chain_join_blocks
            counts = chain_join_blocks(scenario, comp)
        else:
            counts = (conservative_block_counts(scenario, R) if rule == "cg-bp"
                      else petals_block_counts(scenario))
        self.scenario = scenario
        self.method = method
        self.policy = policy
        self.planned_requests = R
        self.composition = comp
        self.dispatch = dispatch
        self._join_rank = np.arange(S, dtype=np.float64) if rank is None else rank
        self._shuffle_key = int(rng.integers(0, 2**63))
        if chained:
            from distalloc.llm.swarm_chains import chain_engine
            self._engine = chain_engine(scenario, comp, rank_tokens=float(scenario.output_tokens),
                                        join_blocks=counts, dispatch=dispatch)
        else:
            self._engine = make_engine(scenario, placement, policy=policy, join_rule=rule,
                                       join_blocks=counts, join_rank=self._join_rank,
                                       planned_requests=R,
                                       balance_quality=quality)
        self._engine.seed_shuffle(self._shuffle_key)
        self._engine.reroute_waiting = bool(reroute_waiting)
        self._now_s = 0.0
        self._num_clients = scenario.num_clients
        self._max_tokens = scenario.output_tokens

    # -- validation (all of it before any state changes) --------------------------------
    def _time(self, now_s: Any) -> float:
        # bounded (issue 16): the engine works in ms and adds request times (< 2e12 s)
        if type(now_s) is not float or not 0.0 <= now_s <= MAX_SPAN_S:
            now_s = check_real(now_s, "now_s", low=0, high=MAX_SPAN_S)
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
        sid = (session if type(session) is int and 0 <= session <= MAX_COUNT else
               check_count(session, "session", low=0, high=MAX_COUNT))
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
            policy, the chosen chain lacks free cache (retry after a back-off).  Under
            JFFC never None: a session that finds every chain full waits in the central
            queue (``wait_s`` > 0, its chain and start predicted, None if unknown; it
            starts when :meth:`finish` hands it a slot, see :meth:`take_updates`).

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
        if status == swarm_kernels.ROUTE_QUEUED_CODE:
            return _assignment(sid, chain, start_ms, end_ms, now_ms)
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
        sessions booked behind it.  JFFC: its slot goes to the queue's head, which starts
        now (:meth:`take_updates`); finishing a queued session cancels it.

        Raises
        ------
        ValidationError
            unknown session, one already finished or interrupted, time going backwards.
        """
        sid = self._session(session)
        now = self._time(now_s)
        self._engine.finish(sid, now * 1000.0)
        self._now_s = now

    def take_updates(self) -> list[Assignment]:
        """The sessions a decision after their routing set, since the last call, each once
        with its current state: JFFC's queued sessions that were handed a slot (by
        :meth:`finish`, :meth:`join` or :meth:`rebalance`; ``start_s`` is when, on
        ``servers``), and WS-RR's waiting bookings moved to a chain that finishes them
        earlier when capacity appeared (:meth:`join`, :meth:`rebalance`).  ``wait_s``
        counts from the session's routing.  Sessions over since are left out.  A late
        finish's moves of ``start_s`` are not decisions and show in :meth:`session` only."""
        eng = self._engine
        return [_assignment(sid, chain, start, end, eng.routed_ms(sid))
                for sid, chain, start, end in eng.take_updates()]

    def leave(self, server: int, now_s: float) -> list[int]:
        """Server ``server`` left at ``now_s``: it holds no blocks and no cache any more.
        Returns the sessions that lost it (released everywhere; re-route or re-queue them,
        their progress is lost).  JFFC: every chain through it is gone (the sessions are
        its running jobs; queued sessions stay queued)."""
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
        method's rule against the current coverage and load: CG-BP's window rule on the
        free session slots and amortised time of the servers holding blocks now (credited
        in CG-BP's order; a server's slots count less the sessions' worth of cache booked
        on it), PETALS's weakest window by throughput, or, for the chain methods, GBP-CR's
        m_j(c) blocks at the window where GCA on the slots no chain reserves adds the most
        service rate (the chains it finds are added, the queue's head jobs take them).
        WS-RR with ``reroute_waiting``: the sessions still waiting are then routed again
        (:meth:`take_updates`).  Returns (first_block, num_blocks)."""
        j = self._index(server, "server", self.scenario.num_servers)
        now = self._time(now_s)
        if self._engine.alive[j]:
            raise ValidationError(f"The 'server' parameter must be a server that left. "
                                  f"Got {server!r} instead (it is in the swarm).")
        out = self._engine.join(j, now * 1000.0)
        self._now_s = now
        return out

    def rebalance(self, now_s: float) -> Rebalance:
        """Re-run the method's rule (PETALS's periodic re-choice of blocks, servers in a
        random order from the seeded stream; CG-BP's re-plan on the servers alive now; the
        chain methods: GBP-CR at the composition's c on the servers alive, then GCA on the
        free slots) and move the servers it says.  A server that moves loses its sessions
        (reported in ``interrupted``; JFFC: the chains through it go)."""
        now = self._time(now_s)
        eng = self._engine
        sc = self.scenario
        if self.method == "petals":
            moves, lost = eng.rebalance_petals(now * 1000.0)
        elif self.method in CHAIN_METHODS:
            moves, lost = self._rebalance_chains(now)
        else:
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

    def _rebalance_chains(self, now: float):
        from distalloc.llm.chain_types import whole_model_placement
        from distalloc.llm.chains import _gbp_cr
        comp, sc, eng = self.composition, self.scenario, self._engine
        alive = eng.alive.astype(bool)
        masked = replace(sc, memory_gb=np.where(alive, sc.memory_gb, sc.reserve_gb))
        owner = None
        if comp.method == "jffc-whole":
            pl = whole_model_placement(masked)
        elif comp.reservation is None:          # GCA on a given placement: keep it
            pl = self.placement
        else:
            groups = comp.client_groups
            if groups is None:                  # pragma: no cover - GBP-CR always has one
                raise ValidationError("no client grouping to re-run GBP-CR with")
            pl = _gbp_cr(masked, int(comp.reservation), comp.rate_per_s, comp.target_load,
                         groups)
            owner = pl.owner
        return eng.set_placement(pl.first_block, pl.num_blocks, now * 1000.0, owner)

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
        """Sessions in progress (JFFC: running or queued)."""
        return int(self._engine.nactive)

    @property
    def queue(self) -> list[int]:
        """JFFC: the sessions waiting in the central queue, head first ([] otherwise)."""
        return self._engine.queue()

    @property
    def chains(self) -> list[dict[str, Any]]:
        """JFFC: the live chains, {chain, servers, blocks, capacity, busy, service_s}
        (``service_s``: T_k as the composition costs it; chains keep their index while
        they live) ([] otherwise)."""
        return [{"chain": int(k), "servers": srv, "blocks": blk, "capacity": int(cap),
                 "busy": int(busy), "service_s": cost / 1000.0}
                for k, srv, blk, cap, busy, cost, _ in self._engine.chains()] \
            if self.policy == "jffc" else []

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
        while a session waits for a late one; JFFC's queued sessions with their predicted
        chain and start), ``free_cache_gb`` and ``alive`` per server, plus ``now_s``,
        ``method``, ``policy``, ``planned_requests``, ``interrupted`` (sessions that lost a
        server so far) and ``lost_token_s`` (their serving time lost); JFFC adds
        ``chains`` and ``queue``."""
        eng = self._engine
        d = {
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
        if self.policy == "jffc":
            d["chains"] = self.chains
            d["queue"] = self.queue
        return d

    def __repr__(self) -> str:
        return (f"Swarm({self.scenario.name!r}, method={self.method!r}, policy={self.policy!r}, "
                f"servers alive {int(self._engine.alive.sum())}/{self.scenario.num_servers}, "
                f"sessions {self.num_sessions}, now_s={self._now_s:g})")
