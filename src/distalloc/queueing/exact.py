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

Truncation: arrivals are blocked when sum_i m_i = ``max_jobs``; ``tail_mass`` is the
stationary mass at that boundary.  The chain is solved with scipy.sparse (spsolve).
"""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.linalg import LinearOperator, gmres, spilu, spsolve

from distalloc._validation import ValidationError, check_number
from distalloc.queueing.model import ForkJoin, QueueMetrics

__all__ = ["exact"]


def _multinomials(g: int, probs: np.ndarray) -> list[tuple[tuple[int, ...], float]]:
    """All speed mixes of g cores with their multinomial probabilities (zero-probability
    levels left out)."""
    s = probs.size
    out = []
    for combo in itertools.combinations_with_replacement(range(s), g):
        mix = tuple(combo.count(l) for l in range(s))
        pr = math.factorial(g)
        for l in range(s):
            pr = pr / math.factorial(mix[l]) * probs[l] ** mix[l]
        if pr > 0:
            out.append((mix, pr))
    return out


def _add_mix(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b))


class _Chain:
    def __init__(self, system: ForkJoin, max_jobs: int):
        self.sys = system
        self.n, self.k = system.servers, system.needed
        self.s = system.num_levels
        self.max_jobs = max_jobs
        self.draw = {g: _multinomials(g, system.probs) for g in range(self.n + 1)}
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
                rate = self.sys.speeds[l] * mix[l]
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
                    if j >= state_limit:
                        raise ValidationError(
                            f"The exact chain needs more than {state_limit} states (n = {self.n}, "
                            f"k = {self.k}, {self.s} speeds, max_jobs = {self.max_jobs}); use "
                            f"approximate() or simulate() for a system this size.")
                    index[nxt] = j
                    states.append(nxt)
                rows.append(i)
                cols.append(j)
                vals.append(rate)
            i += 1
        return states, rows, cols, vals


def _solve(states, rows, cols, vals) -> np.ndarray:
    """pi Q = 0, sum pi = 1.  Fixing pi_0 = 1 and dropping its balance equation keeps the
    system sparse (a normalisation row of ones would fill in the whole LU factor)."""
    N = len(states)
    Q = coo_matrix((vals, (rows, cols)), shape=(N, N)).tocsr()
    Q = Q - csr_matrix((np.asarray(Q.sum(axis=1)).ravel(), (range(N), range(N))), shape=(N, N))
    if N == 1:
        return np.ones(1)
    At = Q.T.tocsc()
    A = At[1:, 1:].tocsc()
    b = -At[1:, 0].toarray().ravel()
    pi = np.empty(N)
    pi[0] = 1.0
    x = None
    if N > 5000:
        # LU of a k-dimensional grid-like chain fills in badly: GMRES with an incomplete LU
        # preconditioner, checked by its residual; the direct solve if it does not converge
        ilu = spilu(A, drop_tol=1e-5, fill_factor=20)
        x, info = gmres(A, b, M=LinearOperator(A.shape, ilu.solve), rtol=1e-12, atol=0,
                        restart=50, maxiter=1000)
        if info != 0 or np.abs(A @ x - b).max() > 1e-9 * max(np.abs(b).max(), 1.0):
            x = None
    if x is None:
        x = spsolve(A, b)
    pi[1:] = x
    pi = np.maximum(pi, 0)
    return pi / pi.sum()


def exact(system: ForkJoin, *, max_jobs: int | None = None, tail_tol: float = 1e-8,
          state_limit: int = 400_000) -> QueueMetrics:
    """Stationary metrics from the truncated Markov chain (small systems).

    Parameters
    ----------
    system : ForkJoin
    max_jobs : int, optional
        truncation level; by default it doubles from 32 until the boundary mass is below
        ``tail_tol``.
    tail_tol : float
        largest acceptable stationary mass at the truncation boundary.
    state_limit : int
        refuse chains with more states than this.

    Returns
    -------
    QueueMetrics
        with ``tail_mass`` and ``max_jobs`` in ``extra``.

    Raises
    ------
    ValidationError
        an unstable single-speed system (lambda >= n mu / k), a truncation whose tail mass
        exceeds ``tail_tol``, or a chain larger than ``state_limit``.

    Notes
    -----
    Reference values (mu = 1): (4,2) lambda 1.6 -> E[N] 3.457; (4,2) 1.8 -> 7.290;
    (6,3) 1.6 -> 3.277 (SPEC 3.2).
    """
    tail_tol = check_number(tail_tol, "tail_tol", low=0, low_open=True, high=1)
    n, k, lam = system.servers, system.needed, system.rate
    if system.single_speed:
        mu = float(system.speeds[np.argmax(system.probs)])
        if lam >= n * mu / k:
            raise ValidationError(f"The system is unstable: rate {lam:g} >= n mu / k = "
                                  f"{n * mu / k:g}; no stationary distribution exists.")
    t0 = time.perf_counter()
    auto = max_jobs is None
    level = 32 if auto else check_number(max_jobs, "max_jobs", low=1, integer=True)
    while True:
        chain = _Chain(system, level)
        states, rows, cols, vals = chain.build(state_limit)
        pi = _solve(states, rows, cols, vals)
        jobs = np.array([sum(x[0] for x in st if x is not None) for st in states])
        tail = float(pi[jobs == level].sum())
        if tail <= tail_tol or not auto:
            break
        level *= 2
    if tail > tail_tol:
        raise ValidationError(f"Truncation at max_jobs = {level} leaves tail mass {tail:.3g} > "
                              f"tail_tol = {tail_tol:g} (load {system.load:.3g}): raise max_jobs, "
                              f"or the system is unstable.")
    mean_jobs = float(pi @ jobs)
    # busy cores per speed level, and completion flow per level (rate x busy count)
    s = system.num_levels
    busy = np.zeros(s)
    for p, st in zip(pi, states):
        for x in st:
            if x is not None:
                busy += p * np.array(x[1])
    flow = busy * system.speeds                 # task completions per unit time, per level
    q = flow / flow.sum() if flow.sum() > 0 else system.probs.copy()
    idle = system.idle_power * (n - busy.sum())
    mean_power = float(busy @ system.powers + idle)
    return QueueMetrics(
        method="exact", mean_jobs=mean_jobs, mean_response=mean_jobs / lam,
        energy_per_job=mean_power / lam, mean_power=mean_power, completion_fraction=q,
        extra={"tail_mass": tail, "max_jobs": level, "num_states": len(states),
               "load": system.load, "wall_s": time.perf_counter() - t0})
