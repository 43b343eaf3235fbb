# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernels for fastest-k distributed SGD (distalloc.sgd).

* ``fastest_k_average`` — for each iteration (row), the k workers with the smallest response
  times (ties broken by worker index) and the average of their partial gradients.
* ``run_fastest_k``     — the fused simulation: per iteration take the pre-drawn response
  times, pick the k fastest workers, compute their partial gradients on their data
  partitions (least squares or l2-regularised logistic regression; the vectorised
  products of fastk_gradient.h), average,
  step, advance the wall clock by the k-th order statistic, record the error.  k comes from
  a schedule over wall-clock time (fixed k is a one-step schedule) or from the online
  Pflug-type test of SPEC 2.3, all inside the loop.
* ``run_async``         — asynchronous SGD: every worker's gradient, computed on the model
  it last received, is applied on arrival (staleness = updates since then).

Layering: helpers on raw pointers (selection, error; one worker's gradient in
fastk_gradient.h), then the loops; callers pass contiguous arrays and never user input.
"""
from libc.math cimport exp, log1p, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, malloc, free
from scipy.linalg.cython_blas cimport ddot, daxpy, dscal, dcopy

import numpy as np

cdef extern from "fastk_gradient.h" nogil:
    void fastk_matvec(const double* A, Py_ssize_t rows, Py_ssize_t d, const double* w,
                      double* z)
    void fastk_partial_gradient(const double* X, const double* y, Py_ssize_t s, Py_ssize_t d,
                                int problem, const double* w, double* r, double* g)
    void fastk_mean_rows(const double* base, const int64_t* idx, Py_ssize_t k, Py_ssize_t d,
                         double* out)


cdef void _fastest(const double* times, Py_ssize_t n, Py_ssize_t k, int64_t* idx) noexcept nogil:
    """idx[0:k] = the k smallest times, ordered by (time, worker index)."""
    cdef Py_ssize_t i, j, m = 0
    cdef int64_t cand
    for i in range(n):
        # insert i into the sorted prefix idx[0:m] if it belongs to the best k
        if m == k and not (times[i] < times[idx[k - 1]]):
            continue            # ties keep the earlier (smaller) index
        j = m if m < k else k - 1
        while j > 0 and times[i] < times[idx[j - 1]]:
            idx[j] = idx[j - 1]
            j -= 1
        idx[j] = i
        if m < k:
            m += 1


def fastest_k_average(const double[:, ::1] times, const double[:, :, ::1] grads,
                      const int64_t[::1] k, double[:, ::1] out, int64_t[:, ::1] chosen):
    """out[b] = mean of grads[b, i] over the k[b] fastest workers of row b;
    chosen[b, :k[b]] their indices (by time, then index)."""
    cdef Py_ssize_t B = times.shape[0], n = times.shape[1], d = grads.shape[2]
    cdef Py_ssize_t b, q
    cdef int64_t* idx = <int64_t*> malloc((n + 1) * sizeof(int64_t))
    if not idx:
        raise MemoryError()
    try:
        with nogil:
            for b in range(B):
                _fastest(&times[b, 0], n, k[b], idx)
                fastk_mean_rows(&grads[b, 0, 0], idx, k[b], d, &out[b, 0])
                for q in range(k[b]):
                    chosen[b, q] = idx[q]
    finally:
        free(idx)


cdef void _hessian_delta(Py_ssize_t d, const double* w, const double* w_star,
                        const double* H, double* delta, double* h_delta) noexcept nogil:
    """delta = w - w*, h_delta = H delta (least squares: the full gradient up to an offset)."""
    cdef Py_ssize_t j
    for j in range(d):
        delta[j] = w[j] - w_star[j]
    fastk_matvec(H, d, d, delta, h_delta)


cdef inline double _average_variance(double v, Py_ssize_t k, Py_ssize_t n) noexcept nogil:
    """Variance of the mean of k of the n fixed worker gradients (each of variance v),
    drawn without replacement: v / k (n - k) / (n - 1)."""
    return v / k * (n - k) / (n - 1) if n > 1 else 0.0


cdef double _error(const double* X, const double* y, Py_ssize_t m, Py_ssize_t d, int problem,
                   double reg, const double* w, const double* w_star, const double* H,
                   double f_star, double* tmp, double* tmp2) noexcept nogil:
    """F(w) - F*: least squares by the quadratic form 1/2 (w-w*)^T H (w-w*) (O(d^2)),
    leaving w - w* in tmp and H (w - w*) in tmp2; logistic by a full pass (O(m d))."""
    cdef int di = <int> d, one = 1
    cdef Py_ssize_t j
    cdef double acc = 0.0, z
    if problem == 0:
        _hessian_delta(d, w, w_star, H, tmp, tmp2)
        return 0.5 * ddot(&di, tmp, &one, tmp2, &one)
    fastk_matvec(X, m, d, w, tmp)
    for j in range(m):
        z = tmp[j]
        # log(1 + e^z) - y z, stably
        if z > 0:
            acc += z + log1p(exp(-z)) - y[j] * z
        else:
            acc += log1p(exp(z)) - y[j] * z
    acc = acc / m + 0.5 * reg * ddot(&di, <double*> w, &one, <double*> w, &one)
    return acc - f_star


# indices into run_fastest_k's integer and float state (kept by the caller between chunks)
cdef enum:
    S_IT = 0        # iterations so far
    S_NREC          # records written
    S_K             # k in use
    S_COUNTER       # Pflug counter
    S_SINCE         # iterations since the last switch (Pflug)
    S_UPLINK        # gradients received so far
    S_SW            # switch times passed (schedule)
    S_HAVE_PREV     # g_prev holds the previous gradient (Pflug)
    S_PENDING       # the last record's error is still to be computed
    S_HAVE_EST      # DBW has estimates
    S_INT_SIZE
cdef enum:
    F_TIME = 0      # wall clock
    F_VAR           # DBW: variance of one worker's partial gradient (moving average)
    F_GRAD2         # DBW: squared norm of the full gradient (moving average)
    F_FLOAT_SIZE

ADAPT_SCHEDULE, ADAPT_PFLUG, ADAPT_DBW = 0, 1, 2
INT_STATE_SIZE, FLOAT_STATE_SIZE = S_INT_SIZE, F_FLOAT_SIZE
STATE = {"iterations": S_IT, "records": S_NREC, "k": S_K, "uplink": S_UPLINK,
         "pending": S_PENDING, "time": F_TIME}


def run_fastest_k(const double[:, ::1] X, const double[::1] y, int64_t num_workers,
                  int problem, double reg, const double[:, ::1] times, double lr,
                  double[::1] w, double horizon,
                  const double[::1] switch_times, const int64_t[::1] k_values,
                  int adapt, int64_t step, int64_t thresh, int64_t burnin, int64_t k_max,
                  const double[::1] mu, double smoothness, double dbw_decay,
                  const double[::1] w_star, const double[:, ::1] H, double f_star,
                  const double[::1] grad_offset, int complement,
                  int64_t record_every,
                  double[::1] rec_time, double[::1] rec_error, int64_t[::1] rec_k,
                  int64_t[::1] rec_iter, int64_t[::1] rec_uplink,
                  int64_t[::1] istate, double[::1] fstate, double[::1] g_prev):
    """Fastest-k SGD over the rows of ``times`` or until wall-clock ``horizon``; resumable.

    The run's state (``istate``/``fstate``, indices S_* and F_*, and ``g_prev``) lives with
    the caller, so a long run is a sequence of calls on successive chunks of response
    times.  Before the first call: istate all 0 except S_K = the initial k and
    S_PENDING = 1; fstate all 0.  Record 0 (time 0) is written by the first call.

    k: ``adapt`` = ADAPT_SCHEDULE: k = k_values[#switch_times <= t] (fixed k: no switch
    times).  ADAPT_PFLUG (SPEC 2.3): k grows by ``step`` (up to k_max) when the counter of
    negative consecutive-gradient products exceeds ``thresh`` after more than ``burnin``
    iterations at the current k.  ADAPT_DBW (dynamic backup workers, Xu, Neglia,
    Sebastianelli 2020): after each iteration pick the k <= k_max that maximises the
    expected decrease of F per unit of wall-clock time under L-smoothness,

        [lr |grad F|^2 - (L lr^2 / 2) (|grad F|^2 + V_k)] / mu_k,
        V_k = v / k * (n - k) / (n - 1)     (k of n fixed partitions, without replacement)

    with v, the variance of one worker's partial gradient, and |grad F|^2 (the squared
    norm of the mean minus its variance) estimated from the gradients received, as moving
    averages with weight ``dbw_decay`` on the past; k_max when no k gains.

    Records (time, error, k, iterations so far, uplink gradients so far) every
    ``record_every`` iterations and when the horizon is reached; rec_* must have room for
    nrec + rows // record_every + 2 records.

    Least squares with ``complement`` (not with DBW, which needs each fast worker's own
    gradient): H must be the Hessian X^T X / m of these rows and ``grad_offset`` =
    H w* - X^T y / m (zero up to the rounding of w*), so that the full gradient is
    H (w - w*) + grad_offset.  When it is cheaper (k > n - k, or the error is due anyway
    and k > n - k - d / (2 s)), the sum over the k fastest workers is taken as the full
    sum minus the n - k slowest: n - k block passes and one d x d product instead of k
    block passes.  The master still receives k gradients; only the arithmetic moves.

    The error of a record is computed at the start of the next iteration (w is unchanged
    until then), where its H (w - w*) also serves the full gradient.

    Returns the number of rows used."""
    cdef Py_ssize_t m = X.shape[0], d = X.shape[1], n = num_workers
    cdef Py_ssize_t s = m // n, row = 0, nrec = istate[S_NREC], q, i, j, kk
    cdef Py_ssize_t rows = times.shape[0], nswitch = switch_times.shape[0]
    cdef int64_t it = istate[S_IT], k = istate[S_K], counter = istate[S_COUNTER]
    cdef int64_t since = istate[S_SINCE], uplink = istate[S_UPLINK], sw = istate[S_SW]
    cdef bint have_prev = istate[S_HAVE_PREV] != 0, pending = istate[S_PENDING] != 0
    cdef bint have_est = istate[S_HAVE_EST] != 0, have_hd, use_full
    cdef double t = fstate[F_TIME], var_est = fstate[F_VAR], grad2_est = fstate[F_GRAD2]
    cdef double scale, prod, kth, full_scale, sumsq, mean2, v = 0.0, grad2, rate, best
    cdef double block_cost = 2.0 * s * d, hessian_cost = <double> d * d
    cdef Py_ssize_t maxrec = rec_time.shape[0]
    cdef int di = <int> d, one = 1
    cdef double dbl_one = 1.0
    cdef double* g = <double*> malloc(d * sizeof(double))
    cdef double* gi = <double*> malloc(d * sizeof(double))
    cdef double* r = <double*> malloc((s + 1) * sizeof(double))
    cdef double* tmp = <double*> malloc((m + d + 1) * sizeof(double))
    cdef double* tmp2 = <double*> malloc((d + 1) * sizeof(double))
    cdef int64_t* idx = <int64_t*> malloc((n + 1) * sizeof(int64_t))
    cdef char* fast = <char*> calloc(n + 1, sizeof(char))
    if not (g and gi and r and tmp and tmp2 and idx and fast):
        free(g); free(gi); free(r); free(tmp); free(tmp2); free(idx); free(fast)
        raise MemoryError()
    try:
        with nogil:
            if nrec == 0:
                rec_time[0] = 0.0
                rec_k[0] = k
                rec_iter[0] = 0
                rec_uplink[0] = 0
                nrec = 1
                pending = True
            while row < rows and t < horizon:
                have_hd = False
                if pending:
                    rec_error[nrec - 1] = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0],
                                                 &w_star[0], &H[0, 0], f_star, tmp, tmp2)
                    pending = False
                    have_hd = problem == 0
                if adapt == 0:
                    while sw < nswitch and switch_times[sw] <= t:
                        sw += 1
                    k = k_values[sw]
                _fastest(&times[row, 0], n, k, idx)
                kth = times[row, idx[k - 1]]
                use_full = (complement and problem == 0 and adapt != 2 and
                            (n - k) * block_cost + (0.0 if have_hd else hessian_cost)
                            < k * block_cost)
                sumsq = 0.0
                if use_full:
                    # g = (sum over the n - k slowest) - (sum over all) = -(sum over the k fastest)
                    if not have_hd:
                        _hessian_delta(d, &w[0], &w_star[0], &H[0, 0], tmp, tmp2)
                    full_scale = -<double> (n * s)
                    for j in range(d):
                        g[j] = full_scale * (tmp2[j] + grad_offset[j])
                    for q in range(k):
                        fast[idx[q]] = 1
                    for i in range(n):
                        if fast[i]:
                            fast[i] = 0
                        else:
                            fastk_partial_gradient(&X[i * s, 0], &y[i * s], s, d, problem,
                                                   &w[0], r, g)
                    scale = -1.0 / (k * s)
                else:
                    for j in range(d):
                        g[j] = 0.0
                    for q in range(k):
                        i = idx[q]
                        if adapt == 2:      # each worker's own gradient, for its variance
                            for j in range(d):
                                gi[j] = 0.0
                            fastk_partial_gradient(&X[i * s, 0], &y[i * s], s, d, problem,
                                                   &w[0], r, gi)
                            daxpy(&di, &dbl_one, gi, &one, g, &one)
                            sumsq += ddot(&di, gi, &one, gi, &one)
                        else:
                            fastk_partial_gradient(&X[i * s, 0], &y[i * s], s, d, problem,
                                                   &w[0], r, g)
                    scale = 1.0 / (k * s)
                dscal(&di, &scale, g, &one)
                if adapt == 2 and k >= 2:
                    # workers' mean gradients g_i / s: v = sum |g_i/s - mean|^2 / (k - 1)
                    mean2 = ddot(&di, g, &one, g, &one)
                    v = (sumsq / (<double> s * s) - k * mean2) / (k - 1)
                    if v < 0:
                        v = 0.0
                if reg != 0.0:
                    daxpy(&di, &reg, &w[0], &one, g, &one)
                if adapt == 2 and (k >= 2 or have_est):
                    if k < 2:
                        v = var_est       # one gradient: no variance of its own
                    grad2 = ddot(&di, g, &one, g, &one) - _average_variance(v, k, n)
                    if grad2 < 0:
                        grad2 = 0.0
                    if have_est:
                        var_est = dbw_decay * var_est + (1 - dbw_decay) * v
                        grad2_est = dbw_decay * grad2_est + (1 - dbw_decay) * grad2
                    else:
                        var_est, grad2_est, have_est = v, grad2, True
                scale = -lr
                daxpy(&di, &scale, g, &one, &w[0], &one)
                t += kth
                uplink += k
                it += 1
                row += 1
                if adapt == 1:
                    since += 1
                    if have_prev:
                        prod = ddot(&di, g, &one, &g_prev[0], &one)
                        counter += 1 if prod < 0 else -1
                    dcopy(&di, g, &one, &g_prev[0], &one)
                    have_prev = True
                    if counter > thresh and since > burnin and k + step <= k_max:
                        k += step
                        counter = 0
                        since = 0
                elif adapt == 2 and have_est:
                    best = 0.0
                    k = k_max
                    for kk in range(1, k_max + 1):
                        rate = (lr * grad2_est - 0.5 * smoothness * lr * lr *
                                (grad2_est + _average_variance(var_est, kk, n))) / mu[kk - 1]
                        if rate > best:
                            best = rate
                            k = kk
                if (it % record_every == 0 or t >= horizon) and nrec < maxrec:
                    rec_time[nrec] = t
                    rec_k[nrec] = k
                    rec_iter[nrec] = it
                    rec_uplink[nrec] = uplink
                    nrec += 1
                    pending = True
            if pending and t >= horizon:
                rec_error[nrec - 1] = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0],
                                             &w_star[0], &H[0, 0], f_star, tmp, tmp2)
                pending = False
    finally:
        free(g); free(gi); free(r); free(tmp); free(tmp2); free(idx); free(fast)
    istate[S_IT], istate[S_NREC], istate[S_K], istate[S_COUNTER] = it, nrec, k, counter
    istate[S_SINCE], istate[S_UPLINK], istate[S_SW] = since, uplink, sw
    istate[S_HAVE_PREV], istate[S_PENDING], istate[S_HAVE_EST] = have_prev, pending, have_est
    fstate[F_TIME], fstate[F_VAR], fstate[F_GRAD2] = t, var_est, grad2_est
    return row


def run_async(const double[:, ::1] X, const double[::1] y, int64_t num_workers, int problem,
              double reg, const double[:, ::1] times, double lr, double[::1] w, double horizon,
              const double[::1] w_star, const double[:, ::1] H, double f_star,
              int64_t record_every, double[::1] rec_time, double[::1] rec_error,
              int64_t[::1] rec_staleness, int64_t[::1] rec_iter):
    """Asynchronous SGD: worker i's j-th response time is times[j, i]; on arrival its
    gradient (on its stale model) is applied at once and it receives the new model.
    Records (time, error, staleness of the last update).  Returns (updates, records,
    whether the horizon was reached before the pre-drawn times ran out)."""
    cdef Py_ssize_t m = X.shape[0], d = X.shape[1], n = num_workers, s = m // n
    cdef Py_ssize_t rows = times.shape[0], i, j, best, nrec = 0, maxrec = rec_time.shape[0]
    cdef int64_t updates = 0
    cdef int di = <int> d, one = 1
    cdef double t = 0.0, scale
    cdef bint reached = False
    cdef double* snap = <double*> malloc(n * d * sizeof(double))
    cdef double* finish = <double*> malloc(n * sizeof(double))
    cdef int64_t* drawn = <int64_t*> malloc(n * sizeof(int64_t))
    cdef int64_t* version = <int64_t*> malloc(n * sizeof(int64_t))
    cdef double* g = <double*> malloc(d * sizeof(double))
    cdef double* r = <double*> malloc((s + 1) * sizeof(double))
    cdef double* tmp = <double*> malloc((m + d + 1) * sizeof(double))
    cdef double* tmp2 = <double*> malloc((d + 1) * sizeof(double))
    if not (snap and finish and drawn and version and g and r and tmp and tmp2):
        free(snap); free(finish); free(drawn); free(version); free(g); free(r); free(tmp); free(tmp2)
        raise MemoryError()
    try:
        with nogil:
            for i in range(n):
                dcopy(&di, &w[0], &one, &snap[i * d], &one)
                finish[i] = times[0, i]
                drawn[i] = 1
                version[i] = 0
            rec_time[0] = 0.0
            rec_error[0] = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0], &w_star[0],
                                  &H[0, 0], f_star, tmp, tmp2)
            rec_staleness[0] = 0
            rec_iter[0] = 0
            nrec = 1
            while True:
                best = 0
                for i in range(1, n):
                    if finish[i] < finish[best]:
                        best = i
                if finish[best] >= horizon:
                    reached = True
                    break
                if drawn[best] >= rows:
                    break
                t = finish[best]
                for j in range(d):
                    g[j] = 0.0
                fastk_partial_gradient(&X[best * s, 0], &y[best * s], s, d, problem,
                                       &snap[best * d], r, g)
                scale = 1.0 / s
                dscal(&di, &scale, g, &one)
                if reg != 0.0:
                    daxpy(&di, &reg, &snap[best * d], &one, g, &one)
                scale = -lr
                daxpy(&di, &scale, g, &one, &w[0], &one)
                updates += 1
                dcopy(&di, &w[0], &one, &snap[best * d], &one)
                finish[best] = t + times[drawn[best], best]
                drawn[best] += 1
                if updates % record_every == 0 and nrec < maxrec:
                    rec_time[nrec] = t
                    rec_error[nrec] = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0],
                                             &w_star[0], &H[0, 0], f_star, tmp, tmp2)
                    rec_staleness[nrec] = updates - 1 - version[best]
                    rec_iter[nrec] = updates
                    nrec += 1
                version[best] = updates
    finally:
        free(snap); free(finish); free(drawn); free(version); free(g); free(r); free(tmp); free(tmp2)
    return updates, nrec, reached
