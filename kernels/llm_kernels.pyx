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
* ``cg_bp_place``      — step 2 of CG-BPRR (SPEC 1.5): the greedy window choice.
* ``petals_place``     — PETALS's weakest-window join rule (SPEC 1.6).

Layering: ``cdef`` helpers on raw pointers (window comparison), then array loops that
release the GIL, then the ``def`` entry points, which take contiguous typed arrays and
never validate user input (the API layer does that once).

Blocks are 0-based; a server j hosts [first[j], first[j] + num[j]); num[j] == 0 means
unused; the dummy start ends at block 0.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, int8_t
from libc.stdlib cimport malloc, free, qsort

import numpy as np


# --------------------------------------------------------------------------------------
# One-window helpers
# --------------------------------------------------------------------------------------
cdef int _cmp_double(const void* x, const void* y) noexcept nogil:
    cdef double a = (<const double*> x)[0]
    cdef double b = (<const double*> y)[0]
    return (a > b) - (a < b)


cdef Py_ssize_t _lexmin_sorted_window(const double* values, Py_ssize_t L, Py_ssize_t m,
                                      double* buf, double* best) noexcept nogil:
    """Start of the window of length m whose *sorted* values are lexicographically
    smallest; ties go to the smallest start.  A first pass keeps only windows whose
    minimum is the smallest (usually one), so the sort runs on few candidates."""
    cdef Py_ssize_t a, b, best_a = -1, nwin = L - m + 1
    cdef double wmin, gmin = INFINITY
    cdef int ncand = 0
    for a in range(nwin):
        wmin = values[a]
        for b in range(a + 1, a + m):
            if values[b] < wmin:
                wmin = values[b]
        if wmin < gmin:
            gmin = wmin
            ncand = 1
            best_a = a
        elif wmin == gmin:
            ncand += 1
    if ncand == 1:
        return best_a
    best_a = -1
    for a in range(nwin):
        wmin = values[a]
        for b in range(a + 1, a + m):
            if values[b] < wmin:
                wmin = values[b]
        if wmin != gmin:
            continue
        for b in range(m):
            buf[b] = values[a + b]
        qsort(buf, m, sizeof(double), _cmp_double)
        if best_a < 0:
            best_a = a
            for b in range(m):
                best[b] = buf[b]
            continue
        for b in range(m):
            if buf[b] != best[b]:
                break
        if buf[b] < best[b]:
            best_a = a
            for b in range(m):
                best[b] = buf[b]
    return best_a


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
# Routing: block-ordered dynamic program on the feasible-link DAG
# --------------------------------------------------------------------------------------
def shortest_routes(const int64_t[::1] first_block, const int64_t[::1] num_blocks, int64_t L,
                    const double[:, ::1] alpha, const double[::1] beta,
                    const int64_t[::1] free_blocks, double penalty,
                    double[::1] cost, int64_t[:, ::1] paths, int64_t[::1] path_len):
    """Cheapest start-to-end chain for every row c of ``alpha``.

    Link (i, j) with k = end_j - end_i blocks processed on j costs
    ``alpha[c, j] + beta[j] * k + (penalty if k > free_blocks[j] else 0)``.
    Feasible iff first_j <= end_i <= end_j - 1.  D[e] (cheapest way to have processed
    blocks [0, e)) is final once every server ending at or before e is relaxed, so
    servers are visited in increasing end block (counting sort, stable in index):
    O(C * (S + sum_j num_blocks[j])).  Unreachable: cost inf, path_len 0.
    """
    cdef Py_ssize_t S = first_block.shape[0], C = alpha.shape[0]
    cdef Py_ssize_t j, c, e, p, t, n_used, pos
    cdef int64_t a, k
    cdef double base, cand, best
    cdef int64_t* bucket_start = <int64_t*> malloc((L + 2) * sizeof(int64_t))
    cdef int64_t* by_end = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    cdef double* D = <double*> malloc((L + 1) * sizeof(double))
    cdef int64_t* best_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* best_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    if not (bucket_start and by_end and D and best_server and best_prev):
        free(bucket_start); free(by_end); free(D); free(best_server); free(best_prev)
        raise MemoryError()
    try:
        with nogil:
            # counting sort of used servers by end block
            for e in range(L + 2):
                bucket_start[e] = 0
            for j in range(S):
                if num_blocks[j] > 0:
                    bucket_start[first_block[j] + num_blocks[j] + 1] += 1
            for e in range(1, L + 2):
                bucket_start[e] += bucket_start[e - 1]
            n_used = bucket_start[L + 1]
            for j in range(S):
                if num_blocks[j] > 0:
                    e = first_block[j] + num_blocks[j]
                    by_end[bucket_start[e]] = j
                    bucket_start[e] += 1
            # now bucket_start[e] is the end of bucket e; bucket e starts at bucket_start[e-1]
            for c in range(C):
                D[0] = 0.0
                for e in range(1, L + 1):
                    D[e] = INFINITY
                    best_server[e] = -1
                    best_prev[e] = -1
                for e in range(1, L + 1):
                    for t in range(bucket_start[e - 1], bucket_start[e]):
                        j = by_end[t]
                        a = first_block[j]
                        base = alpha[c, j]
                        for p in range(a, e):
                            if D[p] == INFINITY:
                                continue
                            k = e - p
                            cand = D[p] + base + beta[j] * k
                            if k > free_blocks[j]:
                                cand += penalty
                            if cand < D[e]:
                                D[e] = cand
                                best_server[e] = j
                                best_prev[e] = p
                cost[c] = D[L]
                if D[L] == INFINITY:
                    path_len[c] = 0
                    continue
                # backtrack, then reverse in place
                pos = 0
                e = L
                while e > 0:
                    paths[c, pos] = best_server[e]
                    pos += 1
                    e = best_prev[e]
                path_len[c] = pos
                for t in range(pos // 2):
                    j = paths[c, t]
                    paths[c, t] = paths[c, pos - 1 - t]
                    paths[c, pos - 1 - t] = j
    finally:
        free(bucket_start); free(by_end); free(D); free(best_server); free(best_prev)


# --------------------------------------------------------------------------------------
# Placement
# --------------------------------------------------------------------------------------
def cg_bp_place(const int64_t[::1] num_blocks, const double[::1] amortised_ms,
                const int64_t[::1] sessions, const int64_t[::1] order,
                int64_t L, int64_t R, int64_t[::1] first_block, double[::1] capacity):
    """Greedy window choice of CG-BPRR step 2 (SPEC 1.5).

    ``order``: servers with num_blocks >= 1 in increasing amortised time.
    ``sessions[j]``: session capacity s_j (already capped at R).  On return
    ``first_block`` holds each placed server's window and ``capacity`` the per-block
    session capacity C_b.  Returns the number of blocks with C_b < R (0 = feasible).
    Window sums are summed left to right inside each window so that exact ties are
    exact and broken by the smallest start, as in the reference implementation.
    """
    cdef Py_ssize_t n = order.shape[0], i, j, a, b, m, best_a
    cdef double tmax = -INFINITY, dummy, wsum, best_sum, gain
    cdef int64_t under = L, have_under, deficit
    cdef double* T = <double*> malloc(L * sizeof(double))
    cdef int64_t* under_prefix = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef double* buf = <double*> malloc(L * sizeof(double))
    cdef double* best = <double*> malloc(L * sizeof(double))
    if not (T and under_prefix and buf and best):
        free(T); free(under_prefix); free(buf); free(best)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                if amortised_ms[order[i]] > tmax:
                    tmax = amortised_ms[order[i]]
            dummy = tmax + 1.0
            for b in range(L):
                capacity[b] = 0.0
                T[b] = R * dummy
            for i in range(n):
                j = order[i]
                m = num_blocks[j]
                if under > 0:
                    under_prefix[0] = 0
                    for b in range(L):
                        under_prefix[b + 1] = under_prefix[b] + (capacity[b] < R)
                    best_a = -1
                    best_sum = -INFINITY
                    for a in range(L - m + 1):
                        if under_prefix[a + m] - under_prefix[a] == 0:
                            continue
                        wsum = 0.0
                        for b in range(a, a + m):
                            wsum = wsum + T[b]
                        if wsum > best_sum:
                            best_sum = wsum
                            best_a = a
                else:
                    best_a = _lexmin_sorted_window(&capacity[0], L, m, buf, best)
                first_block[j] = best_a
                gain = dummy - amortised_ms[j]
                for b in range(best_a, best_a + m):
                    deficit = R - <int64_t> capacity[b]
                    if deficit < 0:
                        deficit = 0
                    if deficit > sessions[j]:
                        deficit = sessions[j]
                    T[b] -= gain * deficit
                    if capacity[b] < R and capacity[b] + sessions[j] >= R:
                        under -= 1
                    capacity[b] += sessions[j]
    finally:
        free(T); free(under_prefix); free(buf); free(best)
    return under


def petals_place(const int64_t[::1] num_blocks, const double[::1] throughput,
                 const int64_t[::1] join_order, int64_t L,
                 int64_t[::1] first_block, double[::1] block_throughput):
    """PETALS's join rule: each server, in join order, takes the window whose sorted
    per-block throughputs are lexicographically smallest (serve the weakest blocks),
    then adds its throughput to those blocks."""
    cdef Py_ssize_t n = join_order.shape[0], i, j, b, a, m
    cdef double* buf = <double*> malloc((L + 1) * sizeof(double))
    cdef double* best = <double*> malloc((L + 1) * sizeof(double))
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
