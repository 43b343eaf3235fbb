# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""Compiled kernels for fastest-k distributed SGD (distalloc.sgd).

* ``fastest_k_average`` — for each iteration (row), the k workers with the smallest response
  times (ties broken by worker index) and the average of their partial gradients.
* ``KCore``             — the k decision (fixed, bound schedule, Pflug, DBW, a user's
  compiled callback): the state of sgd_policy.pxd's ``k_observe`` with a Python door,
  used by distalloc.sgd.KController and therefore by the real Dask runner.
* ``run_fastest_k``     — the fused simulation: per iteration take the pre-drawn response
  times, pick the k fastest workers, compute their partial gradients on their data
  partitions (least squares or l2-regularised logistic regression; the vectorised
  products of fastk_gradient.h), average, step, advance the wall clock by the k-th order
  statistic, record the error.  The next k comes from the KCore it is given, through the
  same ``k_observe`` call, inside the loop and without the GIL.
* ``run_async``         — asynchronous SGD: every worker's gradient, computed on the model
  it last received, is applied on arrival (staleness = updates since then); resumable
  over successive chunks of response times like run_fastest_k.

Layering: helpers on raw pointers (selection, error; one worker's gradient in
fastk_gradient.h), then the loops; callers pass contiguous arrays and never user input.
"""
from libc.math cimport exp, log1p, isfinite, NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, malloc, free
from scipy.linalg.cython_blas cimport ddot, daxpy, dscal, dcopy

from sgd_policy cimport *

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


cdef class KCore:
    """The k decision's state (sgd_policy.pxd ``KState``) and its Python door.

    ``kind``: K_SCHEDULE (``switch_times``/``k_values``; fixed k = no switch times),
    K_PFLUG (``k0``, ``step``, ``thresh``, ``burnin``), K_DBW (``k0``, ``mu``, ``lr``,
    ``smoothness``, ``decay``), K_CALLBACK (``fn_address`` of a C function with the
    kpolicy_fn signature; ``fn_owner`` keeps it alive).  k never leaves 1..k_max."""

    cdef KState st
    cdef double[::1] _switch_times, _mu
    cdef int64_t[::1] _k_values
    cdef int64_t* _idx
    cdef object _fn_owner

    def __cinit__(self):
        self._idx = NULL

    def __init__(self, int kind, int64_t workers, int64_t k0, int64_t k_max, int64_t step,
                 int64_t thresh, int64_t burnin, switch_times, k_values, mu, double lr,
                 double smoothness, double decay, size_t fn_address=0, fn_owner=None):
        self._switch_times = np.ascontiguousarray(switch_times, dtype=np.float64)
        self._k_values = np.ascontiguousarray(k_values, dtype=np.int64)
        self._mu = np.ascontiguousarray(mu, dtype=np.float64)
        if kind == K_SCHEDULE and self._k_values.shape[0] != self._switch_times.shape[0] + 1:
            raise ValueError("k_values must have one more entry than switch_times")
        if kind == K_DBW and self._mu.shape[0] < k_max:
            raise ValueError("mu must have k_max entries")
        if kind == K_CALLBACK and fn_address == 0:
            raise ValueError("a callback policy needs a function address")
        self._fn_owner = fn_owner
        self._idx = <int64_t*> malloc((workers + 1) * sizeof(int64_t))
        if not self._idx:
            raise MemoryError()
        self.st.kind = kind
        self.st.n, self.st.k, self.st.k_max = workers, k0, k_max
        self.st.step, self.st.thresh, self.st.burnin = step, thresh, burnin
        self.st.it = self.st.counter = self.st.since = self.st.sw = self.st.clipped = 0
        self.st.nswitch = self._switch_times.shape[0]
        self.st.t, self.st.lr, self.st.smoothness, self.st.decay = 0.0, lr, smoothness, decay
        self.st.var_est = self.st.grad2_est = 0.0
        self.st.have_est = False
        self.st.switch_times = &self._switch_times[0] if self.st.nswitch else NULL
        self.st.k_values = &self._k_values[0]
        self.st.mu = &self._mu[0] if self._mu.shape[0] else NULL
        self.st.fn = <kpolicy_fn> fn_address
        with nogil:
            k_initial(&self.st)

    def __dealloc__(self):
        free(self._idx)

    def observe(self, const double[::1] response_times, double gradient_dot,
                double worker_var, double grad_sq):
        """One iteration at the current k: its duration is the k-th smallest of
        ``response_times`` (those received, at least k); returns the next k."""
        cdef Py_ssize_t m = response_times.shape[0]
        cdef int64_t k = self.st.k
        cdef Py_ssize_t i
        if m < k or m > self.st.n:
            raise ValueError(f"need between k = {k} and n = {self.st.n} response times, got {m}")
        for i in range(m):
            if not (response_times[i] >= 0 and isfinite(response_times[i])):
                raise ValueError(f"response times must be finite and >= 0, got {response_times[i]}")
        _fastest(&response_times[0], m, k, self._idx)
        return k_observe(&self.st, response_times[self._idx[k - 1]], gradient_dot,
                         worker_var, grad_sq)

    def advance(self, double duration, double gradient_dot, double worker_var, double grad_sq):
        """As ``observe`` with the iteration's duration given directly."""
        return k_observe(&self.st, duration, gradient_dot, worker_var, grad_sq)

    @property
    def k(self):
        return self.st.k

    @property
    def time(self):
        return self.st.t

    @property
    def iterations(self):
        return self.st.it

    @property
    def counter(self):
        return self.st.counter

    @property
    def clipped(self):
        return self.st.clipped

    @property
    def workers(self):
        return self.st.n

    @property
    def k_max(self):
        return self.st.k_max

    @property
    def uses_worker_gradients(self):
        """DBW needs each received worker's own gradient (for their variance)."""
        return self.st.kind == K_DBW


# indices into run_fastest_k's integer state (kept by the caller between chunks; the k
# decision's state, the clock included, lives in the KCore)
cdef enum:
    S_IT = 0        # iterations so far
    S_NREC          # records written
    S_UPLINK        # gradients received so far
    S_HAVE_PREV     # g_prev holds the previous gradient
    S_PENDING       # the last record's error is still to be computed
    S_DIVERGED      # a recorded error was not finite: the run stopped there
    S_INT_SIZE

K_KIND = {"schedule": K_SCHEDULE, "pflug": K_PFLUG, "dbw": K_DBW, "callback": K_CALLBACK}
INT_STATE_SIZE = S_INT_SIZE
STATE = {"iterations": S_IT, "records": S_NREC, "uplink": S_UPLINK, "pending": S_PENDING,
         "diverged": S_DIVERGED}


def run_fastest_k(const double[:, ::1] X, const double[::1] y, int64_t num_workers,
                  int problem, double reg, const double[:, ::1] times, double lr,
                  double[::1] w, double horizon, KCore ctl,
                  const double[::1] w_star, const double[:, ::1] H, double f_star,
                  const double[::1] grad_offset, int complement,
                  int64_t record_every,
                  double[::1] rec_time, double[::1] rec_error, int64_t[::1] rec_k,
                  int64_t[::1] rec_iter, int64_t[::1] rec_uplink,
                  int64_t[::1] istate, double[::1] g_prev, double[:, ::1] trace):
    """Fastest-k SGD over the rows of ``times`` or until wall-clock ``horizon``; resumable.

    The run's state lives with the caller (``istate``, indices S_*, ``g_prev``, and the
    KCore ``ctl`` whose clock is the run's wall clock), so a long run is a sequence of calls
    on successive chunks of response times.  Before the first call: istate all 0 except
    S_PENDING = 1, ``ctl`` fresh.  Record 0 (time 0) is written by the first call.

    k: each iteration uses ``ctl``'s k; after the step, ``k_observe`` (sgd_policy.pxd) gets
    the iteration's duration X_(k), the product of this averaged gradient with the previous
    one, and for DBW the variance of one worker's mean gradient and |g|^2, and gives the
    next k.  If ``trace`` has rows, row j receives (gradient product, variance, |g|^2) of
    iteration j of this call (NaN where not computed).

    Records (time, error, k in use from then on, iterations so far, uplink gradients so far)
    every ``record_every`` iterations and when the horizon is reached; rec_* must have room
    for nrec + rows // record_every + 2 records.  A record whose error is not finite stops
    the run (S_DIVERGED = 1).

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
    cdef Py_ssize_t s = m // n, row = 0, nrec = istate[S_NREC], q, i, j
    cdef Py_ssize_t rows = times.shape[0]
    cdef KState* st = &ctl.st
    cdef int64_t it = istate[S_IT], k = st.k, uplink = istate[S_UPLINK]
    cdef bint have_prev = istate[S_HAVE_PREV] != 0, pending = istate[S_PENDING] != 0
    cdef bint diverged = istate[S_DIVERGED] != 0, have_hd, use_full
    cdef bint worker_grads = st.kind == K_DBW, tracing = trace.shape[0] >= rows
    cdef double scale, prod, kth, full_scale, sumsq, mean2, v, grad_sq, err
    cdef double block_cost = 2.0 * s * d, hessian_cost = <double> d * d
    cdef Py_ssize_t maxrec = rec_time.shape[0]
    cdef int di = <int> d, one = 1
    cdef double dbl_one = 1.0
    if st.n != n:
        raise ValueError("the KCore's workers differ from num_workers")
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
            while row < rows and st.t < horizon and not diverged:
                have_hd = False
                if pending:
                    err = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0], &w_star[0],
                                 &H[0, 0], f_star, tmp, tmp2)
                    rec_error[nrec - 1] = err
                    pending = False
                    if not isfinite(err):
                        diverged = True
                        break
                    have_hd = problem == 0
                k = st.k
                _fastest(&times[row, 0], n, k, idx)
                kth = times[row, idx[k - 1]]
                use_full = (complement and problem == 0 and not worker_grads and
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
                        if worker_grads:    # each worker's own gradient, for its variance
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
                v = NAN
                if worker_grads and k >= 2:
                    # workers' mean gradients g_i / s: v = sum |g_i/s - mean|^2 / (k - 1)
                    mean2 = ddot(&di, g, &one, g, &one)
                    v = (sumsq / (<double> s * s) - k * mean2) / (k - 1)
                    if v < 0:
                        v = 0.0
                if reg != 0.0:
                    daxpy(&di, &reg, &w[0], &one, g, &one)
                grad_sq = ddot(&di, g, &one, g, &one) if worker_grads else NAN
                prod = ddot(&di, g, &one, &g_prev[0], &one) if have_prev else NAN
                dcopy(&di, g, &one, &g_prev[0], &one)
                have_prev = True
                if tracing:
                    trace[row, 0], trace[row, 1], trace[row, 2] = prod, v, grad_sq
                scale = -lr
                daxpy(&di, &scale, g, &one, &w[0], &one)
                uplink += k
                it += 1
                row += 1
                k = k_observe(st, kth, prod, v, grad_sq)
                if (it % record_every == 0 or st.t >= horizon) and nrec < maxrec:
                    rec_time[nrec] = st.t
                    rec_k[nrec] = k
                    rec_iter[nrec] = it
                    rec_uplink[nrec] = uplink
                    nrec += 1
                    pending = True
            if pending and st.t >= horizon:
                err = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0], &w_star[0],
                             &H[0, 0], f_star, tmp, tmp2)
                rec_error[nrec - 1] = err
                pending = False
                if not isfinite(err):
                    diverged = True
    finally:
        free(g); free(gi); free(r); free(tmp); free(tmp2); free(idx); free(fast)
    istate[S_IT], istate[S_NREC], istate[S_UPLINK] = it, nrec, uplink
    istate[S_HAVE_PREV], istate[S_PENDING], istate[S_DIVERGED] = have_prev, pending, diverged
    return row


# indices into run_async's state
cdef enum:
    A_UPDATES = 0   # updates applied so far
    A_NREC          # records written
    A_STARTED       # the workers hold their first model and response time
    A_DIVERGED
    A_INT_SIZE

ASYNC_INT_STATE_SIZE = A_INT_SIZE
ASYNC_STATE = {"updates": A_UPDATES, "records": A_NREC, "diverged": A_DIVERGED}


def run_async(const double[:, ::1] X, const double[::1] y, int64_t num_workers, int problem,
              double reg, const double[:, ::1] times, double lr, double[::1] w, double horizon,
              const double[::1] w_star, const double[:, ::1] H, double f_star,
              int64_t record_every, double[::1] rec_time, double[::1] rec_error,
              int64_t[::1] rec_staleness, int64_t[::1] rec_iter,
              int64_t[::1] istate, double[::1] snap, double[::1] finish,
              int64_t[::1] version):
    """Asynchronous SGD: each worker's response times are drawn from its column of
    ``times`` in turn; on arrival its gradient (on its stale model) is applied at once and it
    receives the new model.  Records (time, error, staleness of the last update).

    Resumable: the state (``istate``, indices A_*, ``snap`` (n d) the models the workers
    hold, ``finish`` (n) their next arrival times, ``version`` (n)) lives with the caller;
    before the first call istate is all 0.  A call returns when the next arrival is at or
    past ``horizon`` (returns True) or when a worker needs a response time beyond this
    chunk's rows (returns False: call again with fresh rows).  rec_* must have room for
    nrec + (n rows) // record_every + 2 records.  A non-finite error stops the run."""
    cdef Py_ssize_t m = X.shape[0], d = X.shape[1], n = num_workers, s = m // n
    cdef Py_ssize_t rows = times.shape[0], i, j, best, maxrec = rec_time.shape[0]
    cdef Py_ssize_t nrec = istate[A_NREC]
    cdef int64_t updates = istate[A_UPDATES]
    cdef int di = <int> d, one = 1
    cdef double t, scale, err
    cdef bint reached = False, started = istate[A_STARTED] != 0
    cdef bint diverged = istate[A_DIVERGED] != 0
    cdef int64_t* drawn = <int64_t*> calloc(n, sizeof(int64_t))
    cdef double* g = <double*> malloc(d * sizeof(double))
    cdef double* r = <double*> malloc((s + 1) * sizeof(double))
    cdef double* tmp = <double*> malloc((m + d + 1) * sizeof(double))
    cdef double* tmp2 = <double*> malloc((d + 1) * sizeof(double))
    if not (drawn and g and r and tmp and tmp2):
        free(drawn); free(g); free(r); free(tmp); free(tmp2)
        raise MemoryError()
    try:
        with nogil:
            if not started:
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
                started = True
            while not diverged:
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
                    err = _error(&X[0, 0], &y[0], m, d, problem, reg, &w[0], &w_star[0],
                                 &H[0, 0], f_star, tmp, tmp2)
                    rec_time[nrec] = t
                    rec_error[nrec] = err
                    rec_staleness[nrec] = updates - 1 - version[best]
                    rec_iter[nrec] = updates
                    nrec += 1
                    if not isfinite(err):
                        diverged = True
                version[best] = updates
    finally:
        free(drawn); free(g); free(r); free(tmp); free(tmp2)
    istate[A_UPDATES], istate[A_NREC], istate[A_STARTED], istate[A_DIVERGED] = (
        updates, nrec, started, diverged)
    return reached
