"""Exact BPRR by mixed-integer linear programming (SPEC 1.4): three formulations, two solvers.

Common part
-----------
Nodes: servers 0..S-1, the dummy start s (end block 0) and the dummy end t; links (i, j)
of the complete graph, i in {s} + servers, j in servers + {t}, i != j, (s, t) excluded.
Integer variables per server: first block a_j in [0, L-1] and end block e_j = a_j + m_j in
[1, L] with 1 <= e_j - a_j <= cap_j = min(L, floor(M_j / s_m)).  Keeping m_j >= 1 loses
nothing: every server can hold one block, and an unused server keeps one.
Lemma 1 (link (i, j) may carry a request iff a_j <= e_i <= e_j - 1; out of s: a_j = 0; into
t: e_i = L) is imposed on a binary b of the link by big-M rows exact for integers:
``a_j - e_i + L b <= L``, ``e_i - e_j + L b <= L - 1``, ``a_j + (L-1) b <= L-1``,
``L b - e_i <= 0``.  Every feasible link strictly increases the end block, so any flow
on feasible links is acyclic, and along a path the blocks processed, e_j - e_i, telescope
to L.  Identical servers (same memory, decode time and RTT column: interchangeable for
the per-token objective) are ordered by ``(L+1) a_j + e_j``, non-decreasing (a
lexicographic order on (a, e), one row per neighbouring pair).

``formulation="per-request"`` (the first release's)
----------------------------------------------------
Per request r and link: a binary f^r_ij, and for j a server a continuous k^r_ij >= 0.

* flow: sum_j f^r_sj = 1, inflow = outflow at every server; Lemma 1 on f^r_ij.
* k^r_ij >= (e_j - e_i) - L (1 - f^r_ij), and sum_ij k^r_ij = L.  Nothing rewards a
  larger k, the lower bounds sum to L on the chosen path, so the equality pins every k to
  e_j - e_i on used links and 0 elsewhere (and tightens the relaxation).
  Per (r, j): sum_i k^r_ij <= e_j - a_j.
* memory: s_m (e_j - a_j) + s_c sum_r sum_i k^r_ij <= M_j.
* objective: sum_r sum_ij (t_{c(r) j} f^r_ij + tau_j k^r_ij), divided by |R|.

Size 2|V_s| + |R| (2|V_s|^2 + |V_s|) variables.  Requests of one client are
interchangeable, so every permutation of their routes is a distinct solution with the same
cost: the branch and bound explores each of them, which is what stops it near 7 x 4.

``formulation="aggregated"`` (the default): no request symmetry
---------------------------------------------------------------
The requests of client c (n_c of them) only matter through how many take each link: an
integer flow x^c_ij in [0, n_c].  Any integer s-t flow of value n_c on feasible links (a DAG)
decomposes into n_c paths, and the cost and the memory of the n_c requests depend on the
paths only through the link counts: per-token time sum_ij x^c_ij (t_cj + tau_j (e_j - e_i)),
caches on j: s_c sum_c sum_i x^c_ij (e_j - e_i).  So BPRR is

    min  sum_c sum_ij [ t_cj x^c_ij + tau_j x^c_ij (e_j - e_i) ]   over a, e, x

subject to flow conservation per client, Lemma 1 on every link with flow, and memory.  The
products x (e_j - e_i) of a bounded integer and a difference of bounded integers are made
exact by the **binary expansion** x^c_ij = sum_{b < B_c} 2^b z^c_ijb, B_c = bitlength(n_c),
z binary, and one w^c_ijb >= 0 per bit standing for z^c_ijb (e_j - e_i):

* w >= (e_j - e_i) - L (1 - z)          (w >= e_j - e_i when z = 1, w >= something <= 0 else)
* sum_ij sum_b 2^b w^c_ijb = n_c L       (telescoping, as above)

The lower bounds sum to sum_ij x^c_ij (e_j - e_i) = n_c L on any path decomposition, so the
equality pins every w to z (e_j - e_i): the model's cost and memory equal the true ones at
every integer point.  One link binary u_ij per link (not per client) carries Lemma 1:
x^c_ij <= n_c u_ij and z^c_ijb <= u_ij.  Valid inequalities that tighten the relaxation:
w <= kmax_j z with kmax_j = min(cap_j, floor(M_j / (s_m + s_c))) (a session that processes
k blocks on j needs m_j >= k and s_m m_j + s_c k <= M_j), and w <= e_j - a_j (a request
processes no more blocks on j than j holds).  Summed, the first says that each client's
flow must visit enough servers to cover L blocks at kmax_j per visit (a block-coverage
cut the per-request model's relaxation does not have).

Size 2|V_s| + |links| (1 + sum_c B_c) + |links into servers| sum_c B_c variables, with
|links| = |V_s|^2 + |V_s|: logarithmic in |R| instead of linear, and no symmetry among
requests.

``formulation="window"``: one window per server, flows over block boundaries
------------------------------------------------------------------------------
(:mod:`distalloc.llm.milp_window`.)  The aggregated model's weakness is its LP relaxation:
the big-M rows of Lemma 1 and of w let a fractional point spread a request over many
links at a fraction of their cost (AboveNet 7 x 6, seed 0: root bound 712 ms against the
optimum, 764.74).  This model has no big-M and no product at all; per server its LP
relaxation is a convex combination of whole windows (what it still allows: the mixtures of
different servers need not agree, so a fraction of the flow can pass one server twice, in
two of its windows).

Let room_j(m) = floor((M_j - s_m m) / s_c) (with the 1e-9 GB tolerance of the memory
check) be the caches that fit beside m blocks on j.  A *window* of j is [a, t),
1 <= t - a = m <= cap_j.  Binary y_jat says that j holds window [a, t); sum_at y_jat <= 1
(no window: j unused; an unused server changes nothing, as it carries no session).
A session of client c that enters j at block boundary s and leaves at j's end t processes
t - s blocks on j and costs t_cj + tau_j (t - s) per token; so a route is a path of
*arcs* (j, s, t) over the boundaries 0 = s_0 < s_1 < ... = L, each arc's end being the
end of its server's window and each start inside it (a <= s < t: Lemma 1 with e_i = s).
Ends strictly increase along a path, so no server is visited twice, and the blocks
processed telescope to L.  Integer flows x^c_(j,s,t) in [0, n_c] with conservation at
every boundary 1..L-1 and n_c leaving 0 carry the n_c requests of c (decomposed into
paths greedily, as any integer flow on a DAG).  Memory of window [a, t) on j:

    sum_c sum_s (t - s) x^c_(j,s,t) <= room_j(t - a)   if y_jat = 1, no session else.

Two ways to write this, chosen per server by its size:

* *disaggregated* (one flow column per window and entry, (window, entry) pairs at most
  ``DISAGGREGATE_PAIRS``): x^c_(j,[a,t),s) for a <= s < t, t - s <= room_j(t - a); the
  arcs of a window are bound to it by its own rows.  If the window's memory cannot bind
  (room_j(m) >= |R| m: every request fits with m blocks each), sum x <= |R| y.  Else its
  *load* (how many sessions of each length l = t - s it carries) lies in the knapsack set
  K = {v >= 0 integer: sum_l l v_l <= room, sum_l v_l <= |R|}, which is down-closed;
  with few maximal points p of K (at most ``MAX_LOADS``) the rows
  v <= sum_p lambda_p p, sum_p lambda_p <= y, lambda >= 0 describe conv(K) scaled by y,
  the strongest linear description there is, and still exact (an integer v below a
  convex combination of points of K lies in K, as K is defined by linear rows and is
  down-closed).  Otherwise the memory row itself and count rows sum_{l >= l0} v_l <=
  min(|R|, room // l0) y.  Per client, sum x^c <= n_c y.
* *prefix rows* (servers too large to disaggregate): one column per (entry s, end t),
  shared by the windows ending at t; for every t and every threshold a0 in (s_min, t]:
  sum_{s < a0} (t - s) x_(j,s,t) <= sum_{a < a0} min(room_j(t - a), |R| (t - a)) y_jat
  (the sessions entering before a0 need a window starting before a0; a0 = t is the
  memory row, a0 = s + 1 forbids entries before the window), plus the count rows
  sum_{s < a0} x <= sum_{a < a0} min(|R|, room // (t - a0 + 1)) y and, per client,
  sum_{s < a0} x^c <= n_c sum_{a < a0} y.

Reductions, each keeping an optimal solution: a window without room for one cache carries
nothing (dropped: the server is unused instead); among windows with the same end whose
memory cannot bind, the longest dominates (it admits every entry the others admit, at the
same cost), so only it is kept; an arc of l blocks needs room_j(l) >= l.  Identical servers
are ordered by sum_at ((L+1) a + t) y_jat, non-decreasing, unused first.  *RTT order*
(one client): servers that differ only in their RTT t_j (same memory and decode time, as
AboveNet's MIG slices) are nearly symmetric, which the lexicographic order does not touch;
exchanging the windows of two of them, with the sessions each carries, changes the cost by
(t_i - t_j)(f_j - f_i), f the sessions through a server (sum of its flows), and nothing
else.  Sorting the windows of such a group so that f falls as t rises never costs more, so
the rows f_i >= f_j for t_i < t_j (neighbouring RTT values) keep an optimum, and together
with the lexicographic order among equal t (a permutation within equal t keeps the f of each
RTT value).  With several clients an exchange can help one client and hurt another: no rows.
The warm start is sorted the same way (its objective can only fall).  The model is
exact at every integer point (each row above is either the definition or implied by it),
and the brute-force oracle and the other formulations check it.  Size: O(S L cap) window
columns and O(S L cap^2 |C|) flow columns when disaggregated (10 687 on AboveNet 6 servers,
12 087 on 7; the aggregated model has 288 and 385), but the LP bound on the AboveNet 6 x 5
... 7 x 6 instances is 0.8-3.3% below the optimum where the aggregated one is 6.5-8.1% below
(README; ``python bench/milp_table.py --root-lp``).

Solvers and the answer
----------------------
``solver="highs"``: HiGHS branch and cut; with ``highspy`` installed (extra
``distalloc[highs]``) the best heuristic plan is its starting solution, otherwise
(``scipy.optimize.milp``) its objective is a cutoff row.  HiGHS's MIP presolve is off by
default: on the brute-force oracle it once returned a sub-optimal point as optimal (with
the cutoff row), a known class of HiGHS presolve defects (ERGO-Code/HiGHS 3094, 3273).
``solver="cp-sat"``: OR-Tools CP-SAT (extra ``distalloc[cpsat]``) on the same model over the
integers, the heuristic plan as its hint, objective scaled to integers (see
:func:`distalloc.llm.milp_solvers.solve_cpsat` for the precision), memory rows as exact
tables.

The answer is always the best plan known: the solver's, or the best heuristic's (CG-BPRR,
PETALS) when the solver found nothing better in time.  ``status`` is ``optimal`` when
proven, ``time_limit`` when the solver stopped first (with its bound and the gap),
``infeasible`` only when proven and no heuristic plan exists.  The bound is never weaker
than the trivial one, sum over requests of min_j t_cj + L min_j tau_j, so the gap is
always reported when a plan is.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from distalloc._validation import as_generator, check_number
from distalloc.llm.limits import check_memory, max_memory_limit
from distalloc.llm.milp_model import (BYTES_PER_NONZERO, FORMULATIONS, BuildTimeLimit, build_model,
                                      estimate_model_size)
from distalloc.llm.milp_solvers import SOLVERS, SolverOutcome, solve_cpsat, solve_highs
from distalloc.llm.model import Placement
from distalloc.llm.placement import cg_bprr, petals
from distalloc.llm.result import Plan, finish_plan
from distalloc.llm.scenario import Scenario, check_scenario

__all__ = ["solve_milp", "milp_size", "FORMULATIONS", "SOLVERS"]


def milp_size(num_servers: int, num_requests: int, formulation: str = "per-request",
              requests_per_client: list[int] | None = None) -> int:
    """Number of variables of a formulation (``requests_per_client`` for 'aggregated',
    default: one client with all requests)."""
    S = num_servers
    if formulation == "window":
        raise ValueError("the window model's size depends on the memory of each server: "
                         "build_model(scenario, 'window').num_variables")
    if formulation == "per-request":
        return 2 * S + num_requests * (2 * S * S + S)
    counts = requests_per_client or [num_requests]
    bits = sum(int(n).bit_length() for n in counts if n > 0)
    links = S * S + S
    return 2 * S + links * (1 + bits) + S * S * bits


def _trivial_bound_ms(sc: Scenario) -> float:
    """Mean over requests of min_j t_cj + L min_j tau_j: no chain is cheaper."""
    per_client = sc.rtt_ms.min(axis=1) + sc.num_blocks * float(sc.decode_ms.min())
    return float(per_client[sc.requests].mean())


def _check_choice(value: str, name: str, choices) -> str:
    from distalloc._validation import check_choice
    return check_choice(value, name, choices)


def _build_timed_out(sc: Scenario, incumbent: Plan | None, formulation: str, solver: str,
                     threads: int, n_vars: float, time_limit_s: float, t0: float) -> Plan:
    """The answer when the time limit passes before the model is built: the best heuristic
    plan with the trivial bound and its gap (status time_limit), or no plan."""
    extra = {"num_variables": int(n_vars), "formulation": formulation, "solver": solver,
             "threads": threads, "solver_status": "not_started",
             "heuristic_cutoff_ms": None if incumbent is None else incumbent.mean_token_ms,
             "source": "solver" if incumbent is None else incumbent.method,
             "note": f"time limit ({time_limit_s:g} s) reached while building the model"}
    bound = _trivial_bound_ms(sc)
    if incumbent is None:
        p = finish_plan(sc, "milp", None, [], t0, extra=extra, bound_ms=bound,
                        reason=f"time limit ({time_limit_s:g} s) reached while building the "
                        "model (none of the heuristics found a plan)")
        p.status = "time_limit"
        return p
    mean = incumbent.mean_token_ms
    bound = min(bound, mean)
    gap = max(0.0, (mean - bound) / mean) if mean > 0 else 0.0
    return finish_plan(sc, "milp", incumbent.placement, incumbent.routes, t0,
                       status="time_limit", bound_ms=float(bound), gap=float(gap), extra=extra)


def solve_milp(scenario: Scenario, *, time_limit_s: float = 60.0, rel_gap: float = 1e-7,
               seed: Any = 0, cutoff: bool = True, presolve: bool = False,
               formulation: str = "aggregated", solver: str = "highs", threads: int = 1,
               warm_start: bool = True, cuts: bool = True,
               max_memory_gb: float | None = None) -> Plan:
    """Solve BPRR exactly (within ``rel_gap``) or until ``time_limit_s``.

    Parameters
    ----------
    scenario : Scenario
    time_limit_s : float
        wall-clock limit of the whole call (model building included), seconds.
    rel_gap : float
        stop when (incumbent - bound) / incumbent <= rel_gap.
    seed : int
        PETALS's join order (one of the heuristic starts) and the solver's seed.
    cutoff : bool
        start from the best heuristic plan (CG-BPRR, PETALS): warm start / hint, or a
        cutoff row with ``scipy.optimize.milp``.  The plan is the fallback answer either way.
    presolve : bool
        HiGHS's MIP presolve (off by default, see the module docstring).
    formulation : {'aggregated', 'per-request', 'window'}
        integer flows per client and link (no request symmetry), one binary per request
        and link (the first release's model, kept for comparison), or one window per server
        and flows over block boundaries (no big-M; the tightest relaxation, best with
        ``solver='highs'``).
    solver : {'highs', 'cp-sat'}
        HiGHS (``highspy`` if installed, else SciPy's) or OR-Tools CP-SAT.
    threads : int
        solver threads (CP-SAT workers; HiGHS's thread pool), at most ``os.cpu_count()``
        (more only slow the solver down: refused).
    warm_start : bool
        pass the heuristic plan to the solver (``cutoff`` must be on).
    cuts : bool
        add the valid inequalities (visit-capacity envelope, per-bit bounds; window: the
        load hulls, count and prefix rows); off with
        ``formulation='per-request'`` gives the first release's model.
    max_memory_gb : float, optional
        refuse, before any work, a model whose memory estimate (its nonzeros, from
        :func:`~distalloc.llm.milp_model.estimate_model_size`, times
        ``BYTES_PER_NONZERO``) exceeds this (default: half the machine's memory, at most
        8 GB; the same limit as ``simulate``'s).

    Returns
    -------
    Plan
        ``status`` optimal | time_limit (the best plan known: the solver's or the
        heuristic's) | infeasible (proven, and no heuristic plan); ``bound_ms`` a lower bound
        on the mean per-token time (the solver's, at least the trivial one); ``gap`` =
        (mean_token_ms - bound_ms) / mean_token_ms.  ``extra`` holds ``num_variables``,
        ``heuristic_cutoff_ms``, ``formulation``, ``solver`` (back end used),
        ``solver_status``, ``source`` (``solver`` or the heuristic that gave the plan),
        ``objective_precision_ms`` (CP-SAT's scaling).

    Raises
    ------
    ValidationError
        bad parameters; ``solver='cp-sat'`` without OR-Tools installed; a model whose
        memory estimate exceeds ``max_memory_gb``.

    Notes
    -----
    SPEC 1.4; formulations derived in the module docstring.  NP-hard; on the AboveNet
    scenarios (README table) 'aggregated' proves up to 6 x 4 and 7 x 4 within a minute of
    CPU, 'window' with HiGHS every 6-server instance up to 8 requests and 7 x 4, and 7 x 5
    in about a minute of CPU; always read ``gap``.
    """
    t0 = time.perf_counter()
    time_limit_s = check_number(time_limit_s, "time_limit", low=0, low_open=True)
    rel_gap = check_number(rel_gap, "rel_gap", low=0)
    threads = check_number(threads, "threads", low=1, integer=True)
    cpus = os.cpu_count() or 1
    if threads > cpus:
        from distalloc._validation import ValidationError
        raise ValidationError(f"The 'threads' parameter must be at most the {cpus} CPUs of "
                              f"this machine. Got {threads} instead.")
    _check_choice(formulation, "formulation", FORMULATIONS)
    _check_choice(solver, "solver", SOLVERS)
    solver_seed = int(as_generator(seed).integers(2 ** 31)) if not isinstance(seed, int) else seed
    check_scenario(scenario, "solve_milp")
    sc = scenario
    R = sc.num_requests
    limit_gb = max_memory_limit(max_memory_gb)
    n_vars, n_nz = estimate_model_size(sc, formulation, cuts, stop_above=limit_gb * 1e9 / BYTES_PER_NONZERO)
    check_memory(n_nz * BYTES_PER_NONZERO, f"The '{formulation}' MILP model of {sc.num_servers} "
                 f"servers and {R} requests (about {n_vars:.3g} variables, {n_nz:.3g} nonzeros)",
                 limit_gb)
    deadline = t0 + time_limit_s

    incumbent: Plan | None = None
    if cutoff:
        for p in (cg_bprr(sc), petals(sc, seed)):
            if p.feasible and (incumbent is None or p.mean_token_ms < incumbent.mean_token_ms):
                incumbent = p
    try:
        if time.perf_counter() > deadline:
            raise BuildTimeLimit()
        model = build_model(sc, formulation, cuts=cuts, deadline=deadline)
    except BuildTimeLimit:   # the always-a-result path: the heuristic plan, no proof
        return _build_timed_out(sc, incumbent, formulation, solver, threads, n_vars,
                                time_limit_s, t0)
    start = None
    if incumbent is not None and warm_start:
        start = model.encode(incumbent.placement.first_block, incumbent.placement.num_blocks,
                             incumbent.routes)
        if model.check(start) is not None:   # a plan the model rejects (tolerances): no start
            start = None
    if model.empty_row_infeasible():   # e.g. a client no server can start: no solver run
        out = SolverOutcome("infeasible", None, None, solver)
    elif solver == "highs":
        out = solve_highs(model, deadline=deadline, rel_gap=rel_gap, threads=threads,
                          seed=solver_seed, start=start, presolve=presolve,
                          cutoff=None if incumbent is None else incumbent.mean_token_ms * R)
    else:
        out = solve_cpsat(model, deadline=deadline, rel_gap=rel_gap, threads=threads,
                          seed=solver_seed, start=start, num_requests=R,
                          max_visits=sc.num_servers, num_blocks=sc.num_blocks)

    extra = {"num_variables": model.num_variables,
             "heuristic_cutoff_ms": None if incumbent is None else incumbent.mean_token_ms,
             "formulation": formulation, "solver": out.backend, "threads": threads,
             "solver_status": out.status, "source": "solver"}
    if out.backend == "cp-sat":
        extra["objective_precision_ms"] = out.objective_precision / R
    found: Plan | None = None
    if out.x is not None:
        a, m, routes = model.decode(out.x)
        found = finish_plan(sc, "milp", Placement.from_arrays(a, m), routes, t0)
        if not found.feasible:   # the independent check disagrees with the solver
            extra["solver_plan_rejected"] = found.reason
            found = None
    best = found
    if incumbent is not None and (best is None or incumbent.mean_token_ms
                                  <= best.mean_token_ms * (1 + 1e-12)):
        best = incumbent
        extra["source"] = incumbent.method
    if best is None:
        if out.status == "infeasible":
            reason = "no feasible placement and routing (proven by the solver)"
            p = finish_plan(sc, "milp", None, [], t0, reason=reason, extra=extra)
            return p
        bound = max(out.bound / R, _trivial_bound_ms(sc)) if out.bound is not None else \
            _trivial_bound_ms(sc)
        p = finish_plan(sc, "milp", None, [], t0, extra=extra, bound_ms=bound,
                        reason=f"time limit ({time_limit_s:g} s) reached before any feasible "
                        "plan was found (none of the heuristics found one either)")
        p.status = "time_limit"
        return p
    mean = best.mean_token_ms
    if out.status == "optimal" and "solver_plan_rejected" not in extra:
        status = "optimal"
        bound = mean if out.bound is None else min(out.bound / R, mean)
    else:
        # time limit, or a solver that calls infeasible what a heuristic solved (numerics)
        status = "time_limit"
        bound = _trivial_bound_ms(sc) if out.bound is None else max(out.bound / R,
                                                                    _trivial_bound_ms(sc))
        bound = min(bound, mean)
    gap = max(0.0, (mean - bound) / mean) if mean > 0 else 0.0
    return finish_plan(sc, "milp", best.placement, best.routes, t0, status=status,
                       bound_ms=float(bound), gap=float(gap), extra=extra)
