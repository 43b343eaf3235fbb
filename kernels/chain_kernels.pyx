# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernels of chain composition with cache reservation (SPEC 1.10): GBP-CR, GCA
and the JFFC event loop.

What this module computes, and for whom (callers: ``distalloc.llm.chains`` and
``distalloc.llm.jffc``; never user code):

* ``gbp_cr``        — Greedy Block Placement with Cache Reservation for one reservation c:
  block counts m_j(c), the amortised order and the disjoint chains tiled over [0, L) until
  their total rate reaches the target (notes §2.2, 0-based form §2.4).
* ``gca``           — Greedy Cache Allocation on any placement: repeatedly the fastest
  chain on the feasible-link DAG whose servers still have the slots it needs, given as many
  jobs as its tightest server allows (notes §3.2).  The shortest path is llm_core's
  ``_route_dp`` in mode 1 with an infinite penalty and the per-server free slots as the
  budget: a link into j that processes k blocks exists iff j has >= k free slots, which
  is exactly the global pruning of step (d).
* ``simulate_jffc`` — the discrete-event simulation of JFFC with one central FCFS queue;
  every decision is llm_core's ``_jffc_arrive`` / ``_jffc_complete`` (the one copy of the
  rule, shared with the online engine), the event heap is llm_core's.

Layering: ``cdef inline`` cores in ``llm_core.pxd``, then the ``def`` entry points below,
which take contiguous typed arrays, release the GIL and never validate user input.
Blocks are 0-based; server j hosts [first[j], first[j] + num[j]); num[j] == 0: unused.
Times are ms.
"""
from libc.math cimport INFINITY, floor
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, calloc, realloc, free, qsort
from libc.string cimport memset

from llm_core cimport *

import numpy as np


cdef inline int64_t _floor_count(double x) noexcept nogil:
    """floor(x) that counts (2 - 1) / 0.1 as 10: a relative tolerance of 1e-9 absorbs
    the rounding of the division (the float-floor trap of the notes §3.4)."""
    if x <= 0.0:
        return 0
    return <int64_t> floor(x * (1.0 + 1e-12) + 1e-9)


def block_counts(const double[::1] usable_memory_gb, double block_gb, double cache_gb,
                 int64_t c, int64_t L, int64_t[::1] num_blocks):
    """m_j(c) = min(floor(M_j / (s_m + s_c c)), L) (Eq. 6); returns sum_j m_j(c)."""
    cdef Py_ssize_t S = usable_memory_gb.shape[0], j
    cdef int64_t m, total = 0
    cdef double per_block = block_gb + cache_gb * c
    with nogil:
        for j in range(S):
            m = _floor_count(usable_memory_gb[j] / per_block)
            if m > L:
                m = L
            num_blocks[j] = m
            total += m
    return total


def slot_counts(const double[::1] usable_memory_gb, const int64_t[::1] num_blocks,
                double block_gb, double cache_gb, int64_t[::1] slots):
    """Free cache slots M~_j = floor((M_j - s_m m_j) / s_c) (Eq. 3), float-floor safe."""
    cdef Py_ssize_t S = usable_memory_gb.shape[0], j
    with nogil:
        for j in range(S):
            slots[j] = _floor_count((usable_memory_gb[j] - block_gb * num_blocks[j]) / cache_gb)


def gbp_cr(const double[::1] usable_memory_gb, const double[::1] alpha, const double[::1] beta,
           double block_gb, double cache_gb, int64_t c, int64_t L, double target_rate_per_ms,
           int64_t[::1] first_block, int64_t[::1] num_blocks, int64_t[::1] group,
           double[::1] amortised_ms, int64_t[::1] order):
    """GBP-CR(c) (Alg. 1), 0-based.

    m_j(c) as in ``block_counts``; t_j(c) = alpha_j + beta_j m_j(c); t~_j = t_j / m_j.
    Servers with m_j >= 1 in increasing (t~_j, j) go to ``order[:n_used]``.  Each, in that
    order, takes a_j = min(a, L - m_j), keeps all m_j blocks (the last server of a chain is
    shifted back to end at L), adds t_j to the chain time T and moves a to min(a + m_j, L);
    when a == L the chain is complete, its rate 1/T is added to nu, and the loop stops once
    nu >= target_rate_per_ms, else the next chain starts at block 0.  group[j] is the chain
    of server j (-1: never reached; servers of an incomplete last group keep their blocks
    and get group = number of complete chains).

    Returns (complete chains K, rate nu in 1/ms, target reached, servers reached, sum m_j).
    """
    cdef Py_ssize_t S = usable_memory_gb.shape[0], j, i, n_used = 0, reached = 0
    cdef int64_t m, total = 0, a = 0, K = 0
    cdef double per_block = block_gb + cache_gb * c, T = 0.0, nu = 0.0, t
    cdef bint done = False
    cdef KeyIndex* keys = <KeyIndex*> malloc((S + 1) * sizeof(KeyIndex))
    if not keys:
        raise MemoryError()
    try:
        with nogil:
            for j in range(S):
                m = _floor_count(usable_memory_gb[j] / per_block)
                if m > L:
                    m = L
                first_block[j] = 0
                group[j] = -1
                amortised_ms[j] = INFINITY
                num_blocks[j] = m
                if m > 0:
                    total += m
                    amortised_ms[j] = (alpha[j] + beta[j] * m) / m
                    keys[n_used].key = amortised_ms[j]
                    keys[n_used].index = j
                    n_used += 1
            qsort(keys, n_used, sizeof(KeyIndex), _cmp_key_index)
            for i in range(n_used):
                order[i] = keys[i].index
            for i in range(n_used):
                j = keys[i].index
                if done:
                    num_blocks[j] = 0
                    continue
                m = num_blocks[j]
                first_block[j] = a if a < L - m else L - m
                group[j] = K
                reached += 1
                T += alpha[j] + beta[j] * m
                a = a + m if a + m < L else L
                if a == L:
                    nu += 1.0 / T
                    K += 1
                    if nu >= target_rate_per_ms:
                        done = True
                    a = 0
                    T = 0.0
    finally:
        free(keys)
    return K, nu, bool(done), reached, total


def gca(const int64_t[::1] first_block, const int64_t[::1] num_blocks, int64_t L,
        const double[::1] alpha, const double[::1] beta, const int64_t[::1] slots):
    """GCA (Alg. 2) on the placement (first_block, num_blocks) with ``slots[j]`` free cache
    slots (one slot = one block's cache for one job).

    Link (i, j) processing k = end_j - end_i blocks on j costs alpha_j + beta_j k and exists
    iff first_j <= end_i <= end_j - 1 and j has >= k free slots.  While a chain exists: take
    the cheapest (llm_core._route_dp, ties as the DP breaks them: lower end block, then lower
    server index within an end block, then the earlier predecessor), capacity
    c = min_j floor(free_j / k_j), free_j -= c k_j on its servers.

    Returns (servers, blocks, offsets, capacities, cost_ms): chain q is
    servers[offsets[q]:offsets[q + 1]] processing blocks[...] each, in GCA order.
    O(rounds x (S + sum_j m_j)), rounds <= number of links.
    """
    cdef Py_ssize_t S = first_block.shape[0], q, n_chains = 0, flat_size = 0
    cdef Py_ssize_t chain_cap = 64, flat_cap = 256
    cdef int64_t j, k, prev, capk, plen = 0
    cdef double cost
    cdef RouteGraph g
    cdef RouteCost rc
    cdef int failed = 0
    cdef void* grow
    cdef int64_t* free_slots = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    cdef int64_t* zeros = <int64_t*> calloc(S + 1, sizeof(int64_t))
    cdef double* D = <double*> malloc((L + 1) * sizeof(double))
    cdef int64_t* arg_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* arg_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* path = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* kbuf = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    cdef int64_t* flat_s = <int64_t*> malloc(flat_cap * sizeof(int64_t))
    cdef int64_t* flat_k = <int64_t*> malloc(flat_cap * sizeof(int64_t))
    cdef int64_t* offs = <int64_t*> malloc((chain_cap + 1) * sizeof(int64_t))
    cdef int64_t* caps = <int64_t*> malloc(chain_cap * sizeof(int64_t))
    cdef double* costs = <double*> malloc(chain_cap * sizeof(double))
    cdef int graph_ok = _graph_init(&g, &first_block[0], &num_blocks[0], S, L)
    try:
        if not (free_slots and zeros and D and arg_server and arg_prev and path and kbuf
                and flat_s and flat_k and offs and caps and costs) or graph_ok < 0:
            raise MemoryError()
        with nogil:
            for q in range(S):
                free_slots[q] = slots[q]
            rc.a1 = &alpha[0]
            rc.a2 = NULL
            rc.b1 = &beta[0]
            rc.b2 = NULL
            rc.w = 0.0
            rc.mode = 1
            rc.capb = free_slots
            rc.used = zeros
            rc.penalty = INFINITY
            rc.lists = NULL
            rc.now = 0.0
            offs[0] = 0
            while True:
                cost = _route_dp(&g, &rc, D, arg_server, arg_prev, NULL, path, &plen)
                if plen == 0:
                    break
                capk = -1
                prev = 0
                for q in range(plen):
                    j = path[q]
                    k = first_block[j] + num_blocks[j] - prev
                    prev = first_block[j] + num_blocks[j]
                    kbuf[q] = k
                    if capk < 0 or free_slots[j] // k < capk:
                        capk = free_slots[j] // k
                for q in range(plen):
                    free_slots[path[q]] -= capk * kbuf[q]
                if n_chains == chain_cap:
                    chain_cap *= 2
                    grow = realloc(offs, (chain_cap + 1) * sizeof(int64_t))
                    if not grow:
                        failed = 1
                        break
                    offs = <int64_t*> grow
                    grow = realloc(caps, chain_cap * sizeof(int64_t))
                    if not grow:
                        failed = 1
                        break
                    caps = <int64_t*> grow
                    grow = realloc(costs, chain_cap * sizeof(double))
                    if not grow:
                        failed = 1
                        break
                    costs = <double*> grow
                if flat_size + plen > flat_cap:
                    flat_cap = 2 * flat_cap + plen
                    grow = realloc(flat_s, flat_cap * sizeof(int64_t))
                    if not grow:
                        failed = 1
                        break
                    flat_s = <int64_t*> grow
                    grow = realloc(flat_k, flat_cap * sizeof(int64_t))
                    if not grow:
                        failed = 1
                        break
                    flat_k = <int64_t*> grow
                for q in range(plen):
                    flat_s[flat_size + q] = path[q]
                    flat_k[flat_size + q] = kbuf[q]
                flat_size += plen
                caps[n_chains] = capk
                costs[n_chains] = cost
                n_chains += 1
                offs[n_chains] = flat_size
        if failed:
            raise MemoryError()
        servers = np.empty(flat_size, dtype=np.int64)
        blocks = np.empty(flat_size, dtype=np.int64)
        offsets = np.empty(n_chains + 1, dtype=np.int64)
        capacities = np.empty(n_chains, dtype=np.int64)
        cost_ms = np.empty(n_chains, dtype=np.float64)
        for q in range(flat_size):
            servers[q] = flat_s[q]
            blocks[q] = flat_k[q]
        for q in range(n_chains + 1):
            offsets[q] = offs[q]
        for q in range(n_chains):
            capacities[q] = caps[q]
            cost_ms[q] = costs[q]
        return servers, blocks, offsets, capacities, cost_ms
    finally:
        free(free_slots); free(zeros); free(D); free(arg_server); free(arg_prev); free(path)
        free(kbuf); free(flat_s); free(flat_k); free(offs); free(caps); free(costs)
        free(g.bucket); free(g.by_end)


def simulate_jffc(const int64_t[::1] capacity, const double[:, ::1] rank_ms,
                  const double[:, ::1] prefill_ms, const double[:, ::1] token_ms,
                  const double[::1] arrival_ms, const int64_t[::1] client,
                  const int64_t[::1] output_tokens, const double[::1] factor, double delay_ms,
                  double[::1] start_ms, double[::1] end_ms, double[::1] ttft_ms,
                  double[::1] wait_ms, int64_t[::1] chain):
    """JFFC with one central FCFS queue on K chains (rank_ms, prefill_ms, token_ms are
    clients x chains).

    Request r (client c, arrivals sorted) is dispatched at arrival_ms[r] + delay_ms by
    llm_core._jffc_arrive (client c's fastest chain by rank_ms[c] with a free slot, or the
    queue's tail); a completion on chain k hands the slot to the queue's head
    (_jffc_complete).  A job of client c on chain k runs for
    (prefill_ms[c, k] + (output_tokens[r] - 1) token_ms[c, k]) x factor[r] ms; its first
    token comes prefill_ms[c, k] x factor[r] after its start.  At equal times completions
    come before arrivals, and completions in request order (the heap's total order).

    Outputs per request: start, end, first-token and wait times (ms) and its chain.
    Returns the number of events.
    """
    cdef Py_ssize_t K = capacity.shape[0], C = rank_ms.shape[0], N = arrival_ms.shape[0]
    cdef Py_ssize_t i_arr = 0, nheap = 0
    cdef int64_t r, k, c, code, events = 0
    cdef double now, t_arr, pre
    cdef JFFCState st
    cdef int failed = 0
    cdef double* ht = <double*> malloc((N + 1) * sizeof(double))
    cdef int64_t* hc = <int64_t*> malloc((N + 1) * sizeof(int64_t))
    cdef int init = -1
    memset(&st, 0, sizeof(JFFCState))
    if K > 0 and C > 0:
        init = _jffc_init(&st, K, C, &capacity[0], &rank_ms[0, 0])
    try:
        if not (ht and hc) or init < 0:
            raise MemoryError()
        with nogil:
            for r in range(N):
                start_ms[r] = end_ms[r] = ttft_ms[r] = wait_ms[r] = 0.0 / 0.0
                chain[r] = -1
            while i_arr < N or nheap > 0:
                t_arr = arrival_ms[i_arr] + delay_ms if i_arr < N else INFINITY
                events += 1
                if nheap > 0 and ht[0] <= t_arr:
                    # completion of request r on chain k: its slot goes to the queue's head
                    now = ht[0]
                    code = hc[0]
                    _heap_pop(ht, hc, &nheap)
                    k = chain[code >> 1]
                    r = _jffc_complete(&st, k)
                    if r < 0:
                        continue
                else:
                    now = t_arr
                    r = i_arr
                    i_arr += 1
                    k = _jffc_arrive(&st, r, client[r])
                    if k == -2:
                        failed = 1
                        break
                    if k < 0:
                        continue
                # request r starts now on chain k
                c = client[r]
                pre = prefill_ms[c, k] * factor[r]
                chain[r] = k
                start_ms[r] = now
                wait_ms[r] = now - (arrival_ms[r] + delay_ms)
                ttft_ms[r] = now + pre
                end_ms[r] = now + (prefill_ms[c, k] + (output_tokens[r] - 1) * token_ms[c, k]) * factor[r]
                _heap_push(ht, hc, &nheap, end_ms[r], 2 * r)
        if failed:
            raise MemoryError()
        return events
    finally:
        free(ht); free(hc)
        _jffc_release(&st)
