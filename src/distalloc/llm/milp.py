"""Exact BPRR by mixed-integer linear programming (SPEC 1.4), solved with HiGHS through
``scipy.optimize.milp``.

Formulation (derived here; the brute force in tests/naive.py is its oracle)
--------------------------------------------------------------------------
Nodes: servers 0..S-1, the dummy start s (end block 0) and the dummy end t.
Integer variables per server: first block a_j in [0, L-1] and end block
e_j = a_j + m_j in [1, L] with 1 <= e_j - a_j <= min(L, floor(M_j / s_m)).
Per request r and link (i, j) of the complete graph (i in {s} + servers, j in servers + {t}):
a binary f^r_ij, and for j a server a continuous k^r_ij >= 0 (blocks processed on j).

* flow: sum_j f^r_sj = 1; at every server, inflow = outflow.  Feasible links strictly
  increase the end block, so the flow is one simple path.
* link feasibility (Lemma 1) when f = 1:  a_j <= e_i  ->  a_j - e_i + L f <= L;
  e_i <= e_j - 1  ->  e_i - e_j + L f <= L - 1;  into t: e_i >= L  ->  L f - e_i <= 0.
* blocks processed: k^r_ij >= (e_j - e_i) - L (1 - f^r_ij).  Nothing rewards a larger
  k (it only adds cost and memory), and sum_ij k^r_ij = L (the blocks of a path telescope
  to L) pins every k to e_j - e_i on used links and 0 elsewhere; this equality also
  tightens the LP relaxation a lot.  Per (r, j): sum_i k^r_ij <= e_j - a_j.
* memory: s_m (e_j - a_j) + s_c sum_r sum_i k^r_ij <= M_j.
* objective: (1/|R|) sum_r sum_ij (t_{c(r) j} f^r_ij + tau_j k^r_ij) = mean per-token time.
* symmetry: identical servers (same memory, times and RTT column) get a_j <= a_j'.
* cutoff: objective <= the best heuristic plan (CG-BPRR, PETALS) when one is feasible.

Using e_j instead of m_j makes every product f * (end block) the only nonlinearity, and
k replaces the four products of the SPEC's alpha/beta/gamma/delta form by one variable per
link.  Size: 2|V_s| + |R| (2|V_s|^2 + |V_s|) variables.  The optimal value of m_j >= 1 for
every server loses nothing: each server can hold one block, so an unused server keeps one.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from distalloc._validation import check_number
from distalloc.llm.model import Placement
from distalloc.llm.placement import cg_bprr, petals
from distalloc.llm.result import Plan, finish_plan
from distalloc.llm.scenario import Scenario

__all__ = ["solve_milp", "milp_size"]


def milp_size(num_servers: int, num_requests: int) -> int:
    """Number of variables of the formulation."""
    S = num_servers
    return 2 * S + num_requests * (2 * S * S + S)


class _Rows:
    """Accumulate sparse constraint rows lb <= A x <= ub."""

    def __init__(self):
        self.r, self.c, self.v, self.lb, self.ub = [], [], [], [], []

    def add(self, cols, vals, lb, ub):
        i = len(self.lb)
        self.r.extend([i] * len(cols))
        self.c.extend(cols)
        self.v.extend(vals)
        self.lb.append(lb)
        self.ub.append(ub)

    def constraint(self, n):
        A = coo_matrix((self.v, (self.r, self.c)), shape=(len(self.lb), n)).tocsr()
        return LinearConstraint(A, np.array(self.lb), np.array(self.ub))


def _identical_server_pairs(sc: Scenario) -> list[tuple[int, int]]:
    key = np.column_stack([sc.usable_memory_gb, sc.decode_ms, sc.prefill_ms, sc.rtt_ms.T])
    pairs, last = [], {}
    for j in range(sc.num_servers):
        k = key[j].tobytes()
        if k in last:
            pairs.append((last[k], j))
        last[k] = j
    return pairs


def solve_milp(scenario: Scenario, *, time_limit_s: float = 60.0, rel_gap: float = 1e-7,
               seed: Any = 0, cutoff: bool = True, presolve: bool = False) -> Plan:
    """Solve BPRR exactly (within ``rel_gap``) or until ``time_limit_s``.

    Returns
    -------
    Plan
        ``status`` optimal | time_limit (with the incumbent, if any) | infeasible;
        ``bound_ms`` the solver's lower (dual) bound on the mean per-token time; ``gap``
        the relative gap between incumbent and bound.

    Notes
    -----
    Exact only for small instances (about 10 servers); always read ``gap``.
    HiGHS's MIP presolve is off by default: on our brute-force oracle it once returned a
    sub-optimal point as optimal (with the heuristic cutoff row), a known class of HiGHS
    presolve defects (ERGO-Code/HiGHS issues 3094, 3273).  ``presolve=True`` turns it on.
    """
    t0 = time.perf_counter()
    time_limit_s = check_number(time_limit_s, "time_limit", low=0, low_open=True)
    sc = scenario
    S, L, R = sc.num_servers, sc.num_blocks, sc.num_requests
    M = sc.usable_memory_gb
    cap = np.minimum(np.floor(M / sc.block_gb), L).astype(int)

    # variable indices
    a_idx = np.arange(S)
    e_idx = S + np.arange(S)
    start, end = S, S + 1
    links = [(i, j) for i in [start, *range(S)] for j in [*range(S), end] if i != j and not (i == start and j == end)]
    server_links = [(i, j) for (i, j) in links if j < S]
    nL, nK = len(links), len(server_links)
    per_req = nL + nK
    n = milp_size(S, R)

    def f_var(r, li):
        return 2 * S + r * per_req + li

    def k_var(r, ki):
        return 2 * S + r * per_req + nL + ki

    link_pos = {lk: li for li, lk in enumerate(links)}
    c = np.zeros(n)
    rows = _Rows()
    for j in range(S):
        rows.add([e_idx[j], a_idx[j]], [1, -1], 1, cap[j])
    for (j1, j2) in _identical_server_pairs(sc):
        rows.add([a_idx[j1], a_idx[j2]], [1, -1], -np.inf, 0)
    mem_cols = [[e_idx[j], a_idx[j]] for j in range(S)]
    mem_vals = [[sc.block_gb, -sc.block_gb] for _ in range(S)]
    for r in range(R):
        cl = int(sc.requests[r])
        # flow
        rows.add([f_var(r, link_pos[(start, j)]) for j in range(S)], [1] * S, 1, 1)
        for v in range(S):
            cols = [f_var(r, link_pos[(i, v)]) for i in [start, *range(S)] if i != v]
            cols_out = [f_var(r, link_pos[(v, j)]) for j in [*range(S), end] if j != v]
            rows.add(cols + cols_out, [1] * len(cols) + [-1] * len(cols_out), 0, 0)
        # links into the end: e_i >= L
        for i in range(S):
            rows.add([f_var(r, link_pos[(i, end)]), e_idx[i]], [L, -1], -np.inf, 0)
        per_server_k = [[] for _ in range(S)]
        for ki, (i, j) in enumerate(server_links):
            f = f_var(r, link_pos[(i, j)])
            k = k_var(r, ki)
            c[f] = sc.rtt_ms[cl, j] / R
            c[k] = sc.decode_ms[j] / R
            per_server_k[j].append(k)
            if i == start:
                rows.add([a_idx[j], f], [1, L], -np.inf, L)                 # a_j <= 0
                rows.add([k, e_idx[j], f], [1, -1, -L], -L, np.inf)         # k >= e_j - L(1-f)
            else:
                rows.add([a_idx[j], e_idx[i], f], [1, -1, L], -np.inf, L)           # a_j <= e_i
                rows.add([e_idx[i], e_idx[j], f], [1, -1, L], -np.inf, L - 1)       # e_i <= e_j - 1
                rows.add([k, e_idx[j], e_idx[i], f], [1, -1, 1, -L], -L, np.inf)    # k >= e_j - e_i - L(1-f)
        rows.add([k_var(r, ki) for ki in range(nK)], [1] * nK, L, L)
        for j in range(S):
            rows.add(per_server_k[j] + [e_idx[j], a_idx[j]],
                     [1] * len(per_server_k[j]) + [-1, 1], -np.inf, 0)
            mem_cols[j].extend(per_server_k[j])
            mem_vals[j].extend([sc.cache_gb] * len(per_server_k[j]))
    for j in range(S):
        rows.add(mem_cols[j], mem_vals[j], -np.inf, M[j])

    best_heuristic = None
    if cutoff:
        for p in (cg_bprr(sc), petals(sc, seed)):
            if p.feasible and (best_heuristic is None or p.mean_token_ms < best_heuristic):
                best_heuristic = p.mean_token_ms
        if best_heuristic is not None:
            nz = np.flatnonzero(c)
            rows.add(list(nz), list(c[nz]), -np.inf, best_heuristic * (1 + 1e-9) + 1e-9)

    integrality = np.zeros(n)
    integrality[: 2 * S] = 1
    lb = np.zeros(n)
    ub = np.zeros(n)
    ub[a_idx] = L - 1
    lb[e_idx] = 1
    ub[e_idx] = L
    for r in range(R):
        base = 2 * S + r * per_req
        integrality[base: base + nL] = 1
        ub[base: base + nL] = 1
        ub[base + nL: base + per_req] = L
    remaining = max(time_limit_s - (time.perf_counter() - t0), 1e-3)
    res = milp(c, constraints=rows.constraint(n), integrality=integrality, bounds=Bounds(lb, ub),
               options={"time_limit": remaining, "mip_rel_gap": rel_gap, "disp": False,
                        "presolve": presolve})
    extra = {"num_variables": n, "heuristic_cutoff_ms": best_heuristic}
    bound = getattr(res, "mip_dual_bound", None)
    gap = getattr(res, "mip_gap", None)
    if res.x is None:
        status = "time_limit" if res.status == 1 else "infeasible"
        reason = ("time limit reached before a feasible solution" if res.status == 1
                  else f"no feasible placement and routing ({res.message})")
        p = finish_plan(sc, "milp", None, [], t0, reason=reason, extra=extra,
                        bound_ms=None if bound is None or not np.isfinite(bound) else float(bound))
        p.status = status if status == "infeasible" else "time_limit"
        return p
    x = res.x
    a = np.rint(x[a_idx]).astype(np.int64)
    e = np.rint(x[e_idx]).astype(np.int64)
    routes = []
    for r in range(R):
        path, node = [], start
        while node != end and len(path) <= S:
            nxt = [j for j in [*range(S), end] if j != node and not (node == start and j == end)
                   and x[f_var(r, link_pos[(node, j)])] > 0.5]
            node = nxt[0]
            if node != end:
                path.append(node)
        routes.append(path)
    status = "optimal" if res.status == 0 else "time_limit"
    return finish_plan(sc, "milp", Placement.from_arrays(a, e - a), routes, t0, status=status,
                       bound_ms=float(bound) if bound is not None else None,
                       gap=float(gap) if gap is not None else None, extra=extra)
