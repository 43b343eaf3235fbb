"""The k policies of fastest-k SGD as one object, shared by the simulator and the real runner
(SPEC 2.5), and users' own policies as compiled callbacks (SPEC 5.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from distalloc._compiled import sgd_kernels
from distalloc._callbacks import compiled_callback
from distalloc._validation import ValidationError, check_number, describe
from distalloc.sgd.models import check_workers

__all__ = ["KController", "CompiledPolicy", "compiled_policy", "parse_policy",
           "KPOLICY_SIGNATURE", "DBW_DECAY"]

KPOLICY_SIGNATURE = ("int64 f(int64 iteration, float64 time, int64 last_k, int64 workers, "
                     "float64 gradient_dot, int64 counter)")
_NUMBA_SIGNATURE = "int64(int64, float64, int64, int64, float64, int64)"
DBW_DECAY = 0.9                # weight of the past in DBW's moving-average estimates


@dataclass(frozen=True, eq=False)
class CompiledPolicy:
    """A user's k policy compiled by Numba (made by :func:`compiled_policy`)."""

    cfunc: Any
    name: str
    addr: int = 0

    @property
    def address(self) -> int:
        return self.addr or int(self.cfunc.address)

    def __str__(self) -> str:
        return f"compiled:{self.name}"


def compiled_policy(f: Any, name: str | None = None) -> CompiledPolicy:
    """Wrap a Numba ``cfunc`` as a k policy for :func:`distalloc.sgd.run`,
    :func:`distalloc.sgd.train` and :class:`KController`.

    The function has the C signature ``int64 f(int64 iteration, float64 time,
    int64 last_k, int64 workers, float64 gradient_dot, int64 counter)`` and is written as
    ``@numba.cfunc("int64(int64, float64, int64, int64, float64, int64)")``.  The kernels
    call it through its C function pointer (no Python, no GIL): once before the first
    iteration with ``iteration = 0, time = 0, last_k = 0`` (return the initial k), then
    after every iteration with the iterations done, the clock after it, the k it used, the
    product of its averaged gradient with the previous one (NaN after the first iteration)
    and the Pflug counter (SPEC 2.3: +1 for a negative product, -1 otherwise, reset to 0
    whenever k changes).  It returns the next k; a k outside 1..k_max (default the number
    of workers) is clipped and counted (``k_clipped`` in the record).

    Parameters
    ----------
    f : numba.core.ccallback.CFunc (or scipy.LowLevelCallable of that C signature)
    name : str, optional
        shown as the policy name ``compiled:NAME`` (default: the Python function's name).

    Raises
    ------
    ValidationError
        if ``f`` is not a Numba cfunc of exactly that signature (one line naming it).

    Examples
    --------
    >>> import numba
    >>> @numba.cfunc("int64(int64, float64, int64, int64, float64, int64)")
    ... def fixed_10(iteration, time, last_k, workers, gradient_dot, counter):
    ...     return 10
    >>> compiled_policy(fixed_10).name
    'fixed_10'
    """
    cb = compiled_callback(f, numba_signature=_NUMBA_SIGNATURE, c_signature=KPOLICY_SIGNATURE,
                           what="compiled k policy")
    return CompiledPolicy(cb.owner, name or cb.name, cb.address)


def parse_policy(spec: Any, workers: int) -> dict[str, Any]:
    """'fixed:K', 'sync' (k = n), 'bound[:STEP]', 'pflug[:K0:STEP:THRESH:BURNIN]', 'dbw[:K0]',
    'async', or a :class:`CompiledPolicy`."""
    if isinstance(spec, CompiledPolicy):
        return {"kind": "callback", "policy": spec}
    if not isinstance(spec, str):
        raise ValidationError(f"The 'policy' parameter must be a string or a compiled_policy(...)."
                              f" Got {type(spec).__name__} instead.")
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
        return {"kind": "bound", "step": check_number(nums[0] if nums else 1, "bound step", low=1,
                                                      integer=True)}
    if name == "pflug" and len(nums) <= 4:
        k0, step, thresh, burnin = (nums + [10, 10, 10, 200][len(nums):])[:4]
        if not nums and isinstance(workers, int) and 1 <= workers < k0:
            raise ValidationError(f"The 'pflug k0' parameter must be an int in [1, {workers}]. "
                                  f"Got {k0} instead: the default K0 of {spec!r} "
                                  f"(pflug:10:10:10:200) exceeds n = {workers} workers; give "
                                  f"pflug:K0 with K0 <= {workers}.")
        return {"kind": "pflug", "k0": check_number(k0, "pflug k0", low=1, high=workers, integer=True),
                "step": check_number(step, "pflug step", low=1, high=2**62, integer=True),
                "thresh": check_number(thresh, "pflug thresh", low=0, high=2**62, integer=True),
                "burnin": check_number(burnin, "pflug burnin", low=0, high=2**62, integer=True)}
    if name == "dbw" and len(nums) <= 1:
        return {"kind": "dbw",
                "k0": check_number(nums[0], "dbw k0", low=2, high=workers, integer=True) if nums else 0}
    if name == "async" and not nums:
        return {"kind": "async"}
    raise ValidationError(f"The 'policy' parameter must be fixed:K, sync, bound[:STEP], "
                          f"pflug[:K0:STEP:THRESH:BURNIN], dbw[:K0], async or a "
                          f"compiled_policy(...). Got {spec!r} instead.")


class KController:
    """The k decision of fastest-k SGD as one object: the simulator kernel and the real
    Dask runner (:func:`distalloc.sgd.train`) both call its compiled core, so what is
    measured in simulation is what runs on a cluster.

    Parameters
    ----------
    policy : str or CompiledPolicy
        'fixed:K', 'sync', 'bound[:STEP]' (needs ``schedule``),
        'pflug[:K0:STEP:THRESH:BURNIN]', 'dbw[:K0]' (needs ``order_stat_means``, ``lr``,
        ``smoothness``) or :func:`compiled_policy` of a Numba cfunc.
    workers : int
        n.
    k_max : int, optional
        largest k for pflug, dbw and callbacks (default n).
    schedule : Schedule, optional
        the bound schedule (:func:`distalloc.sgd.bound_schedule`): k = k_values[j] from
        switch_times[j - 1] on, on this controller's clock.
    order_stat_means : (n,) array, optional
        mu_k = E[X_(k)] for DBW (in the clock's unit).
    lr, smoothness : float, optional
        eta and L for DBW.
    dbw_decay : float
        weight of the past in DBW's moving averages.

    Notes
    -----
    ``observe`` costs O(n k) to find the iteration's duration plus the rule: O(1) for
    fixed, bound (amortised) and Pflug, O(k_max) for DBW, one C call for a callback;
    about a microsecond through Python (bench/bench_sgd_policies.py).
    """

    def __init__(self, policy: Any, workers: int, *, k_max: int | None = None,
                 schedule: Any = None, order_stat_means: Any = None, lr: float | None = None,
                 smoothness: float | None = None, dbw_decay: float = DBW_DECAY):
        n = check_workers(workers)
        pol = parse_policy(policy, n)
        cap = n if k_max is None else check_number(k_max, "k_max", low=1, high=n, integer=True)
        kinds = sgd_kernels.K_KIND
        switch, kvals, mu = np.zeros(0), np.ones(1, dtype=np.int64), np.zeros(0)
        k0, step, thresh, burnin, eta, L, address, owner = 1, 1, 0, 0, 0.0, 0.0, 0, None
        if pol["kind"] == "fixed":
            kind, kvals = kinds["schedule"], np.array([pol["k"]], dtype=np.int64)
        elif pol["kind"] == "bound":
            if schedule is None:
                raise ValidationError("The 'bound' policy needs its schedule (schedule="
                                      "distalloc.sgd.bound_schedule(...)).")
            kind = kinds["schedule"]
            switch = np.asarray(schedule.switch_times, dtype=np.float64)
            kvals = np.asarray(schedule.k_values, dtype=np.int64)
            if kvals.size != switch.size + 1 or kvals.min() < 1 or kvals.max() > n:
                raise ValidationError(f"The schedule's k values must be in [1, {n}] with one more "
                                      "entry than its switch times.")
        elif pol["kind"] == "pflug":
            kind, k0 = kinds["pflug"], min(pol["k0"], cap)
            step, thresh, burnin = pol["step"], pol["thresh"], pol["burnin"]
        elif pol["kind"] == "dbw":
            if n < 2:
                raise ValidationError("The 'dbw' policy needs at least 2 workers (it estimates "
                                      "the gradient variance across them). Got workers = 1 instead.")
            kind, k0 = kinds["dbw"], min(pol["k0"] or cap, cap)
            mu = np.asarray(order_stat_means if order_stat_means is not None else [], dtype=float)
            if mu.shape != (n,) or not np.all(np.isfinite(mu[:cap])) or np.any(mu[:cap] <= 0):
                raise ValidationError(f"The 'dbw' policy needs order_stat_means: {n} positive "
                                      f"means E[X_(k)], finite up to k_max = {cap}.")
            eta = check_number(lr, "lr", low=0, low_open=True)
            L = check_number(smoothness, "smoothness", low=0, low_open=True)
            check_number(dbw_decay, "dbw_decay", low=0, high=1, high_open=True)
        elif pol["kind"] == "callback":
            kind, address, owner = kinds["callback"], pol["policy"].address, pol["policy"]
        else:
            raise ValidationError("The 'async' policy has no k: it applies every gradient on "
                                  "arrival (run(..., policy='async') simulates it).")
        self.policy = str(policy)
        self.kind = pol["kind"]
        self._dbw = pol["kind"] == "dbw"
        self._core = sgd_kernels.KCore(kind, n, k0, cap, step, thresh, burnin, switch, kvals, mu,
                                       eta, L, float(dbw_decay), address, owner)

    def observe(self, response_times_s: Any, gradient_dot: float = math.nan, *,
                worker_variance: float = math.nan, gradient_sq_norm: float = math.nan) -> int:
        """Account one iteration run at the current k and return the next k.

        Parameters
        ----------
        response_times_s : (m,) array, k <= m <= n
            response times of the workers whose gradients arrived this iteration (at least
            the k used); the iteration's duration is their k-th smallest.
        gradient_dot : float
            product of this iteration's averaged gradient with the previous one (NaN: none).
        worker_variance, gradient_sq_norm : float
            DBW only: the variance of one worker's mean gradient (NaN if fewer than 2
            arrived) and |g|^2 of the averaged gradient.
        """
        scalars = {}
        for name, value in (("gradient_dot", gradient_dot), ("worker_variance", worker_variance),
                            ("gradient_sq_norm", gradient_sq_norm)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)):
                raise ValidationError(f"The '{name}' parameter must be a float (NaN: none). "
                                      f"Got {describe(value)} instead.")
            scalars[name] = float(value)
        gradient_dot, worker_variance, gradient_sq_norm = scalars.values()
        try:
            times = np.asarray(response_times_s, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValidationError(f"'response_times_s' must be a 1-d array of numbers. Got "
                                  f"{describe(response_times_s)} instead.") from None
        if times.ndim != 1:
            raise ValidationError(f"'response_times_s' must be a 1-d array. Got shape "
                                  f"{times.shape} instead.")
        if self._dbw and not math.isfinite(gradient_sq_norm):
            raise ValidationError("The 'dbw' policy needs gradient_sq_norm (|g|^2, finite). "
                                  f"Got {gradient_sq_norm!r} instead.")
        try:
            return self._core.observe(np.ascontiguousarray(times), float(gradient_dot),
                                      float(worker_variance), float(gradient_sq_norm))
        except ValueError as exc:
            raise ValidationError(f"'response_times_s': {exc}.") from None

    @property
    def k(self) -> int:
        """The k of the next iteration."""
        return self._core.k

    @property
    def time(self) -> float:
        """The clock: the sum of the iterations' durations."""
        return self._core.time

    @property
    def iterations(self) -> int:
        return self._core.iterations

    @property
    def counter(self) -> int:
        return self._core.counter

    @property
    def clipped(self) -> int:
        """How many k returned by a callback were outside 1..k_max (clipped)."""
        return self._core.clipped

    @property
    def workers(self) -> int:
        return self._core.workers

    @property
    def k_max(self) -> int:
        return self._core.k_max
