# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernel for (n, k) fork-join queues with purging and per-(core, job) speed
levels (distalloc.queueing.simulate and the saturated runs of distalloc.queueing.stability).

Every core serves the same job sequence FCFS, so the system is a recursion over jobs:
core i starts job j at S_ij = max(A_j, F_i) (F_i: when it finished or abandoned job j-1),
would finish at C_ij = S_ij + E_ij / mu[level_ij], the job departs at D_j = k-th smallest
C_ij, and the core is free again at F_i = min(C_ij, D_j) (or S_ij if the task was purged
before it started).  O(n) per job plus an O(n) selection; no event heap needed.

Speed levels.  Built in: level_ij = the first l with u_ij < cum_prob[l] (fixed
probabilities).  A user rule: level_ij = rule(i, q_ij, u_ij), a C function
``int64_t rule(int64_t core, int64_t queue_length, double u)`` reached through its address
(a numba.cfunc, scipy.LowLevelCallable convention) and called without the GIL.  q_ij is
the number of tasks at core i (in service or waiting; purged ones gone) when job j arrives,
not counting job j's own task.  Tasks leave core i at E_ij = min(C_ij, D_j).  For the tasks
the core works on (completed or purged in service) E is nondecreasing in j -- each leaves
before the next starts -- so their leave times go to a FIFO ring; only tasks purged while
still queued leave out of order, and they go to a small binary min-heap.  At an arrival
both drop every time <= A_j, and q_ij = ring count + heap size: O(1) per task but for the
out-of-order purges.  Ring and heap are sized by the caller (a power of two); a full one
stops the chunk before job j changes anything and the caller grows them and resumes (the
return value says where).  In a saturated run (every job arrives at time 0) nothing has
left by time 0, so q_ij = j and nothing is tracked.

The caller streams pre-drawn randomness in chunks (inter-arrival gaps, unit exponentials,
uniforms for the speed draw) and carries the state (core free times, clock, heaps) between
chunks, so results are reproducible from numpy's Generator and memory stays flat.
Per batch of jobs the kernel accumulates response time, busy time and busy energy, and per
speed level the number of task completions and busy time; optionally it records every
departure time.
"""
from libc.stdint cimport int64_t, uintptr_t

ctypedef int64_t (*speed_rule_t)(int64_t, int64_t, double) noexcept nogil


cdef double _kth_smallest(double* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """k-th smallest (1-based) of a[0:n], partially reordering a (quickselect)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, target = k - 1
    cdef double pivot, t
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]; a[i] = a[j]; a[j] = t
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break
    return a[target]


cdef inline void _heap_push(double* h, int64_t* size, double x) noexcept nogil:
    cdef int64_t i = size[0], parent
    size[0] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if h[parent] <= x:
            break
        h[i] = h[parent]
        i = parent
    h[i] = x


cdef inline void _heap_pop(double* h, int64_t* size) noexcept nogil:
    """Remove the smallest element (size must be > 0)."""
    cdef int64_t m = size[0] - 1, i = 0, c
    cdef double x = h[m]
    size[0] = m
    while True:
        c = 2 * i + 1
        if c >= m:
            break
        if c + 1 < m and h[c + 1] < h[c]:
            c += 1
        if h[c] >= x:
            break
        h[i] = h[c]
        i = c
    if m > 0:
        h[i] = x


def fork_join_chunk(const double[::1] gaps, const double[:, ::1] work,
                    const double[:, ::1] speed_u, const double[::1] cum_prob,
                    const double[::1] rate, const double[::1] busy_power, int64_t k,
                    double[::1] core_free, double[::1] clock, int64_t job_offset,
                    int64_t warmup, int64_t batch_size,
                    double[::1] batch_response, double[::1] batch_busy_time,
                    double[::1] batch_busy_energy, double[::1] batch_first_arrival,
                    int64_t[::1] batch_jobs, int64_t[::1] completions,
                    double[::1] level_busy_time, double[::1] scratch,
                    uintptr_t rule_address, double[:, :, ::1] queue_buf,
                    int64_t[:, ::1] queue_state,
                    int64_t[::1] rule_errors, double[::1] departures,
                    int64_t start=0, bint saturated=False):
    """Advance the system over jobs ``start .. gaps.shape[0] - 1`` of this chunk.

    Returns the index (within the chunk) of the first job not processed: ``gaps.shape[0]``
    when done, less when a queue-length buffer is full (grow ``queue_buf`` and call again
    from there).  ``queue_buf`` (2, n, cap): the ring of in-order leave times, the heap of
    out-of-order ones; ``queue_state`` (3, n): ring head, ring count, heap size.  ``clock`` = [time of the last arrival, latest departure so far].

    Jobs with global index < ``warmup`` update the state only.  ``rule_address`` 0: the
    fixed-probability draw; otherwise the address of the speed rule.  A level the rule
    returns outside 0..s-1 is counted in ``rule_errors`` = [count, first core, first queue
    length, first level] and replaced by the nearest valid one (the caller reports it).
    ``departures``: if it has one entry per job of the chunk, D_j is written there.
    ``saturated``: every job arrives at time 0 (gaps ignored) and q_ij = j."""
    cdef Py_ssize_t B = gaps.shape[0], n = work.shape[1], s = rate.shape[0]
    cdef Py_ssize_t cap = queue_buf.shape[2], mask = cap - 1
    cdef Py_ssize_t j, i, b
    cdef double A = clock[0], last_departure = clock[1], S, C, D, F, busy, E
    cdef int64_t g, q, lev
    cdef bint use_rule = rule_address != 0
    cdef bint record = departures.shape[0] == B
    cdef speed_rule_t rule = <speed_rule_t> rule_address
    cdef Py_ssize_t stop = B
    cdef bint full = False
    cdef bint track = use_rule and not saturated
    cdef double* rings = &queue_buf[0, 0, 0]
    cdef double* heaps = &queue_buf[1, 0, 0]
    cdef int64_t* heads = &queue_state[0, 0]
    cdef int64_t* counts = &queue_state[1, 0]
    cdef int64_t* sizes = &queue_state[2, 0]
    cdef double* h
    cdef double a_prev
    if saturated:
        A = 0.0
    with nogil:
        for j in range(start, B):
            g = job_offset + j
            a_prev = A
            if not saturated:
                A = A + gaps[j]
            for i in range(n):
                if track:
                    # drop the tasks that left before this arrival; a full buffer stops
                    # the chunk before job j changes any state (pops are idempotent)
                    h = rings + i * cap
                    while counts[i] > 0 and h[heads[i]] <= A:
                        heads[i] = (heads[i] + 1) & mask
                        counts[i] -= 1
                    h = heaps + i * cap
                    while sizes[i] > 0 and h[0] <= A:
                        _heap_pop(h, &sizes[i])
                    if counts[i] >= cap or sizes[i] >= cap:
                        full = True
                        break
                S = core_free[i] if core_free[i] > A else A
                if use_rule:
                    q = g if saturated else counts[i] + sizes[i]
                    lev = rule(i, q, speed_u[j, i])
                    if lev < 0 or lev >= s:
                        if rule_errors[0] == 0:
                            rule_errors[1] = i
                            rule_errors[2] = q
                            rule_errors[3] = lev
                        rule_errors[0] += 1
                        lev = 0 if lev < 0 else s - 1
                else:
                    lev = 0
                    while lev < s - 1 and speed_u[j, i] >= cum_prob[lev]:
                        lev += 1
                scratch[i] = S + work[j, i] / rate[lev]
                scratch[n + i] = S
                scratch[2 * n + i] = lev
            if full:
                A = a_prev
                stop = j
                break
            # departure: k-th smallest completion time (copy, selection reorders)
            for i in range(n):
                scratch[3 * n + i] = scratch[i]
            D = _kth_smallest(&scratch[3 * n], n, k)
            if D > last_departure:
                last_departure = D
            if record:
                departures[j] = D
            b = (g - warmup) // batch_size if g >= warmup else -1
            if b >= batch_jobs.shape[0]:
                b = -1
            if b >= 0:
                if batch_jobs[b] == 0:
                    batch_first_arrival[b] = A
                batch_jobs[b] += 1
                batch_response[b] += D - A
            for i in range(n):
                C = scratch[i]
                S = scratch[n + i]
                lev = <int64_t> scratch[2 * n + i]
                E = C if C < D else D
                if S >= D and C > D:   # purged while queued: the core skips it (a task whose
                                       # service rounds to 0 at S = D completes at D)
                    if track:
                        _heap_push(heaps + i * cap, &sizes[i], E)
                    continue
                if track:
                    rings[i * cap + ((heads[i] + counts[i]) & mask)] = E
                    counts[i] += 1
                busy = E - S
                core_free[i] = E
                if b >= 0:
                    batch_busy_time[b] += busy
                    batch_busy_energy[b] += busy * busy_power[lev]
                    level_busy_time[lev] += busy
                    if C <= D:
                        completions[lev] += 1
    clock[0] = A
    clock[1] = last_departure
    return stop
