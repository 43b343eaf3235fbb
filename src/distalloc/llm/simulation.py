"""Online serving: CG-BP + WS-RR, PETALS's online behaviour, and a discrete-event
simulator of sessions on a fixed placement (SPEC 1.7-1.9).

A :class:`Workload` (Poisson or trace replay) is drawn once from the seed, so every method
run with that seed sees the same arrivals and the same service-time noise.  The placement
is chosen at the slow time scale (CG-BP with a planned |R|, PETALS's join rule, or the
MILP), then the compiled event loop routes each request at arrival
(+ ``allocation_delay_s``) and holds its cache on every server of its chain until it
completes.  The event loop drives the same compiled engine as :class:`~distalloc.llm.Swarm`
(every routing, booking, release, leave and join is one call of its methods), and can make
servers fail and come back (``churn``).  The arguments are parsed and checked before any
work by :mod:`distalloc.llm._simulation_checks`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._compiled import swarm_kernels
from distalloc._validation import (ValidationError, describe, as_generator, check_choice,
                                   check_count, check_real)
from distalloc.llm._simulation_checks import (ONLINE_METHODS, SERVICE_MODELS, check_churn_cost,
                                              check_serves_someone, check_simulation_memory,
                                              check_workload, parse_allocation_delay,
                                              parse_churn)
# re-exported: ``llm compare`` (distalloc.cli.llm) reads it from here
from distalloc.llm._simulation_checks import BYTES_PER_SIMULATED_REQUEST  # noqa: F401
from distalloc.llm.limits import (MAX_CHURN_EVENTS, MAX_COUNT, MAX_NOISE, MAX_SPAN_S,
                                  max_memory_limit)
from distalloc.llm.model import Placement
from distalloc.llm.placement import (cg_bp_placement, conservative_block_counts,
                                     petals_block_counts, petals_placement)
from distalloc.llm.routing import request_time_costs, shortest_routes
from distalloc.llm.scenario import Scenario, check_scenario
from distalloc.llm.swarm import make_engine
from distalloc.llm.workload import (Workload, client_probs, poisson_workload, trace_workload,
                                    workload_from_args)

__all__ = ["Workload", "poisson_workload", "trace_workload", "SimulationResult", "simulate",
           "choose_planned_requests", "max_planned_requests", "ONLINE_METHODS",
           "parse_allocation_delay", "parse_churn", "SERVICE_MODELS"]

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
    placement, which depends on |R|).

    ``rate_per_s`` may be ``inf`` (a workload whose requests all arrive at one instant,
    e.g. a one-row trace): the formula's limit, |R| = R_max, the largest feasible |R|.

    Raises
    ------
    ValidationError
        a NaN or non-positive rate, or a scenario in which no |R| >= 1 is feasible.
    """
    if not (isinstance(rate_per_s, (int, float, np.number)) and rate_per_s == math.inf):
        rate_per_s = check_real(rate_per_s, "rate_per_s", low=0, low_open=True)
    max_iter = check_count(max_iter, "max_iter", low=1, high=10_000)
    probs = client_probs(scenario, client_weights)
    r_max = max_planned_requests(scenario)
    if r_max == 0:
        raise ValidationError("No |R| >= 1 lets CG-BP cover every block: the servers cannot "
                              "host the model with cache for one session.")
    if math.isinf(rate_per_s):
        return r_max
    R, seen = 1, set()
    for _ in range(max_iter):
        cg = cg_bp_placement(scenario, R)
        # finite: times are bounded (distalloc.llm.limits) and the rate is finite
        load = rate_per_s * _request_time_s(scenario, cg.placement, probs)
        nxt = (r_max if not math.isfinite(load) else
               max(1, min(int(round(load + math.sqrt(load))), r_max)))
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
    interruptions: np.ndarray | None = None   # times each request lost a server (churn)
    churn: "Churn | None" = None

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
            **(self.churn.summary() if self.churn is not None else Churn.none()),
            **self.extra,
        }


# ------------------------------------------------------------------------------------------
# Churn (SPEC 5.1): what servers failing and coming back did in one run
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Churn:
    """What churn did in one run: the failure/repair log (seconds, server, 0 fail /
    1 repair), sessions interrupted, their serving time lost (``lost_token_s``: seconds
    the interrupted sessions had been served) and tokens lost, and the mean fraction of
    servers alive over the run."""

    mtbf_s: float
    mttr_s: float
    key: int                 # the failure/repair streams' key (drawn from the seed)
    time_s: np.ndarray
    server: np.ndarray
    kind: np.ndarray
    interrupted: int
    lost_token_s: float
    lost_tokens: int
    availability: float

    @staticmethod
    def none() -> dict[str, Any]:
        return {"interrupted": 0, "lost_token_s": 0.0, "lost_tokens": 0, "availability": 1.0}

    def summary(self) -> dict[str, Any]:
        return {"interrupted": self.interrupted, "lost_token_s": self.lost_token_s,
                "lost_tokens": self.lost_tokens, "availability": self.availability,
                "churn_mtbf_s": self.mtbf_s, "churn_mttr_s": self.mttr_s,
                "failures": int(np.sum(self.kind == 0))}


# ------------------------------------------------------------------------------------------
# The simulator
# ------------------------------------------------------------------------------------------
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


def _join_rule_for(scenario: Scenario, rule: str, planned: int | None,
                   info: dict[str, Any]) -> dict[str, Any]:
    """The rule a repaired server re-joins by, for the placement ``rule``: CG-BP's window
    rule with its conservative counts (cg-bp, milp), or PETALS's weakest window with
    PETALS's (or, for petals-cg-counts, CG-BP's) counts, holders in the join order."""
    if rule in ("cg-bp", "milp"):
        return dict(join_rule="cg-bp", join_blocks=conservative_block_counts(scenario, planned),
                    planned_requests=planned)
    rank = np.full(scenario.num_servers, float(scenario.num_servers))
    order = np.asarray(info["join_order"], dtype=np.int64)
    rank[order] = np.arange(order.size)
    counts = (conservative_block_counts(scenario, planned) if rule == "petals-cg-counts"
              else petals_block_counts(scenario))
    return dict(join_rule="petals", join_blocks=counts, join_rank=rank,
                planned_requests=planned or 1)


def simulate(scenario: Scenario, method: str = "cg-bprr", *, rate_per_s: float | None = None,
             num_requests: int | None = None, client_weights=None, trace: str | None = None,
             time_scale: float | None = None, planned_requests: int | None = None,
             allocation_delay_s: Any = 0.0, noise: float = 0.0, seed: Any = 0,
             max_attempts: int = 10_000, time_limit_s: float = 60.0,
             max_churn_events: int = MAX_CHURN_EVENTS,
             workload: Workload | None = None, churn: Any = None,
             service: str = "model", trace_format: str | None = None,
             max_memory_gb: float | None = None, dispatch: Any = None,
             reroute_waiting: bool = False, **chain_options: Any) -> SimulationResult:
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
        draws, in this order, the arrivals, the noise, the churn streams' key (with churn)
        and PETALS's join order, so methods run with one seed see the same arrivals and
        the same failures and repairs.
    workload : Workload, optional
        use these arrivals instead of drawing them.
    churn : str, float or (float, float), optional
        ``"MTBF_S[:MTTR_S]"`` (None, 0, ``"0"`` or ``"none"``: no churn): every server fails after an exponential time of mean MTBF
        and comes back after one of mean MTTR (default MTBF / 10), independently, from
        streams keyed from ``seed``; a failure releases its sessions, which
        are re-routed at once (their progress lost and counted), and a repaired server
        re-joins by the method's rule (CG-BP's window rule, or PETALS's weakest window).
        With churn a request that finds no live chain is retried with the back-off below
        instead of being dropped (the chain methods: it waits in JFFC's central queue).
        The chain methods: a failure removes every chain through the server, a repair
        re-joins by the chain method's rule (GCA on the slots no chain reserves, see
        :class:`~distalloc.llm.Swarm`).
    max_churn_events : int
        the failures and repairs a churn run may have (default 10^6,
        :data:`distalloc.llm.limits.MAX_CHURN_EVENTS`): refused before the run when the
        expected count over the arrivals' span exceeds it, and an error when the run
        reaches it before the workload drains (servers failing faster than sessions end).
    reroute_waiting : bool
        WS-RR routing only: when a server re-joins, route the sessions still waiting for
        cache again (booking order) and move those that finish strictly earlier (off by
        default; see the README's churn section for what it measured).
    service : {'model', 'exponential'}
        'model': service times from the performance model (times the noise factor);
        'exponential': each job's time is additionally multiplied by an Exp(1) work draw
        (the chain-composition paper's analysis model), drawn after the noise so every
        method of a seed sees the same work draws.
    **chain_options
        'chains' and 'jffc-whole' only (:func:`distalloc.llm.jffc.simulate_chains`):
        ``reservation`` (int or 'auto'), ``target_load`` ρ̄, ``placement`` (GCA on it),
        ``design_rate_per_s`` (the rate the chains are composed for; default the
        workload's), ``client_groups``.
    dispatch : CompiledCallback, optional
        the chain methods only: a user's dispatch score
        (:func:`distalloc.llm.compiled_dispatch`) instead of JFFC's built-in choice among
        the chains with a free slot.
    trace_format : {'azure', 'burstgpt', 'mooncake'}, optional
        columns of the trace (default: detected; see :mod:`distalloc.llm.workload`).
    max_memory_gb : float, optional
        refuse (before any work) a run whose memory estimate exceeds this (default
        :func:`distalloc.llm.limits.default_max_memory_gb`).

    Returns
    -------
    SimulationResult
        Requests that are never served are NaN and counted in ``dropped``: with WS-RR
        routing, a request no chain can hold (some server of every chain lacks the cache
        for its blocks even when idle); with PETALS routing, also a request that gave up
        after ``max_attempts`` retries.

    Raises
    ------
    ValidationError
        bad parameters (before any work), a run that would need more than
        ``max_memory_gb``, a method that cannot place the model, and a method that serves
        none of the requests ("serves nobody": no chain of its placement has cache for one
        session, or every request was dropped).

    Notes
    -----
    The event loop calls the compiled engine of :class:`~distalloc.llm.Swarm` for every
    decision.  Events: arrivals, completions, PETALS retries, failures and repairs, each
    O(log N) in an event heap;
    routing a request is O(chain length) when its client's static cheapest chain has free
    cache, and a DP over the placement, O(S + sum m_j) plus the sessions of short servers,
    otherwise.  No quadratic term in requests or servers.
    """
    check_scenario(scenario, "simulate")
    check_choice(method, "method", ONLINE_METHODS)
    # ---- validation, before any work (the LLM hardening pass owns this block) ----------
    delay_s = parse_allocation_delay(allocation_delay_s, method)
    if delay_s > MAX_SPAN_S:
        raise ValidationError(f"The 'allocation_delay' parameter must be at most "
                              f"{MAX_SPAN_S:g} s (so that times stay finite). Got {delay_s:g} instead.")
    sigma = check_real(noise, "noise", low=0, high=MAX_NOISE)
    max_attempts = check_count(max_attempts, "max_attempts", low=1, high=MAX_COUNT)
    max_churn_events = check_count(max_churn_events, "max_churn_events", low=1,
                                   high=MAX_COUNT)
    if planned_requests is not None:
        planned_requests = check_count(planned_requests, "planned_requests", low=1,
                                       high=MAX_COUNT)
    check_choice(service, "service", SERVICE_MODELS)
    memory_limit = max_memory_limit(max_memory_gb)
    churn_s = parse_churn(churn)
    if not isinstance(reroute_waiting, (bool, np.bool_)):
        raise ValidationError(f"The 'reroute_waiting' parameter must be True or False. "
                              f"Got {describe(reroute_waiting)} instead.")
    if reroute_waiting and ONLINE_METHODS[method][1] != "ws-rr":
        raise ValidationError(f"The 'reroute_waiting' parameter applies only to the methods "
                              f"with WS-RR routing, not {method!r}.")
    if dispatch is not None:
        if ONLINE_METHODS[method][1] != "jffc":
            raise ValidationError(f"The 'dispatch' parameter applies only to the chain methods "
                                  f"(chains, jffc-whole), not {method!r}.")
        from distalloc.llm.dispatch import compiled_dispatch
        dispatch = compiled_dispatch(dispatch)
    rng = as_generator(seed)
    if workload is None:
        planned_n = num_requests if num_requests is not None else (
            None if (trace or scenario.online.get("trace")) else scenario.online.get("num_requests"))
        if planned_n is not None:
            n = check_count(planned_n, "num_requests", low=1, high=MAX_COUNT)
            check_simulation_memory(scenario, n, memory_limit)
        workload = workload_from_args(scenario, rng, rate_per_s, num_requests, client_weights,
                                      trace, time_scale, trace_format, memory_limit)
    else:
        check_workload(workload, scenario)
    check_simulation_memory(scenario, workload.num_requests, memory_limit)
    if churn_s is not None:
        check_churn_cost(scenario, workload, churn_s, delay_s, max_churn_events)
    # ---- end of validation ----------------------------------------------------------------
    N = workload.num_requests
    factor = (np.exp(sigma * rng.standard_normal(N) - sigma ** 2 / 2) if sigma > 0
              else np.ones(N))
    if service == "exponential":
        factor = factor * rng.exponential(1.0, N)
    # with churn, the failure streams' key comes next, so every method run with this seed
    # sees the same failures and repairs
    churn_key = int(rng.integers(0, 2**63)) if churn_s is not None else 0
    rule, routing = ONLINE_METHODS[method]
    # the rate the methods are designed for: the realised one, unless it is undefined (one
    # Poisson arrival) and the rate asked for is known (issue 14: never refuse valid input)
    design_rate = workload.rate_per_s
    if not math.isfinite(design_rate) and workload.source == "poisson":
        asked = rate_per_s if rate_per_s is not None else scenario.online.get("rate_per_s")
        if asked is not None:
            design_rate = float(asked)
    if routing == "jffc":   # chain composition + JFFC (SPEC 1.10): distalloc.llm.jffc
        from distalloc.llm.jffc import simulate_chains
        if math.isfinite(design_rate) and "design_rate_per_s" not in chain_options:
            chain_options = {**chain_options, "design_rate_per_s": design_rate}
        return simulate_chains(scenario, method, workload, factor, delay_s, service=service,
                               churn=churn_s, churn_key=churn_key, max_attempts=max_attempts,
                               max_churn_events=max_churn_events,
                               dispatch=dispatch, **chain_options)
    if chain_options:
        raise ValidationError(f"Option '{sorted(chain_options)[0]}' applies only to the "
                              f"chain methods (chains, jffc-whole), not {method!r}.")
    planned = None
    if rule in ("cg-bp", "milp", "petals-cg-order", "petals-cg-counts"):
        if planned_requests is not None:
            planned = planned_requests  # validated above
        else:
            counts = np.bincount(workload.client, minlength=scenario.num_clients)
            planned = choose_planned_requests(scenario, design_rate, counts / counts.sum())
    placement, info = _placement_for(scenario, rule, rng, planned, workload, time_limit_s)
    spare = scenario.usable_memory_gb - scenario.block_gb * placement.num_blocks
    # clamped in floating point before the cast (a count beyond int64 would wrap negative)
    budget = np.clip(np.floor(spare / scenario.cache_gb), 0, 2.0 ** 62).astype(np.int64)
    check_serves_someone(scenario, method, placement, budget, workload)
    engine = make_engine(scenario, placement, policy=routing,
                         **_join_rule_for(scenario, rule, planned, info))
    engine.reroute_waiting = bool(reroute_waiting)
    return run_event_loop(scenario, method, engine, workload, factor, delay_s, placement,
                          planned, info, churn_s, churn_key, max_attempts, max_churn_events)


def run_event_loop(scenario: Scenario, method: str, engine: Any, workload: Workload,
                   factor: np.ndarray, delay_s: float, placement: Placement,
                   planned: int | None, extra: dict[str, Any], churn_s, churn_key: int,
                   max_attempts: int,
                   max_churn_events: int = MAX_CHURN_EVENTS) -> SimulationResult:
    """Run the compiled event loop (``swarm_kernels.simulate``) around a fresh ``engine``
    and wrap its outputs (shared by every method, the chain methods included)."""
    N = workload.num_requests
    routing = ONLINE_METHODS[method][1]
    mtbf_s, mttr_s = churn_s if churn_s is not None else (0.0, 0.0)
    start = np.empty(N)
    end = np.empty(N)
    first_tok = np.empty(N)
    wait = np.empty(N)
    retries = np.empty(N, dtype=np.int64)
    interruptions = np.empty(N, dtype=np.int64)
    offset = np.empty(N, dtype=np.int64)
    plen = np.empty(N, dtype=np.int64)
    t0 = time.perf_counter()
    try:
        chains, events, log, lost_ms, lost_tokens, up_ms, horizon_ms = swarm_kernels.simulate(
            engine, np.ascontiguousarray(workload.arrival_s * 1000.0), workload.client,
            workload.output_tokens, np.ascontiguousarray(factor, dtype=np.float64),
            delay_s * 1000.0, BACKOFF_BASE_S * 1000.0,
            BACKOFF_CAP_S * 1000.0, max_attempts, mtbf_s * 1000.0, mttr_s * 1000.0, churn_key,
            start, end, first_tok, wait, retries, interruptions, offset, plen,
            max_churn_events)
    except swarm_kernels.ChurnEventLimit as exc:
        n_events, at_ms = exc.args
        raise ValidationError(
            f"The churn (MTBF {mtbf_s:g} s, MTTR {mttr_s:g} s) made more than {n_events} "
            f"failures and repairs by {at_ms / 1000.0:.4g} s without the workload draining "
            f"(servers fail much faster than sessions end); give a larger MTBF (or raise "
            f"max_churn_events= in Python).") from None
    wall = time.perf_counter() - t0
    if np.isnan(end).all():
        why = ("every request gave up after max_attempts retries: the chains PETALS's "
               "routing chose never had free cache" if routing == "petals" else
               "no chain had cache for its blocks")
        if churn_s is not None:   # the churn the user set is what left nothing to serve
            up = up_ms / (horizon_ms * scenario.num_servers) if horizon_ms > 0 else 0.0
            why = (f"the 'churn' MTBF {mtbf_s:g} s, MTTR {mttr_s:g} s kept the servers down: "
                   f"up {up:.3g} of the time, expected MTBF / (MTBF + MTTR) = "
                   f"{mtbf_s / (mtbf_s + mttr_s):.3g}; give a larger MTBF or a smaller MTTR")
        raise ValidationError(f"Method '{method}' served none of the {N} requests ({why}).")
    churn_info = None
    if churn_s is not None:
        churn_info = Churn(mtbf_s, mttr_s, churn_key, log[0] / 1000.0, log[1], log[2],
                           int(interruptions.sum()), lost_ms / 1000.0, int(lost_tokens),
                           up_ms / (horizon_ms * scenario.num_servers) if horizon_ms > 0 else 1.0)
    return SimulationResult(method, workload, placement, planned, delay_s, start / 1000.0,
                            end / 1000.0, first_tok / 1000.0, wait / 1000.0, retries, offset,
                            plen, chains, int(events), wall, extra=extra,
                            interruptions=interruptions, churn=churn_info)
