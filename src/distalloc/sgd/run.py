"""Fastest-k distributed SGD runs (SPEC 2.1-2.4) on the fused compiled kernel."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._compiled import sgd_kernels
from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.sgd.models import Exponential, ResponseModel
from distalloc.sgd.problems import Problem, load_problem
from distalloc.sgd.schedule import Schedule, bound_schedule

__all__ = ["SGDResult", "run", "parse_policy", "DEFAULT_LR", "DEFAULT_HORIZON"]

DEFAULT_LR = {"synthetic": 0.0005, "diabetes": 0.05, "digits": 1.0}
DEFAULT_HORIZON = {"synthetic": 6000.0, "diabetes": 2000.0, "digits": 2000.0}
MAX_CHUNK_VALUES = 1 << 22     # response times drawn at a time (32 MB); long runs take more chunks
DBW_DECAY = 0.9                # weight of the past in DBW's moving-average estimates


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


def parse_policy(spec: str, workers: int) -> dict[str, Any]:
    """'fixed:K', 'sync' (k = n), 'bound[:STEP]', 'pflug[:K0:STEP:THRESH:BURNIN]', 'dbw[:K0]',
    'async'."""
    name, *args = spec.split(":")
    try:
        nums = [int(a) for a in args]
    except ValueError:
        raise ValidationError(f"The 'policy' parameter has a non-integer argument: {spec!r}.") from None
    if name == "fixed" and len(nums) == 1:
        return {"kind": "fixed", "k": check_number(nums[0], "policy k", low=1, high=workers, integer=True)}
    if name == "sync" and not nums:
        return {"kind": "fixed", "k": workers}
    if name == "bound" and len(nums) <= 1:
        return {"kind": "bound", "step": nums[0] if nums else 1}
    if name == "pflug" and len(nums) <= 4:
        k0, step, thresh, burnin = (nums + [10, 10, 10, 200][len(nums):])[:4]
        return {"kind": "pflug", "k0": check_number(k0, "pflug k0", low=1, high=workers, integer=True),
                "step": check_number(step, "pflug step", low=1, integer=True),
                "thresh": check_number(thresh, "pflug thresh", low=0, integer=True),
                "burnin": check_number(burnin, "pflug burnin", low=0, integer=True)}
    if name == "dbw" and len(nums) <= 1:
        return {"kind": "dbw",
                "k0": check_number(nums[0], "dbw k0", low=2, high=workers, integer=True) if nums else 0}
    if name == "async" and not nums:
        return {"kind": "async"}
    raise ValidationError(f"The 'policy' parameter must be fixed:K, sync, bound[:STEP], "
                          f"pflug[:K0:STEP:THRESH:BURNIN], dbw[:K0] or async. Got {spec!r} instead.")


def run(problem: Problem | str = "synthetic", workers: int = 50, policy: str = "pflug", *,
        horizon: float | None = None, lr: float | None = None,
        model: ResponseModel | None = None, seed: Any = 0, k_max: int | None = None,
        record_every: int | None = None) -> SGDResult:
    """Simulate distributed SGD with the master waiting for the fastest k of ``workers``.

    Parameters
    ----------
    problem : Problem or {'synthetic', 'diabetes', 'digits'}
    workers : int
        n; the m rows are split evenly (s = m // n each, the remainder unused).
    policy : str
        'fixed:K', 'sync', 'bound[:STEP]' (SPEC 2.2 with L, c, sigma^2, F(w0) - F*
        estimated from the data), 'pflug[:K0:STEP:THRESH:BURNIN]' (SPEC 2.3, defaults
        10:10:10:200), 'dbw[:K0]' (dynamic backup workers: each iteration the k that
        maximises the expected decrease of F per unit time, from online estimates of the
        gradient norm and variance; starts at K0, default k_max), 'async' (every gradient
        applied on arrival).
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
        cap for pflug and dbw (default n).

    Returns
    -------
    SGDResult

    Notes
    -----
    Per iteration O(k s d) plus O(n k) to select the fastest k; for least squares with
    k > n / 2 the k fastest workers' sum is taken as the full gradient (from the Hessian,
    O(d^2)) minus the n - k slowest, O((n - k) s d).  The error is recorded every
    ``record_every`` iterations (least squares: O(d^2) from the Hessian, logistic: a full
    pass).
    """
    if isinstance(problem, str):
        problem = load_problem(problem)
    n = check_number(workers, "workers", low=1, high=problem.num_samples, integer=True)
    pol = parse_policy(policy, n)
    T = check_number(horizon if horizon is not None else DEFAULT_HORIZON.get(problem.name, 2000.0),
                     "horizon", low=0, low_open=True)
    if lr is None:
        lr = DEFAULT_LR.get(problem.name, 0.01)
        if pol["kind"] == "async":
            lr = lr / n   # stale single-worker updates at the synchronous step size diverge
    eta = check_number(lr, "lr", low=0, low_open=True)
    model = model or Exponential(1.0)
    rng = as_generator(seed)
    s = problem.num_samples // n
    problem = problem.restrict(n * s)
    X, y = problem.X, problem.y
    w = np.zeros(problem.dim)
    mu = model.order_stat_means(n)
    schedule = None
    switch_times = np.zeros(0)
    k_values = np.zeros(1, dtype=np.int64)
    k_cap = n if k_max is None else check_number(k_max, "k_max", low=1, high=n, integer=True)
    smoothness = 0.0
    if pol["kind"] == "fixed":
        k_values[0] = k_init = pol["k"]
        expected_iters = T / mu[pol["k"] - 1]
    elif pol["kind"] == "bound":
        const = problem.constants(w)
        schedule = bound_schedule(n, eta, const["smoothness"], const["strong_convexity"],
                                  const["noise_var"], s, const["initial_gap"], model=model,
                                  step=pol["step"])
        switch_times, k_values = schedule.switch_times, schedule.k_values.astype(np.int64)
        k_init = int(k_values[0])
        bounds = np.concatenate([[0.0], np.minimum(switch_times, T), [T]])
        expected_iters = float(np.sum(np.diff(np.maximum.accumulate(bounds)) / mu[k_values - 1]))
    elif pol["kind"] == "pflug":
        k_init = pol["k0"]
        expected_iters = T / mu[k_init - 1]
    elif pol["kind"] == "dbw":
        if n < 2:
            raise ValidationError("The 'dbw' policy needs at least 2 workers (it estimates the "
                                  "gradient variance across them). Got workers = 1 instead.")
        smoothness = problem.constants(w)["smoothness"]
        k_init = min(pol["k0"] or k_cap, k_cap)
        expected_iters = T / mu[k_init - 1]
    else:  # async: each worker finishes about T / E[X] tasks
        expected_iters = T / model.order_stat_mean(1, 1)
    rows = min(int(2.0 * expected_iters) + 1000, max(1000, MAX_CHUNK_VALUES // n))
    times = model.sample(rows, n, rng)
    every = (check_number(record_every, "record_every", low=1, integer=True) if record_every
             is not None else max(1, rows // 8000))
    cap = rows // every + 3
    rec = [np.zeros(cap), np.zeros(cap)] + [np.zeros(cap, dtype=np.int64) for _ in range(3)]
    least_squares = problem.loss == "least_squares"
    problem_code = 0 if least_squares else 1
    H = np.ascontiguousarray(problem.H)
    w_star = np.ascontiguousarray(problem.w_star)
    # full gradient = H (w - w*) + offset; the offset (zero up to w*'s rounding) is formed
    # from the residual so that it carries no cancellation
    grad_offset = (-(X.T @ (y - X @ w_star)) / X.shape[0] if least_squares
                   else np.zeros(problem.dim))
    t0 = time.perf_counter()
    if pol["kind"] == "async":
        rec_t, rec_e, rec_k, rec_iter, _ = rec
        updates, nrec, reached = sgd_kernels.run_async(X, y, n, problem_code, problem.reg, times, eta, w,
                                              T, w_star, H, problem.f_star, every, rec_t, rec_e,
                                              rec_k, rec_iter)
        if not reached:  # pragma: no cover - rows are drawn with a 2x margin
            raise RuntimeError("pre-drawn response times ran out before the horizon")
        iterations, uplink, downlink = updates, updates, updates
        extra = {"mean_staleness": float(np.mean(rec_k[1:nrec])) if nrec > 1 else 0.0}
        ks = np.ones(nrec, dtype=np.int64)
        up_at = down_at = rec_iter[:nrec]
    else:
        adapt = {"pflug": sgd_kernels.ADAPT_PFLUG, "dbw": sgd_kernels.ADAPT_DBW}.get(
            pol["kind"], sgd_kernels.ADAPT_SCHEDULE)
        index = sgd_kernels.STATE
        istate = np.zeros(sgd_kernels.INT_STATE_SIZE, dtype=np.int64)
        fstate = np.zeros(sgd_kernels.FLOAT_STATE_SIZE)
        istate[index["k"]], istate[index["pending"]] = k_init, 1
        g_prev = np.zeros(problem.dim)
        while True:
            need = istate[index["records"]] + times.shape[0] // every + 3
            if need > rec[0].size:   # grow the record buffers, keeping what is written
                rec = [np.concatenate([a, np.zeros(need + a.size, dtype=a.dtype)]) for a in rec]
            sgd_kernels.run_fastest_k(
                X, y, n, problem_code, problem.reg, times, eta, w, T, switch_times, k_values,
                adapt, pol.get("step", 1), pol.get("thresh", 0), pol.get("burnin", 0), k_cap,
                mu, smoothness, DBW_DECAY, w_star, H, problem.f_star, grad_offset,
                int(least_squares), every, *rec, istate, fstate, g_prev)
            t_now = fstate[index["time"]]
            if t_now >= T:
                break
            # more response times: enough for the rest at the current k, within the cap
            k_now = int(istate[index["k"]])
            rows = min(int(1.5 * (T - t_now) / mu[k_now - 1]) + 1000,
                       max(1000, MAX_CHUNK_VALUES // n))
            times = model.sample(rows, n, rng)
        nrec = int(istate[index["records"]])
        iterations, uplink = int(istate[index["iterations"]]), int(istate[index["uplink"]])
        rec_t, rec_e, rec_k, rec_iter, rec_up = rec
        downlink = iterations * n
        ks = rec_k[:nrec]
        up_at, down_at = rec_up[:nrec], rec_iter[:nrec] * n
        extra = {}
    wall = time.perf_counter() - t0
    return SGDResult(policy, rec_t[:nrec].copy(), rec_e[:nrec].copy(), ks.copy(), int(iterations),
                     int(uplink), int(downlink), n, wall, up_at.copy(), down_at.copy(), schedule,
                     extra={"record_every": every, "lr": eta, "horizon": T, **extra})
