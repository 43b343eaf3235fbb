# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernels for pipeline-parallel LLM placement and routing (distalloc.llm).

What this module computes, and for whom (callers: ``distalloc.llm.placement``,
``distalloc.llm.routing``, ``distalloc.llm.model``; never user code):

* ``evaluate_routes``  — the performance model of SPEC 1.1 for many (placement, route)
  pairs at once: per-token time, time to first token, request time, route validity, and
  the memory each server uses with every route's KV cache.
* ``shortest_routes``  — the block-ordered dynamic program over the feasible-link DAG:
  for each client the cheapest chain whose link cost is ``alpha[c, j] + beta[j] * k_j``
  (k_j blocks processed on j), plus ``penalty`` when k_j exceeds ``free_blocks[j]``.
  One kernel serves per-token routing (CG-BPRR), request-time routing and PETALS's
  Dijkstra costs with its no-cache penalty.
* ``cg_bp``            — steps 1-2 of CG-BPRR (SPEC 1.5): block counts, amortised
  order and the greedy window choice.
* ``petals_place``     — PETALS's weakest-window join rule (SPEC 1.6).

The online engine (``Swarm``) and the discrete-event simulator driving it live in
``swarm_kernels``; both share the decision core in ``llm_core.pxd`` with this module.

Layering: ``cdef inline`` helpers on raw pointers in ``llm_core.pxd`` (routing DP, session
lists, event heap, window comparison; shared with the other LLM kernel modules), then array
loops that release the GIL, then the ``def`` entry points, which take contiguous typed arrays and
never validate user input (the API layer does that once).

Blocks are 0-based; a server j hosts [first[j], first[j] + num[j]); num[j] == 0 means
unused; the dummy start ends at block 0.
"""
from libc.math cimport INFINITY, floor
from libc.stdint cimport int64_t, int8_t
from libc.stdlib cimport malloc, calloc, free, qsort

from llm_core cimport *

import numpy as np


# --------------------------------------------------------------------------------------
# Performance model
# --------------------------------------------------------------------------------------
def evaluate_routes(const int64_t[:, ::1] first_block, const int64_t[:, ::1] num_blocks,
                    int64_t L,
                    const int64_t[::1] route_plan, const int64_t[::1] route_client,
                    const int64_t[::1] indptr, const int64_t[::1] servers,
                    const double[:, ::1] rtt_ms, const double[:, ::1] prefill_rtt_ms,
                    const double[::1] decode_ms, const double[::1] prefill_ms,
                    int64_t output_tokens, double block_gb, double cache_gb,
                    double[::1] token_ms, double[::1] ttft_ms, double[::1] request_ms,
                    int8_t[::1] status, double[:, ::1] memory_gb):
    """Per-route times and per-(plan, server) memory.  status: 0 valid, 1 empty route,
    2 server index out of range or unused, 3 infeasible link (gap or no new block),
    4 route does not reach block L.  Invalid routes get NaN times and add no cache."""
    cdef Py_ssize_t n = route_plan.shape[0], P = first_block.shape[0], S = first_block.shape[1]
    cdef Py_ssize_t r, q, p, j, c
    cdef int64_t prev_end, a, e, k
    cdef double tok, pre
    cdef int8_t st
    cdef Py_ssize_t C = rtt_ms.shape[0]
    # every index below comes from these arrays: check shapes and ranges first
    _require(num_blocks.shape[0] == P and num_blocks.shape[1] == S
             and memory_gb.shape[0] == P and memory_gb.shape[1] == S, "placement shapes")
    _require(rtt_ms.shape[1] == S and prefill_rtt_ms.shape[0] == C
             and prefill_rtt_ms.shape[1] == S and decode_ms.shape[0] == S
             and prefill_ms.shape[0] == S, "server array shapes")
    _require(route_client.shape[0] == n and indptr.shape[0] == n + 1
             and token_ms.shape[0] == n and ttft_ms.shape[0] == n
             and request_ms.shape[0] == n and status.shape[0] == n, "route array shapes")
    _require(_all_in_range(&route_plan[0], n, 0, P) and _all_in_range(&route_client[0], n, 0, C),
             "route placement or client index out of range")
    _require(indptr[0] == 0 and indptr[n] <= servers.shape[0], "indptr bounds")
    for r in range(n):
        _require(indptr[r] <= indptr[r + 1], "indptr not non-decreasing")
    with nogil:
        for p in range(P):
            for j in range(S):
                memory_gb[p, j] = block_gb * num_blocks[p, j]
        for r in range(n):
            p = route_plan[r]
            c = route_client[r]
            prev_end = 0
            tok = 0.0
            pre = 0.0
            st = 0
            if indptr[r + 1] == indptr[r]:
                st = 1
            for q in range(indptr[r], indptr[r + 1]):
                j = servers[q]
                if j < 0 or j >= S or num_blocks[p, j] <= 0:
                    st = 2
                    break
                a = first_block[p, j]
                e = a + num_blocks[p, j]
                if not (a <= prev_end and prev_end <= e - 1):
                    st = 3
                    break
                k = e - prev_end
                tok += rtt_ms[c, j] + decode_ms[j] * k
                pre += prefill_rtt_ms[c, j] + prefill_ms[j] * k
                prev_end = e
            if st == 0 and prev_end != L:
                st = 4
            status[r] = st
            if st != 0:
                token_ms[r] = ttft_ms[r] = request_ms[r] = 0.0 / 0.0
                continue
            token_ms[r] = tok
            ttft_ms[r] = pre
            request_ms[r] = pre + (output_tokens - 1) * tok
            prev_end = 0
            for q in range(indptr[r], indptr[r + 1]):
                j = servers[q]
                e = first_block[p, j] + num_blocks[p, j]
                memory_gb[p, j] += cache_gb * (e - prev_end)
                prev_end = e


# --------------------------------------------------------------------------------------
# Routing: block-ordered dynamic program on the feasible-link DAG (llm_core._route_dp)
# --------------------------------------------------------------------------------------
def shortest_routes(const int64_t[::1] first_block, const int64_t[::1] num_blocks, int64_t L,
                    const double[:, ::1] alpha, const double[::1] beta,
                    const int64_t[::1] free_blocks, double penalty,
                    double[::1] cost, int64_t[:, ::1] paths, int64_t[::1] path_len):
    """Cheapest start-to-end chain for every row c of ``alpha``.

    Link (i, j) with k = end_j - end_i blocks processed on j costs
    ``alpha[c, j] + beta[j] * k + (penalty if k > free_blocks[j] else 0)``; feasible iff
    first_j <= end_i <= end_j - 1.  Unreachable: cost inf, path_len 0.
    """
    cdef Py_ssize_t S = first_block.shape[0], C = alpha.shape[0], c
    cdef RouteGraph g
    cdef RouteCost rc
    _require(0 <= L <= KERNEL_MAX_BLOCKS, "L out of range")
    _require(num_blocks.shape[0] == S and alpha.shape[1] == S and beta.shape[0] == S
             and free_blocks.shape[0] == S, "server array shapes")
    _require(cost.shape[0] == C and path_len.shape[0] == C and paths.shape[0] == C
             and paths.shape[1] >= (L if L > 0 else 1), "output shapes")
    _require(_placement_ok(&first_block[0], &num_blocks[0], S, L), "placement out of [0, L]")
    cdef double* D = <double*> malloc((L + 1) * sizeof(double))
    cdef int64_t* arg_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* arg_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* zeros = <int64_t*> calloc(S + 1, sizeof(int64_t))
    cdef int graph_ok = _graph_init(&g, &first_block[0], &num_blocks[0], S, L)
    try:
        if not (D and arg_server and arg_prev and zeros) or graph_ok < 0:
            raise MemoryError()
        with nogil:
            rc.a2 = NULL
            rc.b2 = NULL
            rc.w = 0.0
            rc.b1 = &beta[0]
            rc.mode = 1 if penalty != 0.0 else 0
            rc.capb = &free_blocks[0]
            rc.used = zeros
            rc.penalty = penalty
            rc.lists = NULL
            rc.now = 0.0
            for c in range(C):
                rc.a1 = &alpha[c, 0]
                cost[c] = _route_dp(&g, &rc, D, arg_server, arg_prev, NULL, &paths[c, 0],
                                    &path_len[c])
    finally:
        free(D); free(arg_server); free(arg_prev); free(zeros); free(g.bucket); free(g.by_end)


# --------------------------------------------------------------------------------------
# Placement
# --------------------------------------------------------------------------------------

cdef int64_t _cg_greedy(const int64_t* num_blocks, const double* amortised_ms,
                        const int64_t* sessions, const int64_t* order, Py_ssize_t n,
                        Py_ssize_t L, int64_t R, int64_t* first_block, double* capacity,
                        double* T, int64_t* under_prefix, double* buf,
                        double* best) noexcept nogil:
    """Greedy window choice of CG-BPRR step 2; returns the number of blocks with C_b < R.
    The window rule and the credit are llm_core's, shared with the online engine."""
    cdef Py_ssize_t i, j, b, best_a
    cdef double tmax = -INFINITY, dummy
    cdef int64_t under = L
    for i in range(n):
        if amortised_ms[order[i]] > tmax:
            tmax = amortised_ms[order[i]]
    dummy = tmax + 1.0
    for b in range(L):
        capacity[b] = 0.0
        T[b] = R * dummy
    for i in range(n):
        j = order[i]
        best_a = _cg_window(capacity, T, L, num_blocks[j], R, under, under_prefix, buf, best)
        first_block[j] = best_a
        under -= _cg_credit(capacity, T, best_a, num_blocks[j], R, sessions[j],
                            dummy - amortised_ms[j])
    return under


def cg_bp(const double[::1] usable_memory_gb, const double[::1] decode_ms,
          const double[::1] rtt_max_ms, double block_gb, double cache_gb, int64_t R,
          int64_t L, int64_t[::1] num_blocks, double[::1] amortised_ms,
          int64_t[::1] sessions, int64_t[::1] order, int64_t[::1] first_block,
          double[::1] capacity):
    """CG-BP, steps 1-2 of CG-BPRR (SPEC 1.5), in one pass.

    Step 1: m_j = min(floor(M_j / (s_m + s_c R)), L); amortised time
    t~_j = tau_j + t*_j / m_j; session capacity s_j = floor((M_j - s_m m_j) / (s_c m_j))
    capped at R.  Servers with m_j >= 1 are sorted by (t~_j, j) into ``order[:n_used]``.
    Step 2: each server in that order takes, while some block has C_b < R, the window
    containing an under-served block with the largest sum of T_b (summed left to right,
    so exact ties stay exact and go to the smallest start); afterwards the window whose
    sorted C_b are lexicographically smallest.  Returns (n_used, uncovered blocks); the
    greedy is skipped (uncovered = L) when sum_j m_j < L.
    """
    cdef Py_ssize_t S = usable_memory_gb.shape[0], j, n_used = 0
    cdef int64_t m, total = 0, under = L, s
    cdef double per_block = block_gb + cache_gb * R, q
    _require(1 <= L <= KERNEL_MAX_BLOCKS and R >= 1, "L or R out of range")
    _require(decode_ms.shape[0] == S and rtt_max_ms.shape[0] == S and num_blocks.shape[0] == S
             and amortised_ms.shape[0] == S and sessions.shape[0] == S
             and order.shape[0] == S and first_block.shape[0] == S
             and capacity.shape[0] == L, "array shapes")
    cdef KeyIndex* keys = <KeyIndex*> malloc((S + 1) * sizeof(KeyIndex))
    cdef double* T = <double*> malloc((L + 1) * sizeof(double))
    cdef int64_t* under_prefix = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef double* buf = <double*> malloc(2 * (L + 1) * sizeof(double))
    cdef double* best = <double*> malloc(2 * (L + 1) * sizeof(double))
    if not (keys and T and under_prefix and buf and best):
        free(keys); free(T); free(under_prefix); free(buf); free(best)
        raise MemoryError()
    try:
        with nogil:
            for j in range(S):
                # clamp in floating point before the cast: a float beyond int64 (or NaN)
                # cast to int64 is undefined (in practice INT64_MIN, an unused server)
                q = floor(usable_memory_gb[j] / per_block)
                if q >= <double> L:
                    m = L
                elif q >= 1.0:
                    m = <int64_t> q
                else:
                    m = 0
                num_blocks[j] = m
                first_block[j] = 0
                sessions[j] = 0
                amortised_ms[j] = INFINITY
                if m > 0:
                    total += m
                    amortised_ms[j] = decode_ms[j] + rtt_max_ms[j] / m
                    q = floor((usable_memory_gb[j] - block_gb * m) / (cache_gb * m))
                    if q >= <double> R:
                        s = R
                    elif q >= 0.0:
                        s = <int64_t> q
                    else:
                        s = 0
                    sessions[j] = s
                    keys[n_used].key = amortised_ms[j]
                    keys[n_used].index = j
                    n_used += 1
            qsort(keys, n_used, sizeof(KeyIndex), _cmp_key_index)
            for j in range(n_used):
                order[j] = keys[j].index
            for j in range(L):
                capacity[j] = 0.0
            if total >= L:
                under = _cg_greedy(&num_blocks[0], &amortised_ms[0], &sessions[0], &order[0],
                                   n_used, L, R, &first_block[0], &capacity[0], T,
                                   under_prefix, buf, best)
    finally:
        free(keys); free(T); free(under_prefix); free(buf); free(best)
    return n_used, under


def petals_place(const int64_t[::1] num_blocks, const double[::1] throughput,
                 const int64_t[::1] join_order, int64_t L,
                 int64_t[::1] first_block, double[::1] block_throughput):
    """PETALS's join rule: each server, in join order, takes the window whose sorted
    per-block throughputs are lexicographically smallest (serve the weakest blocks),
    then adds its throughput to those blocks."""
    cdef Py_ssize_t n = join_order.shape[0], i, j, b, a, m, S = num_blocks.shape[0]
    _require(1 <= L <= KERNEL_MAX_BLOCKS, "L out of range")
    _require(throughput.shape[0] == S and first_block.shape[0] == S
             and block_throughput.shape[0] == L, "array shapes")
    _require(_all_in_range(&join_order[0], n, 0, S), "join_order index out of range")
    _require(_all_in_range(&num_blocks[0], S, 0, L + 1), "num_blocks out of [0, L]")
    cdef double* buf = <double*> malloc(2 * (L + 1) * sizeof(double))
    cdef double* best = <double*> malloc(2 * (L + 1) * sizeof(double))
    if not (buf and best):
        free(buf); free(best)
        raise MemoryError()
    try:
        with nogil:
            for b in range(L):
                block_throughput[b] = 0.0
            for i in range(n):
                j = join_order[i]
                m = num_blocks[j]
                if m <= 0:
                    continue
                a = _lexmin_sorted_window(&block_throughput[0], L, m, buf, best)
                first_block[j] = a
                for b in range(a, a + m):
                    block_throughput[b] += throughput[j]
    finally:
        free(buf); free(best)
