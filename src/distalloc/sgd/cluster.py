"""Fastest-k SGD for real: a master and worker processes on a Dask cluster (SPEC 2.5).

The master holds w and the k decision (the same :class:`KController` the simulator kernel
uses); each worker holds its data shard in a :class:`ShardWorker`, a Dask actor created
once per run on that worker (the shard is scattered to it once).  Every iteration the
master calls every live worker's actor with w (the downlink), takes the first k partial
gradients to arrive, steps, and discards the rest.  Actor calls go from the client straight
to the worker and back (with ``Client(direct_to_workers=True)``, which ``train`` uses for
the clients it opens): no task graph, no scheduler round trip, no gather.  A late gradient
can never reach a later iteration: each iteration waits on its own calls only, and a
worker abandons a call's injected delay as soon as it receives a newer iteration (the
delay is artificial; a straggler that keeps computing is modelled by not injecting).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.sgd.fit import FitResult, fit_response_model
from distalloc.sgd.models import ResponseModel, WithOverhead, check_workers
from distalloc.sgd.policies import parse_policy
from distalloc.sgd.problems import Problem, load_problem
from distalloc.sgd.run import (DEFAULT_LR, MAX_ITERATIONS, SGDResult, build_controller,
                               check_finite_means, divergence)

__all__ = ["TrainResult", "train", "ShardWorker", "shard_gradient", "DEFAULT_HORIZON_S"]

DEFAULT_HORIZON_S = 10.0
CALIBRATION_ROUNDS = 10        # all-worker rounds measured before bound / dbw plan their k
POLL_S = 0.05                  # how often a waiting master looks for lost workers
INLINE_ENTRIES = 1 << 20       # shards up to this many entries are computed on the event loop
STOP_WAIT_S = 5.0              # at the end, how long abandoned calls may take to return


# --- worker side ---------------------------------------------------------------------------
def shard_gradient(X: np.ndarray, y: np.ndarray, loss: str, w: np.ndarray) -> np.ndarray:
    """Sum over the shard's rows of the per-row loss gradients at w (without the l2 term)."""
    z = X @ w
    r = z - y if loss == "least_squares" else 0.5 * (1.0 + np.tanh(0.5 * z)) - y
    return X.T @ r


class ShardWorker:
    """One worker's side of a run, living on that worker as a Dask actor: its shard and the
    newest iteration it has been sent.  Its methods are coroutines, so they run on the
    worker's event loop, and a call that waits out an injected delay is woken (and
    abandoned) by the next iteration's call."""

    def __init__(self, shard: tuple):
        self.X, self.y, self.loss = shard
        self.newest = -1
        self._wake: asyncio.Event | None = None

    async def gradient(self, message: np.ndarray):
        """``message`` = [iteration, delay_s, w...] (one array: one serialisation per call).
        After ``delay_s`` seconds, unless a newer iteration arrives first (then None):
        [seconds spent here, the shard's gradient sum at w...].  A call for an iteration
        older than one already received returns None at once."""
        t0 = time.perf_counter()
        iteration, delay_s, w = int(message[0]), float(message[1]), message[2:]
        if iteration <= self.newest:
            return None
        self.newest = iteration
        if self._wake is not None:
            self._wake.set()                # abandon the previous iteration's wait
            self._wake = None
        if delay_s > 0:
            wake = self._wake = asyncio.Event()
            try:
                await asyncio.wait_for(wake.wait(), delay_s)
            except asyncio.TimeoutError:
                pass
            if self.newest != iteration:
                return None
        out = np.empty(w.size + 1)
        if self.X.size <= INLINE_ENTRIES:
            out[1:] = shard_gradient(self.X, self.y, self.loss, w)
        else:                               # large shards: keep the event loop responsive
            out[1:] = await asyncio.get_running_loop().run_in_executor(
                None, shard_gradient, self.X, self.y, self.loss, w)
        out[0] = time.perf_counter() - t0
        return out

    async def stop(self) -> None:
        """Abandon any waiting call and refuse later ones (the end of a run)."""
        self.newest = 2**62
        if self._wake is not None:
            self._wake.set()


# --- master side ---------------------------------------------------------------------------
@dataclass(eq=False)
class TrainResult(SGDResult):
    """``sgd run``'s record with ``time`` in measured seconds, plus what a real run measures.

    ``response_times_s[i]``: worker i's measured response times (call to arrival at the
    master) of the gradients that arrived in time, i.e. censored at each iteration's k-th
    arrival; ``wait_s[j]``: iteration j's k-th arrival (its X_(k)), so ``wall_s -
    wait_s.sum()`` is the master's own time (``extra['master_s_per_iteration']`` per
    iteration); ``calibration_times_s``: uncensored all-worker rounds (if any);
    ``workers_lost``: one {worker, address, iteration, time_s} per worker that died;
    ``chosen``: per iteration the workers whose gradients were used, in arrival order;
    ``delays_s``: the injected delays (iterations x n, seconds) or None; ``fit``: the
    model fitted to the calibration rounds (bound and dbw without ``model``)."""

    response_times_s: list = field(default_factory=list)
    calibration_times_s: np.ndarray | None = None
    workers_lost: list = field(default_factory=list)
    chosen: list = field(default_factory=list)
    delays_s: np.ndarray | None = None
    fit: FitResult | None = None
    wait_s: np.ndarray | None = None

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
            client = Client(lc, direct_to_workers=True)
            owned = [client, lc]
        elif "://" in spec:
            try:
                client = Client(spec, timeout="10s", direct_to_workers=True)
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
        iteration durations in seconds for the policies that plan with mu_k (bound, dbw):
        mu_k is this model's E[X_(k)], used as given.  Default: the response times of
        ``calibration_rounds`` all-worker rounds measured before training (default 10,
        only for those policies), fitted by :func:`fit_response_model`, plus the master's
        own time per round measured in the same rounds (:class:`WithOverhead`), so that
        mu_k is what an iteration with k costs this master.
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
    Each worker's shard is scattered to it once and held by a :class:`ShardWorker` actor;
    an iteration is one actor call per live worker carrying w, answered directly by the
    worker (no task, no scheduler round trip; a Client passed in should have
    ``direct_to_workers=True``, else Dask routes actor calls through the scheduler).  A
    worker that dies (its process killed) is detected by its call failing or by its
    actor's future leaving the 'finished' state (the scheduler saw it go: its scattered
    shard is lost); the run continues with the others, k capped at the number alive
    (``extra['k_limited']`` counts the capped iterations), and the loss is in
    ``workers_lost``.  Its shard's rows are then missing from the gradients; the error is
    still measured on the whole data.  Master cost per iteration: one call per live worker
    plus O(k d) to average and O(d^2) (least squares) for the error record.
    """
    problem = load_problem(problem)
    if workers is not None:
        workers = check_number(check_workers(workers), "workers", low=1,
                               high=problem.num_samples, integer=True)
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


class _Pool:
    """The master's handle on the workers of one run: their actors, which are alive, and
    the rounds of calls (all run on the client's event loop through ``client.sync``)."""

    def __init__(self, client, addrs, actors, futures, shards, timeout, order_rng):
        self.client, self.addrs, self.timeout = client, addrs, timeout
        self.actors, self.futures, self.shards = actors, futures, shards
        self.order_rng = order_rng         # the order the calls go out in, new every round
        self.alive = [True] * len(addrs)
        self.lost: list[dict[str, Any]] = []
        self.iteration = 0                 # call counter on the workers (warm-up included)
        self.stale: dict = {}              # calls of finished iterations still under way

    @classmethod
    def start(cls, client, addrs, problem, s, timeout, order_rng):
        """Scatter worker i's shard (rows i s .. (i + 1) s) to it and start its actor."""
        shards = [client.scatter([(problem.X[i * s:(i + 1) * s], problem.y[i * s:(i + 1) * s],
                                   problem.loss)], workers=[a], hash=False)[0]
                  for i, a in enumerate(addrs)]
        futures = [client.submit(ShardWorker, shards[i], actor=True, workers=[a],
                                 allow_other_workers=False, pure=False)
                   for i, a in enumerate(addrs)]
        return cls(client, addrs, [f.result() for f in futures], futures, shards, timeout,
                   order_rng)

    def _lose(self, i, label, t_start):
        if self.alive[i]:
            self.alive[i] = False
            self.lost.append({"worker": i, "address": self.addrs[i], "iteration": label,
                              "time_s": time.perf_counter() - t_start})

    def round(self, w, delays, k, label, t_start):
        """Call every live worker with w; the first k gradients to arrive as (worker,
        gradient sum, response time), in arrival order.  The calls leave one after the
        other, in a random order drawn anew each round: a fixed order would give the
        first-called workers a head start of the dispatch time and bias which shards win
        (measured on local:8: at k = 1 worker 0 won 3x as often as worker 7)."""
        return self.client.sync(self._round, w, delays, k, label, t_start)

    async def _round(self, w, delays, k, label, t_start):
        it = self.iteration
        self.iteration += 1
        t_sub = time.perf_counter()

        message = np.empty(w.size + 2)
        message[0], message[2:] = it, w

        async def call(i):
            msg = message.copy()
            msg[1] = delays[i]
            try:
                res = await self.actors[i].gradient(msg)
            except Exception as exc:       # OSError: connection lost; RuntimeError: actor lost
                res = exc
            return i, res, time.perf_counter() - t_sub
        live = [i for i in range(len(self.actors)) if self.alive[i]]
        tasks = {asyncio.ensure_future(call(i)): i
                 for i in map(int, self.order_rng.permutation(live))}
        pending, got, last = set(tasks), [], t_sub
        try:
            while len(got) < min(k, sum(self.alive)):
                if not pending:
                    raise ValidationError(f"Iteration {label} ended with {len(got)} gradients "
                                          f"of {k}: calls returned nothing.")
                done, pending = await asyncio.wait(pending, timeout=POLL_S,
                                                   return_when=asyncio.FIRST_COMPLETED)
                now = time.perf_counter()
                for i, res, rt in sorted((t.result() for t in done), key=lambda r: r[2]):
                    last = now
                    if isinstance(res, BaseException):
                        self._lose(i, label, t_start)
                    elif res is not None:
                        got.append((i, res[1:], rt))
                for t in list(pending):    # the scheduler saw the worker go
                    i = tasks[t]
                    if self.futures[i].status != "finished" or not self.alive[i]:
                        self._lose(i, label, t_start)
                        pending.discard(t)
                        self.stale[t] = i
                        last = now
                if not any(self.alive):
                    raise ValidationError(f"Every worker was lost by iteration {label}.")
                if now - last > self.timeout:
                    raise ValidationError(f"No gradient arrived within iteration_timeout_s = "
                                          f"{self.timeout:g} s at iteration {label}; the "
                                          "cluster is not responding.")
        finally:                           # calls still under way: never awaited again
            self.stale.update((t, tasks[t]) for t in pending)
            self.stale = {t: i for t, i in self.stale.items() if not t.done()}
        return got[:k]

    def close(self):
        """Wake every waiting call, let the calls return, release the actors and shards."""
        try:
            self.client.sync(self._stop)
        finally:
            for f in self.futures + self.shards:
                f.release()
            self.actors = []

    async def _stop(self):
        live = [i for i in range(len(self.actors)) if self.alive[i]]

        async def stop(i):
            try:
                await self.actors[i].stop()
            except Exception:              # lost meanwhile: nothing to stop
                pass
        if live:
            await asyncio.wait([asyncio.ensure_future(stop(i)) for i in live],
                               timeout=STOP_WAIT_S)
        for t, i in self.stale.items():    # calls to lost workers (connection retries)
            if not self.alive[i]:
                t.cancel()
        if self.stale:
            _, late = await asyncio.wait(self.stale, timeout=STOP_WAIT_S)
            for t in late:
                t.cancel()
        self.stale = {}


def _train(client, addrs, problem, policy, straggler, unit, T, eta, rng, k_max, model,
           calibration_rounds, target_error, max_it, every, timeout, allow_divergence):
    n = len(addrs)
    pol = parse_policy(policy, n)
    s = problem.num_samples // n
    problem = problem.restrict(n * s)
    cap = n if k_max is None else check_number(k_max, "k_max", low=1, high=n, integer=True)
    if straggler is not None:     # refuse infinite-mean injected delays before starting
        check_finite_means(straggler, straggler.order_stat_means(n), pol, policy, n, cap)
    pool = _Pool.start(client, addrs, problem, s, timeout,
                       np.random.default_rng(rng.integers(2**62)))
    try:
        return _loop(pool, problem, policy, pol, straggler, unit, T, eta, rng, cap, model,
                     calibration_rounds, target_error, max_it, every, allow_divergence)
    finally:
        pool.close()


def _loop(pool, problem, policy, pol, straggler, unit, T, eta, rng, cap, model,
          calibration_rounds, target_error, max_it, every, allow_divergence):
    n, s = len(pool.addrs), problem.num_samples // len(pool.addrs)

    def draw():
        return straggler.sample(1, n, rng)[0] * unit if straggler is not None else np.zeros(n)

    w = np.zeros(problem.dim)
    # warm-up, untimed: the workers import this module and the connections open
    for _ in range(2):
        pool.round(w, np.zeros(n), n, -1, time.perf_counter())
    cal_times, fit = None, None
    needs_mu = pol["kind"] in ("bound", "dbw")
    extra: dict[str, Any] = {}
    if needs_mu and model is None:
        rounds = check_number(CALIBRATION_ROUNDS if calibration_rounds is None
                              else calibration_rounds, "calibration_rounds", low=1, high=10**5,
                              integer=True)
        samples, waits = [], 0.0
        t0 = time.perf_counter()
        for r in range(rounds):
            got = pool.round(w, draw(), n, -2 - r, t0)
            samples += [rt for _, _, rt in got]
            waits += max(rt for _, _, rt in got)
        overhead = max((time.perf_counter() - t0 - waits) / rounds, 0.0)
        cal_times = np.array(samples)
        fit = fit_response_model(cal_times)
        model = WithOverhead(fit.model, overhead)
        extra["calibration_overhead_s"] = overhead
    if needs_mu:
        ctl, pol, schedule, _ = build_controller(problem, n, policy, eta, model, cap)
        extra["planning_model"] = model.spec
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
    waits_all: list[float] = []
    g_prev = None
    uplink = downlink = it = limited = 0
    diverged = False

    def record():
        rec_t.append(time.perf_counter() - t_start)
        rec_e.append(error(w))
        rec_k.append(ctl.k)
        rec_it.append(it)
        rec_up.append(uplink)
        rec_down.append(downlink)
        return math.isfinite(rec_e[-1])

    t_start = t_prev = time.perf_counter()
    while True:
        if (time.perf_counter() - t_start >= T or it >= max_it
                or (target_error is not None and rec_e[-1] <= target_error)):
            break
        live = sum(pool.alive)
        k = min(ctl.k, live)
        limited += k < ctl.k
        delays = draw()
        got = pool.round(w, delays, k, it, t_start)
        downlink += live
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
        for i, _, rt in got:
            response_times[i].append(rt)
        chosen.append([i for i, _, _ in got])
        delays_all.append(delays)
        wait = got[-1][2]                 # the k-th arrival (got is in arrival order)
        waits_all.append(wait)
        uplink += k
        it += 1
        # the controller's clock is the wall clock (the bound schedule's switch times are
        # wall-clock seconds): the iteration's X_(k) plus the master's own time around it
        now = time.perf_counter()
        ctl._core.advance(now - t_prev, dot, v, float(g @ g) if ctl._dbw else math.nan)
        t_prev = now
        if it % every == 0 and not record():
            diverged = True
            break
    if it % every and not diverged:
        diverged = not record()
    wall = time.perf_counter() - t_start
    extra.update({"record_every": every, "lr": eta, "horizon": T, "diverged": False,
                  "cluster_workers": n, "live_workers": int(sum(pool.alive)),
                  "k_limited": int(limited), "time_unit": "s",
                  "master_s_per_iteration": (wall - sum(waits_all)) / it if it else math.nan})
    if pol["kind"] == "callback":
        extra["k_clipped"] = ctl.clipped
    if straggler is not None:
        extra["straggler"] = straggler.spec
        extra["time_unit_s"] = unit
    if diverged:
        extra.update(divergence(problem, eta, f"at {rec_t[-1]:.3f} s (iteration {rec_it[-1]})",
                                allow_divergence))
    return TrainResult(str(policy), np.array(rec_t), np.array(rec_e),
                       np.array(rec_k, dtype=np.int64), it, uplink, downlink, n, wall,
                       np.array(rec_up), np.array(rec_down), schedule, extra=extra,
                       response_times_s=[np.array(r) for r in response_times],
                       calibration_times_s=cal_times, workers_lost=pool.lost, chosen=chosen,
                       delays_s=np.array(delays_all) if straggler is not None else None,
                       fit=fit, wait_s=np.array(waits_all))
