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

Layering: ``cdef`` helpers on raw pointers (window comparison), then array loops that
release the GIL, then the ``def`` entry points, which take contiguous typed arrays and
never validate user input (the API layer does that once).

Blocks are 0-based; a server j hosts [first[j], first[j] + num[j]); num[j] == 0 means
unused; the dummy start ends at block 0.
"""
from libc.math cimport INFINITY, floor
from libc.stdint cimport int64_t, int8_t
from libc.stdlib cimport malloc, free, qsort

import numpy as np


# --------------------------------------------------------------------------------------
# One-window helpers
# --------------------------------------------------------------------------------------
cdef Py_ssize_t _lower_bound(const double* buf, Py_ssize_t n, double x) noexcept nogil:
    """First index i of the sorted buf[0:n] with buf[i] >= x."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _hist_remove(double* vals, double* cnts, Py_ssize_t n,
                                    double x) noexcept nogil:
    """Remove one x from the run-length sorted multiset; returns the new number of runs."""
    cdef Py_ssize_t i = _lower_bound(vals, n, x)
    cnts[i] -= 1.0
    if cnts[i] == 0.0:
        n -= 1
        while i < n:
            vals[i] = vals[i + 1]
            cnts[i] = cnts[i + 1]
            i += 1
    return n


cdef inline Py_ssize_t _hist_insert(double* vals, double* cnts, Py_ssize_t n,
                                    double x) noexcept nogil:
    """Add one x to the run-length sorted multiset; returns the new number of runs."""
    cdef Py_ssize_t i = _lower_bound(vals, n, x), k
    if i < n and vals[i] == x:
        cnts[i] += 1.0
        return n
    k = n
    while k > i:
        vals[k] = vals[k - 1]
        cnts[k] = cnts[k - 1]
        k -= 1
    vals[i] = x
    cnts[i] = 1.0
    return n + 1


cdef Py_ssize_t _lexmin_sorted_window(const double* values, Py_ssize_t L, Py_ssize_t m,
                                      double* work, double* best) noexcept nogil:
    """Start of the window of length m whose *sorted* values are lexicographically
    smallest; ties go to the smallest start.  ``work`` and ``best`` hold 2 L doubles.

    The window is kept as a sorted run-length multiset (value, count) that slides: one
    value leaves, one enters.  Sorted vectors compare like their runs: at the first run
    that differs, the smaller value wins, and for an equal value the larger count wins
    (the other vector moves on to a larger value sooner).  Per window the cost is
    O(log d + d) for d distinct values in the window (few in practice: capacities and
    throughputs are sums of a few server values), so O(L d) per server, no sorting."""
    cdef double* vals = work
    cdef double* cnts = work + L
    cdef double* bvals = best
    cdef double* bcnts = best + L
    cdef Py_ssize_t a, b, i, n = 0, bn, best_a = 0, nwin = L - m + 1
    cdef bint less
    for b in range(m):
        n = _hist_insert(vals, cnts, n, values[b])
    for i in range(n):
        bvals[i] = vals[i]
        bcnts[i] = cnts[i]
    bn = n
    for a in range(1, nwin):
        n = _hist_remove(vals, cnts, n, values[a - 1])
        n = _hist_insert(vals, cnts, n, values[a + m - 1])
        less = False
        for i in range(n if n < bn else bn):
            if vals[i] != bvals[i]:
                less = vals[i] < bvals[i]
                break
            if cnts[i] != bcnts[i]:
                less = cnts[i] > bcnts[i]
                break
        if less:
            best_a = a
            for i in range(n):
                bvals[i] = vals[i]
                bcnts[i] = cnts[i]
            bn = n
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
cdef struct KeyIndex:
    double key
    int64_t index


cdef int _cmp_key_index(const void* x, const void* y) noexcept nogil:
    cdef const KeyIndex* a = <const KeyIndex*> x
    cdef const KeyIndex* b = <const KeyIndex*> y
    if a.key < b.key:
        return -1
    if a.key > b.key:
        return 1
    return (a.index > b.index) - (a.index < b.index)


cdef int64_t _cg_greedy(const int64_t* num_blocks, const double* amortised_ms,
                        const int64_t* sessions, const int64_t* order, Py_ssize_t n,
                        Py_ssize_t L, int64_t R, int64_t* first_block, double* capacity,
                        double* T, int64_t* under_prefix, double* buf,
                        double* best) noexcept nogil:
    """Greedy window choice of CG-BPRR step 2; returns the number of blocks with C_b < R."""
    cdef Py_ssize_t i, j, a, b, m, best_a
    cdef double tmax = -INFINITY, dummy, wsum, best_sum, gain
    cdef int64_t under = L, deficit
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
            # windows that contain an under-served block: the largest amortised-time sum
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
            best_a = _lexmin_sorted_window(capacity, L, m, buf, best)
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
    cdef double per_block = block_gb + cache_gb * R
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
                m = <int64_t> floor(usable_memory_gb[j] / per_block)
                if m > L:
                    m = L
                if m < 0:
                    m = 0
                num_blocks[j] = m
                first_block[j] = 0
                sessions[j] = 0
                amortised_ms[j] = INFINITY
                if m > 0:
                    total += m
                    amortised_ms[j] = decode_ms[j] + rtt_max_ms[j] / m
                    s = <int64_t> floor((usable_memory_gb[j] - block_gb * m) / (cache_gb * m))
                    sessions[j] = s if s < R else R
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
    cdef Py_ssize_t n = join_order.shape[0], i, j, b, a, m
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
