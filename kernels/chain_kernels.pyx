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
* ``jffc_fill``      — the offline JFFC assignment of a request set (``llm plan``).

JFFC's discrete-event simulation is the online engine's event loop
(``swarm_kernels.simulate`` with the 'jffc' policy), so simulation and embedding share
every decision; GCA's rounds and JFFC's rule are llm_core's (one copy each).

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


def gbp_cr(const double[::1] usable_memory_gb, const double[:, ::1] alpha,
           const double[::1] beta, double block_gb, double cache_gb, int64_t c, int64_t L,
           const double[::1] target_rate_per_ms, int64_t[::1] first_block,
           int64_t[::1] num_blocks, int64_t[::1] chain_of, int64_t[::1] owner,
           double[::1] amortised_ms, int64_t[::1] order, double[::1] group_rate_per_ms,
           int64_t[::1] group_chains, double[::1] group_rate_needing_per_ms):
    """GBP-CR(c) (Alg. 1), 0-based, for G client groups at once (G = 1: the paper's).

    m_j(c) as in ``block_counts``; group g's per-visit times are alpha[g] and its chains'
    rate target target_rate_per_ms[g] (<= 0: the group needs no chain).  The pairs (g, j)
    with m_j >= 1 go in increasing (t~_gj, j, g), t~_gj = (alpha[g, j] + beta_j m_j) / m_j.
    Each pair whose server is still free and whose group has not reached its target places
    the server in the group's chain under construction: a_j = min(a_g, L - m_j) (all m_j
    blocks kept: the last server of a chain is shifted back to end at L), T_g += t_gj,
    a_g = min(a_g + m_j, L); when a_g == L the chain is complete, 1/T_g is added to the
    group's rate nu_g, the group is done once nu_g >= its target, else its next chain
    starts at block 0.  The loop stops once every group is done.

    Outputs per server: blocks, ``chain_of`` (complete chains 0..K-1 in order of completion,
    then incomplete ones in order of start; -1 not placed), ``owner`` (group, -1 not
    placed), ``amortised_ms`` (t~ of the owner; of the first pair in the order if not
    placed; inf if m_j = 0), ``order[:n]`` the servers with m_j >= 1 by their first pair.
    Per group: ``group_rate_per_ms`` nu_g, ``group_chains`` complete chains, and
    ``group_rate_needing_per_ms`` the last rate at which the group still needed rate (its
    rate before its last chain if it reached its target, nu_g if not; -inf for a group
    with no target): every decision above, so the whole output, is the same for any targets
    above these rates (the reservation search skips the c that only lower the targets so).
    Returns (complete chains K, total rate in 1/ms, every group done, servers reached,
    sum_j m_j).  O(P log P) for P = G x (servers with m_j >= 1).
    """
    cdef Py_ssize_t S = usable_memory_gb.shape[0], G = alpha.shape[0], j, i, g
    cdef Py_ssize_t n_used = 0, n_pairs = 0, n_order = 0, reached = 0, n_ids = 0, pending = 0
    cdef int64_t m, total = 0, K = 0
    cdef double per_block = block_gb + cache_gb * c, nu = 0.0
    cdef KeyIndex* keys = <KeyIndex*> malloc((S * G + 1) * sizeof(KeyIndex))
    cdef int64_t* a = <int64_t*> calloc(G + 1, sizeof(int64_t))
    cdef double* T = <double*> calloc(G + 1, sizeof(double))
    cdef int64_t* cur = <int64_t*> malloc((G + 1) * sizeof(int64_t))
    cdef unsigned char* done = <unsigned char*> calloc(G + 1, 1)
    cdef unsigned char* seen = <unsigned char*> calloc(S + 1, 1)
    cdef int64_t* new_id = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    if not (keys and a and T and cur and done and seen and new_id):
        free(keys); free(a); free(T); free(cur); free(done); free(seen); free(new_id)
        raise MemoryError()
    try:
        with nogil:
            for g in range(G):
                cur[g] = -1
                group_rate_per_ms[g] = 0.0
                group_chains[g] = 0
                if target_rate_per_ms[g] <= 0.0:
                    done[g] = 1
                    group_rate_needing_per_ms[g] = -INFINITY
                else:
                    pending += 1
                    group_rate_needing_per_ms[g] = 0.0
            for j in range(S):
                m = _floor_count(usable_memory_gb[j] / per_block)
                if m > L:
                    m = L
                first_block[j] = 0
                chain_of[j] = -1
                owner[j] = -1
                amortised_ms[j] = INFINITY
                num_blocks[j] = m
                if m > 0:
                    total += m
                    n_used += 1
                    for g in range(G):
                        keys[n_pairs].key = (alpha[g, j] + beta[j] * m) / m
                        keys[n_pairs].index = j * G + g
                        n_pairs += 1
            qsort(keys, n_pairs, sizeof(KeyIndex), _cmp_key_index)
            for i in range(n_pairs):
                j = keys[i].index // G
                g = keys[i].index % G
                if not seen[j]:
                    seen[j] = 1
                    order[n_order] = j
                    n_order += 1
                    amortised_ms[j] = keys[i].key
                if pending == 0 or owner[j] >= 0 or done[g]:
                    continue
                m = num_blocks[j]
                owner[j] = g
                amortised_ms[j] = keys[i].key
                first_block[j] = a[g] if a[g] < L - m else L - m
                if cur[g] < 0:
                    cur[g] = n_ids
                    new_id[n_ids] = -1
                    n_ids += 1
                chain_of[j] = cur[g]
                reached += 1
                T[g] += alpha[g, j] + beta[j] * m
                a[g] = a[g] + m if a[g] + m < L else L
                if a[g] == L:
                    group_rate_per_ms[g] += 1.0 / T[g]
                    group_chains[g] += 1
                    new_id[cur[g]] = K
                    K += 1
                    cur[g] = -1
                    if group_rate_per_ms[g] >= target_rate_per_ms[g]:
                        done[g] = 1
                        pending -= 1
                    else:
                        group_rate_needing_per_ms[g] = group_rate_per_ms[g]
                    a[g] = 0
                    T[g] = 0.0
            # number the incomplete chains after the complete ones, in order of start
            i = K
            for j in range(n_ids):
                if new_id[j] < 0:
                    new_id[j] = i
                    i += 1
            for j in range(S):
                if owner[j] < 0:
                    num_blocks[j] = 0
                else:
                    chain_of[j] = new_id[chain_of[j]]
            for g in range(G):
                nu += group_rate_per_ms[g]
    finally:
        free(keys); free(a); free(T); free(cur); free(done); free(seen); free(new_id)
    return K, nu, pending == 0, reached, total


def gca(const int64_t[::1] first_block, const int64_t[::1] num_blocks, int64_t L,
        const double[:, ::1] alpha, const double[::1] beta, const int64_t[::1] slots,
        const int64_t[::1] owner, const double[::1] shared_alpha):
    """GCA (Alg. 2) on the placement (first_block, num_blocks) with ``slots[j]`` free cache
    slots (one slot = one block's cache for one job), per client group, then shared.

    Link (i, j) processing k = end_j - end_i blocks on j costs alpha_j + beta_j k and exists
    iff first_j <= end_i <= end_j - 1 and j has >= k free slots.  While a chain exists: take
    the cheapest (llm_core._route_dp, ties as the DP breaks them: lower end block, then lower
    server index within an end block, then the earlier predecessor), capacity
    c = min_j floor(free_j / k_j), free_j -= c k_j on its servers.

    Passes: for each group g = 0..G-1 (G = alpha.shape[0]), GCA on the servers with
    owner[j] == g at the group's costs alpha[g] (home g); then one pass on every placed
    server with what is left, at ``shared_alpha`` (home -1).  With no owners (all -1) this
    is the paper's GCA at ``shared_alpha``; with one group owning every placed server and
    shared_alpha == alpha[0], the last pass finds nothing and the result is the same.

    The DP only visits the links that can still exist (server j's predecessors ending in
    [end_j - free_j, end_j), ``_shrink_window``), so servers drained by earlier chains cost
    little in later rounds.

    Returns (servers, blocks, offsets, capacities, cost_ms, home): chain q is
    servers[offsets[q]:offsets[q + 1]] processing blocks[...] each, in pass order and GCA
    order within a pass.  O(rounds x (S + sum_j m_j)), rounds <= number of links.
    """
    cdef Py_ssize_t S = first_block.shape[0], G = alpha.shape[0], q
    cdef ChainBuffers out
    cdef GCAWork w
    cdef int failed = 0, ok_work, ok_out
    cdef int64_t* free_slots = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    # guards (llm_core.pxd): shapes, and every index the DP derives from the placement
    if not (0 < L <= KERNEL_MAX_BLOCKS and num_blocks.shape[0] == S
            and alpha.shape[1] == S and beta.shape[0] == S and slots.shape[0] == S
            and owner.shape[0] == S and shared_alpha.shape[0] == S
            and _placement_ok(&first_block[0], &num_blocks[0], S, L)):
        free(free_slots)
        raise ValueError("chain_kernels.gca: precondition violated: placement or shapes")
    ok_work = _gca_work_init(&w, S, L)
    ok_out = _chains_init(&out)
    try:
        if not free_slots or ok_work < 0 or ok_out < 0:
            raise MemoryError()
        with nogil:
            for q in range(S):
                free_slots[q] = slots[q]
            if _gca_run(&w, &first_block[0], &num_blocks[0], G,
                        &alpha[0, 0] if G > 0 else NULL, &beta[0], &shared_alpha[0],
                        &owner[0], free_slots, &out) < 0:
                failed = 1
        if failed:
            raise MemoryError()
        n = out.n_chains
        servers = np.empty(out.flat_size, dtype=np.int64)
        blocks = np.empty(out.flat_size, dtype=np.int64)
        offsets = np.empty(n + 1, dtype=np.int64)
        capacities = np.empty(n, dtype=np.int64)
        cost_ms = np.empty(n, dtype=np.float64)
        home = np.empty(n, dtype=np.int64)
        for q in range(out.flat_size):
            servers[q] = out.flat_s[q]
            blocks[q] = out.flat_k[q]
        for q in range(n + 1):
            offsets[q] = out.offs[q]
        for q in range(n):
            capacities[q] = out.caps[q]
            cost_ms[q] = out.costs[q]
            home[q] = out.homes[q]
        return servers, blocks, offsets, capacities, cost_ms, home
    finally:
        free(free_slots)
        _gca_work_free(&w)
        _chains_free(&out)


cdef inline const int64_t* _groups_or_null(const int64_t[::1] a, Py_ssize_t n) noexcept nogil:
    return &a[0] if a.shape[0] == n and n > 0 else NULL


def jffc_fill(const int64_t[::1] capacity, const double[:, ::1] rank_ms,
              const int64_t[::1] home, const int64_t[::1] client_group,
              const int64_t[::1] client, int64_t[::1] chain):
    """The chain of each request of an offline request set (in order), by JFFC into an
    empty system (llm_core._jffc_pick / _jffc_occupy, the one copy of the rule): each
    request takes the first free chain in its client's ranking; when no slot is free, a new
    wave starts (every slot is released).  ``home`` (K) the client group each chain was
    composed for (-1 shared), ``client_group`` (C) each client's group; both empty: none.
    chain[r] = -1 only if no chain has a slot at all."""
    cdef Py_ssize_t K = capacity.shape[0], C = rank_ms.shape[0], N = client.shape[0], r, k
    cdef int64_t pick
    cdef JFFCState st
    cdef int init = -1
    memset(&st, 0, sizeof(JFFCState))
    # guards (issue 16): every request's client indexes the clients x chains tables
    cdef bint ok = (rank_ms.shape[1] == K and chain.shape[0] == N
                    and (K == 0 or _all_in_range(&client[0], N, 0, C)))
    if ok and K > 0 and C > 0:
        init = _jffc_init(&st, K, C, &capacity[0], &rank_ms[0, 0], _groups_or_null(home, K),
                          _groups_or_null(client_group, C))
    try:
        if not ok:
            raise ValueError("chain_kernels.jffc_fill: precondition violated: shapes or clients")
        if K > 0 and C > 0 and init < 0:
            raise MemoryError()
        with nogil:
            for r in range(N):
                chain[r] = -1
                if K == 0:
                    continue
                pick = _jffc_pick(&st, client[r])
                if pick < 0:                          # every slot taken: a new wave
                    for k in range(K):
                        while st.busy[k] > 0:
                            _jffc_vacate(&st, k)
                    pick = _jffc_pick(&st, client[r])
                if pick >= 0:
                    _jffc_occupy(&st, pick)
                    chain[r] = pick
    finally:
        _jffc_release(&st)
