"""Speed mixes of a group of cores: the combinatorics shared by the stability decision, the
approximation and its batched kernel.

A *mix* of g cores over s speed levels is a composition (g_0, ..., g_{s-1}) of g; with each
core drawing level l with probability p_l independently, the mix is multinomial.  Levels
with the same speed are indistinguishable in time (only their power differs), and levels
of probability 0 never occur, so the timing computations run on the *distinct live
speeds*; per-level quantities are split back in proportion to p_l within a speed.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, check_number

__all__ = ["distinct_speeds", "compositions", "log_factorials", "log_multinomial", "race_k1",
           "count_compositions", "check_work", "WORK_PER_SECOND", "COMPILED_PER_SECOND"]

#: rough elementary steps per second of the vectorised Python code (race, chain) and of the
#: compiled kernels; used only to turn work estimates into time estimates for refusals
WORK_PER_SECOND = 2e6
COMPILED_PER_SECOND = 2e8


def distinct_speeds(speeds: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """(distinct live speeds ascending, their total probabilities, group index per level or
    -1 for a level of probability 0)."""
    live = probs > 0
    if live.all():
        order = np.argsort(speeds, kind="stable")
        values = speeds[order]
        if values.size == 1 or bool(np.all(values[1:] > values[:-1])):   # all distinct
            group = np.empty(speeds.size, dtype=np.int64)
            group[order] = np.arange(speeds.size)
            return values, probs[order], group
    values = np.unique(speeds[live])
    group = np.full(speeds.size, -1, dtype=np.int64)
    group[live] = np.searchsorted(values, speeds[live])
    merged = np.zeros(values.size)
    np.add.at(merged, group[live], probs[live])
    return values, merged, group


def count_compositions(g: int, s: int) -> int:
    """Number of mixes of g cores over s levels: C(g + s - 1, s - 1)."""
    return math.comb(g + s - 1, s - 1)


def check_max_seconds(limit_s: Any) -> float | None:
    """A ``max_seconds`` limit: None (no limit) or a number in (0, inf]; NaN, strings and
    negative values are one-line errors (NaN used to mean no limit)."""
    if limit_s is None or (isinstance(limit_s, float) and limit_s == math.inf):
        return None
    return check_number(limit_s, "max_seconds", low=0, low_open=True)


def check_work(seconds: float, what: str, limit_s: float | None) -> None:
    """Refuse work whose estimated time exceeds ``limit_s`` seconds, naming the estimate and
    the option that raises the limit (max_seconds, --max-seconds)."""
    limit_s = check_max_seconds(limit_s)
    if limit_s is not None and seconds > limit_s:
        raise ValidationError(
            f"{what} needs about {seconds:.3g} s, over the limit of {limit_s:g} s; raise it "
            f"with max_seconds (--max-seconds) if you mean it.")


@lru_cache(maxsize=256)
def compositions(g: int, s: int) -> np.ndarray:
    """All mixes of g cores over s levels, shape (C(g+s-1, s-1), s), in lexicographic order
    of the stars-and-bars cut positions."""
    out = np.empty((count_compositions(g, s), s), dtype=np.int64)
    for row, cut in enumerate(itertools.combinations(range(g + s - 1), s - 1)):
        prev = -1
        for l, c in enumerate((*cut, g + s - 1)):
            out[row, l] = c - prev - 1
            prev = c
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n by math.lgamma (the table the Numba kernels get too, so both
    sides use the same numbers)."""
    out = np.array([math.lgamma(i + 1.0) for i in range(n + 1)])
    out.setflags(write=False)
    return out


def _log_probs(probs: np.ndarray) -> list[float]:
    return [math.log(p) if p > 0 else -math.inf for p in probs]


def log_multinomial(mixes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """log of the multinomial probability of each mix (rows of ``mixes``); -inf where a
    level of probability 0 is used.  lgamma keeps it finite for any number of cores."""
    g = int(mixes[0].sum()) if len(mixes) else 0
    table = log_factorials(g)
    logp = _log_probs(probs)
    out = np.full(len(mixes), table[g])
    with np.errstate(invalid="ignore"):
        for l in range(probs.size):
            m = mixes[:, l]
            out -= table[m]
            out += np.where(m > 0, m * logp[l], 0.0)
    return out


def race_k1(n: int, speeds: np.ndarray, probs: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The k = 1 race of n cores: (E[S], E[S^2], share of the wins per level), S the time to
    the first completion, Exp(sum of the drawn rates) given the mix (SPEC 3.2).

    ``speeds``, ``probs``: distinct live speeds.  O(C(n+s-1, s-1) s), cached.  A plain
    loop with the same operations in the same order as the Numba twin
    (kernels/queue_grid.py ``_race_k1``): near the capacity E[T] amplifies the last bits of
    E[S] by 1 / (1 - rho), and the grid must equal this to 1e-12."""
    m1, m2, wins = _race_k1(n, np.ascontiguousarray(speeds, dtype=float).tobytes(),
                            np.ascontiguousarray(probs, dtype=float).tobytes())
    return m1, m2, np.array(wins)


@lru_cache(maxsize=4096)
def _race_k1(n: int, speeds_key: bytes, probs_key: bytes) -> tuple[float, float, tuple]:
    speeds = np.frombuffer(speeds_key).tolist()
    probs = np.frombuffer(probs_key)
    s = len(speeds)
    table = log_factorials(n).tolist()
    logp = _log_probs(probs)
    m1 = m2 = 0.0
    wins = [0.0] * s
    for row in compositions(n, s).tolist():
        lp = table[n]
        for l in range(s):
            m = row[l]
            lp -= table[m]
            if m > 0:
                lp += m * logp[l]
        pr = math.exp(lp)
        if pr == 0.0:
            continue
        rate = 0.0
        for l in range(s):
            rate += row[l] * speeds[l]
        m1 += pr / rate
        m2 += 2.0 * pr / rate ** 2
        for l in range(s):
            wins[l] += pr / rate * row[l] * speeds[l]
    return m1, m2, tuple(wins)


@lru_cache(maxsize=64)
def race_tables(n: int, s: int, k: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For g = n, n-1, ..., n-k+1 cores still racing: (mixes of g cores, ``down``) where
    ``down[i, l]`` is the row of mix i minus one level-l core among the mixes of g - 1 cores
    (-1 if mix i has no level-l core).  Shared by the Python race and its Numba twin."""
    out = []
    below = None
    for g in range(n - k + 1, n + 1):
        mixes = compositions(g, s)
        down = np.full((len(mixes), s), -1, dtype=np.int64)
        if below is not None:
            index = {row.tobytes(): i for i, row in enumerate(below)}
            step = np.eye(s, dtype=np.int64)
            for l in range(s):
                has = np.nonzero(mixes[:, l] > 0)[0]
                for i in has:
                    down[i, l] = index[(mixes[i] - step[l]).tobytes()]
        down.setflags(write=False)
        out.append((mixes, down))
        below = mixes
    return tuple(reversed(out))


@lru_cache(maxsize=4096)
def race_work(n: int, k: int, s: int) -> float:
    """Steps of the lone-job race over mixes (for refusals before any work)."""
    return float(sum(count_compositions(g, s) for g in range(max(n - k + 1, 0), n + 1))) * s
