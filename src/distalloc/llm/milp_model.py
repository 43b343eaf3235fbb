"""The two BPRR formulations of :mod:`distalloc.llm.milp` as solver-neutral linear models,
with the encoding of a known plan (the warm start) and the decoding of a solution.

The derivations are in the docstring of :mod:`distalloc.llm.milp`.  A :class:`LinearModel`
holds integer-coefficient rows only, except the per-server memory rows, which are kept apart
(:class:`MemoryRow`) because a solver over the integers (CP-SAT) states them exactly as a
table of the cache blocks each block count leaves room for, while HiGHS takes them as
linear rows in GB.
"""
from __future__ import annotations

import contextvars
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.sparse import csr_matrix

from distalloc.llm.scenario import Scenario

__all__ = ["LinearModel", "MemoryRow", "build_model", "FORMULATIONS", "identical_server_classes",
           "BuildTimeLimit", "estimate_model_size", "BYTES_PER_NONZERO"]

FORMULATIONS = ("aggregated", "per-request", "window")

#: memory per nonzero of the constraint matrix while a model is built and solved: the Python
#: row lists (3 objects per nonzero), the CSR copy and the solver's own copy with its LP
#: factorisation.  Measured: 'aggregated' on synthetic:80 (3.98e6 nonzeros) peaked at
#: 1.57 GB resident with HiGHS (~390 bytes per nonzero); rounded up.
BYTES_PER_NONZERO = 400

# the wall-clock deadline of the model being built (perf_counter seconds), checked by the
# row and column builders every _CLOCK_EVERY additions
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("milp_build_deadline",
                                                                          default=None)
_CLOCK_EVERY = 2048


class BuildTimeLimit(Exception):
    """The time limit passed while the model was being built."""


class _Clock:
    """Counts additions and checks the build deadline every ``_CLOCK_EVERY`` of them."""

    def __init__(self):
        self.deadline = _deadline.get()
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        if self.deadline is not None and self.ticks % _CLOCK_EVERY == 0 \
                and time.perf_counter() > self.deadline:
            raise BuildTimeLimit()


@dataclass(frozen=True)
class MemoryRow:
    """s_m (e_j - a_j) + s_c sum(cache_cols) <= M_j for server j."""

    server: int
    e_col: int
    a_col: int
    cache_cols: np.ndarray     # columns of blocks-processed variables on j
    cache_coef: np.ndarray     # their multiplicities (1 or 2^b)
    memory_gb: float

    def max_cache_blocks(self, block_gb: float, cache_gb: float, cap: int) -> list[int]:
        """For m = 1..cap hosted blocks, the most (session, block) caches that fit; the
        same 1e-9 GB tolerance as the brute force."""
        return [max(int(math.floor((self.memory_gb - block_gb * m + 1e-9) / cache_gb)), 0)
                for m in range(1, cap + 1)]


class _Rows:
    """Sparse constraint rows lb <= A x <= ub."""

    def __init__(self):
        self.clock = _Clock()
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []

    def add(self, cols, vals, lb, ub):
        self.clock.tick()
        i = len(self.lb)
        self.r.extend([i] * len(cols))
        self.c.extend(int(c) for c in cols)
        self.v.extend(vals)
        self.lb.append(lb)
        self.ub.append(ub)

    def matrix(self, n: int) -> csr_matrix:
        return csr_matrix((self.v, (self.r, self.c)), shape=(len(self.lb), n))


@dataclass
class LinearModel:
    """min cost @ x subject to row_lb <= A x <= row_ub, the memory rows, lb <= x <= ub,
    x integer where ``integer``.  ``cost`` is the total per-token time over all requests
    (ms); divide by |R| for the mean."""

    formulation: str
    cost: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    A: csr_matrix
    row_lb: np.ndarray
    row_ub: np.ndarray
    memory: list[MemoryRow]
    block_gb: float
    cache_gb: float
    cap: np.ndarray                     # most blocks each server can hold
    a_cols: np.ndarray
    e_cols: np.ndarray
    decode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, list[list[int]]]]
    encode: Callable[[np.ndarray, np.ndarray, list[list[int]]], np.ndarray]
    sizes: dict = field(default_factory=dict)
    labels: list[str] | None = None     # column names, where the builder gives them

    @property
    def num_variables(self) -> int:
        return int(self.cost.shape[0])

    def memory_matrix(self) -> tuple[csr_matrix, np.ndarray]:
        """The memory rows as (A, ub) in GB, for a linear solver."""
        rows = _Rows()
        for mr in self.memory:
            rows.add([mr.e_col, mr.a_col, *mr.cache_cols],
                     [self.block_gb, -self.block_gb, *(self.cache_gb * mr.cache_coef)],
                     -np.inf, mr.memory_gb)
        return rows.matrix(self.num_variables), np.array(rows.ub)

    def empty_row_infeasible(self) -> bool:
        """A row without any column whose bounds exclude 0 (e.g. a flow that no arc can
        carry): the model is infeasible before any solver sees it."""
        empty = np.diff(self.A.indptr) == 0
        return bool(np.any(empty & ((self.row_lb > 0) | (self.row_ub < 0))))

    def check(self, x: np.ndarray, tol: float = 1e-6) -> str | None:
        """Why x violates the model (bounds, integrality, rows, memory), or None."""
        if np.any(x < self.lb - tol) or np.any(x > self.ub + tol):
            return "bounds"
        if np.any(np.abs(x[self.integer] - np.rint(x[self.integer])) > tol):
            return "integrality"
        ax = self.A @ x
        bad = np.flatnonzero((ax < self.row_lb - tol) | (ax > self.row_ub + tol))
        if bad.size:
            return f"row {int(bad[0])}"
        Am, ub = self.memory_matrix()
        if np.any(Am @ x > ub + tol):
            return "memory"
        return None


def identical_server_classes(sc: Scenario) -> list[list[int]]:
    """Groups (of two or more) of servers that are interchangeable for the per-token
    objective: same usable memory, decode time and RTT column."""
    key = np.column_stack([sc.usable_memory_gb, sc.decode_ms, sc.rtt_ms.T])
    groups: dict[bytes, list[int]] = {}
    for j in range(sc.num_servers):
        groups.setdefault(key[j].tobytes(), []).append(j)
    return [g for g in groups.values() if len(g) > 1]


def visit_capacity(sc: Scenario, j: int, max_visits: int) -> list[int]:
    """g(V) for V = 0..max_visits: the most (request, block) pairs that V visits of
    server j can process.  Each visit processes at most m_j blocks and the caches must fit
    beside the m_j blocks: g(V) = max over m of min(V m, floor((M_j - s_m m) / s_c))."""
    cap = int(min(np.floor(sc.usable_memory_gb[j] / sc.block_gb), sc.num_blocks))
    room = [max(int(math.floor((sc.usable_memory_gb[j] - sc.block_gb * m + 1e-9) / sc.cache_gb)), 0)
            for m in range(1, cap + 1)]
    return [max(min(v * m, room[m - 1]) for m in range(1, cap + 1)) for v in range(max_visits + 1)]


def _upper_hull(g: list[int]) -> list[tuple[int, int, int]]:
    """The segments of the upper concave hull of the points (v, g[v]) as integer rows
    (dv, dg, rhs): dv y - dg v <= rhs above every segment's span."""
    hull: list[int] = []
    for v in range(len(g)):
        while len(hull) >= 2:
            v1, v2 = hull[-2], hull[-1]
            if (g[v2] - g[v1]) * (v - v1) <= (g[v] - g[v1]) * (v2 - v1):
                hull.pop()
            else:
                break
        hull.append(v)
    out = []
    for v1, v2 in zip(hull, hull[1:]):
        dv, dg = v2 - v1, g[v2] - g[v1]
        out.append((dv, dg, dv * g[v1] - dg * v1))
    return out


def _add_visit_cuts(rows: "_Rows", sc: Scenario, visits: list[tuple[list[int], list[float]]],
                    blocks: list[tuple[list[int], list[float]]]):
    """Valid inequalities of the block-coverage structure, per server j: the blocks K_j
    processed there by all requests are at most the concave envelope of g(V_j) in the
    number of visits V_j (:func:`visit_capacity`), and V_j <= |R|.  With sum_j K_j = |R| L
    they say which visits the chains must pay for to cover every block."""
    R = sc.num_requests
    for j in range(sc.num_servers):
        vc, vv = visits[j]
        bc, bv = blocks[j]
        rows.add(vc, vv, -np.inf, R)
        for dv, dg, rhs in _upper_hull(visit_capacity(sc, j, R)):
            rows.add(bc + vc, [dv * x for x in bv] + [-dg * x for x in vv], -np.inf, rhs)


def _canonical(sc: Scenario, first: np.ndarray, end: np.ndarray,
               routes: list[list[int]]) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Permute identical servers so that (L+1) a_j + e_j is non-decreasing inside every
    class (the symmetry-breaking rows), relabelling the routes to match."""
    L = sc.num_blocks
    first, end = first.copy(), end.copy()
    relabel = np.arange(sc.num_servers)
    for cls in identical_server_classes(sc):
        members = sorted(cls, key=lambda j: (L + 1) * first[j] + end[j])
        old_first, old_end = first[members].copy(), end[members].copy()
        for new, old in zip(cls, members):
            relabel[old] = new
        first[cls], end[cls] = old_first, old_end
    return first, end, [[int(relabel[j]) for j in p] for p in routes]


def _placement_arrays(sc: Scenario, first_block, num_blocks):
    """Model values (a, e) of a placement: an unused server keeps block [0, 1)."""
    m = np.asarray(num_blocks, dtype=np.int64)
    a = np.where(m > 0, np.asarray(first_block, dtype=np.int64), 0)
    e = np.where(m > 0, a + m, 1)
    return a, e


def build_model(sc: Scenario, formulation: str = "aggregated", cuts: bool = True,
                deadline: float | None = None) -> LinearModel:
    """The linear model of BPRR for ``sc`` in one of ``FORMULATIONS``; ``cuts`` adds the
    valid inequalities of :func:`_add_visit_cuts` (and, aggregated, the per-bit ones).
    With ``deadline`` (a ``time.perf_counter()`` value) the builders check the clock every
    few thousand rows/columns and raise :class:`BuildTimeLimit` once it has passed."""
    token = _deadline.set(deadline)
    try:
        return _build(sc, formulation, cuts)
    finally:
        _deadline.reset(token)


def _build(sc: Scenario, formulation: str, cuts: bool) -> LinearModel:
    if formulation == "per-request":
        return _build_per_request(sc, cuts)
    if formulation == "aggregated":
        return _build_aggregated(sc, cuts)
    if formulation == "window":
        from distalloc.llm.milp_window import build_window_model
        return build_window_model(sc, cuts)
    raise ValueError(formulation)


def _common(sc: Scenario, rows: _Rows):
    """Placement variables a_j (cols 0..S-1), e_j (S..2S-1), their rows; symmetry rows."""
    S, L = sc.num_servers, sc.num_blocks
    cap = np.minimum(np.floor(sc.usable_memory_gb / sc.block_gb), L).astype(np.int64)
    a_cols, e_cols = np.arange(S), S + np.arange(S)
    for j in range(S):
        rows.add([e_cols[j], a_cols[j]], [1, -1], 1, int(cap[j]))
    for cls in identical_server_classes(sc):
        for j1, j2 in zip(cls, cls[1:]):   # (L+1) a + e lexicographically non-decreasing
            rows.add([a_cols[j1], e_cols[j1], a_cols[j2], e_cols[j2]],
                     [L + 1, 1, -(L + 1), -1], -np.inf, 0)
    return cap, a_cols, e_cols


def _links(S: int) -> list[tuple[int, int]]:
    start, end = S, S + 1
    return [(i, j) for i in [start, *range(S)] for j in [*range(S), end]
            if i != j and not (i == start and j == end)]


def _add_link_feasibility(rows: _Rows, sc: Scenario, a_cols, e_cols, i: int, j: int, var: int):
    """Lemma 1 on link (i, j) when binary ``var`` is 1: a_j <= e_i <= e_j - 1 (i the start:
    a_j = 0; j the end: e_i = L)."""
    S, L = sc.num_servers, sc.num_blocks
    start, end = S, S + 1
    if j == end:
        rows.add([var, e_cols[i]], [L, -1], -np.inf, 0)                          # e_i >= L
    elif i == start:
        rows.add([a_cols[j], var], [1, L - 1], -np.inf, L - 1)                   # a_j <= 0
    else:
        rows.add([a_cols[j], e_cols[i], var], [1, -1, L], -np.inf, L)            # a_j <= e_i
        rows.add([e_cols[i], e_cols[j], var], [1, -1, L], -np.inf, L - 1)        # e_i <= e_j - 1


def _finish(sc, formulation, rows, cost, lb, ub, integer, memory, cap, a_cols, e_cols,
            decode, encode, **sizes) -> LinearModel:
    n = cost.shape[0]
    return LinearModel(formulation, cost, lb, ub, integer, rows.matrix(n), np.array(rows.lb),
                       np.array(rows.ub), memory, sc.block_gb, sc.cache_gb, cap, a_cols,
                       e_cols, decode, encode, sizes)


def _walk(S: int, nxt: Callable[[int], int]) -> list[int]:
    path, node = [], S
    for _ in range(S + 1):
        node = nxt(node)
        if node == S + 1:
            return path
        path.append(node)
    raise RuntimeError("solution flow does not reach the end")


# ------------------------------------------------------------------------------------------
# per-request: one binary per request and link (the formulation of the first release)
# ------------------------------------------------------------------------------------------
def _build_per_request(sc: Scenario, cuts: bool) -> LinearModel:
    S, L, R = sc.num_servers, sc.num_blocks, sc.num_requests
    rows = _Rows()
    cap, a_cols, e_cols = _common(sc, rows)
    start, end = S, S + 1
    links = _links(S)
    pos = {lk: li for li, lk in enumerate(links)}
    server_links = [(i, j) for (i, j) in links if j < S]
    nL, nK = len(links), len(server_links)
    per_req = nL + nK
    n = 2 * S + R * per_req
    cost = np.zeros(n)
    lb, ub = np.zeros(n), np.zeros(n)
    integer = np.zeros(n, dtype=bool)
    integer[: 2 * S] = True
    ub[a_cols], lb[e_cols], ub[e_cols] = L - 1, 1, L

    def f_var(r, li):
        return 2 * S + r * per_req + li

    def k_var(r, ki):
        return 2 * S + r * per_req + nL + ki

    cache_cols: list[list[int]] = [[] for _ in range(S)]
    visit_cols: list[list[int]] = [[] for _ in range(S)]
    for r in range(R):
        cl = int(sc.requests[r])
        base = 2 * S + r * per_req
        integer[base: base + nL] = True
        ub[base: base + nL] = 1
        ub[base + nL: base + per_req] = L
        rows.add([f_var(r, pos[(start, j)]) for j in range(S)], [1] * S, 1, 1)
        for v in range(S):
            cin = [f_var(r, pos[(i, v)]) for i in [start, *range(S)] if i != v]
            cout = [f_var(r, pos[(v, j)]) for j in [*range(S), end] if j != v]
            rows.add(cin + cout, [1] * len(cin) + [-1] * len(cout), 0, 0)
        for i in range(S):
            _add_link_feasibility(rows, sc, a_cols, e_cols, i, end, f_var(r, pos[(i, end)]))
        per_server = [[] for _ in range(S)]
        for ki, (i, j) in enumerate(server_links):
            f, k = f_var(r, pos[(i, j)]), k_var(r, ki)
            cost[f], cost[k] = sc.rtt_ms[cl, j], sc.decode_ms[j]
            per_server[j].append(k)
            visit_cols[j].append(f)
            _add_link_feasibility(rows, sc, a_cols, e_cols, i, j, f)
            if i == start:
                rows.add([k, e_cols[j], f], [1, -1, -L], -L, np.inf)            # k >= e_j - L(1-f)
            else:
                rows.add([k, e_cols[j], e_cols[i], f], [1, -1, 1, -L], -L, np.inf)
        rows.add([k_var(r, ki) for ki in range(nK)], [1] * nK, L, L)           # telescoping
        for j in range(S):
            rows.add(per_server[j] + [e_cols[j], a_cols[j]],
                     [1] * len(per_server[j]) + [-1, 1], -np.inf, 0)
            cache_cols[j].extend(per_server[j])
    if cuts:
        _add_visit_cuts(rows, sc, [(v, [1.0] * len(v)) for v in visit_cols],
                        [(k, [1.0] * len(k)) for k in cache_cols])
    memory = [MemoryRow(j, int(e_cols[j]), int(a_cols[j]), np.array(cache_cols[j], dtype=np.int64),
                        np.ones(len(cache_cols[j])), float(sc.usable_memory_gb[j]))
              for j in range(S)]

    def decode(x):
        a, e = np.rint(x[a_cols]).astype(np.int64), np.rint(x[e_cols]).astype(np.int64)
        routes = []
        for r in range(R):
            def nxt(node, r=r):
                return next(j for j in [*range(S), end] if (node, j) in pos
                            and x[f_var(r, pos[(node, j)])] > 0.5)
            routes.append(_walk(S, nxt))
        return a, e - a, routes

    def encode(first, num, routes):
        a, e = _placement_arrays(sc, first, num)
        a, e, routes = _canonical(sc, a, e, routes)
        x = np.zeros(n)
        x[a_cols], x[e_cols] = a, e
        kpos = {lk: ki for ki, lk in enumerate(server_links)}
        for r, path in enumerate(routes):
            prev, node = 0, start
            for j in [*path, end]:
                x[f_var(r, pos[(node, j)])] = 1
                if j != end:
                    x[k_var(r, kpos[(node, j)])] = e[j] - prev
                    prev = e[j]
                node = j
        return x

    return _finish(sc, "per-request", rows, cost, lb, ub, integer, memory, cap, a_cols, e_cols,
                   decode, encode, links=nL)


# ------------------------------------------------------------------------------------------
# aggregated: integer flows per client and link in binary expansion
# ------------------------------------------------------------------------------------------
def _build_aggregated(sc: Scenario, cuts: bool) -> LinearModel:
    S, L = sc.num_servers, sc.num_blocks
    rows = _Rows()
    cap, a_cols, e_cols = _common(sc, rows)
    start, end = S, S + 1
    links = _links(S)
    nL = len(links)
    counts = np.bincount(sc.requests, minlength=sc.num_clients)
    clients = [int(c) for c in np.flatnonzero(counts)]
    # per-visit cap: a session processing k blocks on j needs k <= m_j and
    # s_m m_j + s_c k <= M_j, so k <= M_j / (s_m + s_c)
    kmax = np.minimum(cap, np.floor(sc.usable_memory_gb / (sc.block_gb + sc.cache_gb) + 1e-9)
                      ).astype(np.int64)
    kmax = np.maximum(kmax, 1)
    cols: dict[str, int] = {}
    n = 2 * S
    u_col = {lk: n + li for li, lk in enumerate(links)}           # link open
    n += nL
    z_col: dict[tuple[int, tuple[int, int], int], int] = {}       # flow bit b of client c
    w_col: dict[tuple[int, tuple[int, int], int], int] = {}       # blocks processed of that bit
    bits = {c: int(counts[c]).bit_length() for c in clients}
    for c in clients:
        for lk in links:
            for b in range(bits[c]):
                z_col[(c, lk, b)] = n
                n += 1
                if lk[1] < S:
                    w_col[(c, lk, b)] = n
                    n += 1
    cost = np.zeros(n)
    lb, ub = np.zeros(n), np.ones(n)
    integer = np.ones(n, dtype=bool)
    ub[a_cols], lb[e_cols], ub[e_cols] = L - 1, 1, L
    for lk, v in u_col.items():
        _add_link_feasibility(rows, sc, a_cols, e_cols, *lk, v)
    cache_cols: list[list[int]] = [[] for _ in range(S)]
    cache_coef: list[list[float]] = [[] for _ in range(S)]
    visit_cols: list[list[int]] = [[] for _ in range(S)]
    visit_coef: list[list[float]] = [[] for _ in range(S)]
    for c in clients:
        nc, B = int(counts[c]), bits[c]
        flow = {lk: ([z_col[(c, lk, b)] for b in range(B)], [2 ** b for b in range(B)])
                for lk in links}
        # flow: n_c out of the start, conservation at every server
        out = [flow[(start, j)] for j in range(S)]
        rows.add(sum((z for z, _ in out), []), sum((w for _, w in out), []), nc, nc)
        for v in range(S):
            cin = [flow[(i, v)] for i in [start, *range(S)] if i != v]
            cout = [flow[(v, j)] for j in [*range(S), end] if j != v]
            rows.add(sum((z for z, _ in cin + cout), []),
                     sum((w for _, w in cin), []) + sum(([-x for x in w] for _, w in cout), []),
                     0, 0)
        total_cols, total_vals = [], []
        for lk in links:
            i, j = lk
            zs, pw = flow[lk]
            # x_l <= n_c u_l and every bit only on an open link
            rows.add(zs + [u_col[lk]], pw + [-nc], -np.inf, 0)
            for z in zs:
                rows.add([z, u_col[lk]], [1, -1], -np.inf, 0)
            if j == end:
                continue
            for b in range(B):
                z, w = z_col[(c, lk, b)], w_col[(c, lk, b)]
                ub[w] = kmax[j]
                cost[z] = sc.rtt_ms[c, j] * 2 ** b
                cost[w] = sc.decode_ms[j] * 2 ** b
                # w >= (e_j - e_i) z  (exact on z in {0,1} with w pinned by telescoping)
                if i == start:
                    rows.add([w, e_cols[j], z], [1, -1, -L], -L, np.inf)
                else:
                    rows.add([w, e_cols[j], e_cols[i], z], [1, -1, 1, -L], -L, np.inf)
                if cuts:   # valid: w <= kmax_j z, w <= m_j = e_j - a_j
                    rows.add([w, z], [1, -int(kmax[j])], -np.inf, 0)
                    rows.add([w, e_cols[j], a_cols[j]], [1, -1, 1], -np.inf, 0)
                total_cols.append(w)
                total_vals.append(2 ** b)
                visit_cols[j].append(z)
                visit_coef[j].append(2 ** b)
                cache_cols[j].append(w)
                cache_coef[j].append(2 ** b)
        rows.add(total_cols, total_vals, nc * L, nc * L)                        # telescoping
    if cuts:
        _add_visit_cuts(rows, sc, list(zip(visit_cols, visit_coef)),
                        list(zip(cache_cols, cache_coef)))
    memory = [MemoryRow(j, int(e_cols[j]), int(a_cols[j]), np.array(cache_cols[j], dtype=np.int64),
                        np.array(cache_coef[j], dtype=float), float(sc.usable_memory_gb[j]))
              for j in range(S)]

    def flows(x, c):
        return {lk: int(round(sum(2 ** b * x[z_col[(c, lk, b)]] for b in range(bits[c]))))
                for lk in links}

    def decode(x):
        a, e = np.rint(x[a_cols]).astype(np.int64), np.rint(x[e_cols]).astype(np.int64)
        paths = {}
        for c in clients:
            fl = flows(x, c)
            paths[c] = []
            for _ in range(int(counts[c])):
                def nxt(node, fl=fl):
                    j = next(j for j in [*range(S), end] if fl.get((node, j), 0) > 0)
                    fl[(node, j)] -= 1
                    return j
                paths[c].append(_walk(S, nxt))
        taken = {c: 0 for c in clients}
        routes = []
        for c in sc.requests:
            routes.append(paths[int(c)][taken[int(c)]])
            taken[int(c)] += 1
        return a, e - a, routes

    def encode(first, num, routes):
        a, e = _placement_arrays(sc, first, num)
        a, e, routes = _canonical(sc, a, e, routes)
        x = np.zeros(n)
        x[a_cols], x[e_cols] = a, e
        fl: dict[tuple[int, tuple[int, int]], int] = {}
        for c, path in zip(sc.requests, routes):
            node = start
            for j in [*path, end]:
                fl[(int(c), (node, j))] = fl.get((int(c), (node, j)), 0) + 1
                x[u_col[(node, j)]] = 1
                node = j
        for (c, lk), v in fl.items():
            blocks = 0 if lk[1] == end else e[lk[1]] - (0 if lk[0] == start else e[lk[0]])
            for b in range(bits[c]):
                if v >> b & 1:
                    x[z_col[(c, lk, b)]] = 1
                    if lk[1] != end:
                        x[w_col[(c, lk, b)]] = blocks
        return x

    return _finish(sc, "aggregated", rows, cost, lb, ub, integer, memory, cap, a_cols, e_cols,
                   decode, encode, links=nL, bits=sum(bits.values()), **cols)


# ------------------------------------------------------------------------------------------
# size before building: refuse models that cannot fit in memory (issue 16)
# ------------------------------------------------------------------------------------------
def estimate_model_size(sc: Scenario, formulation: str = "aggregated", cuts: bool = True,
                        stop_above: float = math.inf) -> tuple[float, float]:
    """(variables, nonzeros) of the model :func:`build_model` would build, without building
    it, in O(S + |C|) for 'aggregated' and 'per-request' and O(distinct server memories x
    L x cap) for 'window' (counting stops once the nonzeros pass ``stop_above``).

    'per-request': 2S + |R| (2S^2 + S) variables exactly; every request's f and k columns
    sit in its flow, Lemma 1, k and memory rows: about 34 |R| S^2 nonzeros.
    'aggregated': 2S + |links| (1 + sum_c B_c) + S^2 sum_c B_c variables exactly
    (B_c = bitlength(n_c)); each bit column sits in about 16 rows: 32 S^2 sum_c B_c
    nonzeros.  The constants are counts of the builders' rows, checked against built models
    in the tests (within a factor 2).  'window': :func:`distalloc.llm.milp_window.estimate_window_size`.
    """
    S = float(sc.num_servers)
    if formulation == "window":
        from distalloc.llm.milp_window import estimate_window_size
        return estimate_window_size(sc, cuts, stop_above)
    if formulation == "per-request":
        R = float(sc.num_requests)
        return 2 * S + R * (2 * S * S + S), (22.0 if cuts else 14.0) * R * S * S + 6 * S * S
    counts = np.bincount(sc.requests, minlength=sc.num_clients)
    bits = float(sum(int(n).bit_length() for n in counts if n > 0))
    links = S * S + S
    return 2 * S + links * (1 + bits) + S * S * bits, (24.0 if cuts else 11.0) * S * S * bits + 6 * links
