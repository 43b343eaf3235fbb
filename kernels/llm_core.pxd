# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Shared C-level core of the LLM kernels: the block-ordered routing DP on the feasible-link
DAG, per-server session lists sorted by completion time, the event heap, and the sliding
sorted-window helpers of the placement rules.

Every function here is ``cdef inline`` on raw pointers, so each kernel module that cimports
this file (``llm_kernels``, and the online engine's and chain method's kernels) compiles its
own copy and nothing is imported at run time: one decision core behind several front doors.

Blocks are 0-based; a server j hosts [first[j], first[j] + num[j]); num[j] == 0 means unused;
the dummy start ends at block 0.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, realloc
from libc.string cimport memmove


cdef inline Py_ssize_t _lower_bound(const double* buf, Py_ssize_t n, double x) noexcept nogil:
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
    """Remove one x from the run-length sorted multiset; returns the new number of runs.
    Guard: an x that is not in the multiset (only possible for NaN, which compares unequal
    to itself) leaves it unchanged instead of touching run n, one past the end."""
    cdef Py_ssize_t i = _lower_bound(vals, n, x)
    if i >= n or vals[i] != x:
        return n
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


cdef inline Py_ssize_t _lexmin_sorted_window(const double* values, Py_ssize_t L, Py_ssize_t m,
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
# Preconditions.  Every index the kernels derive from a placement (the end-block buckets
# first + num + 1 <= L + 1, D[p] for first <= p < first + num <= L, path positions <= L)
# is in range iff the placement passes _placement_ok, and every buffer sized from L is
# sized right iff 0 <= L <= KERNEL_MAX_BLOCKS (so (L + 2) * 8 bytes cannot overflow).
# Each def entry point checks these before any work and raises ValueError otherwise; the
# API layer validates user input first, so these checks only catch internal misuse.
# --------------------------------------------------------------------------------------
cdef enum:
    KERNEL_MAX_BLOCKS = 1 << 30


cdef inline int _require(bint ok, str what) except -1:
    """Kernel precondition: the API layer validates user input, so a failure here is a bug
    in the caller; raise instead of reading or writing out of range."""
    if not ok:
        raise ValueError(f"distalloc kernel: precondition violated: {what}")
    return 0


cdef inline bint _placement_ok(const int64_t* first, const int64_t* num, Py_ssize_t S,
                               int64_t L) noexcept nogil:
    """True iff 0 <= num[j] <= L and (num[j] == 0 or 0 <= first[j] <= L - num[j]) for all j
    (unused servers' first block is never read)."""
    cdef Py_ssize_t j
    for j in range(S):
        if num[j] < 0 or num[j] > L:
            return False
        if num[j] > 0 and (first[j] < 0 or first[j] > L - num[j]):
            return False
    return True


cdef inline bint _all_in_range(const int64_t* x, Py_ssize_t n, int64_t lo,
                               int64_t hi) noexcept nogil:
    """True iff lo <= x[i] < hi for every i < n."""
    cdef Py_ssize_t i
    for i in range(n):
        if x[i] < lo or x[i] >= hi:
            return False
    return True


cdef struct SessionList:
    # sessions holding cache on one server, sorted by end time (ms); live entries are
    # [head, head + size) of the three buffers
    double* end
    int64_t* blocks
    int64_t* req
    Py_ssize_t head
    Py_ssize_t size
    Py_ssize_t cap


cdef struct RouteCost:
    # link (i, j) with k blocks on j costs a1[j] + w a2[j] + k (b1[j] + w b2[j]) + extra
    const double* a1
    const double* a2      # may be NULL when w == 0
    const double* b1
    const double* b2      # may be NULL when w == 0
    double w
    int mode              # 0: no extra; 1: penalty if k > capb[j] - used[j];
                          # 2: wait (ms) until k blocks of cache are free on j
    const int64_t* capb   # cache budget of each server, in (session, block) units
    const int64_t* used   # cache in use or reserved, same units
    double penalty
    SessionList* lists    # mode 2 only
    double now


cdef struct RouteGraph:
    # servers bucketed by end block: bucket e is by_end[bucket[e - 1]:bucket[e]]
    const int64_t* first
    const int64_t* num
    int64_t* bucket
    int64_t* by_end
    Py_ssize_t L


cdef inline void _graph_build(RouteGraph* g, Py_ssize_t S) noexcept nogil:
    """Counting sort of the used servers by end block (stable in server index)."""
    cdef Py_ssize_t j, e, L = g.L
    for e in range(L + 2):
        g.bucket[e] = 0
    for j in range(S):
        if g.num[j] > 0:
            g.bucket[g.first[j] + g.num[j] + 1] += 1
    for e in range(1, L + 2):
        g.bucket[e] += g.bucket[e - 1]
    for j in range(S):
        if g.num[j] > 0:
            e = g.first[j] + g.num[j]
            g.by_end[g.bucket[e]] = j
            g.bucket[e] += 1


cdef inline int _graph_init(RouteGraph* g, const int64_t* first, const int64_t* num, Py_ssize_t S,
                     Py_ssize_t L) noexcept nogil:
    """Allocate the buckets of ``g`` and build them; -1 if out of memory (caller frees
    g.bucket and g.by_end either way)."""
    g.first = first
    g.num = num
    g.L = L
    g.bucket = <int64_t*> malloc((L + 2) * sizeof(int64_t))
    g.by_end = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    if not (g.bucket and g.by_end):
        return -1
    _graph_build(g, S)
    return 0


cdef inline void _wait_table(const SessionList* s, int64_t used, int64_t capb, int64_t m,
                      double now, double* W) noexcept nogil:
    """W[k], k = 1..m: ms until k more (session, block) caches are free on the server,
    releasing its sessions in order of completion; inf if k exceeds its budget."""
    cdef int64_t k, need, released = 0
    cdef Py_ssize_t i = s.head, stop = s.head + s.size
    for k in range(1, m + 1):
        if k > capb:
            W[k] = INFINITY
            continue
        need = used + k - capb
        if need <= 0:
            W[k] = 0.0
            continue
        while released < need and i < stop:
            released += s.blocks[i]
            i += 1
        if released >= need:
            W[k] = s.end[i - 1] - now if s.end[i - 1] > now else 0.0
        else:
            W[k] = INFINITY


cdef inline double _route_dp(const RouteGraph* g, const RouteCost* rc, double* D, int64_t* arg_server,
                      int64_t* arg_prev, double* W, int64_t* path,
                      int64_t* path_len) noexcept nogil:
    """Cheapest chain from block 0 to block L under ``rc``; writes it to ``path``.

    D[e] (cheapest way to have processed blocks [0, e)) is final once every server
    ending at or before e is relaxed, and every feasible link strictly increases the end
    block, so visiting servers by end block is exact: O(S + sum_j num_j) plus, in mode 2,
    O(sessions) per server whose free cache is short.  Returns inf (path_len 0) if no
    chain covers all blocks."""
    cdef Py_ssize_t L = g.L, e, t, p, pos
    cdef int64_t j, a, k, m, free_k
    cdef double base, per_block, cand, extra
    D[0] = 0.0
    for e in range(1, L + 1):
        D[e] = INFINITY
        arg_server[e] = -1
        arg_prev[e] = -1
    for e in range(1, L + 1):
        for t in range(g.bucket[e - 1], g.bucket[e]):
            j = g.by_end[t]
            a = g.first[j]
            m = g.num[j]
            base = rc.a1[j]
            per_block = rc.b1[j]
            if rc.w != 0.0:
                base = base + rc.w * rc.a2[j]
                per_block = per_block + rc.w * rc.b2[j]
            free_k = m
            if rc.mode != 0:
                free_k = rc.capb[j] - rc.used[j]
                if rc.mode == 2 and free_k < m:
                    _wait_table(&rc.lists[j], rc.used[j], rc.capb[j], m, rc.now, W)
            for p in range(a, e):
                if D[p] == INFINITY:
                    continue
                k = e - p
                cand = D[p] + base + per_block * k
                if k > free_k:
                    if rc.mode == 1:
                        cand = cand + rc.penalty
                    else:
                        cand = cand + W[k]
                if cand < D[e]:
                    D[e] = cand
                    arg_server[e] = j
                    arg_prev[e] = p
    if D[L] == INFINITY:
        path_len[0] = 0
        return INFINITY
    pos = 0
    e = L
    while e > 0:
        path[pos] = arg_server[e]
        pos += 1
        e = arg_prev[e]
    for t in range(pos // 2):
        j = path[t]
        path[t] = path[pos - 1 - t]
        path[pos - 1 - t] = j
    path_len[0] = pos
    return D[L]


cdef struct KeyIndex:
    double key
    int64_t index


cdef inline int _cmp_key_index(const void* x, const void* y) noexcept nogil:
    cdef const KeyIndex* a = <const KeyIndex*> x
    cdef const KeyIndex* b = <const KeyIndex*> y
    if a.key < b.key:
        return -1
    if a.key > b.key:
        return 1
    return (a.index > b.index) - (a.index < b.index)


cdef inline int _sl_insert(SessionList* s, double end, int64_t blocks, int64_t req) noexcept nogil:
    """Insert a session keeping the list sorted by end time (after equal ends)."""
    cdef Py_ssize_t lo, hi, mid, i, newcap
    cdef void* p
    if s.head + s.size == s.cap:
        if s.head > 0:
            memmove(s.end, s.end + s.head, s.size * sizeof(double))
            memmove(s.blocks, s.blocks + s.head, s.size * sizeof(int64_t))
            memmove(s.req, s.req + s.head, s.size * sizeof(int64_t))
            s.head = 0
        else:
            newcap = 2 * s.cap if s.cap else 8
            p = realloc(s.end, newcap * sizeof(double))
            if not p:
                return -1
            s.end = <double*> p
            p = realloc(s.blocks, newcap * sizeof(int64_t))
            if not p:
                return -1
            s.blocks = <int64_t*> p
            p = realloc(s.req, newcap * sizeof(int64_t))
            if not p:
                return -1
            s.req = <int64_t*> p
            s.cap = newcap
    lo = s.head
    hi = s.head + s.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if s.end[mid] <= end:
            lo = mid + 1
        else:
            hi = mid
    i = s.head + s.size
    while i > lo:
        s.end[i] = s.end[i - 1]
        s.blocks[i] = s.blocks[i - 1]
        s.req[i] = s.req[i - 1]
        i -= 1
    s.end[lo] = end
    s.blocks[lo] = blocks
    s.req[lo] = req
    s.size += 1
    return 0


cdef inline void _sl_remove(SessionList* s, int64_t req) noexcept nogil:
    """Remove the session of ``req``; completions come in end order, so it sits at or
    near the head."""
    cdef Py_ssize_t i = s.head, stop = s.head + s.size
    while i < stop and s.req[i] != req:
        i += 1
    if i == stop:
        return
    while i > s.head:
        s.end[i] = s.end[i - 1]
        s.blocks[i] = s.blocks[i - 1]
        s.req[i] = s.req[i - 1]
        i -= 1
    s.head += 1
    s.size -= 1


cdef inline bint _heap_less(const double* ht, const int64_t* hc, Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    # earlier time first; at equal times completions (code even) before retries (odd),
    # then by request index (code = 2 r + type): a total order, so runs are reproducible
    if ht[x] != ht[y]:
        return ht[x] < ht[y]
    if (hc[x] & 1) != (hc[y] & 1):
        return (hc[x] & 1) < (hc[y] & 1)
    return hc[x] < hc[y]


cdef inline void _heap_push(double* ht, int64_t* hc, Py_ssize_t* n, double t, int64_t code) noexcept nogil:
    cdef Py_ssize_t i = n[0], parent
    cdef double tt
    cdef int64_t cc
    ht[i] = t
    hc[i] = code
    n[0] += 1
    while i > 0:
        parent = (i - 1) >> 1
        if not _heap_less(ht, hc, i, parent):
            break
        tt = ht[i]; ht[i] = ht[parent]; ht[parent] = tt
        cc = hc[i]; hc[i] = hc[parent]; hc[parent] = cc
        i = parent


cdef inline void _heap_pop(double* ht, int64_t* hc, Py_ssize_t* n) noexcept nogil:
    cdef Py_ssize_t i = 0, l, r, small
    cdef double tt
    cdef int64_t cc
    n[0] -= 1
    ht[0] = ht[n[0]]
    hc[0] = hc[n[0]]
    while True:
        l = 2 * i + 1
        r = l + 1
        small = i
        if l < n[0] and _heap_less(ht, hc, l, small):
            small = l
        if r < n[0] and _heap_less(ht, hc, r, small):
            small = r
        if small == i:
            break
        tt = ht[i]; ht[i] = ht[small]; ht[small] = tt
        cc = hc[i]; hc[i] = hc[small]; hc[small] = cc
        i = small


# --------------------------------------------------------------------------------------
# CG-BP's window rule (SPEC 1.5 step 2), shared by the offline greedy (llm_kernels.cg_bp)
# and the online engine's join rule (swarm_kernels.Engine)
# --------------------------------------------------------------------------------------
cdef inline Py_ssize_t _cg_window(const double* capacity, const double* T, Py_ssize_t L,
                                  Py_ssize_t m, int64_t R, int64_t under,
                                  int64_t* under_prefix, double* buf,
                                  double* best) noexcept nogil:
    """Start of the window CG-BP gives a server of m blocks: while some block has
    C_b < R (``under`` > 0), among the windows that contain an under-served block the one
    with the largest sum of T_b (summed left to right, so exact ties stay exact and go to
    the smallest start); otherwise the window whose sorted C_b are lexicographically
    smallest.  ``under_prefix`` holds L + 1 int64, ``buf`` and ``best`` 2 L doubles."""
    cdef Py_ssize_t a, b, best_a
    cdef double wsum, best_sum
    if under <= 0:
        return _lexmin_sorted_window(capacity, L, m, buf, best)
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
        # the first candidate is always taken, so best_a is a valid start even if a sum is
        # NaN (validation bounds times so that sums stay finite; this keeps the caller's
        # writes in [0, L) regardless).  Some window holds an under-served block because
        # under > 0 and 1 <= m <= L.
        if best_a < 0 or wsum > best_sum:
            best_sum = wsum
            best_a = a
    return best_a


cdef inline int64_t _cg_credit(double* capacity, double* T, Py_ssize_t a, Py_ssize_t m,
                               int64_t R, int64_t sessions, double gain) noexcept nogil:
    """Credit a server with ``sessions`` session slots and amortised gain
    ``dummy - t~_j`` to blocks [a, a + m) (CG-BP step 2):
    T_b -= gain * min(max(R - C_b, 0), s_j), C_b += s_j.  Returns how many of these blocks
    went from C_b < R to C_b >= R."""
    cdef Py_ssize_t b
    cdef int64_t newly = 0
    cdef double deficit
    for b in range(a, a + m):
        # in floating point: capacity is a sum of session counts and may exceed int64
        deficit = <double> R - capacity[b]
        if deficit < 0.0:
            deficit = 0.0
        if deficit > <double> sessions:
            deficit = <double> sessions
        T[b] -= gain * deficit
        if capacity[b] < R and capacity[b] + sessions >= R:
            newly += 1
        capacity[b] += sessions
    return newly


cdef inline double _release_at(const SessionList* s, int64_t used, int64_t capb,
                               int64_t k) noexcept nogil:
    """The time (absolute, ms) at which k more (session, block) caches are free on a
    server, releasing its sessions in order of completion: -inf if they are free now, inf
    if k exceeds its budget or its sessions never release enough.  ``_wait_table``'s rule
    for one k, as a time rather than a wait, so a session booked behind another starts
    exactly at that one's end."""
    cdef int64_t need = used + k - capb, released = 0
    cdef Py_ssize_t i = s.head, stop = s.head + s.size
    if k > capb:
        return INFINITY
    if need <= 0:
        return -INFINITY
    while released < need and i < stop:
        released += s.blocks[i]
        i += 1
    return s.end[i - 1] if released >= need else INFINITY


# ------------------------------------------------------------------------------------------
# JFFC: Join-the-Fastest-Free-Chain (SPEC 1.10; chain-composition notes §4).  The ONE copy
# of the rule: chain_kernels' simulator and offline fill, and the online engine's 'jffc'
# policy all call it.
#
# Contract
# * K chains (GCA's output, in GCA order) with cap[k] >= 0 job slots (c_k) and C clients;
#   chain k's service time for a job of client c is service_ms[c * K + k] (SPEC 1.1 request
#   time at the scenario's static lengths).
# * Client groups (per-group composition, distalloc.llm.chains): home[k] is the client group
#   chain k was composed for (-1: a shared chain), client_group[c] the group of client c
#   (-1: none).  Client c ranks the chains by (home[k] != client_group[c], service_ms[c, k],
#   k): its group's chains first, then every other chain, each part fastest first, ties to
#   the lower GCA index.  home == NULL or client_group == NULL: no groups, the paper's rule
#   (fastest first), which is also what one group holding every chain gives.
# * busy[k] is the number of jobs running on chain k, 0 <= busy[k] <= cap[k]; each job holds
#   one slot from its start to its completion, on one chain (no migration, no preemption).
# * One central FCFS queue of job ids; it is non-empty only while every chain is full.
# * _jffc_arrive(s, job, client) -> k >= 0: the job starts now on chain k, the first chain
#   with a free slot in the arriving client's ranking; -1: no slot is free and the job joined
#   the queue's tail; -2: out of memory (queue growth failed).
# * _jffc_complete(s, k) -> job >= 0: a job on chain k finished and the queue's head job
#   starts now on chain k (busy[k] unchanged); -1: the queue was empty and the slot is free.
# * _jffc_pick / _jffc_occupy / _jffc_vacate are the pieces (decision without side
#   effects; booking; release) for callers that book and release themselves.
# Cost: _jffc_pick O(K / 64) (first set bit of the client's free-chain bitset);
# _jffc_occupy/_jffc_vacate O(C) when a chain turns full/free, O(1) otherwise; queue O(1)
# amortised.  _jffc_init O(C K log K); _jffc_release frees every buffer (safe after a
# failed init).
# ------------------------------------------------------------------------------------------
from libc.stdint cimport uint64_t
from libc.stdlib cimport free as _c_free, qsort as _c_qsort, calloc as _c_calloc

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil


cdef struct JFFCState:
    Py_ssize_t K
    Py_ssize_t C
    Py_ssize_t words        # 64-bit words per client bitset
    int64_t* cap            # K
    int64_t* busy           # K
    int64_t* order          # C * K: chain at rank p of client c
    int64_t* rank           # C * K: rank of chain k for client c
    uint64_t* free_bits     # C * words: bit p set iff chain order[c, p] has a free slot
    int64_t* queue          # ring buffer of job ids
    Py_ssize_t qhead
    Py_ssize_t qsize
    Py_ssize_t qcap


cdef inline void _jffc_release(JFFCState* s) noexcept nogil:
    _c_free(s.cap); _c_free(s.busy); _c_free(s.order); _c_free(s.rank)
    _c_free(s.free_bits); _c_free(s.queue)
    s.cap = NULL; s.busy = NULL; s.order = NULL; s.rank = NULL
    s.free_bits = NULL; s.queue = NULL


cdef inline void _jffc_set_bit(JFFCState* s, int64_t k, bint on) noexcept nogil:
    cdef Py_ssize_t c, p
    for c in range(s.C):
        p = s.rank[c * s.K + k]
        if on:
            s.free_bits[c * s.words + (p >> 6)] |= (<uint64_t> 1) << (p & 63)
        else:
            s.free_bits[c * s.words + (p >> 6)] &= ~((<uint64_t> 1) << (p & 63))


cdef inline int _jffc_init(JFFCState* s, Py_ssize_t K, Py_ssize_t C, const int64_t* cap,
                           const double* service_ms, const int64_t* home,
                           const int64_t* client_group) noexcept nogil:
    """Set up an empty system (no job running, empty queue); 0, or -1 if out of memory.
    ``home`` (K) and ``client_group`` (C) may be NULL (no groups)."""
    cdef Py_ssize_t c, k, p, nh
    cdef int64_t g
    cdef KeyIndex* keys
    s.K = K
    s.C = C
    s.words = (K + 63) >> 6
    s.qhead = 0
    s.qsize = 0
    s.qcap = 1024
    s.cap = <int64_t*> _c_calloc(K + 1, sizeof(int64_t))
    s.busy = <int64_t*> _c_calloc(K + 1, sizeof(int64_t))
    s.order = <int64_t*> _c_calloc(C * K + 1, sizeof(int64_t))
    s.rank = <int64_t*> _c_calloc(C * K + 1, sizeof(int64_t))
    s.free_bits = <uint64_t*> _c_calloc(C * s.words + 1, sizeof(uint64_t))
    s.queue = <int64_t*> _c_calloc(s.qcap, sizeof(int64_t))
    keys = <KeyIndex*> _c_calloc(K + 1, sizeof(KeyIndex))
    if not (s.cap and s.busy and s.order and s.rank and s.free_bits and s.queue and keys):
        _c_free(keys)
        return -1
    for k in range(K):
        s.cap[k] = cap[k]
    for c in range(C):
        g = client_group[c] if (home != NULL and client_group != NULL) else -1
        # the client's group's chains in keys[0:nh], every other chain in keys[nh:K]
        nh = 0
        if g >= 0:
            for k in range(K):
                if home[k] == g:
                    keys[nh].key = service_ms[c * K + k]
                    keys[nh].index = k
                    nh += 1
        p = nh
        for k in range(K):
            if g < 0 or home[k] != g:
                keys[p].key = service_ms[c * K + k]
                keys[p].index = k
                p += 1
        _c_qsort(keys, nh, sizeof(KeyIndex), _cmp_key_index)
        _c_qsort(keys + nh, K - nh, sizeof(KeyIndex), _cmp_key_index)
        for p in range(K):
            s.order[c * K + p] = keys[p].index
            s.rank[c * K + keys[p].index] = p
    _c_free(keys)
    for k in range(K):
        if cap[k] > 0:
            _jffc_set_bit(s, k, True)
    return 0


cdef inline int64_t _jffc_pick(const JFFCState* s, int64_t client) noexcept nogil:
    """The client's fastest chain with a free slot, or -1 if every chain is full."""
    cdef Py_ssize_t w
    cdef const uint64_t* bits = s.free_bits + client * s.words
    for w in range(s.words):
        if bits[w]:
            return s.order[client * s.K + (w << 6) + __builtin_ctzll(bits[w])]
    return -1


cdef inline void _jffc_occupy(JFFCState* s, int64_t k) noexcept nogil:
    s.busy[k] += 1
    if s.busy[k] == s.cap[k]:
        _jffc_set_bit(s, k, False)


cdef inline void _jffc_vacate(JFFCState* s, int64_t k) noexcept nogil:
    if s.busy[k] == s.cap[k]:
        _jffc_set_bit(s, k, True)
    s.busy[k] -= 1


cdef inline int _jffc_push(JFFCState* s, int64_t job) noexcept nogil:
    cdef Py_ssize_t i, newcap
    cdef int64_t* grown
    if s.qsize == s.qcap:
        newcap = 2 * s.qcap
        grown = <int64_t*> _c_calloc(newcap, sizeof(int64_t))
        if not grown:
            return -1
        for i in range(s.qsize):
            grown[i] = s.queue[(s.qhead + i) % s.qcap]
        _c_free(s.queue)
        s.queue = grown
        s.qhead = 0
        s.qcap = newcap
    s.queue[(s.qhead + s.qsize) % s.qcap] = job
    s.qsize += 1
    return 0


cdef inline int64_t _jffc_arrive(JFFCState* s, int64_t job, int64_t client) noexcept nogil:
    cdef int64_t k = _jffc_pick(s, client)
    if k >= 0:
        _jffc_occupy(s, k)
        return k
    if _jffc_push(s, job) < 0:
        return -2
    return -1


cdef inline int64_t _jffc_complete(JFFCState* s, int64_t k) noexcept nogil:
    cdef int64_t job
    if s.qsize > 0:
        job = s.queue[s.qhead]
        s.qhead = (s.qhead + 1) % s.qcap
        s.qsize -= 1
        return job
    _jffc_vacate(s, k)
    return -1
