# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernel for (n, k) fork-join queues with purging and per-(core, job) speed
levels (distalloc.queueing.simulate).

Every core serves the same job sequence FCFS, so the system is a recursion over jobs:
core i starts job j at S_ij = max(A_j, F_i) (F_i: when it finished or abandoned job j-1),
would finish at C_ij = S_ij + E_ij / mu[level_ij], the job departs at D_j = k-th smallest
C_ij, and the core is free again at F_i = min(C_ij, D_j) (or S_ij if the task was purged
before it started).  O(n) per job plus an O(n) selection; no event heap needed.

The caller streams pre-drawn randomness in chunks (inter-arrival gaps, unit exponentials,
uniforms for the speed draw) and carries the state (core free times, clock) between
chunks, so results are reproducible from numpy's Generator and memory stays flat.
Per batch of jobs the kernel accumulates response time, busy time and busy energy, and per
speed level the number of task completions and busy time.
"""
from libc.stdint cimport int64_t

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


def fork_join_chunk(const double[::1] gaps, const double[:, ::1] work,
                    const double[:, ::1] speed_u, const double[::1] cum_prob,
                    const double[::1] rate, const double[::1] busy_power, int64_t k,
                    double[::1] core_free, double clock, int64_t job_offset,
                    int64_t warmup, int64_t batch_size,
                    double[::1] batch_response, double[::1] batch_busy_time,
                    double[::1] batch_busy_energy, double[::1] batch_first_arrival,
                    int64_t[::1] batch_jobs, int64_t[::1] completions,
                    double[::1] level_busy_time, double[::1] scratch):
    """Advance the system by ``gaps.shape[0]`` jobs; returns the new clock (last arrival).

    Jobs with global index < ``warmup`` update the state only.  Speed level of core i
    for job j: the first l with speed_u[j, i] < cum_prob[l]."""
    cdef Py_ssize_t B = gaps.shape[0], n = work.shape[1], s = rate.shape[0]
    cdef Py_ssize_t j, i, l, b
    cdef double A = clock, S, C, D, F, busy
    cdef int64_t g
    cdef int lev
    with nogil:
        for j in range(B):
            A = A + gaps[j]
            for i in range(n):
                S = core_free[i] if core_free[i] > A else A
                lev = 0
                while lev < s - 1 and speed_u[j, i] >= cum_prob[lev]:
                    lev += 1
                scratch[i] = S + work[j, i] / rate[lev]
                scratch[n + i] = S
                scratch[2 * n + i] = lev
            # departure: k-th smallest completion time (copy, selection reorders)
            for i in range(n):
                scratch[3 * n + i] = scratch[i]
            D = _kth_smallest(&scratch[3 * n], n, k)
            g = job_offset + j
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
                lev = <int> scratch[2 * n + i]
                if S >= D:
                    continue            # purged while queued: the core skips it
                F = C if C < D else D
                busy = F - S
                core_free[i] = F
                if b >= 0:
                    batch_busy_time[b] += busy
                    batch_busy_energy[b] += busy * busy_power[lev]
                    level_busy_time[lev] += busy
                    if C <= D:
                        completions[lev] += 1
    return A
