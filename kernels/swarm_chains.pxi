# The chain method's chains in the online engine (policy 'jffc', SPEC 1.10, 5.1): the
# chain table and the slots its chains reserve per server, installed from a composition
# (set_chains), and its churn rules: a server leaving removes the chains through it, a
# joining server and a re-plan run GCA on the slots no chain reserves and add the chains
# found, whose slots the central queue's head jobs then take.  Module-level cdef functions
# on swarm_kernels.Engine, included into swarm_kernels.pyx; GCA is llm_core's _gca_run
# (the one copy), the dispatch rule swarm_jffc.pxi's.

cdef object _set_chains(Engine self, servers, blocks, offsets, capacities, cost_ms, home,
                        prefill_ms, token_ms, rank_ms, owner, group_alpha_ms, shared_alpha_ms,
                        beta_ms, client_group, double rank_tokens):
    """Engine.set_chains (see its docstring)."""
    cdef Py_ssize_t S = self.S, C = self.C, K = len(capacities), k, c, q, G
    _require(self.policy == POLICY_JFFC and self.K == 0 and self.nactive == 0,
             "set_chains: a fresh jffc engine")
    srv = np.ascontiguousarray(servers, dtype=np.int64)
    blk = np.ascontiguousarray(blocks, dtype=np.int64)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    cap = np.ascontiguousarray(capacities, dtype=np.int64)
    pre = np.ascontiguousarray(prefill_ms, dtype=np.float64)
    tok = np.ascontiguousarray(token_ms, dtype=np.float64)
    rnk = np.ascontiguousarray(rank_ms, dtype=np.float64)
    ga = np.ascontiguousarray(group_alpha_ms, dtype=np.float64)
    G = ga.shape[0] if ga.ndim == 2 else 0
    _require(off.shape == (K + 1,) and off[0] == 0 and srv.shape == blk.shape
             and off[K] == srv.shape[0] and bool(np.all(np.diff(off) >= 1))
             and bool(np.all((srv >= 0) & (srv < S))) and bool(np.all(cap >= 0))
             and np.shape(cost_ms) == (K,) and np.shape(home) == (K,)
             and pre.shape == (C, K) and tok.shape == (C, K) and rnk.shape == (C, K)
             and np.shape(owner) == (S,) and (G == 0 or ga.shape[1] == S)
             and np.shape(shared_alpha_ms) == (S,) and np.shape(beta_ms) == (S,)
             and np.shape(client_group) in ((0,), (C,)), "set_chains: shapes")
    # every chain is a valid route of the placement processing blocks[...] on each
    for k in range(K):
        prev = 0
        for q in range(off[k], off[k + 1]):
            j = srv[q]
            e = self.first[j] + self.num[j]
            _require(self.num[j] > 0 and self.first[j] <= prev < e
                     and blk[q] == e - prev, "set_chains: a chain is not a route")
            prev = e
        _require(prev == self.L, "set_chains: a chain does not end at L")
    self.G = G
    self.rank_tokens = rank_tokens
    self.reserved = <int64_t*> calloc(S + 1, sizeof(int64_t))
    self.owner = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    self.galpha = <double*> malloc((G * S + 1) * sizeof(double))
    self.salpha = <double*> malloc((S + 1) * sizeof(double))
    self.cbeta = <double*> malloc((S + 1) * sizeof(double))
    if not (self.reserved and self.owner and self.galpha and self.salpha and self.cbeta):
        raise MemoryError()
    for j in range(S):
        self.owner[j] = owner[j]
        self.salpha[j] = shared_alpha_ms[j]
        self.cbeta[j] = beta_ms[j]
    for q in range(G * S):
        self.galpha[q] = ga.ravel()[q]
    if len(client_group) == C and C > 0:
        self.cgroup = <int64_t*> malloc((C + 1) * sizeof(int64_t))
        if not self.cgroup:
            raise MemoryError()
        for c in range(C):
            self.cgroup[c] = client_group[c]
    cdef int64_t[::1] sv = srv, bv = blk, ov = off
    for k in range(K):
        if _chain_append(self, &sv[ov[k]], &bv[ov[k]], ov[k + 1] - ov[k], cap[k],
                         float(cost_ms[k]), int(home[k])) < 0:
            raise MemoryError()
        for c in range(C):           # the caller's times exactly (as the plan reports)
            self.ch_pre[k * C + c] = pre[c, k]
            self.ch_tok[k * C + c] = tok[c, k]
            self.ch_rank[k * C + c] = rnk[c, k]
    for j in range(S):
        _require(self.reserved[j] <= self.capb[j] or not self.alv[j],
                 "set_chains: the chains reserve more slots than a server has")
    table = np.ascontiguousarray(rnk.reshape(C, K) if K else np.zeros((C, 0)))
    cdef double[:, ::1] tv = table
    cdef int64_t[::1] hv = np.ascontiguousarray(home, dtype=np.int64)
    if _jffc_init(&self.js, K, C, self.ch_cap, &tv[0, 0] if K and C else NULL,
                  &hv[0] if K else NULL, self.cgroup) < 0:
        raise MemoryError()
    self.js_ready = True
    self.pred_valid = False

cdef void _chain_remove(Engine self, int64_t k) noexcept nogil:
    """Chain k takes no more jobs (its jobs are gone); its slots are free again."""
    cdef Py_ssize_t q
    for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k]):
        self.reserved[self.ch_srv[q]] -= self.ch_cap[k] * self.ch_blk[q]
    self.ch_cap[k] = 0
    self.ch_live -= self.ch_len[k]
    _jffc_remove(&self.js, k)
    self.pred_valid = False

cdef Py_ssize_t _chains_drop_server(Engine self, Py_ssize_t j, double now,
                                    int64_t* out) noexcept nogil:
    """Every chain through server j is removed and its running jobs are released (into
    ``out``, counted as interrupted); queued jobs stay queued."""
    cdef Py_ssize_t n = _interrupt_server(self, j, now, out), k, q
    for k in range(self.K):
        if self.ch_cap[k] <= 0:
            continue
        for q in range(self.ch_off[k], self.ch_off[k] + self.ch_len[k]):
            if self.ch_srv[q] == j:
                _chain_remove(self, k)
                break
    return n

cdef int _chain_append(Engine self, const int64_t* servers, const int64_t* blocks,
                       Py_ssize_t plen, int64_t cap, double cost, int64_t home) noexcept nogil:
    """Add a chain to the table (a dead index is reused) and reserve its slots; the
    JFFC ranking is rebuilt by _jffc_chains_changed.  Its per-client times are SPEC
    1.1's, summed along the chain.  0, or -1 if out of memory."""
    cdef Py_ssize_t k = -1, q, c, S = self.S, C = self.C, pos = 0, i
    cdef int64_t j, nk
    cdef double pre, tok
    cdef void* p
    cdef int64_t* fs
    cdef int64_t* fb
    for q in range(self.K):
        if self.ch_cap[q] == 0 and (not self.js_ready or self.js.busy[q] == 0):
            k = q
            break
    if k < 0:
        if self.K >= 2147483647:          # chain indices are 32-bit in a session
            return -1
        if self.K == self.kcap:
            nk = 2 * self.kcap + 16
            if (_grow(<void**> &self.ch_off, nk, sizeof(int64_t)) < 0
                    or _grow(<void**> &self.ch_len, nk, sizeof(int64_t)) < 0
                    or _grow(<void**> &self.ch_cap, nk, sizeof(int64_t)) < 0
                    or _grow(<void**> &self.ch_home, nk, sizeof(int64_t)) < 0
                    or _grow(<void**> &self.ch_cost, nk, sizeof(double)) < 0
                    or _grow(<void**> &self.ch_pre, nk * C + 1, sizeof(double)) < 0
                    or _grow(<void**> &self.ch_tok, nk * C + 1, sizeof(double)) < 0
                    or _grow(<void**> &self.ch_rank, nk * C + 1, sizeof(double)) < 0):
                return -1
            self.kcap = nk
        k = self.K
        self.K += 1
    if self.ch_size + plen > self.ch_arena_cap:
        if self.ch_live + plen <= self.ch_arena_cap // 2:
            # compact the arena: dead chains' paths go
            fs = <int64_t*> malloc((self.ch_arena_cap + 1) * sizeof(int64_t))
            fb = <int64_t*> malloc((self.ch_arena_cap + 1) * sizeof(int64_t))
            if not (fs and fb):
                free(fs); free(fb)
                return -1
            for i in range(self.K):
                if i == k or self.ch_cap[i] <= 0:
                    continue
                memcpy(fs + pos, self.ch_srv + self.ch_off[i], self.ch_len[i] * sizeof(int64_t))
                memcpy(fb + pos, self.ch_blk + self.ch_off[i], self.ch_len[i] * sizeof(int64_t))
                self.ch_off[i] = pos
                pos += self.ch_len[i]
            free(self.ch_srv); free(self.ch_blk)
            self.ch_srv = fs
            self.ch_blk = fb
            self.ch_size = pos
        else:
            nk = 2 * self.ch_arena_cap + plen + 64
            if (_grow(<void**> &self.ch_srv, nk, sizeof(int64_t)) < 0
                    or _grow(<void**> &self.ch_blk, nk, sizeof(int64_t)) < 0):
                return -1
            self.ch_arena_cap = nk
    self.ch_off[k] = self.ch_size
    self.ch_len[k] = plen
    for q in range(plen):
        self.ch_srv[self.ch_size + q] = servers[q]
        self.ch_blk[self.ch_size + q] = blocks[q]
        self.reserved[servers[q]] += cap * blocks[q]
    self.ch_size += plen
    self.ch_live += plen
    self.ch_cap[k] = cap
    self.ch_home[k] = home
    self.ch_cost[k] = cost
    for c in range(C):
        pre = 0.0
        tok = 0.0
        for q in range(plen):
            j = servers[q]
            pre += self.prtt[c * S + j] + self.pre[j] * blocks[q]
            tok += self.rtt[c * S + j] + self.dec[j] * blocks[q]
        self.ch_pre[k * C + c] = pre
        self.ch_tok[k * C + c] = tok
        self.ch_rank[k * C + c] = pre + (self.rank_tokens - 1.0) * tok
    return 0

cdef int _chains_changed(Engine self, double now) noexcept nogil:
    """Re-rank the chains for every client (llm_core._jffc_rerank, queue kept), then
    let the queue's head jobs take the free slots that appeared, in queue order (each
    takes the chain an arrival would, and starts now; noted).  0, or -1 if out of
    memory."""
    cdef Py_ssize_t k, c, K = self.K, C = self.C
    cdef int64_t h, kk
    cdef double* table = <double*> malloc((C * K + 1) * sizeof(double))
    cdef int rc
    if not table:
        return -1
    for c in range(C):
        for k in range(K):
            table[c * K + k] = self.ch_rank[k * C + c]
    rc = _jffc_rerank(&self.js, K, self.ch_cap, table, self.ch_home, self.cgroup)
    free(table)
    if rc < 0:
        return -1
    self.pred_valid = False
    while self.js.qsize > 0:
        h = _jffc_queued(&self.js, 0)
        kk = _jffc_admit(&self.js, self.ss[h].client)
        if kk < 0:
            break
        if _jffc_start_job(self, h, kk, now) < 0 or self._note(h) < 0:
            return -1
    return 0

cdef int _chains_compose(Engine self, Py_ssize_t j, int64_t m, double now,
                           int64_t* a_out) noexcept nogil:
    """The chain method's rule on a live swarm (SPEC 1.10 GCA, SPEC 5.1 join): GCA on
    the slots no chain reserves (each live server holding blocks: its slots minus what
    its chains reserve), per client group then shared, and the chains found are added.
    With a joining server j (m blocks, not placed yet): it takes the window of m blocks
    where that GCA adds the most service rate sum_k c_k / T_k (ties: the smaller start);
    if no window adds any, the window whose blocks have the fewest residual slots (the
    weakest coverage, as PETALS's rule on slots), and j is placed there.  Running jobs
    never move.  Cost: O((L - m + 1) x GCA) on the servers with residual slots only.
    0, or -1 if out of memory."""
    cdef Py_ssize_t S = self.S, L = self.L, G = self.G, n = 0, q, i, g, a, b, qj = -1
    cdef Py_ssize_t best_a = 0, nwin
    cdef double gain, best_gain = 0.0
    cdef int64_t r
    cdef int fail = 0
    cdef int64_t* idx = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef int64_t* cf = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef int64_t* cn = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef int64_t* co = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef int64_t* free0 = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef int64_t* cfree = <int64_t*> malloc((S + 2) * sizeof(int64_t))
    cdef double* csal = <double*> malloc((S + 2) * sizeof(double))
    cdef double* cbt = <double*> malloc((S + 2) * sizeof(double))
    cdef double* cal = <double*> malloc((G * (S + 2) + 1) * sizeof(double))
    cdef int64_t* gs = NULL
    cdef GCAWork w
    cdef ChainBuffers out
    memset(&w, 0, sizeof(GCAWork))
    memset(&out, 0, sizeof(ChainBuffers))
    if not (idx and cf and cn and co and free0 and cfree and csal and cbt and cal):
        fail = 1
    if not fail:
        # in index order (j too), so GCA breaks ties as on the whole swarm
        for i in range(S):
            if i == j:
                qj = n
                idx[n] = j
                free0[n] = _floor_count((self.usable[j] - self.block_gb * m) / self.cache_gb)
                n += 1
                continue
            if not self.alv[i] or self.num[i] <= 0:
                continue
            r = self.capb[i] - self.reserved[i]
            if r > 0:
                idx[n] = i
                free0[n] = r
                n += 1
        for q in range(n):
            i = idx[q]
            cf[q] = self.first[i]
            cn[q] = self.num[i] if i != j else m
            co[q] = self.owner[i]
            csal[q] = self.salpha[i]
            cbt[q] = self.cbeta[i]
            for g in range(G):
                cal[g * n + q] = self.galpha[g * S + i]
        if _gca_work_init(&w, n, L) < 0 or _chains_init(&out) < 0:
            fail = 1
    if not fail and j >= 0:
        nwin = L - m + 1
        best_a = -1
        for a in range(nwin):
            cf[qj] = a
            for q in range(n):
                cfree[q] = free0[q]
            out.n_chains = 0
            out.flat_size = 0
            if _gca_run(&w, cf, cn, G, cal, cbt, csal, co, cfree, &out) < 0:
                fail = 1
                break
            gain = 0.0
            for q in range(out.n_chains):
                gain = gain + out.caps[q] / out.costs[q]
            if gain > best_gain:
                best_gain = gain
                best_a = a
        if not fail and best_a < 0:
            # no window adds a chain: the weakest window by residual slots
            for b in range(L):
                self.blockval[b] = 0.0
            for q in range(n):
                if q != qj:
                    for b in range(cf[q], cf[q] + cn[q]):
                        self.blockval[b] += <double> free0[q]
            best_a = _lexmin_sorted_window(self.blockval, L, m, self.wbuf, self.wbest)
        cf[qj] = best_a
        a_out[0] = best_a
    if not fail and n > 0:
        for q in range(n):
            cfree[q] = free0[q]
        out.n_chains = 0
        out.flat_size = 0
        if _gca_run(&w, cf, cn, G, cal, cbt, csal, co, cfree, &out) < 0:
            fail = 1
    if not fail and j >= 0:
        _move_server(self, j, best_a, m)
    if not fail and out.n_chains > 0:
        gs = <int64_t*> malloc((out.flat_size + 1) * sizeof(int64_t))
        if not gs:
            fail = 1
        else:
            for q in range(out.flat_size):
                gs[q] = idx[out.flat_s[q]]
            for q in range(out.n_chains):
                if _chain_append(self, &gs[out.offs[q]], &out.flat_k[out.offs[q]],
                                      out.offs[q + 1] - out.offs[q], out.caps[q],
                                      out.costs[q], out.homes[q]) < 0:
                    fail = 1
                    break
            if not fail and _chains_changed(self, now) < 0:
                fail = 1
    free(idx); free(cf); free(cn); free(co); free(free0); free(cfree); free(csal)
    free(cbt); free(cal); free(gs)
    _gca_work_free(&w)
    _chains_free(&out)
    return -1 if fail else 0
