"""The exact (truncated) Markov chain of the (n, k) fork-join system (SPEC 3.2).

State.  Jobs are ordered by age; a job's level is its number of finished tasks, and levels
do not increase with age (every core serves jobs FCFS).  m_i counts the jobs at level i
(i < k).  Only the oldest job of each occupied level has cores at it: u(i) - i of them,
u(i) being the next occupied level above i (n above the top).  With one speed that is the
whole state (m_0 .. m_{k-1}), level i progressing at rate mu (u(i) - i).  With several
speeds a core keeps the speed it drew for its task, so the state also records the speed mix
of the cores at the head of each occupied level (survivors of a race are slower on
average, so the mix matters).

Transitions.  Arrival: a new youngest job at level 0; if level 0 was empty, the u(0) idle
cores start it, each drawing a speed (multinomial branching).  A completion at level i by a
speed-l core: the head job moves to level i + 1 (keeping its other cores, which are then at
the head of level i + 1, or none if level i + 1 was occupied), or departs at level k, its
other n - k tasks purged.  The freed cores (1, or n - k + 1 at a departure) move to the next
younger job: the new head of level i if m_i > 1, else the head of the next occupied level
below, else they go idle; each draws a fresh speed.

Levels of equal speed are merged (they differ only in power; busy time is split back in
proportion to p_l), so the mixes run over the distinct live speeds.

Stability is decided first, by :func:`distalloc.queueing.stability`: an unstable system is
refused at once, before any state is built.

Truncation: arrivals are blocked when sum_i m_i = ``max_jobs``; ``tail_mass`` is the
stationary mass at that boundary.  The first level is the one the load asks for: with
rho = lambda / Lambda (Lambda the saturation throughput) the number of jobs has a
geometric tail ~ rho^N (exactly so for k = n, where N is the longest of n M/M/1-like
queues; faster for k < n, where purging helps), so N_0 = log(tail_tol) / (2 log rho), a
cheap first solve.  While the boundary mass is too large the level grows to where the
decay measured on the solved chain's own tail says it is small enough (at least x1.25).  Before each level is built its number of states is counted
(:func:`count_states`, a dynamic programme over which levels are occupied) and its memory
estimated; a chain over ``max_memory_gb`` is refused with the estimate.  The chain is
solved with scipy.sparse (spsolve, or GMRES with an incomplete-LU preconditioner).

Why truncation and not a matrix-geometric tail: the chain is quasi-birth-death in the
total number of jobs, but its phase at level N (which m_0..m_{k-1} sum to N, and the speed
mixes) has C(N + k - 1, k - 1) x (mixes) states, growing with N; the matrix-geometric
method needs a phase space that stops growing (level-independent blocks A_0, A_1, A_2).
Taking m_0 as the level instead leaves m_1..m_{k-1} unbounded in the phase.  Only k = 1
has a finite phase (the mix of the racing cores), and that case is M/G/1, solved exactly
in closed form by :func:`approximate`.  A level-dependent QBD solver would be exact for
the truncated chain and no better than the sparse solve used here.

Cost: O(states x transitions) to build (Python), a sparse solve; states ~ C(N + k, k) x
mixes.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse import tril, triu
from scipy.sparse.linalg import LinearOperator, bicgstab, splu, spsolve

from distalloc._resources import default_max_memory_gb
from distalloc._validation import ValidationError, check_number
from distalloc.queueing.mixes import (check_work, compositions, distinct_speeds,
                                      log_multinomial)
from distalloc.queueing.model import ForkJoin, QueueMetrics
from distalloc.queueing.stability import check_stable

__all__ = ["exact", "count_states", "BYTES_PER_STATE", "SECONDS_PER_STATE",
           "DEFAULT_MAX_SECONDS"]

#: measured memory of one state while the chain is built and solved (the state tuple, its
#: index entry, its transitions in Python lists, the sparse matrix and the LU factor)
BYTES_PER_STATE = 2500
#: Time to build and solve the chain, per state (measured 10-110 us for building, 7-20 us
#: for the Gauss-Seidel solve on (4,2) .. (6,3) chains with 1-3 speeds; the upper end).
SECONDS_PER_STATE = 1.2e-4
DEFAULT_MAX_SECONDS = 60.0


def _multinomials(g: int, probs: np.ndarray) -> list[tuple[tuple[int, ...], float]]:
    """All speed mixes of g cores with their multinomial probabilities (zero-probability
    levels left out)."""
    if g == 0:
        return [(tuple([0] * probs.size), 1.0)]
    mixes = compositions(g, probs.size)
    pr = np.exp(log_multinomial(mixes, probs))
    return [(tuple(int(x) for x in mix), float(p)) for mix, p in zip(mixes, pr) if p > 0]


def _add_mix(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b))


def count_states(n: int, k: int, s: int, max_jobs: int) -> float:
    """Number of states of the chain truncated at ``max_jobs`` with s distinct speeds (an
    upper bound: every combination counted is reachable when all probabilities are > 0).

    A state is a set of occupied levels i_1 < ... < i_j (j <= k), counts m_i >= 1 with
    sum <= max_jobs (C(max_jobs, j) ways) and, per occupied level, the speed mix of the
    u(i) - i cores at its head (C(u(i) - i + s - 1, s - 1) ways).  Dynamic programme over
    the lowest occupied level; O(k^3) in floats.  Above 10^15 (every mix count is >= 1, so
    the single-speed count C(max_jobs + k, k) is a lower bound) it returns that bound."""
    log_lower = (math.lgamma(max_jobs + k + 1) - math.lgamma(k + 1)
                 - math.lgamma(max_jobs + 1))
    if log_lower > math.log(1e15):
        return math.exp(log_lower) if log_lower < 700 else math.inf

    def mixes(g: int) -> float:                 # C(g + s - 1, s - 1) as a float
        log_c = math.lgamma(g + s) - math.lgamma(s) - math.lgamma(g + 1)
        if log_c > 700:
            return math.inf
        return float(math.comb(g + s - 1, s - 1)) if log_c < 40 else math.exp(log_c)
    # W[i][j]: patterns with lowest occupied level i and j occupied levels, mix weights
    W = [[0.0] * (k + 1) for _ in range(k)]
    for i in range(k - 1, -1, -1):
        W[i][1] = mixes(n - i)
        for j in range(2, k - i + 1):
            W[i][j] = sum(mixes(i2 - i) * W[i2][j - 1] for i2 in range(i + 1, k))
    total = 1.0
    for j in range(1, k + 1):
        ways = math.comb(max_jobs, j) if j <= max_jobs else 0
        if ways:
            total += float(ways) * sum(W[i][j] for i in range(k))
    return total if math.isfinite(total) else math.inf


class _Draws(dict):
    """Speed mixes of g fresh cores with their probabilities, computed when first needed."""

    def __init__(self, probs: np.ndarray):
        super().__init__()
        self.probs = probs

    def __missing__(self, g: int):
        self[g] = _multinomials(g, self.probs)
        return self[g]


class _Chain:
    def __init__(self, system: ForkJoin, max_jobs: int):
        self.sys = system
        self.n, self.k = system.servers, system.needed
        self.speeds, merged, self.group = distinct_speeds(system.speeds, system.probs)
        self.merged = merged
        self.s = self.speeds.size
        self.max_jobs = max_jobs
        self.draw = _Draws(merged)
        self.zero = tuple([0] * self.s)

    # a state: tuple over levels of (m_i, mix_i) or None
    def transitions(self, state):
        n, k, lam = self.n, self.k, self.sys.rate
        out = []
        total = sum(x[0] for x in state if x is not None)
        occupied = [i for i in range(k) if state[i] is not None]
        # arrival
        if total < self.max_jobs:
            st = list(state)
            if st[0] is not None:
                st[0] = (st[0][0] + 1, st[0][1])
                out.append((tuple(st), lam))
            else:
                g = next((i for i in occupied), n)  # u(0): the lowest occupied level, or n
                for mix, pr in self.draw[g]:
                    st = list(state)
                    st[0] = (1, mix)
                    out.append((tuple(st), lam * pr))
        # completions at the head of each occupied level
        for i in occupied:
            m_i, mix = state[i]
            for l in range(self.s):
                if mix[l] == 0:
                    continue
                rate = self.speeds[l] * mix[l]
                rest = tuple(c - (1 if j == l else 0) for j, c in enumerate(mix))
                st = list(state)
                if i + 1 == k:
                    freed = 1 + sum(rest)
                else:
                    freed = 1
                    if st[i + 1] is None:
                        st[i + 1] = (1, rest)
                    else:
                        st[i + 1] = (st[i + 1][0] + 1, st[i + 1][1])
                if m_i > 1:
                    for new, pr in self.draw[freed]:
                        st2 = list(st)
                        st2[i] = (m_i - 1, new)
                        out.append((tuple(st2), rate * pr))
                else:
                    st[i] = None
                    below = next((j for j in range(i - 1, -1, -1) if st[j] is not None), None)
                    if below is None:
                        out.append((tuple(st), rate))
                    else:
                        mb, mixb = st[below]
                        for new, pr in self.draw[freed]:
                            st2 = list(st)
                            st2[below] = (mb, _add_mix(mixb, new))
                            out.append((tuple(st2), rate * pr))
        return out

    def build(self, state_limit: int):
        start = tuple([None] * self.k)
        index = {start: 0}
        states = [start]
        rows, cols, vals = [], [], []
        i = 0
        while i < len(states):
            for nxt, rate in self.transitions(states[i]):
                j = index.get(nxt)
                if j is None:
                    j = len(states)
                    if j >= state_limit:   # count_states is an upper bound: cannot happen
                        raise AssertionError(f"more than {state_limit} states")
                    index[nxt] = j
                    states.append(nxt)
                rows.append(i)
                cols.append(j)
                vals.append(rate)
            i += 1
        return states, rows, cols, vals


class _OutOfTime(Exception):
    pass


def _solve(states, rows, cols, vals, deadline: float = math.inf) -> np.ndarray:
    """pi Q = 0, sum pi = 1.  Fixing pi_0 = 1 and dropping its balance equation keeps the
    system sparse (a normalisation row of ones would fill in the whole LU factor).

    Small chains: sparse LU.  Larger ones: the LU of this k-dimensional grid-like chain
    fills in badly (a 53 000-state (5,5) chain took a minute to factor, ILU as long), but
    the chain has an order in which every inflow but one kind comes from an earlier state:
    by total jobs, then by progress sum_i i m_i.  Arrivals come from one job fewer and
    completions that do not end a job from less progress at the same total; only
    departures come from later states.  So the lower triangle (with the diagonal) is a
    block Gauss-Seidel sweep solved by substitution without fill-in (~2 ms for 50 000
    states); the sweeps converge in hundreds to a few thousand iterations (seconds), with
    BiCGSTAB preconditioned by the sweep if they do not, and the direct solve last.  The
    answer is judged by its residual; solver warnings are not printed.  The iterations
    stop at ``deadline`` (time.perf_counter()): near saturation they converge slowly, and
    the caller's time limit bounds them (a one-line error naming it)."""
    N = len(states)
    if N == 1:
        return np.ones(1)
    total = np.array([sum(x[0] for x in st if x is not None) for st in states])
    progress = np.array([sum(i * x[0] for i, x in enumerate(st) if x is not None)
                         for st in states])
    order = np.lexsort((progress, total))        # state 0 (empty) stays first
    where = np.empty(N, dtype=np.int64)
    where[order] = np.arange(N)
    r, c = where[np.asarray(rows, dtype=np.int64)], where[np.asarray(cols, dtype=np.int64)]
    Q = coo_matrix((vals, (r, c)), shape=(N, N)).tocsr()
    Q = Q - csr_matrix((np.asarray(Q.sum(axis=1)).ravel(), (range(N), range(N))), shape=(N, N))
    At = Q.T.tocsc()
    A = At[1:, 1:].tocsc()
    b = -At[1:, 0].toarray().ravel()
    scale = max(np.abs(b).max(), 1.0)
    x = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if N > 2000:
                try:
                    x = _gauss_seidel(A, b, scale, deadline=deadline)
                except RuntimeError:
                    x = None
            if x is None:
                if time.perf_counter() > deadline:
                    raise _OutOfTime
                x = spsolve(A, b)
        except _OutOfTime:
            raise ValidationError(
                f"The iterative solve of the {N}-state chain did not converge within "
                f"max_seconds (load near 1 converges slowly); raise it with max_seconds "
                f"(--max-seconds), or use approximate() or simulate().") from None
        ok = bool(np.all(np.isfinite(x))) and np.abs(A @ x - b).max() <= 1e-7 * scale
    if not ok:
        raise ValidationError(f"The sparse solve of the {N}-state chain failed (residual too "
                              f"large); use approximate() or simulate().")
    pi = np.empty(N)
    pi[0] = 1.0
    pi[1:] = x
    pi = np.maximum(pi, 0)
    return pi[where] / pi.sum()


def _gauss_seidel(A, b: np.ndarray, scale: float, sweeps: int = 5000,
                  deadline: float = math.inf) -> np.ndarray | None:
    """Block Gauss-Seidel in the chain's order (see _solve), then BiCGSTAB preconditioned by
    the sweep; None if neither reaches a residual of 1e-11 x scale."""
    sweep = splu(tril(A).tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0,
                 options={"SymmetricMode": True})
    upper = triu(A, 1).tocsr()
    x = sweep.solve(b)
    for i in range(sweeps):
        if i % 16 == 0 and time.perf_counter() > deadline:
            raise _OutOfTime
        new = sweep.solve(b - upper @ x)
        # after a sweep the residual is U (x_new - x_old)
        done = np.abs(upper @ (new - x)).max() <= 1e-11 * scale
        x = new
        if done:
            return x
    def out_of_time(_):
        if time.perf_counter() > deadline:
            raise _OutOfTime
    x, info = bicgstab(A, b, x0=x, M=LinearOperator(A.shape, sweep.solve), rtol=1e-13,
                       atol=0, maxiter=2000, callback=out_of_time)
    return x if info == 0 and np.abs(A @ x - b).max() <= 1e-9 * scale else None


def _memory_check(system: ForkJoin, level: int, s: int, max_memory_gb: float,
                  max_seconds: float | None = None, spent_s: float = 0.0) -> int:
    """Refuse a chain over the memory or time limit (time: this level's estimate plus what
    the levels before it took) before building it; the state count bound otherwise."""
    n, k = system.servers, system.needed
    states = count_states(n, k, s, level)
    need_gb = states * BYTES_PER_STATE / 2 ** 30
    if need_gb > max_memory_gb:
        raise ValidationError(
            f"The exact chain of this ({n},{k}) system with {s} distinct speed(s) needs about "
            f"{states:.3g} states (~{need_gb:.3g} GB) at max_jobs = {level}, over the limit of "
            f"{max_memory_gb:g} GB; raise it with max_memory_gb (--max-memory-gb), or use "
            f"approximate() or simulate().")
    check_work(spent_s + states * SECONDS_PER_STATE,
               f"exact() of this ({n},{k}) system with {s} distinct speed(s) ({states:.3g} "
               f"states at max_jobs = {level})", max_seconds)
    return int(states) + 1


def exact(system: ForkJoin, *, max_jobs: int | None = None, tail_tol: float = 1e-8,
          max_memory_gb: float | None = None,
          max_seconds: float | None = DEFAULT_MAX_SECONDS) -> QueueMetrics:
    """Stationary metrics from the truncated Markov chain (small systems).

    Parameters
    ----------
    system : ForkJoin
    max_jobs : int, optional
        truncation level; by default it starts where rho^N = ``tail_tol`` and grows until
        the boundary mass is below ``tail_tol``.
    tail_tol : float
        largest acceptable stationary mass at the truncation boundary.
    max_memory_gb : float, optional
        refuse chains whose estimated memory (states x BYTES_PER_STATE) exceeds this
        (default :func:`distalloc._resources.default_max_memory_gb`: half the machine's
        memory, at most 8 GB, the default of every family).
    max_seconds : float or None
        refuse a chain whose estimated build and solve time (states x SECONDS_PER_STATE,
        plus the time of the smaller truncations already tried) exceeds this; None: no
        limit.

    Returns
    -------
    QueueMetrics
        with ``tail_mass``, ``max_jobs``, ``num_states`` and the stability decision
        (``capacity``, ``capacity_source``) in ``extra``.

    Raises
    ------
    UnstableError
        an unstable system (:func:`stability`), at once.
    ValidationError
        a truncation whose tail mass exceeds ``tail_tol``, or a chain over
        ``max_memory_gb`` or ``max_seconds``; before the chain that would not fit is built.

    Notes
    -----
    Reference values (mu = 1): (4,2) lambda 1.6 -> E[N] 3.457; (4,2) 1.8 -> 7.290;
    (6,3) 1.6 -> 3.277 (SPEC 3.2).  See the module docstring for the state, the
    truncation and why no matrix-geometric tail.

    Examples
    --------
    >>> from distalloc.queueing import ForkJoin, exact
    >>> round(exact(ForkJoin(4, 2, 1.6)).mean_jobs, 3)
    3.457
    """
    tail_tol = check_number(tail_tol, "tail_tol", low=0, low_open=True, high=0.5)
    max_memory_gb = (default_max_memory_gb() if max_memory_gb is None else
                     check_number(max_memory_gb, "max_memory_gb", low=0, low_open=True))
    if max_seconds is not None:
        max_seconds = check_number(max_seconds, "max_seconds", low=0, low_open=True)
    st = check_stable(system)
    n, k, lam = system.servers, system.needed, system.rate
    s = system.distinct[0].size
    t0 = time.perf_counter()
    auto = max_jobs is None
    if auto:
        rho = min(lam / st.capacity, 1 - 1e-9)
        level = max(k + 1, math.ceil(0.5 * math.log(tail_tol) / math.log(rho)))
    else:
        level = check_number(max_jobs, "max_jobs", low=1, high=10 ** 9, integer=True)
    while True:
        limit = _memory_check(system, level, s, max_memory_gb, max_seconds,
                              time.perf_counter() - t0)
        chain = _Chain(system, level)
        states, rows, cols, vals = chain.build(limit)
        pi = _solve(states, rows, cols, vals,
                    math.inf if max_seconds is None else t0 + max_seconds)
        jobs = np.array([sum(x[0] for x in st_ if x is not None) for st_ in states])
        tail = float(pi[jobs == level].sum())
        if tail <= tail_tol or not auto:
            break
        level = _next_level(pi, jobs, level, tail, tail_tol)
    if tail > tail_tol:
        raise ValidationError(f"Truncation at max_jobs = {level} leaves tail mass {tail:.3g} > "
                              f"tail_tol = {tail_tol:g} (load {system.load:.3g}): raise max_jobs.")
    mean_jobs = float(pi @ jobs)
    # busy cores per distinct speed, split back per level; completion flow per level
    busy_g = np.zeros(s)
    for p, st_ in zip(pi, states):
        for x in st_:
            if x is not None:
                busy_g += p * np.array(x[1])
    live = chain.group >= 0
    busy = np.zeros(system.num_levels)
    busy[live] = busy_g[chain.group[live]] * system.probs[live] / chain.merged[chain.group[live]]
    flow = busy * system.speeds                 # task completions per unit time, per level
    q = flow / flow.sum() if flow.sum() > 0 else system.probs.copy()
    idle = system.idle_power * (n - busy.sum())
    mean_power = float(busy @ system.powers + idle)
    return QueueMetrics(
        method="exact", mean_jobs=mean_jobs, mean_response=mean_jobs / lam,
        energy_per_job=mean_power / lam, mean_power=mean_power, completion_fraction=q,
        extra={"tail_mass": tail, "max_jobs": level, "num_states": len(states),
               "load": system.load, "capacity": st.capacity, "capacity_source": st.source,
               "wall_s": time.perf_counter() - t0})


def _next_level(pi: np.ndarray, jobs: np.ndarray, level: int, tail: float,
                tail_tol: float) -> int:
    """The next truncation level: where the geometric decay of P(N = j), measured below
    the boundary of the solved chain, puts the boundary mass under ``tail_tol``."""
    grow = max(level + 2, math.ceil(1.25 * level))
    by_jobs = np.bincount(jobs, weights=pi, minlength=level + 1)
    a, b = level - 2 * max(level // 8, 1), level - max(level // 8, 1)
    if a > 0 and by_jobs[a] > 0 and by_jobs[b] > 0 and by_jobs[b] < by_jobs[a]:
        eta = (by_jobs[b] / by_jobs[a]) ** (1.0 / (b - a))
        need = level + math.ceil(math.log(tail_tol / tail) / math.log(eta)) + 2
        return max(grow, min(need, 4 * level))
    return max(grow, 2 * level)
