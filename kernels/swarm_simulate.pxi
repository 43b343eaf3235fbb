# The discrete-event simulator of distalloc.llm.simulate (SPEC 1.7, 1.10, 5.1): an event
# loop around the online engine (swarm_kernels.Engine), included into swarm_kernels.pyx.
# Every decision (route, book, release, JFFC's hand-over of a slot to the queue's head,
# leave, join) is one call of the engine's cdef methods, without the GIL; this file only
# orders the events and records the outputs.

class ChurnEventLimit(RuntimeError):
    """The churn log reached ``max_churn_events`` before the workload was over."""


cdef inline void _record(Engine eng, int64_t r, double decided, double[::1] start_ms,
                         double[::1] end_ms, double[::1] ttft_ms, double[::1] wait_ms,
                         int64_t[::1] path_offset, int64_t[::1] path_len) noexcept nogil:
    """Request r's outputs from its session (slot r); its wait counts from ``decided``."""
    start_ms[r] = eng.ss[r].start
    end_ms[r] = eng.ss[r].end
    ttft_ms[r] = eng.ss[r].start + eng.ss[r].pre
    wait_ms[r] = eng.ss[r].start - decided
    path_offset[r] = eng.ss[r].off
    path_len[r] = eng.ss[r].len


cdef inline void _record_updates(Engine eng, const double[::1] arrival_ms, double delay_ms,
                                 double[::1] start_ms, double[::1] end_ms,
                                 double[::1] ttft_ms, double[::1] wait_ms,
                                 int64_t[::1] path_offset, int64_t[::1] path_len) noexcept nogil:
    """The sessions a decision started or moved (JFFC's queue heads, WS-RR's re-routed
    bookings): their outputs again."""
    cdef Py_ssize_t i
    cdef int64_t r
    for i in range(0, eng.nupd, 2):
        r = eng.upd[i]
        if eng.ss[r].state == ST_ACTIVE:
            _record(eng, r, arrival_ms[r] + delay_ms, start_ms, end_ms, ttft_ms, wait_ms,
                    path_offset, path_len)
    eng.nupd = 0

def simulate(Engine eng, const double[::1] arrival_ms, const int64_t[::1] client,
             const int64_t[::1] output_tokens, const double[::1] noise, double delay_ms,
             double backoff_base_ms, double backoff_cap_ms, int64_t max_attempts,
             double mtbf_ms, double mttr_ms, uint64_t churn_key,
             double[::1] start_ms, double[::1] end_ms, double[::1] ttft_ms,
             double[::1] wait_ms, int64_t[::1] retries, int64_t[::1] interruptions,
             int64_t[::1] path_offset, int64_t[::1] path_len,
             int64_t max_churn_events=-1):
    """Event-driven simulation of online sessions on ``eng`` (fresh: no session yet).

    Requests arrive at ``arrival_ms`` (sorted) and are routed ``delay_ms`` later by the
    engine's policy (``Engine._route``); a session holds its cache from booking to its
    end (service time = performance model x ``noise``).  PETALS's chain without free cache
    is retried after backoff_base x 2^(attempt-1) ms (capped), re-routed each time; a
    request with no chain at all is dropped, or, with churn, retried the same way.  JFFC:
    a request that finds every chain full waits in the central queue and starts when a
    completion hands it the slot (or a join adds chains).
    Churn (``mtbf_ms`` > 0): each server fails after Exp(mtbf) and is repaired after
    Exp(mttr), from its own splitmix64 stream keyed by ``churn_key``; a failure releases
    the sessions on the server (their progress is lost) and re-routes them at once; a
    repaired server re-joins by the engine's join rule (WS-RR: the sessions still waiting
    are routed again and move if they finish earlier).  Churn stops when no work is left.

    Events at equal times: completions (by request), arrivals, retries (by request), churn.
    Outputs per request (NaN / -1 if never served): start, end, first-token times, the wait
    between the routing decision and the (last) start, retries, interruptions, and its last
    chain as ``path_offset``/``path_len`` into the returned chains.
    Returns (chains, events, churn log (time_ms, server, 0 fail / 1 repair), lost_ms,
    lost_tokens, up_ms (server-ms alive), horizon_ms).  Raises ChurnEventLimit when the
    failures and repairs exceed ``max_churn_events`` (>= 0; -1: no limit): the run's cost
    is bounded even when servers fail far faster than sessions end.
    """
    cdef Py_ssize_t S = eng.S, N = arrival_ms.shape[0], i_arr = 0, nr = 0, nch = 0, q, n
    cdef Py_ssize_t nlog = 0, logcap = 0
    cdef int64_t r, j, code, cs, events = 0, attempt, lo, ntok, lost_tokens = 0
    cdef double now = 0.0, t_c, t_a, t_r, t_ch, wait, tokt, last = 0.0, up = 0.0
    cdef double lost = 0.0
    cdef int st, failed = 0, kind
    cdef bint churn = mtbf_ms > 0.0
    cdef double* rht = <double*> malloc((N + 1) * sizeof(double))
    cdef int64_t* rhc = <int64_t*> malloc((N + 1) * sizeof(int64_t))
    cdef double* cht = <double*> malloc((S + 1) * sizeof(double))
    cdef int64_t* chc = <int64_t*> malloc((S + 1) * sizeof(int64_t))
    cdef uint64_t* rng = <uint64_t*> malloc((S + 1) * sizeof(uint64_t))
    cdef double* up_since = <double*> malloc((S + 1) * sizeof(double))
    cdef int64_t* buf = <int64_t*> malloc((N + 1) * sizeof(int64_t))
    cdef double* log_t = NULL
    cdef int64_t* log_c = NULL
    cdef void* grow
    cdef int64_t a_, m_
    cdef int64_t[::1] cv
    if not (N == client.shape[0] == output_tokens.shape[0] == noise.shape[0]
            == start_ms.shape[0] == end_ms.shape[0] == ttft_ms.shape[0] == wait_ms.shape[0]
            == retries.shape[0] == interruptions.shape[0] == path_offset.shape[0]
            == path_len.shape[0]) or (N > 0 and not _all_in_range(&client[0], N, 0, eng.C)):
        free(rht); free(rhc); free(cht); free(chc); free(rng); free(up_since); free(buf)
        _require(False, "request array shapes or client index out of range")
    if not (rht and rhc and cht and chc and rng and up_since and buf):
        free(rht); free(rhc); free(cht); free(chc); free(rng); free(up_since); free(buf)
        raise MemoryError()
    if eng.nactive or eng._grow_slots(N + 1) < 0:
        free(rht); free(rhc); free(cht); free(chc); free(rng); free(up_since); free(buf)
        raise MemoryError() if not eng.nactive else ValueError("engine has sessions")
    eng.keep_chains = True
    try:
        with nogil:
            for r in range(N):
                start_ms[r] = end_ms[r] = ttft_ms[r] = wait_ms[r] = 0.0 / 0.0
                retries[r] = 0
                interruptions[r] = 0
                path_offset[r] = -1
                path_len[r] = 0
            if churn:
                for j in range(S):
                    rng[j] = _mix64(churn_key ^ (<uint64_t> (j + 1) * <uint64_t> 0xD1B54A32D192ED03))
                    up_since[j] = 0.0
                    _heap_push(cht, chc, &nch, _exp_draw(&rng[j], mtbf_ms), 2 * j)
            while True:
                if i_arr >= N and eng.nactive == 0 and nr == 0:
                    break
                t_c = eng._next_end(&cs)
                t_a = arrival_ms[i_arr] + delay_ms if i_arr < N else INFINITY
                t_r = rht[0] if nr > 0 else INFINITY
                t_ch = cht[0] if nch > 0 else INFINITY
                if t_c <= t_a and t_c <= t_r and t_c <= t_ch:
                    if t_c == INFINITY:
                        break
                    # ---- completion: release the cache on every server of the chain ----
                    now = t_c
                    events += 1
                    if eng._advance(now, cs) < 0 or eng._finish(cs, now) < 0:
                        failed = 1
                        break
                    if eng.nupd:
                        _record_updates(eng, arrival_ms, delay_ms, start_ms, end_ms, ttft_ms,
                                        wait_ms, path_offset, path_len)
                    last = now
                    continue
                if t_a <= t_r and t_a <= t_ch:
                    now = t_a
                    r = i_arr
                    i_arr += 1
                elif t_r <= t_ch:
                    now = t_r
                    r = rhc[0] >> 1
                    _heap_pop(rht, rhc, &nr)
                else:
                    # ---- churn: a server fails (its sessions re-routed) or comes back ----
                    now = t_ch
                    code = chc[0]
                    _heap_pop(cht, chc, &nch)
                    j = code >> 1
                    kind = code & 1
                    events += 1
                    last = now
                    if nlog == logcap:
                        logcap = 2 * logcap + 256
                        grow = realloc(log_t, logcap * sizeof(double))
                        if not grow:
                            failed = 1
                            break
                        log_t = <double*> grow
                        grow = realloc(log_c, logcap * sizeof(int64_t))
                        if not grow:
                            failed = 1
                            break
                        log_c = <int64_t*> grow
                    log_t[nlog] = now
                    log_c[nlog] = code
                    nlog += 1
                    if max_churn_events >= 0 and nlog > max_churn_events:
                        failed = 2
                        break
                    if eng._advance(now, -1) < 0:
                        failed = 1
                        break
                    if kind == 0:
                        up += now - up_since[j]
                        n = _leave(eng, j, now, buf)
                        _heap_push(cht, chc, &nch, now + _exp_draw(&rng[j], mttr_ms), 2 * j + 1)
                        for q in range(n):
                            r = buf[q]
                            interruptions[r] += 1
                            lo = output_tokens[r]
                            if now > start_ms[r]:
                                lost += now - start_ms[r]
                            if now >= ttft_ms[r]:
                                ntok = lo
                                if lo > 1:
                                    tokt = (end_ms[r] - ttft_ms[r]) / (lo - 1)
                                    ntok = 1 + <int64_t> floor((now - ttft_ms[r]) / tokt)
                                    if ntok > lo:
                                        ntok = lo
                                lost_tokens += ntok
                            start_ms[r] = end_ms[r] = ttft_ms[r] = wait_ms[r] = 0.0 / 0.0
                            path_offset[r] = -1
                            path_len[r] = 0
                        # re-route the interrupted sessions at once, in request order
                        for q in range(n):
                            r = buf[q]
                            st = eng._route(r, client[r], output_tokens[r], now, noise[r])
                            if st < 0:
                                failed = 1
                                break
                            if st == ROUTE_BOOKED:
                                _record(eng, r, arrival_ms[r] + delay_ms, start_ms, end_ms,
                                        ttft_ms, wait_ms, path_offset, path_len)
                            elif st == ROUTE_QUEUED:
                                pass              # JFFC: starts when a slot is handed over
                            else:
                                retries[r] += 1
                                if retries[r] <= max_attempts:
                                    attempt = retries[r] - 1
                                    wait = backoff_base_ms
                                    while attempt > 0 and wait < backoff_cap_ms:
                                        wait = wait * 2.0
                                        attempt -= 1
                                    if wait > backoff_cap_ms:
                                        wait = backoff_cap_ms
                                    _heap_push(rht, rhc, &nr, now + wait, 2 * r + 1)
                        if failed:
                            break
                    else:
                        if _join(eng, j, &a_, &m_) < 0:
                            failed = 1
                            break
                        if eng.nupd:
                            _record_updates(eng, arrival_ms, delay_ms, start_ms, end_ms,
                                            ttft_ms, wait_ms, path_offset, path_len)
                        up_since[j] = now
                        _heap_push(cht, chc, &nch, now + _exp_draw(&rng[j], mtbf_ms), 2 * j)
                    continue
                # ---- route request r at time `now` ----
                events += 1
                last = now
                if eng._advance(now, -1) < 0:
                    failed = 1
                    break
                st = eng._route(r, client[r], output_tokens[r], now, noise[r])
                if st < 0:
                    failed = 1
                    break
                if st == ROUTE_BOOKED:
                    start_ms[r] = eng.ss[r].start
                    end_ms[r] = eng.ss[r].end
                    ttft_ms[r] = eng.ss[r].start + eng.ss[r].pre
                    wait_ms[r] = (now - (arrival_ms[r] + delay_ms)) + (eng.ss[r].start - now)
                    path_offset[r] = eng.ss[r].off
                    path_len[r] = eng.ss[r].len
                    continue
                if st == ROUTE_QUEUED:
                    continue              # JFFC: starts when a slot is handed over
                if st == ROUTE_NO_CHAIN and not churn:
                    continue              # no chain can ever serve it: dropped (NaN times)
                retries[r] += 1
                if retries[r] > max_attempts:
                    continue              # gave up: dropped
                attempt = retries[r] - 1
                wait = backoff_base_ms
                while attempt > 0 and wait < backoff_cap_ms:
                    wait = wait * 2.0
                    attempt -= 1
                if wait > backoff_cap_ms:
                    wait = backoff_cap_ms
                _heap_push(rht, rhc, &nr, now + wait, 2 * r + 1)
            if churn:
                for j in range(S):
                    if eng.alv[j]:
                        up += last - up_since[j]
        if failed == 2:
            raise ChurnEventLimit(nlog - 1, now)
        if failed:
            raise MemoryError()
        chains = np.empty(eng.arena_size, dtype=np.int64)
        if eng.arena_size:
            cv = chains
            memcpy(&cv[0], eng.arena, eng.arena_size * sizeof(int64_t))
        log_time = np.empty(nlog)
        log_server = np.empty(nlog, dtype=np.int64)
        log_kind = np.empty(nlog, dtype=np.int8)
        for q in range(nlog):
            log_time[q] = log_t[q]
            log_server[q] = log_c[q] >> 1
            log_kind[q] = log_c[q] & 1
        return (chains, events, (log_time, log_server, log_kind), lost, lost_tokens,
                up if churn else last * S, last)
    finally:
        free(rht); free(rhc); free(cht); free(chc); free(rng); free(up_since); free(buf)
        free(log_t); free(log_c)
