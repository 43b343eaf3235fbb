"""Fastest-k SGD for real: a master and worker processes on a Dask cluster (SPEC 2.5).

The master holds w and the k decision (the same :class:`KController` the simulator kernel
uses); each worker holds its data shard, scattered once.  Every iteration the master
submits one task per live worker carrying w (the downlink), takes the first k partial
gradients that complete (``distributed.as_completed``), cancels the rest and steps.  A late
gradient can never reach a later iteration: each iteration waits on its own futures only,
and a worker's injected delay is abandoned as soon as it receives the next iteration's task
(the delay is artificial; a straggler that keeps computing is modelled by not injecting).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.sgd.fit import FitResult, fit_response_model
from distalloc.sgd.models import ResponseModel
from distalloc.sgd.policies import parse_policy
from distalloc.sgd.problems import Problem, load_problem
from distalloc.sgd.run import (DEFAULT_LR, MAX_ITERATIONS, SGDResult, build_controller,
                               check_finite_means, divergence)

__all__ = ["TrainResult", "train", "DEFAULT_HORIZON_S"]

DEFAULT_HORIZON_S = 10.0
CALIBRATION_ROUNDS = 10        # all-worker rounds measured before bound / dbw plan their k

# --- worker side ---------------------------------------------------------------------------
# Per worker process: the newest iteration each run has sent here.  A task whose injected
# delay is still running when a newer iteration's task arrives is abandoned (returns None).
_NEWEST: dict[str, int] = {}
_WAKE = threading.Condition()


def _worker_gradient(shard, w, run: str, iteration: int, delay_s: float):
    """Sleep the injected delay (unless a newer iteration of this run arrives), then return
    (sum over the shard's rows of the per-row gradients, seconds spent here)."""
    t0 = time.perf_counter()
    with _WAKE:
        if iteration > _NEWEST.get(run, -1):
            _NEWEST[run] = iteration
            _WAKE.notify_all()
        deadline = t0 + delay_s
        while _NEWEST[run] == iteration:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            _WAKE.wait(left)
        if _NEWEST[run] != iteration:
            return None
    X, y, loss = shard
    z = X @ w
    r = z - y if loss == "least_squares" else 0.5 * (1.0 + np.tanh(0.5 * z)) - y
    return X.T @ r, time.perf_counter() - t0


# --- master side ---------------------------------------------------------------------------
@dataclass(eq=False)
class TrainResult(SGDResult):
    """``sgd run``'s record with ``time`` in measured seconds, plus what a real run measures.

    ``response_times_s[i]``: worker i's measured response times (submit to arrival at the
    master) of the gradients that arrived in time, i.e. censored at each iteration's k-th
    arrival; ``calibration_times_s``: uncensored all-worker rounds (if any);
    ``workers_lost``: one {worker, iteration, time_s} per worker that died; ``chosen``:
    per iteration the workers whose gradients were used, in arrival order; ``delays_s``:
    the injected delays (iterations x n, seconds) or None."""

    response_times_s: list = field(default_factory=list)
    calibration_times_s: np.ndarray | None = None
    workers_lost: list = field(default_factory=list)
    chosen: list = field(default_factory=list)
    delays_s: np.ndarray | None = None
    fit: FitResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["response_times_s"] = [np.asarray(t).tolist() for t in self.response_times_s]
        out["workers_lost"] = self.workers_lost
        if self.calibration_times_s is not None:
            out["calibration_times_s"] = self.calibration_times_s.tolist()
        if self.fit is not None:
            out["fitted_model"] = self.fit.spec
        return out


def _connect(cluster: Any, workers: int | None):
    """(client, addresses of the workers to use, things to close)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValidationError("Real runs (--cluster) need Dask distributed: pip install "
                              "'distalloc[dask]'.") from None
    if isinstance(cluster, Client):
        client, owned = cluster, []
    else:
        spec = cluster or os.environ.get("DASK_SCHEDULER_ADDRESS") or (
            f"local:{workers}" if workers else None)
        if not isinstance(spec, str) or not spec:
            raise ValidationError("The 'cluster' parameter must be local:N, a scheduler "
                                  "address (tcp://host:port) or a distributed.Client.")
        if spec.startswith("local:"):
            try:
                size = int(spec[6:])
            except ValueError:
                raise ValidationError(f"The 'cluster' parameter local:N needs an integer N. "
                                      f"Got {spec!r} instead.") from None
            check_number(size, "local cluster size", low=1, high=max(64, os.cpu_count() or 1),
                         integer=True)
            lc = LocalCluster(n_workers=size, threads_per_worker=2, processes=True,
                              dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(lc)
            owned = [client, lc]
        elif "://" in spec:
            try:
                client = Client(spec, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise ValidationError(f"Cannot reach the Dask scheduler at {spec!r}: "
                                      f"{str(exc).splitlines()[0][:120]}") from None
            owned = [client]
        else:
            raise ValidationError(f"The 'cluster' parameter must be local:N or a scheduler "
                                  f"address such as tcp://host:8786. Got {spec!r} instead.")
    available = sorted(client.scheduler_info(n_workers=-1)["workers"])
    n = len(available) if workers is None else workers
    if n > len(available) or n < 1:
        for obj in owned:
            obj.close()
        raise ValidationError(f"The run asks for {n} workers; the cluster has "
                              f"{len(available)}.")
    return client, available[:n], owned


def train(problem: Problem | str = "synthetic", workers: int | None = None,
          policy: Any = "pflug", *, cluster: Any = None, straggler: ResponseModel | None = None,
          time_unit_s: float = 1.0, horizon: float | None = None, lr: float | None = None,
          seed: Any = 0, k_max: int | None = None, model: ResponseModel | None = None,
          calibration_rounds: int | None = None, target_error: float | None = None,
          max_iterations: int = MAX_ITERATIONS, record_every: int = 1,
          iteration_timeout_s: float = 60.0, allow_divergence: bool = False) -> TrainResult:
    """Run fastest-k SGD on a Dask cluster: a real master and real worker processes.

    Parameters
    ----------
    problem : Problem or {'synthetic', 'diabetes', 'digits'}
        a user's own data through :func:`distalloc.sgd.from_arrays`.
    workers : int, optional
        n (default: every worker of the cluster).
    policy : str or CompiledPolicy
        as :func:`distalloc.sgd.run` except 'async'.
    cluster : str or distributed.Client, optional
        'local:N' (a LocalCluster of N worker processes with 2 threads each, on loopback),
        a scheduler address ('tcp://host:8786'), or a Client; default
        ``$DASK_SCHEDULER_ADDRESS``, else local:workers.
    straggler : ResponseModel, optional
        injected delays: worker i sleeps X * ``time_unit_s`` seconds before computing,
        X drawn (seeded, on the master) from this model per worker and iteration.
    horizon : float
        measured wall-clock seconds of training (default 10).
    lr, k_max : as :func:`distalloc.sgd.run`.
    model : ResponseModel, optional
        response times in seconds for the policies that plan with mu_k (bound, dbw);
        default: fitted (:func:`fit_response_model`) to ``calibration_rounds`` all-worker
        rounds measured before training (default 10, only for those policies).
    target_error : float, optional
        stop at the first record with F(w) - F* <= target_error.
    max_iterations : int
        stop after this many iterations.
    iteration_timeout_s : float
        an iteration that receives nothing for this long is an error (never a hang).
    allow_divergence : bool
        as :func:`distalloc.sgd.run`.

    Returns
    -------
    TrainResult
        ``time`` in measured seconds since training started (after the shards are
        scattered and any calibration), error F(w) - F* (computed by the master, which
        holds the data), k, counters, per-worker measured response times, lost workers.

    Notes
    -----
    A worker that dies (its process killed) is detected through its futures (Dask cancels
    them: lost dependencies); the run continues with the others, k capped at the number
    alive (``extra['k_limited']`` counts the capped iterations), and the loss is in
    ``workers_lost``.  Its shard's rows are then missing from the gradients; the error is
    still measured on the whole data.  Master cost per iteration: one task per live worker
    plus O(k d) to average and O(d^2) (least squares) for the error record.
    """
    if isinstance(problem, str):
        problem = load_problem(problem)
    if workers is not None:
        workers = check_number(workers, "workers", low=1, high=problem.num_samples, integer=True)
    if isinstance(policy, str) and policy.split(":")[0] == "async":
        raise ValidationError("The real runner runs synchronous fastest-k policies; 'async' is "
                              "simulated only (distalloc sgd run without --cluster).")
    T = check_number(DEFAULT_HORIZON_S if horizon is None else horizon, "horizon", low=0,
                     low_open=True, high=1e7)
    eta = check_number(DEFAULT_LR.get(problem.name, 0.01) if lr is None else lr, "lr", low=0,
                       low_open=True)
    unit = check_number(time_unit_s, "time_unit_s", low=0, low_open=True, high=3600)
    max_it = check_number(max_iterations, "max_iterations", low=1, integer=True)
    every = check_number(record_every, "record_every", low=1, integer=True)
    timeout = check_number(iteration_timeout_s, "iteration_timeout_s", low=0, low_open=True)
    if target_error is not None:
        target_error = check_number(target_error, "target_error", low=0)
    for name, m in (("straggler", straggler), ("model", model)):
        if m is not None and not isinstance(m, ResponseModel):
            raise ValidationError(f"The '{name}' parameter must be a ResponseModel. Got "
                                  f"{type(m).__name__} instead.")
    rng = as_generator(seed)
    if workers is not None:
        parse_policy(policy, workers)             # bad policies fail before a cluster starts
    client, addrs, owned = _connect(cluster, workers)
    try:
        return _train(client, addrs, problem, policy, straggler, unit, T, eta, rng, k_max,
                      model, calibration_rounds, target_error, max_it, every, timeout,
                      allow_divergence)
    finally:
        for obj in owned:           # the client before its cluster: no closed-stream noise
            obj.close()


def _train(client, addrs, problem, policy, straggler, unit, T, eta, rng, k_max, model,
           calibration_rounds, target_error, max_it, every, timeout, allow_divergence):
    from distributed import as_completed
    n = len(addrs)
    pol = parse_policy(policy, n)
    s = problem.num_samples // n
    problem = problem.restrict(n * s)
    cap = n if k_max is None else check_number(k_max, "k_max", low=1, high=n, integer=True)
    if straggler is not None:     # refuse infinite-mean injected delays before starting
        check_finite_means(straggler, straggler.order_stat_means(n), pol, policy, n, cap)
    run_id = uuid.uuid4().hex
    shards = [client.scatter((problem.X[i * s:(i + 1) * s], problem.y[i * s:(i + 1) * s],
                              problem.loss), workers=[a], hash=False)
              for i, a in enumerate(addrs)]
    alive = [True] * n
    lost: list[dict[str, Any]] = []
    iteration = 0                 # task counter on the workers (calibration included)

    def submit(w, delays):
        nonlocal iteration
        futs = {client.submit(_worker_gradient, shards[i], w, run_id, iteration, float(delays[i]),
                              workers=[addrs[i]], allow_other_workers=False, pure=False,
                              key=f"sgd-gradient-{run_id}-{iteration}-{i}"): i
                for i in range(n) if alive[i]}
        iteration += 1
        return futs, time.perf_counter()

    def draw():
        return straggler.sample(1, n, rng)[0] * unit if straggler is not None else np.zeros(n)

    def collect(futs, t_sub, k, t_start, it):
        """The first k gradients to arrive, as (worker, gradient sum, response time)."""
        got = []
        ac = as_completed(list(futs), timeout=timeout)
        try:
            for f in ac:
                i = futs[f]
                if f.status == "finished":
                    res = f.result()
                    if res is not None:
                        got.append((i, res[0], time.perf_counter() - t_sub))
                else:
                    alive[i] = False
                    lost.append({"worker": i, "address": addrs[i], "iteration": it,
                                 "time_s": time.perf_counter() - t_start})
                    if not any(alive):
                        raise ValidationError(f"Every worker was lost by iteration {it}.")
                if len(got) >= min(k, sum(alive)):
                    break
        except TimeoutError:
            raise ValidationError(f"No gradient arrived within iteration_timeout_s = {timeout:g} "
                                  f"s at iteration {it}; the cluster is not responding.") from None
        rest = [f for f in futs if f.status == "pending"]
        if rest:
            client.cancel(rest)
        return got

    w = np.zeros(problem.dim)
    # warm-up, untimed: the workers import this module and receive their shards
    futs, t_sub = submit(w, np.zeros(n))
    collect(futs, t_sub, n, time.perf_counter(), -1)
    cal_times, fit = None, None
    needs_mu = pol["kind"] in ("bound", "dbw")
    if needs_mu and model is None:
        rounds = check_number(CALIBRATION_ROUNDS if calibration_rounds is None
                              else calibration_rounds, "calibration_rounds", low=1, high=10**5,
                              integer=True)
        samples = []
        for r in range(rounds):
            futs, t_sub = submit(w, draw())
            samples += [rt for _, _, rt in collect(futs, t_sub, n, time.perf_counter(), -2 - r)]
        cal_times = np.array(samples)
        fit = fit_response_model(cal_times)
        model = fit.model
    if needs_mu:
        ctl, pol, schedule, _ = build_controller(problem, n, policy, eta, model, cap)
    else:
        ctl, pol, schedule, _ = build_controller(problem, n, policy, eta, model, cap,
                                                 mu=np.ones(n))
    least_squares = problem.loss == "least_squares"

    def error(w):
        if least_squares:
            dw = w - problem.w_star
            return 0.5 * float(dw @ (problem.H @ dw))
        return problem.value(w) - problem.f_star

    rec_t, rec_e, rec_k, rec_it, rec_up, rec_down = [0.0], [error(w)], [ctl.k], [0], [0], [0]
    response_times: list[list[float]] = [[] for _ in range(n)]
    chosen: list[list[int]] = []
    delays_all: list[np.ndarray] = []
    g_prev = None
    uplink = downlink = it = limited = 0
    diverged = False
    t_start = time.perf_counter()
    while True:
        if (time.perf_counter() - t_start >= T or it >= max_it
                or (target_error is not None and rec_e[-1] <= target_error)):
            break
        k = min(ctl.k, sum(alive))
        limited += k < ctl.k
        delays = draw()
        futs, t_sub = submit(w, delays)
        downlink += len(futs)
        got = collect(futs, t_sub, k, t_start, it)
        k = len(got)
        g_sum = np.sum([g for _, g, _ in got], axis=0)
        g = g_sum / (k * s)
        v = math.nan
        if ctl._dbw and k >= 2:
            sq = sum(float(gi @ gi) for _, gi, _ in got) / (s * s)
            v = max((sq - k * float(g @ g)) / (k - 1), 0.0)
        if problem.reg:
            g = g + problem.reg * w
        dot = float(g @ g_prev) if g_prev is not None else math.nan
        g_prev = g
        w = w - eta * g
        times_k = np.array([rt for _, _, rt in got])
        for i, _, rt in got:
            response_times[i].append(rt)
        chosen.append([i for i, _, _ in got])
        delays_all.append(delays)
        uplink += k
        it += 1
        # the iteration's duration: the k-th arrival (got is in arrival order)
        ctl._core.advance(float(times_k.max()), dot, v, float(g @ g) if ctl._dbw else math.nan)
        if it % every == 0:
            rec_t.append(time.perf_counter() - t_start)
            rec_e.append(error(w))
            rec_k.append(ctl.k)
            rec_it.append(it)
            rec_up.append(uplink)
            rec_down.append(downlink)
            if not math.isfinite(rec_e[-1]):
                diverged = True
                break
    if it % every and not diverged:
        rec_t.append(time.perf_counter() - t_start)
        rec_e.append(error(w))
        rec_k.append(ctl.k)
        rec_it.append(it)
        rec_up.append(uplink)
        rec_down.append(downlink)
        diverged = not math.isfinite(rec_e[-1])
    wall = time.perf_counter() - t_start
    extra: dict[str, Any] = {"record_every": every, "lr": eta, "horizon": T, "diverged": False,
                             "cluster_workers": n, "live_workers": int(sum(alive)),
                             "k_limited": int(limited), "time_unit": "s"}
    if pol["kind"] == "callback":
        extra["k_clipped"] = ctl.clipped
    if straggler is not None:
        extra["straggler"] = straggler.spec
        extra["time_unit_s"] = unit
    if diverged:
        extra.update(divergence(problem, eta, f"at {rec_t[-1]:.3f} s (iteration {rec_it[-1]})",
                                allow_divergence))
    return TrainResult(str(policy), np.array(rec_t), np.array(rec_e), np.array(rec_k, dtype=np.int64),
                       it, uplink, downlink, n, wall, np.array(rec_up), np.array(rec_down),
                       schedule, extra=extra,
                       response_times_s=[np.array(r) for r in response_times],
                       calibration_times_s=cal_times, workers_lost=lost, chosen=chosen,
                       delays_s=np.array(delays_all) if straggler is not None else None, fit=fit)
