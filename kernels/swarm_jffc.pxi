# The online engine's 'jffc' policy (SPEC 1.10, 5.1): one central FCFS queue in front of
# chains with reserved slots (a job takes the first free chain of its client's ranking, or
# waits), the late-finish rule, and predictions for queued sessions.  The chains
# themselves (installing them, and their churn) are in swarm_chains.pxi.  Module-level
# cdef functions on swarm_kernels.Engine, included into swarm_kernels.pyx; every decision
# is llm_core's _jffc_* (the one copy of the rule).

cdef int _jffc_advance(Engine self, double now) noexcept nogil:
    """JFFC's late-finish rule: a running job whose predicted end passed without finish
    is late (end inf): it holds its slot until finish, and the queued jobs' predictions
    no longer count on it.  Jobs start only when a slot is handed to them, so nothing
    else moves.  O(1) when no job is late."""
    cdef int64_t s
    self.prev_clock = self.clock_ms
    self.clock_ms = now
    while self.nheap > 0 and self.ht[0] < now:
        s = self.hc[0] >> 1
        if (self.ss[s].state == ST_ACTIVE and not self.ss[s].queued
                and self.ss[s].end == self.ht[0]):
            _heap_pop(self.ht, self.hc, &self.nheap)
            if self._set_end(s, INFINITY) < 0:
                return -1
            self.pred_valid = False
        else:
            _heap_pop(self.ht, self.hc, &self.nheap)
    return 0

cdef int _jffc_start_job(Engine self, int64_t s, int64_t k, double now) noexcept nogil:
    """Session s (client, lo, noise set) starts now on chain k: its cache is booked on
    every server of the chain until its end."""
    cdef int64_t c = self.ss[s].client
    self.ss[s].chain = k
    self.ss[s].pchain = -1
    self.ss[s].queued = 0
    self.pred_valid = False
    return self._book_path(s, now, self.ch_pre[k * self.C + c], self.ch_tok[k * self.C + c],
                           &self.ch_srv[self.ch_off[k]], self.ch_len[k])

cdef int _jffc_route(Engine self, int64_t s, int64_t c, int64_t lo, double now,
                     double noise) noexcept nogil:
    """JFFC: the job takes the first free chain of its client's ranking (or the user
    score's choice) and starts now, else it waits in the central FCFS queue
    (ROUTE_QUEUED).  O(K / 64) (one score call per free chain with a score)."""
    cdef int64_t k
    if not self.js_ready:
        return ROUTE_NO_CHAIN
    self.ss[s].client = c
    self.ss[s].lo = lo
    self.ss[s].noise = noise
    self.ss[s].chain = -1
    self.ss[s].pchain = -1
    self.ss[s].seq = self.seq
    self.seq += 1
    k = _jffc_arrive(&self.js, s, c)
    if k == -2:
        return -1
    self.ss[s].state = ST_ACTIVE
    self.nactive += 1
    if k >= 0:
        if _jffc_start_job(self, s, k, now) < 0:
            return -1
        return ROUTE_BOOKED
    # every chain is full: in the queue, no cache held, start unknown until predicted
    self.ss[s].queued = 1
    self.ss[s].off = -1
    self.ss[s].len = 0
    self.ss[s].start = INFINITY
    self.ss[s].planned = INFINITY
    self.ss[s].end = INFINITY
    self.ss[s].service = 0.0
    self.ss[s].pre = 0.0
    _predict_append(self, s)
    return ROUTE_QUEUED

cdef int _predict_heap_add(Engine self, double t, int64_t code) noexcept nogil:
    cdef Py_ssize_t cap
    cdef void* p
    if self.pn == self.pcap:
        cap = 2 * self.pcap + 64
        p = realloc(self.pht, cap * sizeof(double))
        if not p: return -1
        self.pht = <double*> p
        p = realloc(self.phc, cap * sizeof(int64_t))
        if not p: return -1
        self.phc = <int64_t*> p
        self.pcap = cap
    _heap_push(self.pht, self.phc, &self.pn, t, code)
    return 0

cdef void _predict_one(Engine self, int64_t h) noexcept nogil:
    """Queued session h takes the earliest predicted end left in the replay's heap:
    its chain and start are that job's (JFFC hands a finishing job's slot to the
    queue's head), its end is pushed; unknown (inf, chain -1) once only late jobs are
    left."""
    cdef int64_t s0, k, c
    cdef double t
    if self.pn == 0:
        self.ss[h].pchain = -1
        self.ss[h].start = INFINITY
        self.ss[h].end = INFINITY
        return
    t = self.pht[0]
    s0 = self.phc[0] >> 1
    _heap_pop(self.pht, self.phc, &self.pn)
    k = self.ss[s0].chain if not self.ss[s0].queued else self.ss[s0].pchain
    c = self.ss[h].client
    self.ss[h].pchain = k
    self.ss[h].start = t
    self.ss[h].planned = t
    self.ss[h].pre = self.ch_pre[k * self.C + c] * self.ss[h].noise
    self.ss[h].service = (self.ch_pre[k * self.C + c]
                          + (self.ss[h].lo - 1) * self.ch_tok[k * self.C + c]) * self.ss[h].noise
    self.ss[h].end = t + self.ss[h].service
    if _predict_heap_add(self, self.ss[h].end, 2 * h) < 0:
        self.pn = 0                   # out of memory: the rest stays unknown

cdef void _predict_all(Engine self) noexcept nogil:
    """The queued sessions' predicted chains and starts: JFFC replayed on the predicted
    ends (every running job finishing at its predicted end, late ones never; at equal
    ends in slot order, as the simulator's event heap).  O((R + Q) log R) for R running
    and Q queued jobs; kept while nothing but queued arrivals happens."""
    cdef Py_ssize_t s, i
    if self.pred_valid:
        return
    self.pn = 0
    for s in range(self.ncap):
        if (self.ss[s].state == ST_ACTIVE and not self.ss[s].queued
                and self.ss[s].end < INFINITY):
            if _predict_heap_add(self, self.ss[s].end, 2 * s) < 0:
                self.pn = 0
                return
    for i in range(self.js.qsize):
        _predict_one(self, _jffc_queued(&self.js, i))
    self.pred_valid = True

cdef void _predict_append(Engine self, int64_t h) noexcept nogil:
    """A session joined the queue's tail: extend a current replay by one step."""
    if self.pred_valid:
        _predict_one(self, h)
