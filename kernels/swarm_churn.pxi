# Server churn in the online engine (SPEC 1.7, 5.1): a server leaving (its sessions
# interrupted), a server joining (CG-BP's or PETALS's window rule against the current
# coverage), PETALS's periodic re-choice of blocks, a whole re-plan (set_placement), and
# WS-RR's optional re-routing of waiting bookings when capacity appears.  Under 'jffc'
# leave, join and re-plan hand over to the chain rules in swarm_chains.pxi.  Module-level
# cdef functions on swarm_kernels.Engine, included into swarm_kernels.pyx (Cython allows
# ``include`` only at module level, so an engine method cannot live in another file; the
# Engine's def doors call these).

# ---- moving a server: the ordered holder list, the routing DAG, the cached chains ----

cdef void _holder_remove(Engine self, Py_ssize_t j) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(self.nholders):
        if self.holders[i].index == j:
            memmove(self.holders + i, self.holders + i + 1,
                    (self.nholders - i - 1) * sizeof(KeyIndex))
            self.nholders -= 1
            return

cdef void _holder_insert(Engine self, Py_ssize_t j) noexcept nogil:
    cdef KeyIndex x
    cdef Py_ssize_t lo = 0, hi = self.nholders, mid
    x.key = self._holder_key(j)
    x.index = j
    while lo < hi:
        mid = (lo + hi) >> 1
        if _cmp_key_index(&self.holders[mid], &x) < 0:
            lo = mid + 1
        else:
            hi = mid
    memmove(self.holders + lo + 1, self.holders + lo, (self.nholders - lo) * sizeof(KeyIndex))
    self.holders[lo] = x
    self.nholders += 1

cdef void _move_server(Engine self, Py_ssize_t j, int64_t a, int64_t m) noexcept nogil:
    """Place server j (which holds no session) at [a, a + m): O(S + L + C m).  A
    client's cached static chain stays when it cannot have changed: a server that
    loses its blocks matters only to the chains that used it, and a server that gains
    blocks only where a chain through it could cost no more than the cached one
    (``_static_beaten``)."""
    cdef Py_ssize_t c, q
    cdef bint lost = self.num[j] > 0
    if self.num[j] > 0:
        _holder_remove(self, j)
    self._set_blocks(j, a, m)
    if self.num[j] > 0:
        _holder_insert(self, j)
    _graph_build(&self.g, self.S)
    for c in range(self.C):
        if self.ckey[c] < 0:
            continue
        if lost:
            for q in range(self.clen[c]):
                if self.cpath[c * (self.L + 1) + q] == j:
                    self.ckey[c] = -1
                    break
        if self.ckey[c] >= 0 and self.num[j] > 0 and _static_beaten(self, c, j):
            self.ckey[c] = -1

cdef bint _static_beaten(Engine self, Py_ssize_t c, Py_ssize_t j) noexcept nogil:
    """Could a chain through server j cost client c no more than its cached static
    chain?  A lower bound on any such chain: the cheapest prefix into j's window (the
    cached DP's prefix costs, which departures since can only have lowered), j's link,
    and, for the blocks after j, one visit and a per-block cost no server undercuts.
    Only if the bound clears the cached cost (with a 1e-9 margin for the rounding of
    sums) does a fresh DP surely return the same chain."""
    cdef Py_ssize_t L = self.L, p
    cdef int64_t e = self.first[j] + self.num[j]
    cdef double base, per_block, cand, rest = 0.0
    cdef const double* D = &self.cD[c * (L + 1)]
    self._link_cost(c, j, <double> (self.ckey[c] - 1), &base, &per_block)
    if e < L:
        rest = self.cmin[2 * c] + self.cmin[2 * c + 1] * (L - e)
    for p in range(self.first[j], e):
        if D[p] == INFINITY:
            continue
        cand = D[p] + base + per_block * (e - p) + rest
        if cand <= D[L] * (1.0 + 1e-9):
            return True
    return False

# ---- a server joins: CG-BP's and PETALS's window rules -------------------------------

cdef int64_t _cg_sessions(Engine self, Py_ssize_t j, int64_t m) noexcept nogil:
    """s_j = min(floor((M_j - s_m m) / (s_c m)), |R|), at least 0."""
    cdef int64_t s = <int64_t> floor((self.usable[j] - self.block_gb * m) / (self.cache_gb * m))
    if s > self.planned:
        s = self.planned
    return s if s > 0 else 0

cdef int64_t _cg_free_sessions(Engine self, Py_ssize_t h) noexcept nogil:
    """The session slots CG-BP credits holder h with, less the sessions' worth of cache
    booked on it now (rounded up): s_h - ceil(used_h / m_h), at least 0.  On an idle
    swarm this is CG-BP's s_h."""
    cdef int64_t m = self.num[h], busy = (self.used[h] + m - 1) // m
    cdef int64_t s = _cg_sessions(self, h, m) - busy
    return s if s > 0 else 0

cdef Py_ssize_t _cg_join_window(Engine self, Py_ssize_t j, int64_t m) noexcept nogil:
    """CG-BP's window for server j of m blocks given the servers holding blocks now and
    their load, credited in CG-BP's amortised order as CG-BP itself does, each with
    the session slots it has free (_cg_free_sessions): blocks whose servers are booked
    up count as under-served.  Joining onto an empty, idle swarm in that order
    reproduces CG-BP's placement.  O(sum_j m_j + L m)."""
    cdef Py_ssize_t i, h, b, L = self.L
    cdef double tmax = self.cg_tmax, tj = self.dec[j] + self.maxrtt[j] / m, dummy
    cdef int64_t under = L
    if tj > tmax:
        tmax = tj
    for i in range(self.nholders):
        if self.holders[i].key > tmax:
            tmax = self.holders[i].key
    dummy = tmax + 1.0
    for b in range(L):
        self.blockval[b] = 0.0
        self.T[b] = self.planned * dummy
    for i in range(self.nholders):
        h = self.holders[i].index
        under -= _cg_credit(self.blockval, self.T, self.first[h], self.num[h], self.planned,
                            _cg_free_sessions(self, h), dummy - self.holders[i].key)
    return _cg_window(self.blockval, self.T, L, m, self.planned, under, self.under_prefix,
                      self.wbuf, self.wbest)

cdef double _petals_throughput(Engine self, Py_ssize_t j, int64_t m) noexcept nogil:
    # PETALS's announced throughput min(forward_rps / ((1 + m) / 2), network_rps)
    cdef double f = self.fwd[j] / ((1.0 + m) / 2.0)
    return f if f < self.net[j] else self.net[j]

cdef void _petals_block_throughput(Engine self, const int64_t* first) noexcept nogil:
    """Per-block throughput of the holders, summed in join order (as PETALS's join
    rule saw them): blockval[0:L]."""
    cdef Py_ssize_t i, h, b
    cdef double t
    for b in range(self.L):
        self.blockval[b] = 0.0
    for i in range(self.nholders):
        h = self.holders[i].index
        t = _petals_throughput(self, h, self.num[h])
        for b in range(first[h], first[h] + self.num[h]):
            self.blockval[b] += t

cdef Py_ssize_t _petals_join_window(Engine self, Py_ssize_t j, int64_t m) noexcept nogil:
    """PETALS: the window whose sorted per-block throughputs are lexicographically
    smallest (serve the weakest blocks).  O(sum_j m_j + L d)."""
    _petals_block_throughput(self, self.first)
    return _lexmin_sorted_window(self.blockval, self.L, m, self.wbuf, self.wbest)

cdef int _join(Engine self, Py_ssize_t j, int64_t* a_out, int64_t* m_out) noexcept nogil:
    """Server j (not alive) joins at the clock and picks its blocks by the join rule;
    under WS-RR the sessions still waiting are then routed again (_reroute_waiting),
    under JFFC the chains it completes are added and the queue's head jobs take their
    slots.  0, or -1 if out of memory."""
    cdef int64_t m = self.join_blocks[j], a = 0
    cdef int rc = 0
    self.alv[j] = 1
    if m > 0 and self.join_rule == JOIN_CHAINS:
        rc = _chains_compose(self, j, m, self.clock_ms, &a)
    else:
        if m > 0:
            if self.join_rule == JOIN_CG:
                a = _cg_join_window(self, j, m)
            else:
                a = _petals_join_window(self, j, m)
        _move_server(self, j, a, m)
        rc = _reroute_waiting(self, self.clock_ms)
    a_out[0] = self.first[j]
    m_out[0] = self.num[j]
    return rc

cdef int _reroute_waiting(Engine self, double now) noexcept nogil:
    """WS-RR when capacity appears (a join or a re-plan), if ``reroute_waiting`` (off by
    default: measured to hurt, see the README's churn section): every session booked
    but not started by ``now`` (start > now), in booking order, is routed again at
    ``now`` as if it arrived now with every other booking in place, and moves to the
    new chain only if it finishes strictly earlier there (its old booking stays
    feasible, since every session moved before it was routed around it, so no session
    finishes later).  Started sessions never move (SPEC 5.1).  Moved sessions are
    noted.  O(W x route) for W waiting sessions; 0, or -1 if out of memory."""
    cdef Py_ssize_t n = 0, i, s, q
    cdef int64_t plen = 0, c
    cdef double start, pre, tok, end
    cdef int st
    cdef KeyIndex* mv
    if self.policy != POLICY_WSRR or not self.reroute_waiting:
        return 0
    for s in range(self.ncap):
        if self.ss[s].state == ST_ACTIVE and self.ss[s].start > now:
            n += 1
    if n == 0:
        return 0
    mv = <KeyIndex*> malloc((n + 1) * sizeof(KeyIndex))
    if not mv:
        return -1
    n = 0
    for s in range(self.ncap):
        if self.ss[s].state == ST_ACTIVE and self.ss[s].start > now:
            mv[n].key = <double> self.ss[s].seq
            mv[n].index = s
            n += 1
    qsort(mv, n, sizeof(KeyIndex), _cmp_key_index)
    for i in range(n):
        s = mv[i].index
        c = self.ss[s].client
        self._unlist(s)
        st = self._choose_shortest(c, self.ss[s].lo, now, &plen, &start)
        end = INFINITY
        if st == ROUTE_BOOKED and start < INFINITY:
            self._path_times(c, plen, &pre, &tok)
            end = start + (pre + (self.ss[s].lo - 1) * tok) * self.ss[s].noise
        if end < self.ss[s].end:
            self.arena_live -= self.ss[s].len
            if self._book_path(s, start, pre, tok, self.path, plen) < 0 or self._note(s) < 0:
                free(mv)
                return -1
        elif self._list(s) < 0:
            free(mv)
            return -1
    free(mv)
    return 0

# ---- a server leaves -----------------------------------------------------------------

cdef Py_ssize_t _interrupt_server(Engine self, Py_ssize_t j, double now, int64_t* out) noexcept nogil:
    """Release every session holding cache on server j (sorted by slot into ``out``,
    which holds lists[j].size entries); their progress is counted as lost."""
    cdef SessionList* sl = &self.lists[j]
    cdef Py_ssize_t n = sl.size, i, a, b
    cdef int64_t s, x
    for i in range(n):
        out[i] = sl.req[sl.head + i]
    for a in range(1, n):                 # insertion sort: lists are short
        x = out[a]
        b = a - 1
        while b >= 0 and out[b] > x:
            out[b + 1] = out[b]
            b -= 1
        out[b + 1] = x
    for i in range(n):
        s = out[i]
        if self.ss[s].start < now:
            self.lost_ms += now - self.ss[s].start
        self.interrupted += 1
        self._release(s)
    return n

cdef Py_ssize_t _leave(Engine self, Py_ssize_t j, double now, int64_t* out) noexcept nogil:
    """Server j leaves: its sessions are released (into ``out``), it holds no blocks.
    JFFC: every chain through it is removed (its jobs are those sessions)."""
    cdef Py_ssize_t n
    if self.policy == POLICY_JFFC:
        n = _chains_drop_server(self, j, now, out)
    else:
        n = _interrupt_server(self, j, now, out)
    self.alv[j] = 0
    _move_server(self, j, 0, 0)
    return n

# ---- PETALS's periodic re-choice of blocks; a whole re-plan --------------------------

cdef bint _petals_check(Engine self, Py_ssize_t j, int64_t* new_start) noexcept nogil:
    """PETALS's ``should_choose_other_blocks`` for server j (balance quality, eps
    1e-3): each pass of the servers' simulated re-choices visits the holders in a
    fresh random order (the holders by index, shuffled from the engine's seeded
    stream, as PETALS's ``np.random.shuffle``).  On True, ``new_start`` is where j
    goes: the best window without j."""
    cdef Py_ssize_t L = self.L, i, h, b, passes = 0, nh = 0, t_i
    cdef double eps = 1e-3, initial, newmin, t
    cdef int64_t ns, m = self.num[j]
    cdef bint moved
    cdef double* thr = self.blockval
    for h in range(self.S):
        self.tmp_first[h] = self.first[h]
    _petals_block_throughput(self, self.first)
    initial = INFINITY
    for b in range(L):
        if thr[b] < initial:
            initial = thr[b]
    t = _petals_throughput(self, j, m)
    for b in range(self.first[j], self.first[j] + m):
        thr[b] -= t * (1 + eps)
    newmin = INFINITY
    for b in range(L):
        if thr[b] < newmin:
            newmin = thr[b]
    if initial > eps and newmin <= 0:
        return False                  # moving would disconnect the swarm
    ns = _lexmin_sorted_window(thr, L, m, self.wbuf, self.wbest)
    if ns == self.first[j]:
        return False
    for b in range(self.first[j], self.first[j] + m):
        thr[b] += t * eps
    self.tmp_first[j] = ns
    for b in range(ns, ns + m):
        thr[b] += t
    moved = True
    while moved and passes < PETALS_MAX_PASSES:
        moved = False
        passes += 1
        nh = 0
        for h in range(self.S):
            if self.num[h] > 0:
                self.perm[nh] = h
                nh += 1
        _shuffle(self.perm, nh, &self.shuffle_state)
        for t_i in range(nh):
            h = self.perm[t_i]
            t = _petals_throughput(self, h, self.num[h])
            for b in range(self.tmp_first[h], self.tmp_first[h] + self.num[h]):
                thr[b] -= t * (1 + eps)
            ns = _lexmin_sorted_window(thr, L, self.num[h], self.wbuf, self.wbest)
            for b in range(self.tmp_first[h], self.tmp_first[h] + self.num[h]):
                thr[b] += t * eps
            if ns != self.tmp_first[h]:
                self.tmp_first[h] = ns
                moved = True
            for b in range(self.tmp_first[h], self.tmp_first[h] + self.num[h]):
                thr[b] += t
    newmin = INFINITY
    for b in range(L):
        if thr[b] < newmin:
            newmin = thr[b]
    if newmin < initial or newmin < eps or not (initial / newmin < self.balance_quality - eps):
        return False
    # PETALS restarts the server: it re-chooses with itself offline
    _holder_remove(self, j)
    _petals_block_throughput(self, self.first)
    _holder_insert(self, j)
    new_start[0] = _lexmin_sorted_window(self.blockval, L, m, self.wbuf, self.wbest)
    return new_start[0] != self.first[j]

cdef object _rebalance_petals(Engine self, double now_ms):
    """Engine.rebalance_petals (see its docstring)."""
    cdef int64_t[::1] buf = np.empty(max(self.nactive, 1), dtype=np.int64)
    cdef Py_ssize_t j, n = 0, i, nh = 0
    cdef int64_t ns
    cdef int st
    moves = []
    with nogil:
        st = self._advance(now_ms, -1)
    if st < 0:
        raise MemoryError()
    order = np.empty(self.S + 1, dtype=np.int64)
    cdef int64_t[::1] ov = order
    for j in range(self.S):
        if self.num[j] > 0:
            ov[nh] = j
            nh += 1
    _shuffle(&ov[0], nh, &self.shuffle_state)
    for i in range(nh):
        j = ov[i]
        if self.num[j] > 0 and _petals_check(self, j, &ns):
            n += _interrupt_server(self, j, now_ms, &buf[n])
            _move_server(self, j, ns, self.num[j])
            moves.append((j, int(ns), int(self.num[j])))
    if self.need_rebook and self._rebook(-1) < 0:
        raise MemoryError()
    if moves and _reroute_waiting(self, now_ms) < 0:
        raise MemoryError()
    return moves, self._ids(buf, n)

cdef object _set_placement(Engine self, first_block, num_blocks, double now_ms, owner):
    """Engine.set_placement (see its docstring)."""
    cdef int64_t[::1] a = np.ascontiguousarray(first_block, dtype=np.int64)
    cdef int64_t[::1] m = np.ascontiguousarray(num_blocks, dtype=np.int64)
    cdef int64_t[::1] buf = np.empty(max(self.nactive, 1), dtype=np.int64)
    cdef Py_ssize_t j, n = 0
    cdef int st
    cdef int64_t dummy
    cdef bint jffc = self.policy == POLICY_JFFC
    _require(_placement_ok(&a[0], &m[0], self.S, self.L), "set_placement: placement")
    moves = []
    with nogil:
        st = self._advance(now_ms, -1)
    if st < 0:
        raise MemoryError()
    for j in range(self.S):
        if not self.alv[j]:
            continue
        if m[j] != self.num[j] or (m[j] > 0 and a[j] != self.first[j]):
            if jffc:
                n += _chains_drop_server(self, j, now_ms, &buf[n])
            else:
                n += _interrupt_server(self, j, now_ms, &buf[n])
            self._set_blocks(j, a[j], m[j])
            moves.append((j, int(self.first[j]), int(self.num[j])))
    self._placement_changed()
    if jffc:
        if owner is not None:
            for j in range(self.S):
                self.owner[j] = owner[j]
        if _chains_compose(self, -1, 0, now_ms, &dummy) < 0:
            raise MemoryError()
    else:
        if self.need_rebook and self._rebook(-1) < 0:
            raise MemoryError()
        if _reroute_waiting(self, now_ms) < 0:
            raise MemoryError()
    return moves, self._ids(buf, n)
