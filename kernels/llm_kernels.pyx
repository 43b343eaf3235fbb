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

Layering: ``cdef inline`` helpers on raw pointers in ``llm_core.pxd`` (routing DP, session
lists, event heap, window comparison; shared with the other LLM kernel modules), then array
loops that release the GIL, then the ``def`` entry points, which take contiguous typed arrays and
never validate user input (the API layer does that once).

Blocks are 0-based; a server j hosts [first[j], first[j] + num[j]); num[j] == 0 means
unused; the dummy start ends at block 0.
"""
from libc.math cimport INFINITY, floor
from libc.stdint cimport int64_t, int8_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memmove

from llm_core cimport *

import numpy as np


def _require(bint ok, str what):
    """Kernel precondition (see llm_core.pxd): the API layer validates user input, so a
    failure here is a bug in the caller; raise instead of reading or writing out of range."""
    if not ok:
        raise ValueError(f"llm_kernels: precondition violated: {what}")


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
    """Greedy window choice of CG-BPRR step 2; returns the number of blocks with C_b < R."""
    cdef Py_ssize_t i, j, a, b, m, best_a
    cdef double tmax = -INFINITY, dummy, wsum, best_sum, gain, deficit
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
                # the first candidate is always taken, so best_a is a valid start even if
                # a sum is NaN (validation bounds times so that sums stay finite; this keeps
                # the writes below in [0, L) regardless).  Some window holds an under-served
                # block because under > 0 and 1 <= m <= L.
                if best_a < 0 or wsum > best_sum:
                    best_sum = wsum
                    best_a = a
        else:
            best_a = _lexmin_sorted_window(capacity, L, m, buf, best)
        first_block[j] = best_a
        gain = dummy - amortised_ms[j]
        for b in range(best_a, best_a + m):
            # in floating point: capacity is a sum of session counts and may exceed int64
            deficit = <double> R - capacity[b]
            if deficit < 0.0:
                deficit = 0.0
            if deficit > <double> sessions[j]:
                deficit = <double> sessions[j]
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


# --------------------------------------------------------------------------------------
# Discrete-event simulation of online serving (SPEC 1.7)
# --------------------------------------------------------------------------------------

cdef int _simulate_guards(const int64_t[::1] first_block, const int64_t[::1] num_blocks,
                          int64_t L, const int64_t[::1] client,
                          const int64_t[::1] output_tokens, const double[::1] noise,
                          const double[:, ::1] rtt_ms, const double[:, ::1] prefill_rtt_ms,
                          const double[::1] decode_ms, const double[::1] prefill_ms,
                          const int64_t[::1] cache_budget, const double[:, ::1] petals_alpha,
                          const double[::1] petals_beta, double[::1] start_ms,
                          double[::1] end_ms, double[::1] ttft_ms, double[::1] wait_ms,
                          int64_t[::1] retries, int64_t[::1] path_offset,
                          int64_t[::1] path_len) except -1:
    """Preconditions of ``simulate`` (llm_core.pxd): shapes, and every index the event loop
    takes from data (clients, the placement's block ranges), checked before any work."""
    cdef Py_ssize_t S = first_block.shape[0], N = client.shape[0], C = rtt_ms.shape[0]
    _require(0 <= L <= KERNEL_MAX_BLOCKS, "L out of range")
    _require(num_blocks.shape[0] == S and decode_ms.shape[0] == S and prefill_ms.shape[0] == S
             and cache_budget.shape[0] == S and petals_beta.shape[0] == S
             and rtt_ms.shape[1] == S and prefill_rtt_ms.shape[0] == C
             and prefill_rtt_ms.shape[1] == S and petals_alpha.shape[0] == C
             and petals_alpha.shape[1] == S, "server array shapes")
    _require(output_tokens.shape[0] == N and noise.shape[0] == N
             and start_ms.shape[0] == N and end_ms.shape[0] == N and ttft_ms.shape[0] == N
             and wait_ms.shape[0] == N and retries.shape[0] == N
             and path_offset.shape[0] == N and path_len.shape[0] == N, "request array shapes")
    _require(_all_in_range(&client[0], N, 0, C), "client index out of range")
    _require(_placement_ok(&first_block[0], &num_blocks[0], S, L), "placement out of [0, L]")
    return 0


def simulate(const int64_t[::1] first_block, const int64_t[::1] num_blocks, int64_t L,
             const double[::1] arrival_ms, const int64_t[::1] client,
             const int64_t[::1] output_tokens, const double[::1] noise, double delay_ms,
             const double[:, ::1] rtt_ms, const double[:, ::1] prefill_rtt_ms,
             const double[::1] decode_ms, const double[::1] prefill_ms,
             const int64_t[::1] cache_budget, int mode,
             const double[:, ::1] petals_alpha, const double[::1] petals_beta,
             double penalty_ms, double backoff_base_ms, double backoff_cap_ms,
             int64_t max_attempts,
             double[::1] start_ms, double[::1] end_ms, double[::1] ttft_ms,
             double[::1] wait_ms, int64_t[::1] retries, int64_t[::1] path_offset, int64_t[::1] path_len):
    """Event-driven simulation of online sessions on a fixed placement.

    Requests arrive at ``arrival_ms`` (sorted) and are routed ``delay_ms`` later.
    mode 0 (WS-RR): cheapest chain where server j costs its share of the request time
    (prefill + (l_out - 1) x decode, with RTTs) plus the wait until it has cache for the
    request's k_j blocks, releasing the sessions it holds in order of completion; the
    session is booked at once and starts when every server of its chain has the cache.
    mode 1 (PETALS): Dijkstra costs ``petals_alpha[c, j] + petals_beta[j] k`` plus
    ``penalty_ms`` where j lacks free cache now; a chain without cache is retried after
    backoff_base x 2^(attempt-1) ms (capped), re-routed each time.
    Either way a session holds cache_gb x k_j on every server of its chain from booking
    to completion; ``cache_budget[j]`` is how many (session, block) caches j can hold.
    A chain that is cheapest without waits and has free cache now is optimal with them,
    so each client's static cheapest chain is cached and the DP runs only on contention.

    Outputs per request: start, end and first-token times and the wait between the
    routing decision (arrival + delay) and the start (ms; NaN if never served), retries, and its chain as ``path_offset``/``path_len`` into the returned int64 array.
    Returns (chains, events processed).
    """
    cdef Py_ssize_t S = first_block.shape[0], N = arrival_ms.shape[0], C = rtt_ms.shape[0]
    cdef Py_ssize_t i_arr = 0, nheap = 0, t, q, flat_size = 0, flat_cap = 0
    cdef int64_t r, c, j, k, prev, code, lo, events = 0, plen, attempt
    cdef double now, t_arr, pre, tok, service, wait, wmax, cost
    cdef bint fits, use_cached
    cdef RouteGraph g
    cdef RouteCost rc
    cdef int64_t* flat = NULL
    cdef void* grow
    cdef SessionList* lists = <SessionList*> calloc(S + 1, sizeof(SessionList))
    cdef int64_t* used = <int64_t*> calloc(S + 1, sizeof(int64_t))
    cdef double* ht = <double*> malloc((N + 1) * sizeof(double))
    cdef int64_t* hc = <int64_t*> malloc((N + 1) * sizeof(int64_t))
    cdef double* D = <double*> malloc((L + 1) * sizeof(double))
    cdef int64_t* arg_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* arg_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef double* W = <double*> malloc((L + 2) * sizeof(double))
    cdef int64_t* path = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* cached_key = <int64_t*> malloc((C + 1) * sizeof(int64_t))
    cdef int64_t* cached_len = <int64_t*> malloc((C + 1) * sizeof(int64_t))
    cdef int64_t* cached_path = <int64_t*> malloc((C + 1) * (L + 1) * sizeof(int64_t))
    cdef int failed = 0
    cdef int graph_ok
    g.bucket = NULL
    g.by_end = NULL
    try:
        _simulate_guards(first_block, num_blocks, L, client, output_tokens, noise, rtt_ms,
                         prefill_rtt_ms, decode_ms, prefill_ms, cache_budget, petals_alpha,
                         petals_beta, start_ms, end_ms, ttft_ms, wait_ms, retries,
                         path_offset, path_len)
        _require(client.shape[0] == N, "request array shapes")
        # cached_path holds (C + 1) x (L + 1) entries: the byte count must not wrap
        _require((L + 1) <= ((<int64_t> 1) << 59) // (C + 1), "clients x blocks too large")
        graph_ok = _graph_init(&g, &first_block[0], &num_blocks[0], S, L)
        if not (lists and used and ht and hc and D and arg_server and arg_prev and W and path
                and cached_key and cached_len and cached_path) or graph_ok < 0:
            raise MemoryError()
        with nogil:
            rc.capb = &cache_budget[0]
            rc.used = used
            rc.lists = lists
            rc.penalty = penalty_ms
            for c in range(C):
                cached_key[c] = -1
            for r in range(N):
                start_ms[r] = end_ms[r] = ttft_ms[r] = wait_ms[r] = 0.0 / 0.0
                retries[r] = 0
                path_offset[r] = -1
                path_len[r] = 0
            while i_arr < N or nheap > 0:
                t_arr = arrival_ms[i_arr] + delay_ms if i_arr < N else INFINITY
                if nheap > 0 and (ht[0] < t_arr or (ht[0] == t_arr and (hc[0] & 1) == 0)):
                    now = ht[0]
                    code = hc[0]
                    _heap_pop(ht, hc, &nheap)
                    r = code >> 1
                    events += 1
                    if (code & 1) == 0:
                        # completion: release the cache on every server of the chain
                        prev = 0
                        for q in range(path_offset[r], path_offset[r] + path_len[r]):
                            j = flat[q]
                            _sl_remove(&lists[j], r)
                            used[j] -= first_block[j] + num_blocks[j] - prev
                            prev = first_block[j] + num_blocks[j]
                        continue
                else:
                    now = t_arr
                    r = i_arr
                    i_arr += 1
                    events += 1
                # ---- route request r at time `now` ----
                c = client[r]
                lo = output_tokens[r]
                if mode == 0:
                    rc.a1 = &prefill_rtt_ms[c, 0]
                    rc.a2 = &rtt_ms[c, 0]
                    rc.b1 = &prefill_ms[0]
                    rc.b2 = &decode_ms[0]
                    rc.w = <double> (lo - 1)
                else:
                    rc.a1 = &petals_alpha[c, 0]
                    rc.a2 = NULL
                    rc.b1 = &petals_beta[0]
                    rc.b2 = NULL
                    rc.w = 0.0
                rc.now = now
                if cached_key[c] != lo:
                    rc.mode = 0
                    cost = _route_dp(&g, &rc, D, arg_server, arg_prev, W,
                                     &cached_path[c * (L + 1)], &cached_len[c])
                    cached_key[c] = lo
                # does the static chain have free cache now?
                use_cached = cached_len[c] > 0
                prev = 0
                for q in range(cached_len[c]):
                    j = cached_path[c * (L + 1) + q]
                    k = first_block[j] + num_blocks[j] - prev
                    prev = first_block[j] + num_blocks[j]
                    if k > cache_budget[j] - used[j]:
                        use_cached = False
                        break
                if use_cached:
                    plen = cached_len[c]
                    for q in range(plen):
                        path[q] = cached_path[c * (L + 1) + q]
                    wmax = 0.0
                    fits = True
                else:
                    rc.mode = 2 if mode == 0 else 1
                    cost = _route_dp(&g, &rc, D, arg_server, arg_prev, W, path, &plen)
                    if plen == 0:
                        continue  # no chain can ever serve it: dropped (NaN times)
                    wmax = 0.0
                    fits = True
                    prev = 0
                    for q in range(plen):
                        j = path[q]
                        k = first_block[j] + num_blocks[j] - prev
                        prev = first_block[j] + num_blocks[j]
                        if k > cache_budget[j] - used[j]:
                            fits = False
                            if mode == 0:
                                _wait_table(&lists[j], used[j], cache_budget[j], k, now, W)
                                if W[k] > wmax:
                                    wmax = W[k]
                    if mode == 0 and wmax == INFINITY:
                        continue  # larger than some server's whole budget: dropped
                if mode == 1 and not fits:
                    retries[r] += 1
                    if retries[r] > max_attempts:
                        continue  # gave up: dropped
                    attempt = retries[r] - 1
                    wait = backoff_base_ms
                    while attempt > 0 and wait < backoff_cap_ms:
                        wait = wait * 2.0
                        attempt -= 1
                    if wait > backoff_cap_ms:
                        wait = backoff_cap_ms
                    _heap_push(ht, hc, &nheap, now + wait, 2 * r + 1)
                    continue
                # ---- book the session ----
                pre = 0.0
                tok = 0.0
                prev = 0
                for q in range(plen):
                    j = path[q]
                    k = first_block[j] + num_blocks[j] - prev
                    prev = first_block[j] + num_blocks[j]
                    pre += prefill_rtt_ms[c, j] + prefill_ms[j] * k
                    tok += rtt_ms[c, j] + decode_ms[j] * k
                service = (pre + (lo - 1) * tok) * noise[r]
                start_ms[r] = now + wmax
                wait_ms[r] = (now - (arrival_ms[r] + delay_ms)) + wmax
                ttft_ms[r] = start_ms[r] + pre * noise[r]
                end_ms[r] = start_ms[r] + service
                if flat_size + plen > flat_cap:
                    flat_cap = 2 * flat_cap + plen + 1024
                    grow = realloc(flat, flat_cap * sizeof(int64_t))
                    if not grow:
                        failed = 1
                        break
                    flat = <int64_t*> grow
                path_offset[r] = flat_size
                path_len[r] = plen
                prev = 0
                for q in range(plen):
                    j = path[q]
                    flat[flat_size + q] = j
                    k = first_block[j] + num_blocks[j] - prev
                    prev = first_block[j] + num_blocks[j]
                    if _sl_insert(&lists[j], end_ms[r], k, r) < 0:
                        failed = 1
                    used[j] += k
                if failed:
                    break
                flat_size += plen
                _heap_push(ht, hc, &nheap, end_ms[r], 2 * r)
        if failed:
            raise MemoryError()
        chains = np.empty(flat_size, dtype=np.int64)
        for q in range(flat_size):
            chains[q] = flat[q]
        return chains, events
    finally:
        if lists:
            for j in range(S):
                free(lists[j].end); free(lists[j].blocks); free(lists[j].req)
        free(lists); free(used); free(ht); free(hc); free(D); free(arg_server); free(arg_prev)
        free(W); free(path); free(cached_key); free(cached_len); free(cached_path); free(flat)
        free(g.bucket); free(g.by_end)
