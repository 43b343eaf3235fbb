# cython: boundscheck=False, wraparound=False, initializedcheck=False, nonecheck=False
"""The k decision of fastest-k SGD, in ONE place (SPEC 2.5, 5.2).

``k_observe`` is called once per iteration, after the step, by the fused simulator kernel
(``sgd_kernels.run_fastest_k``, inside ``nogil``) and by ``sgd_kernels.KCore.observe``,
which the public ``distalloc.sgd.KController`` (and through it the real Dask runner) calls.
There is no second copy of any rule: fixed k and the bound schedule (a k per clock
interval), the Pflug test of SPEC 2.3, dynamic backup workers, and a user's compiled
callback (``int64 f(int64 iteration, float64 time, int64 last_k, int64 workers,
float64 gradient_dot, int64 counter)``, called through a C function pointer).

Inputs of one observation: the iteration's duration (the k-th smallest response time),
the product of this averaged gradient with the previous one (NaN on the first iteration),
and for DBW the variance of one worker's mean gradient (NaN if fewer than 2 arrived) and
the squared norm of the averaged gradient.
"""
from libc.stdint cimport int64_t

ctypedef int64_t (*kpolicy_fn)(int64_t, double, int64_t, int64_t, double, int64_t) noexcept nogil

cdef enum:
    K_SCHEDULE = 0      # k_values[#switch_times <= clock]; fixed k has no switch times
    K_PFLUG = 1
    K_DBW = 2
    K_CALLBACK = 3

ctypedef struct KState:
    int kind
    int64_t n, k, k_max, step, thresh, burnin
    int64_t it, counter, since, sw, nswitch, clipped
    double t, lr, smoothness, decay, var_est, grad2_est
    bint have_est
    const double* switch_times
    const int64_t* k_values
    const double* mu
    kpolicy_fn fn


cdef inline double k_average_variance(double v, int64_t k, int64_t n) noexcept nogil:
    """Variance of the mean of k of the n fixed worker gradients (each of variance v),
    drawn without replacement: v / k (n - k) / (n - 1)."""
    return v / k * (n - k) / (n - 1) if n > 1 else 0.0


cdef inline int64_t k_clip(KState* st, int64_t k) noexcept nogil:
    """A callback's k clipped to 1..k_max, counting every clip."""
    if k < 1:
        st.clipped += 1
        return 1
    if k > st.k_max:
        st.clipped += 1
        return st.k_max
    return k


cdef inline int64_t k_initial(KState* st) noexcept nogil:
    """The k of the first iteration (st.k holds K0 for Pflug and DBW)."""
    if st.kind == K_SCHEDULE:
        while st.sw < st.nswitch and st.switch_times[st.sw] <= st.t:
            st.sw += 1
        st.k = st.k_values[st.sw]
    elif st.kind == K_CALLBACK:
        st.k = k_clip(st, st.fn(0, 0.0, 0, st.n, 0.0 / 0.0, 0))
    return st.k


cdef inline int64_t k_observe(KState* st, double duration, double gradient_dot,
                              double worker_var, double grad_sq) noexcept nogil:
    """Account one iteration run at k = st.k that took ``duration``; return the next k.

    Counter (SPEC 2.3, kept for every policy so callbacks see it): +1 for a negative
    gradient product, -1 otherwise; it and the iterations-since-switch count restart at 0
    whenever k changes."""
    cdef int64_t k = st.k, new_k = st.k, kk
    cdef double v, grad2, rate, best
    st.t += duration
    st.it += 1
    st.since += 1
    if gradient_dot == gradient_dot:             # not NaN: there is a previous gradient
        st.counter += 1 if gradient_dot < 0 else -1
    if st.kind == K_SCHEDULE:
        while st.sw < st.nswitch and st.switch_times[st.sw] <= st.t:
            st.sw += 1
        new_k = st.k_values[st.sw]
    elif st.kind == K_PFLUG:
        if st.counter > st.thresh and st.since > st.burnin and k + st.step <= st.k_max:
            new_k = k + st.step
    elif st.kind == K_DBW:
        # Dynamic backup workers (Xu, Neglia, Sebastianelli 2020): moving averages of the
        # one-worker variance v and of |grad F|^2 = |g|^2 - V_k, then the k <= k_max that
        # maximises [lr G - (L lr^2 / 2)(G + V_k)] / mu_k; k_max when no k gains.
        if k >= 2 or st.have_est:
            v = worker_var if k >= 2 else st.var_est
            grad2 = grad_sq - k_average_variance(v, k, st.n)
            if grad2 < 0:
                grad2 = 0.0
            if st.have_est:
                st.var_est = st.decay * st.var_est + (1 - st.decay) * v
                st.grad2_est = st.decay * st.grad2_est + (1 - st.decay) * grad2
            else:
                st.var_est, st.grad2_est, st.have_est = v, grad2, True
        if st.have_est:
            best = 0.0
            new_k = st.k_max
            for kk in range(1, st.k_max + 1):
                rate = (st.lr * st.grad2_est - 0.5 * st.smoothness * st.lr * st.lr *
                        (st.grad2_est + k_average_variance(st.var_est, kk, st.n))) / st.mu[kk - 1]
                if rate > best:
                    best = rate
                    new_k = kk
    else:
        new_k = k_clip(st, st.fn(st.it, st.t, k, st.n, gradient_dot, st.counter))
    if new_k != k:
        st.counter = 0
        st.since = 0
    st.k = new_k
    return new_k
