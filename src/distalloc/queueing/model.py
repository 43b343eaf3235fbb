"""The (n, k) fork-join system with speed levels (SPEC 3.1) and its result object."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from distalloc._validation import ValidationError, check_number
from distalloc.queueing.mixes import distinct_speeds

__all__ = ["ForkJoin", "QueueMetrics", "MAX_SERVERS", "MAX_VALUE"]

#: largest number of cores: beyond it the per-job work and memory of every method is out
#: of range (and an integer that large is almost always a typo)
MAX_SERVERS = 1_000_000
#: rates, speeds and powers lie in [1 / MAX_VALUE, MAX_VALUE] (powers may be 0), so that
#: no sum, product or square any method forms can overflow a float
MAX_VALUE = 1e100


def _vector(values: Any, name: str, *, low: float, high: float = MAX_VALUE) -> np.ndarray:
    if isinstance(values, (int, float, np.number)):
        values = [values]
    if not isinstance(values, (list, tuple, np.ndarray)) or len(values) == 0:
        raise ValidationError(f"The '{name}' parameter must be a non-empty list of numbers. "
                              f"Got {values!r} instead.")
    return np.array([check_number(v, f"{name}[{i}]", low=low, high=high)
                     for i, v in enumerate(values)])


@dataclass(frozen=True, eq=False)
class ForkJoin:
    """An (n, k) fork-join system with purging whose cores pick a speed level per task.

    Jobs arrive Poisson(``rate``); each forks into ``servers`` = n tasks, one per core's
    FCFS queue; it completes when ``needed`` = k tasks finish, and its other n - k tasks
    are cancelled at once.  For every (core, job) pair the core draws level l with
    probability ``probs[l]``: exponential service at rate ``speeds[l]``, busy power
    ``powers[l]``.  An idle core draws ``idle_power``.

    Raises
    ------
    ValidationError
        k > n, n > MAX_SERVERS (10^6), rates and speeds outside [1e-100, 1e100], powers
        outside [0, 1e100], probabilities that are negative or do not sum to 1, lists of
        different lengths.

    Examples
    --------
    >>> from distalloc.queueing import ForkJoin
    >>> fj = ForkJoin(10, 5, 2.0, speeds=[1.0, 3.0], powers=[1.0, 6.0], probs=[0.5, 0.5])
    >>> round(fj.load, 4)   # rho = lambda k sum_l p_l / mu_l / n
    0.6667
    """

    servers: int
    needed: int
    rate: float
    speeds: np.ndarray
    powers: np.ndarray
    probs: np.ndarray
    idle_power: float = 0.0

    def __init__(self, servers: int, needed: int, rate: float, speeds: Sequence[float] = (1.0,),
                 powers: Sequence[float] | None = None, probs: Sequence[float] | None = None,
                 idle_power: float = 0.0):
        n = check_number(servers, "servers", low=1, high=MAX_SERVERS, integer=True)
        k = check_number(needed, "needed", low=1, high=n, integer=True)
        lam = check_number(rate, "rate", low=1 / MAX_VALUE, high=MAX_VALUE)
        mu = _vector(speeds, "speeds", low=1 / MAX_VALUE)
        P = (np.ones_like(mu) if powers is None else _vector(powers, "powers", low=0))
        p = (np.full(mu.size, 1.0 / mu.size) if probs is None else _vector(probs, "probs", low=0, high=1))
        if not (mu.size == P.size == p.size):
            raise ValidationError(f"'speeds', 'powers' and 'probs' must have the same length. "
                                  f"Got {mu.size}, {P.size} and {p.size} instead.")
        if abs(p.sum() - 1.0) > 1e-9:
            raise ValidationError(f"The 'probs' parameter must sum to 1. Got {p.tolist()} "
                                  f"(sum {p.sum():.12g}) instead.")
        idle = check_number(idle_power, "idle_power", low=0, high=MAX_VALUE)
        for name, value in (("servers", n), ("needed", k), ("rate", lam), ("speeds", mu),
                            ("powers", P), ("probs", p / p.sum()), ("idle_power", idle)):
            object.__setattr__(self, name, value)

    @property
    def num_levels(self) -> int:
        return int(self.speeds.size)

    @property
    def load(self) -> float:
        """rho = lambda k sum_l (p_l / mu_l) / n (SPEC 3.3): the offered work per core."""
        return float(self.rate * self.needed * np.sum(self.probs / self.speeds) / self.servers)

    @cached_property
    def distinct(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct live speeds, their probabilities, group of each level or -1):
        :func:`distalloc.queueing.mixes.distinct_speeds`, computed once."""
        return distinct_speeds(self.speeds, self.probs)

    @property
    def single_speed(self) -> bool:
        """One distinct speed among the levels of positive probability."""
        return self.distinct[0].size == 1

    def with_rate(self, rate: float) -> "ForkJoin":
        """The same system at another arrival rate (its other fields copied as they are:
        normalising the probabilities again could move their last bits)."""
        other = object.__new__(ForkJoin)
        for name in ("servers", "needed", "speeds", "powers", "probs", "idle_power"):
            object.__setattr__(other, name, getattr(self, name))
        object.__setattr__(other, "rate", check_number(rate, "rate", low=1 / MAX_VALUE,
                                                       high=MAX_VALUE))
        return other

    def with_probs(self, probs: Sequence[float]) -> "ForkJoin":
        return ForkJoin(self.servers, self.needed, self.rate, self.speeds, self.powers, probs,
                        self.idle_power)

    def energy_from_completions(self, completion_fraction: np.ndarray) -> float:
        """Energy per job from the fraction q_l of task completions at each level (SPEC 3.2
        energy identity) and the idle power: busy time per job is k sum_l q_l / mu_l, busy
        energy k sum_l q_l P_l / mu_l, idle core-time n / lambda - busy time."""
        q = np.asarray(completion_fraction, dtype=float)
        busy = self.needed * float(np.sum(q / self.speeds))
        busy_energy = self.needed * float(np.sum(q * self.powers / self.speeds))
        return busy_energy + self.idle_power * max(self.servers / self.rate - busy, 0.0)


@dataclass(eq=False)
class QueueMetrics:
    """What a method says of a :class:`ForkJoin` system.  ``*_ci`` are 95% half-widths
    (simulation); ``tail_mass`` the truncation's probability mass at its boundary (exact);
    ``completion_fraction`` the fraction q_l of task completions at each speed level."""

    method: str
    mean_jobs: float
    mean_response: float
    energy_per_job: float
    mean_power: float
    completion_fraction: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "mean_jobs": self.mean_jobs,
               "mean_response": self.mean_response, "energy_per_job": self.energy_per_job,
               "mean_power": self.mean_power,
               "completion_fraction": [float(x) for x in self.completion_fraction]}
        out.update(self.extra)
        clean = {}
        for key, v in out.items():
            if isinstance(v, (float, np.floating)):
                v = float(v) if math.isfinite(v) else None
            elif isinstance(v, np.integer):
                v = int(v)
            clean[key] = v
        return clean
