"""Fastest-k distributed SGD runs (SPEC 2.1-2.4) on the fused compiled kernel; the k comes
from the KController the real runner (cluster.py) uses too."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._compiled import sgd_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.sgd.models import Exponential, ResponseModel, check_workers
from distalloc.sgd.policies import KController, parse_policy
from distalloc.sgd.problems import Problem, load_problem
from distalloc.sgd.schedule import Schedule, bound_schedule

__all__ = ["SGDResult", "run", "DivergenceError", "build_controller", "DEFAULT_LR",
           "DEFAULT_HORIZON", "MAX_ITERATIONS"]

DEFAULT_LR = {"synthetic": 0.0005, "diabetes": 0.05, "digits": 1.0}
DEFAULT_HORIZON = {"synthetic": 6000.0, "diabetes": 2000.0, "digits": 2000.0}
MAX_CHUNK_VALUES = 1 << 22     # response times drawn at a time (32 MB); long runs take more chunks
MAX_ITERATIONS = 10**7         # default refusal threshold for a run's estimated length
#                                (10^7 simulated iterations: ~10 min of one core at n = 50)


@dataclass(eq=False)
class SGDResult:
    """Error F(w) - F* against wall-clock time, the k in use, and communication totals.

    ``uplink_gradients`` = sum over iterations of k (gradients received by the master);
    ``downlink_models`` = n per iteration (the model is broadcast to every worker); for
    asynchronous SGD both equal the number of updates."""

    policy: str
    time: np.ndarray
    error: np.ndarray
    k: np.ndarray
    iterations: int
    uplink_gradients: int
    downlink_models: int
    workers: int
    wall_s: float
    uplink_at: np.ndarray | None = None      # cumulative counters at each record
    downlink_at: np.ndarray | None = None
    schedule: Schedule | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def time_to_error(self, target: float) -> float:
        """First recorded time with error <= target (inf if never)."""
        hit = np.flatnonzero(self.error <= target)
        return float(self.time[hit[0]]) if hit.size else math.inf

    def messages_to_error(self, target: float) -> tuple[float, float]:
        """(uplink gradients, downlink models) spent until the first record with error
        <= target (the kernel records both counters with each error)."""
        hit = np.flatnonzero(self.error <= target)
        if not hit.size:
            return math.inf, math.inf
        i = hit[0]
        return float(self.uplink_at[i]), float(self.downlink_at[i])

    def to_dict(self) -> dict[str, Any]:
        out = {"policy": self.policy, "time": self.time.tolist(), "error": self.error.tolist(),
               "k": self.k.tolist(), "iterations": self.iterations,
               "uplink_gradients": self.uplink_gradients,
               "downlink_models": self.downlink_models, "wall_s": self.wall_s}
        if self.schedule is not None:
            out["switch_times"] = self.schedule.switch_times.tolist()
        out.update(self.extra)
        return out


class DivergenceError(ValidationError):
    """The iterates diverged (F(w) - F* not finite): the step size is too large."""


def reachable_ks(pol: dict[str, Any], n: int, k_cap: int) -> tuple[int, int]:
    """The smallest and largest k a parsed policy can use (the bound schedule: 1..n)."""
    kind = pol["kind"]
    if kind == "fixed":
        return pol["k"], pol["k"]
    if kind == "pflug":
        return min(pol["k0"], k_cap), k_cap
    if kind == "bound":
        return 1, n
    return 1, k_cap                       # dbw, callback


def check_finite_means(model: ResponseModel, mu: np.ndarray, pol: dict[str, Any], policy: Any,
                       n: int, k_cap: int) -> None:
    """Refuse a policy that can use a k whose mean response time E[X_(k)] is infinite (one
    line naming k and the condition).  The bound schedule never switches to such a k (its
    switch time is infinite), so only its first k must have a finite mean."""
    lo, hi = reachable_ks(pol, n, k_cap)
    if pol["kind"] == "bound":
        hi = lo
    if math.isfinite(mu[hi - 1]):
        return
    finite = np.flatnonzero(np.isfinite(mu))
    kf = int(finite[-1]) + 1 if finite.size else 0
    if pol["kind"] == "fixed":
        fix = f"choose k <= {kf}" if kf else "no k has a finite mean"
    elif kf >= lo:
        fix = f"set k_max (--k-max) to {kf} or less"
    else:
        fix = "no usable k has a finite mean"
    raise ValidationError(f"The policy {str(policy)!r} can use k = {hi} of n = {n} workers, "
                          f"whose mean response time is not finite: "
                          f"{model.infinite_mean_reason(hi, n)}; {fix}.")


def check_iterations(estimate: float, max_iterations: int, what: str) -> None:
    if not estimate <= max_iterations:
        raise ValidationError(f"The run would take about {estimate:.3g} iterations ({what}), more "
                              f"than max_iterations = {max_iterations:g}; raise --max-iterations "
                              "(max_iterations) to allow it, or shorten the horizon.")


def divergence(problem: Problem, lr: float, where: str, allow: bool) -> dict[str, Any]:
    """The record's divergence flag, or a DivergenceError naming the step size."""
    L = problem.constants(problem.w_star)["smoothness"]
    msg = (f"The run diverged: F(w) - F* stopped being finite {where}; lower lr (lr = {lr:g}, "
           f"lr x L = {lr * L:.3g}; plain gradient steps are stable for lr x L < 2).")
    if not allow:
        raise DivergenceError(msg)
    return {"diverged": True, "divergence": msg}


def build_controller(problem: Problem, n: int, policy: Any, eta: float, model: ResponseModel,
                     k_max: int | None, *, mu: np.ndarray | None = None
                     ) -> tuple[KController, dict[str, Any], Schedule | None, np.ndarray]:
    """The KController of ``policy`` for this problem and response-time model (the bound
    schedule and DBW's constants from the data, mu_k from the model), after refusing ks
    with infinite mean.  Shared by :func:`run` and the real runner."""
    pol = parse_policy(policy, n)
    k_cap = n if k_max is None else check_number(k_max, "k_max", low=1, high=n, integer=True)
    mu = model.order_stat_means(n) if mu is None else mu
    check_finite_means(model, mu, pol, policy, n, k_cap)
    schedule, smoothness = None, None
    w0 = np.zeros(problem.dim)
    if pol["kind"] == "bound":
        const = problem.constants(w0)
        if not eta * const["strong_convexity"] < 1:
            raise ValidationError(f"The 'bound' policy needs lr x strong_convexity < 1. Got "
                                  f"{eta * const['strong_convexity']:g} instead.")
        schedule = bound_schedule(n, eta, const["smoothness"], const["strong_convexity"],
                                  const["noise_var"], problem.num_samples // n,
                                  const["initial_gap"], model=model, step=pol["step"], mu=mu)
    elif pol["kind"] == "dbw":
        smoothness = problem.constants(w0)["smoothness"]
    ctl = KController(policy, n, k_max=k_cap, schedule=schedule, order_stat_means=mu, lr=eta,
                      smoothness=smoothness)
    return ctl, pol, schedule, mu


def run(problem: Problem | str = "synthetic", workers: int = 50, policy: Any = "pflug", *,
        horizon: float | None = None, lr: float | None = None,
        model: ResponseModel | None = None, seed: Any = 0, k_max: int | None = None,
        record_every: int | None = None, max_iterations: int = MAX_ITERATIONS,
        allow_divergence: bool = False) -> SGDResult:
    """Simulate distributed SGD with the master waiting for the fastest k of ``workers``.

    Parameters
    ----------
    problem : Problem or {'synthetic', 'diabetes', 'digits'}
    workers : int
        n; the m rows are split evenly (s = m // n each, the remainder unused).
    policy : str or CompiledPolicy
        'fixed:K', 'sync', 'bound[:STEP]' (SPEC 2.2 with L, c, sigma^2, F(w0) - F*
        estimated from the data), 'pflug[:K0:STEP:THRESH:BURNIN]' (SPEC 2.3, defaults
        10:10:10:200), 'dbw[:K0]' (dynamic backup workers: each iteration the k that
        maximises the expected decrease of F per unit time, from online estimates of the
        gradient norm and variance; starts at K0, default k_max), 'async' (every gradient
        applied on arrival), or a user's :func:`compiled_policy` (SPEC 5.2).
    horizon : float
        wall-clock time units (default: 6000 synthetic, 2000 otherwise).
    lr : float
        step size eta (default: 0.0005 synthetic as in the paper, 0.05 diabetes, 1 digits;
        divided by n for 'async', whose stale one-worker updates diverge otherwise).
    model : ResponseModel
        response times (default Exp(1), i.i.d. per worker and iteration).
    seed : int
        response times (the synthetic data set uses seed 0 unless a Problem is given).
    k_max : int
        cap for pflug, dbw and compiled policies (default n).
    record_every : int
        iterations between error records (default: about 8 000 records over the run).
    max_iterations : int
        refuse runs expected to take more iterations (estimated from the horizon and the
        smallest usable k's mean response time) before starting; the default, 10^7, is
        about ten minutes of one core at n = 50 (an iteration costs ~60 µs there).
    allow_divergence : bool
        if the iterates diverge (F(w) - F* not finite), return the record up to there with
        ``extra['diverged'] = True`` instead of raising :class:`DivergenceError`.

    Returns
    -------
    SGDResult

    Raises
    ------
    ValidationError
        bad input; a policy that can use a k with infinite E[X_(k)]; an absurd run length.
    DivergenceError
        the run diverged (unless ``allow_divergence``).

    Notes
    -----
    Per iteration O(k s d) plus O(n k) to select the fastest k; for least squares with
    k > n / 2 the k fastest workers' sum is taken as the full gradient (from the Hessian,
    O(d^2)) minus the n - k slowest, O((n - k) s d).  The error is recorded every
    ``record_every`` iterations (least squares: O(d^2) from the Hessian, logistic: a full
    pass).  k comes from a :class:`KController`, the same object the real runner uses.
    """
    problem = load_problem(problem)
    n = check_number(check_workers(workers), "workers", low=1, high=problem.num_samples,
                     integer=True)
    pol = parse_policy(policy, n)
    T = check_number(horizon if horizon is not None else DEFAULT_HORIZON.get(problem.name, 2000.0),
                     "horizon", low=0, low_open=True)
    if lr is None:
        lr = DEFAULT_LR.get(problem.name, 0.01)
        if pol["kind"] == "async":
            lr = lr / n   # stale single-worker updates at the synchronous step size diverge
    eta = check_number(lr, "lr", low=0, low_open=True)
    model = Exponential(1.0) if model is None else model
    if not isinstance(model, ResponseModel):
        raise ValidationError(f"The 'model' parameter must be a ResponseModel. Got "
                              f"{type(model).__name__} instead.")
    max_it = check_number(max_iterations, "max_iterations", low=1, integer=True)
    if record_every is not None:
        record_every = check_number(record_every, "record_every", low=1, integer=True)
    rng = as_generator(seed)
    s = problem.num_samples // n
    problem = problem.restrict(n * s)
    if pol["kind"] == "async":
        return _run_async(problem, n, model, T, eta, rng, record_every, max_it, allow_divergence)
    ctl, pol, schedule, mu = build_controller(problem, n, policy, eta, model, k_max)
    k_lo = reachable_ks(pol, n, ctl.k_max)[0]
    with np.errstate(all="ignore"):
        estimate = float(T / mu[k_lo - 1])
    check_iterations(estimate, max_it, f"horizon {T:g} / E[X_({k_lo})] = {mu[k_lo - 1]:.3g}")
    if pol["kind"] == "bound":
        bounds = np.concatenate([[0.0], np.minimum(schedule.switch_times, T), [T]])
        kv = schedule.k_values
        expected_iters = float(np.sum(np.diff(np.maximum.accumulate(bounds)) / mu[kv - 1]))
    else:
        expected_iters = T / mu[ctl.k - 1]
    rows_wanted = int(2.0 * expected_iters) + 1000
    rows = min(rows_wanted, max(1000, MAX_CHUNK_VALUES // n))
    times = model.sample(rows, n, rng)
    every = record_every or max(1, rows_wanted // 8000)
    cap = rows // every + 3
    rec = [np.zeros(cap), np.zeros(cap)] + [np.zeros(cap, dtype=np.int64) for _ in range(3)]
    X, y = problem.X, problem.y
    w = np.zeros(problem.dim)
    least_squares = problem.loss == "least_squares"
    H = np.ascontiguousarray(problem.H)
    w_star = np.ascontiguousarray(problem.w_star)
    # full gradient = H (w - w*) + offset; the offset (zero up to w*'s rounding) is formed
    # from the residual so that it carries no cancellation
    grad_offset = (-(X.T @ (y - X @ w_star)) / X.shape[0] if least_squares
                   else np.zeros(problem.dim))
    index = sgd_kernels.STATE
    istate = np.zeros(sgd_kernels.INT_STATE_SIZE, dtype=np.int64)
    istate[index["pending"]] = 1
    g_prev = np.zeros(problem.dim)
    no_trace = np.zeros((0, 3))
    t0 = time.perf_counter()
    while True:
        need = istate[index["records"]] + times.shape[0] // every + 3
        if need > rec[0].size:   # grow the record buffers, keeping what is written
            rec = [np.concatenate([a, np.zeros(need + a.size, dtype=a.dtype)]) for a in rec]
        sgd_kernels.run_fastest_k(
            X, y, n, 0 if least_squares else 1, problem.reg, times, eta, w, T, ctl._core,
            w_star, H, problem.f_star, grad_offset, int(least_squares), every, *rec, istate,
            g_prev, no_trace)
        t_now = ctl.time
        if t_now >= T or istate[index["diverged"]]:
            break
        # more response times: enough for the rest at the current k, within the cap
        rows = min(int(1.5 * (T - t_now) / mu[ctl.k - 1]) + 1000, max(1000, MAX_CHUNK_VALUES // n))
        times = model.sample(rows, n, rng)
    wall = time.perf_counter() - t0
    nrec = int(istate[index["records"]])
    iterations, uplink = int(istate[index["iterations"]]), int(istate[index["uplink"]])
    rec_t, rec_e, rec_k, rec_iter, rec_up = rec
    check_clock(rec_t[:nrec], model)
    extra: dict[str, Any] = {"record_every": every, "lr": eta, "horizon": T, "diverged": False}
    if pol["kind"] == "callback":
        extra["k_clipped"] = ctl.clipped
    if istate[index["diverged"]]:
        extra.update(divergence(problem, eta, f"at t = {rec_t[nrec - 1]:.6g} (iteration "
                                f"{rec_iter[nrec - 1]})", allow_divergence))
    return SGDResult(str(policy), rec_t[:nrec].copy(), rec_e[:nrec].copy(), rec_k[:nrec].copy(),
                     iterations, uplink, iterations * n, n, wall, rec_up[:nrec].copy(),
                     rec_iter[:nrec] * n, schedule, extra=extra)


def check_clock(rec_time: np.ndarray, model: ResponseModel) -> None:
    if not np.all(np.isfinite(rec_time)):
        raise ValidationError(f"The wall clock overflowed float64: a response time drawn from "
                              f"{model.spec} was not finite; use a smaller time unit (scale).")


def _run_async(problem, n, model, T, eta, rng, record_every, max_it, allow_divergence):
    """Asynchronous SGD on the resumable kernel, in chunks of response times."""
    mean_x = model.order_stat_mean(1, 1)
    typical = mean_x if math.isfinite(mean_x) else float(np.median(model.sample(1001, 1, 12345)))
    if not (typical > 0 and math.isfinite(typical)):
        raise ValidationError(f"The response times of {model.spec} are not finite positive "
                              "float64 values.")
    with np.errstate(all="ignore"):
        estimate = float(np.float64(n) * T / typical)
    check_iterations(estimate, max_it, f"{n} workers x horizon {T:g} / typical response "
                     f"time {typical:.3g}")
    rows_wanted = int(2.0 * T / typical) + 1000
    rows = min(rows_wanted, max(1000, MAX_CHUNK_VALUES // n))
    every = record_every or max(1, rows_wanted // 8000)
    X, y, d = problem.X, problem.y, problem.dim
    w = np.zeros(d)
    istate = np.zeros(sgd_kernels.ASYNC_INT_STATE_SIZE, dtype=np.int64)
    snap, finish = np.zeros(n * d), np.zeros(n)
    version = np.zeros(n, dtype=np.int64)
    rec = [np.zeros(3), np.zeros(3), np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)]
    index = sgd_kernels.ASYNC_STATE
    t0 = time.perf_counter()
    while True:
        times = model.sample(rows, n, rng)
        need = istate[index["records"]] + rows * n // every + 3
        if need > rec[0].size:
            rec = [np.concatenate([a, np.zeros(need, dtype=a.dtype)]) for a in rec]
        reached = sgd_kernels.run_async(X, y, n, 0 if problem.loss == "least_squares" else 1,
                                        problem.reg, times, eta, w, T, problem.w_star, problem.H,
                                        problem.f_star, every, *rec, istate, snap, finish, version)
        if reached or istate[index["diverged"]]:
            break
    wall = time.perf_counter() - t0
    nrec, updates = int(istate[index["records"]]), int(istate[index["updates"]])
    rec_t, rec_e, rec_k, rec_iter = (a[:nrec].copy() for a in rec)
    check_clock(rec_t, model)
    extra: dict[str, Any] = {"record_every": every, "lr": eta, "horizon": T, "diverged": False,
                             "mean_staleness": float(np.mean(rec_k[1:])) if nrec > 1 else 0.0}
    if istate[index["diverged"]]:
        extra.update(divergence(problem, eta, f"at t = {rec_t[-1]:.6g} (update {rec_iter[-1]})",
                                allow_divergence))
    return SGDResult("async", rec_t, rec_e, np.ones(nrec, dtype=np.int64), updates, updates,
                     updates, n, wall, rec_iter, rec_iter, None, extra=extra)
