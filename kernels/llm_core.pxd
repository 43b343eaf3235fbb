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
# GCA: Greedy Cache Allocation (SPEC 1.10; chain-composition notes §3).  The ONE copy of the
# rule: chain_kernels.gca (composition) and the online engine's chain join/rebalance
# (swarm_kernels.Engine, GCA on the slots no chain reserves) both call _gca_run.
# ------------------------------------------------------------------------------------------
from libc.math cimport floor as _c_floor
from libc.stdlib cimport free as _gfree, calloc as _gcalloc


cdef inline int64_t _floor_count(double x) noexcept nogil:
    """floor(x) that counts (2 - 1) / 0.1 as 10: a relative tolerance of 1e-9 absorbs
    the rounding of the division (the float-floor trap of the notes §3.4)."""
    # guard (issue 16): NaN counts 0 and x >= 2^62 counts 2^62, decided in floating point
    # before the cast (a cast of NaN or of a float beyond int64 is undefined)
    if not (x > 0.0):
        return 0
    if x >= 4611686018427387904.0:
        return 4611686018427387904
    return <int64_t> _c_floor(x * (1.0 + 1e-12) + 1e-9)


cdef struct ChainBuffers:
    # GCA's output, grown by doubling: chain q is servers flat_s[offs[q]:offs[q + 1]]
    # processing flat_k[...] blocks each, with caps[q] jobs, cost costs[q], home homes[q]
    int64_t* flat_s
    int64_t* flat_k
    int64_t* offs
    int64_t* caps
    double* costs
    int64_t* homes
    Py_ssize_t n_chains
    Py_ssize_t flat_size
    Py_ssize_t chain_cap
    Py_ssize_t flat_cap


cdef inline int _grow(void** buf, Py_ssize_t n, size_t size) noexcept nogil:
    cdef void* p = realloc(buf[0], n * size)
    if not p:
        return -1
    buf[0] = p
    return 0


cdef inline int _chains_init(ChainBuffers* out) noexcept nogil:
    """Empty buffers; 0, or -1 if out of memory (_chains_free either way)."""
    out.chain_cap = 64
    out.flat_cap = 256
    out.n_chains = 0
    out.flat_size = 0
    out.flat_s = <int64_t*> malloc(out.flat_cap * sizeof(int64_t))
    out.flat_k = <int64_t*> malloc(out.flat_cap * sizeof(int64_t))
    out.offs = <int64_t*> malloc((out.chain_cap + 1) * sizeof(int64_t))
    out.caps = <int64_t*> malloc(out.chain_cap * sizeof(int64_t))
    out.costs = <double*> malloc(out.chain_cap * sizeof(double))
    out.homes = <int64_t*> malloc(out.chain_cap * sizeof(int64_t))
    if not (out.flat_s and out.flat_k and out.offs and out.caps and out.costs and out.homes):
        return -1
    out.offs[0] = 0
    return 0


cdef inline void _chains_free(ChainBuffers* out) noexcept nogil:
    _gfree(out.flat_s); _gfree(out.flat_k); _gfree(out.offs); _gfree(out.caps)
    _gfree(out.costs); _gfree(out.homes)
    out.flat_s = NULL; out.flat_k = NULL; out.offs = NULL; out.caps = NULL
    out.costs = NULL; out.homes = NULL


cdef inline void _shrink_window(int64_t j, const int64_t* first_block,
                                const int64_t* num_blocks, const int64_t* free_slots,
                                int64_t* win_first, int64_t* win_num) noexcept nogil:
    """Server j's links that can still exist: a link processing k blocks needs k free slots,
    so only predecessors ending in [end_j - free_j, end_j) qualify (the others cost inf in
    the DP and can never be chosen); the graph keeps end_j = win_first + win_num."""
    cdef int64_t end = first_block[j] + num_blocks[j]
    cdef int64_t lo = end - free_slots[j]
    if lo < first_block[j]:
        lo = first_block[j]
    if lo > end:
        lo = end
    if win_num[j] > 0:
        win_num[j] = end - lo
    win_first[j] = lo


cdef inline int _gca_rounds(RouteGraph* g, RouteCost* rc, const int64_t* first_block,
                            const int64_t* num_blocks, int64_t* free_slots, int64_t home,
                            ChainBuffers* out, double* D, int64_t* arg_server,
                            int64_t* arg_prev, int64_t* path, int64_t* kbuf,
                            int64_t* win_first, int64_t* win_num) noexcept nogil:
    """GCA's rounds on graph ``g`` (whose first/num are the windows win_first/win_num)
    until no chain is left; 0, or -1 if out of memory."""
    cdef Py_ssize_t q
    cdef int64_t j, k, prev, capk, plen = 0
    cdef double cost
    while True:
        cost = _route_dp(g, rc, D, arg_server, arg_prev, NULL, path, &plen)
        if plen == 0:
            return 0
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
            _shrink_window(path[q], first_block, num_blocks, free_slots, win_first, win_num)
        if out.n_chains == out.chain_cap:
            out.chain_cap *= 2
            if (_grow(<void**> &out.offs, out.chain_cap + 1, sizeof(int64_t)) < 0
                    or _grow(<void**> &out.caps, out.chain_cap, sizeof(int64_t)) < 0
                    or _grow(<void**> &out.costs, out.chain_cap, sizeof(double)) < 0
                    or _grow(<void**> &out.homes, out.chain_cap, sizeof(int64_t)) < 0):
                return -1
        if out.flat_size + plen > out.flat_cap:
            out.flat_cap = 2 * out.flat_cap + plen
            if (_grow(<void**> &out.flat_s, out.flat_cap, sizeof(int64_t)) < 0
                    or _grow(<void**> &out.flat_k, out.flat_cap, sizeof(int64_t)) < 0):
                return -1
        for q in range(plen):
            out.flat_s[out.flat_size + q] = path[q]
            out.flat_k[out.flat_size + q] = kbuf[q]
        out.flat_size += plen
        out.caps[out.n_chains] = capk
        out.costs[out.n_chains] = cost
        out.homes[out.n_chains] = home
        out.n_chains += 1
        out.offs[out.n_chains] = out.flat_size


cdef struct GCAWork:
    # scratch of _gca_run for S servers and L blocks (_gca_work_init / _gca_work_free)
    RouteGraph g
    RouteCost rc
    int64_t* masked
    int64_t* win_first
    int64_t* zeros
    double* D
    int64_t* arg_server
    int64_t* arg_prev
    int64_t* path
    int64_t* kbuf
    Py_ssize_t S
    Py_ssize_t L


cdef inline int _gca_work_init(GCAWork* w, Py_ssize_t S, Py_ssize_t L) noexcept nogil:
    """0, or -1 if out of memory (_gca_work_free either way)."""
    w.S = S
    w.L = L
    w.masked = <int64_t*> _gcalloc(S + 1, sizeof(int64_t))
    w.win_first = <int64_t*> _gcalloc(S + 1, sizeof(int64_t))
    w.zeros = <int64_t*> _gcalloc(S + 1, sizeof(int64_t))
    w.D = <double*> malloc((L + 1) * sizeof(double))
    w.arg_server = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    w.arg_prev = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    w.path = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    w.kbuf = <int64_t*> malloc((L + 1) * sizeof(int64_t))
    w.g.bucket = NULL
    w.g.by_end = NULL
    if not (w.masked and w.win_first and w.zeros and w.D and w.arg_server and w.arg_prev
            and w.path and w.kbuf):
        return -1
    return _graph_init(&w.g, w.win_first, w.masked, S, L)


cdef inline void _gca_work_free(GCAWork* w) noexcept nogil:
    _gfree(w.masked); _gfree(w.win_first); _gfree(w.zeros); _gfree(w.D)
    _gfree(w.arg_server); _gfree(w.arg_prev); _gfree(w.path); _gfree(w.kbuf)
    _gfree(w.g.bucket); _gfree(w.g.by_end)
    w.masked = NULL; w.win_first = NULL; w.zeros = NULL; w.D = NULL; w.arg_server = NULL
    w.arg_prev = NULL; w.path = NULL; w.kbuf = NULL; w.g.bucket = NULL; w.g.by_end = NULL


cdef inline int _gca_run(GCAWork* w, const int64_t* first_block, const int64_t* num_blocks,
                         Py_ssize_t G, const double* alpha, const double* beta,
                         const double* shared_alpha, const int64_t* owner,
                         int64_t* free_slots, ChainBuffers* out) noexcept nogil:
    """GCA (Alg. 2) on the placement (first_block, num_blocks) of w.S servers with
    ``free_slots[j]`` free cache slots (one slot = one block's cache for one job; updated
    in place), appending the chains to ``out``.

    Link (i, j) processing k = end_j - end_i blocks on j costs alpha_j + beta_j k and exists
    iff first_j <= end_i <= end_j - 1 and j has >= k free slots.  While a chain exists: take
    the cheapest (_route_dp, ties as the DP breaks them: lower end block, then lower server
    index within an end block, then the earlier predecessor), capacity
    c = min_j floor(free_j / k_j), free_j -= c k_j on its servers.

    Passes: for each group g = 0..G-1, GCA on the servers with owner[j] == g at the group's
    costs alpha[g * S:(g + 1) * S] (home g); then one pass on every placed server with what
    is left, at ``shared_alpha`` (home -1).  The DP only visits the links that can still
    exist (``_shrink_window``).  0, or -1 if out of memory.
    O(rounds x (S + sum_j m_j)), rounds <= number of links."""
    cdef Py_ssize_t S = w.S, q, gi
    w.rc.a2 = NULL
    w.rc.b1 = beta
    w.rc.b2 = NULL
    w.rc.w = 0.0
    w.rc.mode = 1
    w.rc.capb = free_slots
    w.rc.used = w.zeros
    w.rc.penalty = INFINITY
    w.rc.lists = NULL
    w.rc.now = 0.0
    for gi in range(G + 1):
        for q in range(S):
            w.masked[q] = num_blocks[q] if (gi == G or owner[q] == gi) else 0
            _shrink_window(q, first_block, num_blocks, free_slots, w.win_first, w.masked)
        _graph_build(&w.g, S)
        w.rc.a1 = shared_alpha if gi == G else &alpha[gi * S]
        if _gca_rounds(&w.g, &w.rc, first_block, num_blocks, free_slots,
                       gi if gi < G else -1, out, w.D, w.arg_server, w.arg_prev, w.path,
                       w.kbuf, w.win_first, w.masked) < 0:
            return -1
    return 0


# ------------------------------------------------------------------------------------------
# JFFC: Join-the-Fastest-Free-Chain (SPEC 1.10; chain-composition notes §4).  The ONE copy
# of the rule: chain_kernels' offline fill and the online engine's 'jffc' policy (Swarm
# and the simulator's event loop, swarm_kernels.Engine) all call it.
#
# Contract
# * K chains (GCA's output, in GCA order) with cap[k] >= 0 job slots (c_k) and C clients;
#   chain k's service time for a job of client c is service_ms[c * K + k] (SPEC 1.1 request
#   time at the composition's job length).  A chain with cap 0 takes no job (a removed one).
# * Client groups (per-group composition, distalloc.llm.chains): home[k] is the client group
#   chain k was composed for (-1: a shared chain), client_group[c] the group of client c
#   (-1: none).  Client c ranks the chains by (home[k] != client_group[c], service_ms[c, k],
#   k): its group's chains first, then every other chain, each part fastest first, ties to
#   the lower GCA index.  home == NULL or client_group == NULL: no groups, the paper's rule
#   (fastest first), which is also what one group holding every chain gives.
# * busy[k] is the number of jobs running on chain k, 0 <= busy[k] <= cap[k]; each job holds
#   one slot from its start to its completion, on one chain (no migration, no preemption).
# * One central FCFS queue of job ids; it is non-empty only while every chain is full.
# * A user score (SPEC 5.2; s.score != NULL, set by _jffc_set_score): the arriving job of
#   client c goes to the free chain with the lowest
#   score(service_ms[c, k] / 1000, 0.0, cap[k] - busy[k], c) (seconds; the wait is 0 for a
#   chain with a free slot; NaN counts as +inf), ties to the client's ranking above: so a
#   score returning service_s, or a constant, is exactly the built-in rule.
# * _jffc_arrive(s, job, client) -> k >= 0: the job starts now on chain k (the choice
#   above); -1: no slot is free and the job joined the queue's tail; -2: out of memory.
# * _jffc_complete(s, k) -> job >= 0: a job on chain k finished and the queue's head job
#   starts now on chain k (busy[k] unchanged); -1: the queue was empty and the slot is free.
# * _jffc_admit(s, client_of_head) -> k >= 0: slots appeared (chains added): the head
#   (of that client) starts on the chain an arrival would take and leaves the queue;
#   -1: the queue is empty or every chain is still full.
# * _jffc_cancel(s, job): the job leaves the queue (True if it was there).
# * _jffc_remove(s, k): chain k takes no more jobs (cap 0; its jobs must be gone).
# * _jffc_rerank(s, K, cap, service_ms, home, client_group): the chains changed (K may
#   grow; chain k < old K keeps busy[k]); the queue is kept.
# * _jffc_pick / _jffc_occupy / _jffc_vacate are the pieces (decision without side
#   effects; booking; release) for callers that book and release themselves.
# Cost: _jffc_pick O(K / 64) (first set bit of the client's free-chain bitset; with a
# score, one call per free chain); _jffc_occupy/_jffc_vacate O(C) when a chain turns
# full/free, O(1) otherwise; queue O(1) amortised, _jffc_cancel O(queue).  _jffc_init and
# _jffc_rerank O(C K log K); _jffc_release frees every buffer (safe after a failed init).
# ------------------------------------------------------------------------------------------
from libc.stdint cimport uint64_t
from libc.stdlib cimport free as _c_free, qsort as _c_qsort, calloc as _c_calloc
from libc.string cimport memcpy as _c_memcpy

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

#: a user's dispatch score (SPEC 5.2): score(chain_service_s, wait_s, free_slots, client)
ctypedef double (*chain_score_fn)(double, double, int64_t, int64_t) noexcept nogil


cdef struct JFFCState:
    Py_ssize_t K
    Py_ssize_t C
    Py_ssize_t words        # 64-bit words per client bitset
    int64_t* cap            # K
    int64_t* busy           # K
    int64_t* order          # C * K: chain at rank p of client c
    int64_t* rank           # C * K: rank of chain k for client c
    uint64_t* free_bits     # C * words: bit p set iff chain order[c, p] has a free slot
    double* service         # C * K: service_ms (a copy; the score's chain_service_s)
    chain_score_fn score    # NULL: the built-in rule
    int64_t* queue          # ring buffer of job ids
    Py_ssize_t qhead
    Py_ssize_t qsize
    Py_ssize_t qcap


cdef inline void _jffc_release(JFFCState* s) noexcept nogil:
    _c_free(s.cap); _c_free(s.busy); _c_free(s.order); _c_free(s.rank)
    _c_free(s.free_bits); _c_free(s.service); _c_free(s.queue)
    s.cap = NULL; s.busy = NULL; s.order = NULL; s.rank = NULL
    s.free_bits = NULL; s.service = NULL; s.queue = NULL


cdef inline void _jffc_set_bit(JFFCState* s, int64_t k, bint on) noexcept nogil:
    cdef Py_ssize_t c, p
    for c in range(s.C):
        p = s.rank[c * s.K + k]
        if on:
            s.free_bits[c * s.words + (p >> 6)] |= (<uint64_t> 1) << (p & 63)
        else:
            s.free_bits[c * s.words + (p >> 6)] &= ~((<uint64_t> 1) << (p & 63))


cdef inline int _jffc_rank(JFFCState* s, Py_ssize_t K, Py_ssize_t C, const int64_t* cap,
                           const int64_t* busy, const double* service_ms,
                           const int64_t* home, const int64_t* client_group) noexcept nogil:
    """(Re)build the per-chain and per-client tables for K chains with ``busy`` jobs
    (NULL: none); the old tables are freed on success.  0, or -1 if out of memory (the
    state is then unchanged)."""
    cdef Py_ssize_t c, k, p, nh, words = (K + 63) >> 6
    cdef int64_t g
    cdef KeyIndex* keys
    cdef int64_t* ncap = <int64_t*> _c_calloc(K + 1, sizeof(int64_t))
    cdef int64_t* nbusy = <int64_t*> _c_calloc(K + 1, sizeof(int64_t))
    cdef int64_t* norder = <int64_t*> _c_calloc(C * K + 1, sizeof(int64_t))
    cdef int64_t* nrank = <int64_t*> _c_calloc(C * K + 1, sizeof(int64_t))
    cdef uint64_t* nbits = <uint64_t*> _c_calloc(C * words + 1, sizeof(uint64_t))
    cdef double* nservice = <double*> _c_calloc(C * K + 1, sizeof(double))
    keys = <KeyIndex*> _c_calloc(K + 1, sizeof(KeyIndex))
    if not (ncap and nbusy and norder and nrank and nbits and nservice and keys):
        _c_free(ncap); _c_free(nbusy); _c_free(norder); _c_free(nrank); _c_free(nbits)
        _c_free(nservice); _c_free(keys)
        return -1
    for k in range(K):
        ncap[k] = cap[k]
        nbusy[k] = busy[k] if busy != NULL else 0
    if C * K > 0:
        _c_memcpy(nservice, service_ms, C * K * sizeof(double))
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
            norder[c * K + p] = keys[p].index
            nrank[c * K + keys[p].index] = p
    _c_free(keys)
    _c_free(s.cap); _c_free(s.busy); _c_free(s.order); _c_free(s.rank)
    _c_free(s.free_bits); _c_free(s.service)
    s.K = K
    s.C = C
    s.words = words
    s.cap = ncap
    s.busy = nbusy
    s.order = norder
    s.rank = nrank
    s.free_bits = nbits
    s.service = nservice
    for k in range(K):
        if nbusy[k] < ncap[k]:
            _jffc_set_bit(s, k, True)
    return 0


cdef inline int _jffc_init(JFFCState* s, Py_ssize_t K, Py_ssize_t C, const int64_t* cap,
                           const double* service_ms, const int64_t* home,
                           const int64_t* client_group) noexcept nogil:
    """Set up an empty system (no job running, empty queue, the built-in rule); 0, or -1
    if out of memory.  ``home`` (K) and ``client_group`` (C) may be NULL (no groups).
    ``s`` must be zeroed (or released) before."""
    s.qhead = 0
    s.qsize = 0
    s.qcap = 1024
    s.score = NULL
    s.queue = <int64_t*> _c_calloc(s.qcap, sizeof(int64_t))
    if not s.queue:
        return -1
    return _jffc_rank(s, K, C, cap, NULL, service_ms, home, client_group)


cdef inline int _jffc_rerank(JFFCState* s, Py_ssize_t K, const int64_t* cap,
                             const double* service_ms, const int64_t* home,
                             const int64_t* client_group) noexcept nogil:
    """The chains changed: K chains (K >= the old K; chain k < old K keeps its jobs, and
    cap[k] >= busy[k]); the queue and the score are kept.  0, or -1 if out of memory."""
    cdef Py_ssize_t k, old = s.K
    cdef int64_t* busy = <int64_t*> _c_calloc(K + 1, sizeof(int64_t))
    cdef int rc
    if not busy:
        return -1
    for k in range(old if old < K else K):
        busy[k] = s.busy[k]
    rc = _jffc_rank(s, K, s.C, cap, busy, service_ms, home, client_group)
    _c_free(busy)
    return rc


cdef inline void _jffc_set_score(JFFCState* s, chain_score_fn score) noexcept nogil:
    s.score = score


cdef inline int64_t _jffc_pick(const JFFCState* s, int64_t client) noexcept nogil:
    """The chain an arrival of ``client`` takes: the first free chain in its ranking, or,
    with a user score, the free chain of lowest score (ties: the ranking); -1 if every
    chain is full."""
    cdef Py_ssize_t w, p
    cdef int64_t k, best = -1
    cdef uint64_t bits
    cdef double x, best_x = INFINITY
    cdef const uint64_t* row = s.free_bits + client * s.words
    if s.score == NULL:
        for w in range(s.words):
            if row[w]:
                return s.order[client * s.K + (w << 6) + __builtin_ctzll(row[w])]
        return -1
    for w in range(s.words):
        bits = row[w]
        while bits:
            p = (w << 6) + __builtin_ctzll(bits)
            bits &= bits - 1
            k = s.order[client * s.K + p]
            x = s.score(s.service[client * s.K + k] / 1000.0, 0.0, s.cap[k] - s.busy[k],
                        client)
            if x != x:
                x = INFINITY
            if best < 0 or x < best_x:
                best = k
                best_x = x
    return best


cdef inline void _jffc_occupy(JFFCState* s, int64_t k) noexcept nogil:
    s.busy[k] += 1
    if s.busy[k] == s.cap[k]:
        _jffc_set_bit(s, k, False)


cdef inline void _jffc_vacate(JFFCState* s, int64_t k) noexcept nogil:
    if s.busy[k] == s.cap[k]:
        _jffc_set_bit(s, k, True)
    s.busy[k] -= 1


cdef inline void _jffc_remove(JFFCState* s, int64_t k) noexcept nogil:
    """Chain k takes no more jobs (its jobs are gone: busy 0, cap 0)."""
    if s.busy[k] < s.cap[k]:
        _jffc_set_bit(s, k, False)
    s.busy[k] = 0
    s.cap[k] = 0


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


cdef inline int64_t _jffc_queued(const JFFCState* s, Py_ssize_t i) noexcept nogil:
    """The job at position i of the queue (0: the head)."""
    return s.queue[(s.qhead + i) % s.qcap]


cdef inline int64_t _jffc_pop(JFFCState* s) noexcept nogil:
    cdef int64_t job = s.queue[s.qhead]
    s.qhead = (s.qhead + 1) % s.qcap
    s.qsize -= 1
    return job


cdef inline bint _jffc_cancel(JFFCState* s, int64_t job) noexcept nogil:
    """Remove ``job`` from the queue, keeping the others' order; True if it was there."""
    cdef Py_ssize_t i, found = -1
    for i in range(s.qsize):
        if s.queue[(s.qhead + i) % s.qcap] == job:
            found = i
            break
    if found < 0:
        return False
    for i in range(found, s.qsize - 1):
        s.queue[(s.qhead + i) % s.qcap] = s.queue[(s.qhead + i + 1) % s.qcap]
    s.qsize -= 1
    return True


cdef inline int64_t _jffc_arrive(JFFCState* s, int64_t job, int64_t client) noexcept nogil:
    cdef int64_t k = _jffc_pick(s, client)
    if k >= 0:
        _jffc_occupy(s, k)
        return k
    if _jffc_push(s, job) < 0:
        return -2
    return -1


cdef inline int64_t _jffc_complete(JFFCState* s, int64_t k) noexcept nogil:
    if s.qsize > 0:
        return _jffc_pop(s)
    _jffc_vacate(s, k)
    return -1


cdef inline int64_t _jffc_admit(JFFCState* s, int64_t client_of_head) noexcept nogil:
    """Slots appeared: the queue's head (a job of ``client_of_head``) takes the chain an
    arrival would take and leaves the queue; -1 if the queue is empty or no slot is free."""
    cdef int64_t k
    if s.qsize == 0:
        return -1
    k = _jffc_pick(s, client_of_head)
    if k < 0:
        return -1
    _jffc_pop(s)
    _jffc_occupy(s, k)
    return k
