"""Solver back ends of :mod:`distalloc.llm.milp`: HiGHS (through ``highspy`` when installed,
else ``scipy.optimize.milp``) and OR-Tools CP-SAT, all on one :class:`LinearModel`.

Each returns a :class:`SolverOutcome`: what the solver proved (``optimal``, ``infeasible``)
or that it stopped (``time_limit``), its best solution (or None) and its lower bound on the
total per-token time over all requests (ms).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import vstack

from distalloc._validation import ValidationError
from distalloc.llm.milp_model import LinearModel

__all__ = ["SolverOutcome", "SOLVERS", "solve_highs", "solve_cpsat", "have_highspy",
           "cpsat_scale"]

SOLVERS = ("highs", "cp-sat")


@dataclass
class SolverOutcome:
    status: str                 # optimal | time_limit | infeasible
    x: np.ndarray | None        # best solution (model columns), or None
    bound: float | None         # lower bound on the total objective (ms), or None
    backend: str
    objective_precision: float = 0.0   # |model objective - solver objective| of any solution
    message: str = ""


def have_highspy() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


_HIGHS_BANNER_SHOWN = False


def _new_highs():
    """A silent ``highspy.Highs``; the first one prints a banner on the C stdout, which
    would break ``--json`` output, so it is built with file descriptor 1 on /dev/null."""
    global _HIGHS_BANNER_SHOWN
    import highspy
    if _HIGHS_BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        try:
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)
        _HIGHS_BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


_HIGHS_THREADS: int | None = None


def _remaining(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 1e-3)


def solve_highs(model: LinearModel, *, deadline: float, rel_gap: float, threads: int,
                seed: int, start: np.ndarray | None, cutoff: float | None, presolve: bool,
                use_highspy: bool | None = None) -> SolverOutcome:
    """HiGHS branch and cut.  With ``highspy`` the known plan ``start`` is passed as a
    starting solution; without it (``scipy.optimize.milp`` has no warm start) its
    objective ``cutoff`` becomes a row ``cost @ x <= cutoff``."""
    Am, mem_ub = model.memory_matrix()
    A = vstack([model.A, Am]).tocsr()
    row_lb = np.concatenate([model.row_lb, np.full(len(mem_ub), -np.inf)])
    row_ub = np.concatenate([model.row_ub, mem_ub])
    R = 1.0  # objective as is: total ms over requests
    if use_highspy is None:
        use_highspy = have_highspy()
    if not use_highspy:
        if cutoff is not None:
            nz = np.flatnonzero(model.cost)
            cut = np.zeros(model.num_variables)
            cut[nz] = model.cost[nz]
            A = vstack([A, cut[None, :]]).tocsr()
            row_lb = np.append(row_lb, -np.inf)
            row_ub = np.append(row_ub, cutoff * (1 + 1e-9) + 1e-9)
        res = milp(model.cost / R, constraints=LinearConstraint(A, row_lb, row_ub),
                   integrality=model.integer.astype(int), bounds=Bounds(model.lb, model.ub),
                   options={"time_limit": _remaining(deadline), "mip_rel_gap": rel_gap, "disp": False,
                            "presolve": presolve})
        bound = getattr(res, "mip_dual_bound", None)
        bound = float(bound) if bound is not None and np.isfinite(bound) else None
        if res.status == 0:
            return SolverOutcome("optimal", res.x, bound, "highs-scipy")
        if res.status == 2 and cutoff is None:
            return SolverOutcome("infeasible", None, None, "highs-scipy", message=res.message)
        if res.status == 2:   # nothing at or below the cutoff: the start is optimal
            return SolverOutcome("optimal", None, cutoff, "highs-scipy", message=res.message)
        return SolverOutcome("time_limit", res.x, bound, "highs-scipy", message=res.message)

    import highspy
    global _HIGHS_THREADS
    h = _new_highs()
    if threads != _HIGHS_THREADS and _HIGHS_THREADS is not None:
        highspy.Highs.resetGlobalScheduler(True)
    _HIGHS_THREADS = threads
    for k, v in {"mip_rel_gap": float(rel_gap),
                 "threads": int(threads), "random_seed": int(seed),
                 "presolve": "on" if presolve else "off"}.items():
        h.setOptionValue(k, v)
    lp = highspy.HighsLp()
    n, m = model.num_variables, A.shape[0]
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = model.cost / R
    lp.col_lower_, lp.col_upper_ = model.lb, model.ub
    inf = highspy.kHighsInf
    lp.row_lower_ = np.where(np.isfinite(row_lb), row_lb, -inf)
    lp.row_upper_ = np.where(np.isfinite(row_ub), row_ub, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                       for b in model.integer]
    h.passModel(lp)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(map(float, start))
        sol.value_valid = True
        h.setSolution(sol)
    h.setOptionValue("time_limit", _remaining(deadline))
    h.run()
    st = h.getModelStatus()
    info = h.getInfo()
    has_x = info.primal_solution_status == 2
    x = np.array(h.getSolution().col_value) if has_x else None
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
    S = highspy.HighsModelStatus
    if st == S.kOptimal:
        return SolverOutcome("optimal", x, bound, "highs")
    if st == S.kInfeasible:
        return SolverOutcome("infeasible", None, None, "highs")
    return SolverOutcome("time_limit", x, bound, "highs", message=h.modelStatusToString(st))


def cpsat_scale(model: LinearModel) -> float:
    """The objective scale of CP-SAT: 1e6 per ms (costs in ns, rounded), or less if the
    objective's largest activity would pass 2^53."""
    activity = float(np.sum(np.abs(model.cost) * np.maximum(np.abs(model.ub), np.abs(model.lb))))
    return min(1e6, 2.0 ** 53 / max(activity, 1.0))


def solve_cpsat(model: LinearModel, *, deadline: float, rel_gap: float, threads: int,
                seed: int, start: np.ndarray | None, num_requests: int,
                max_visits: int, num_blocks: int) -> SolverOutcome:
    """OR-Tools CP-SAT on the same model over the integers.

    Continuous columns become integers (their values are integral at every solution of
    the model: blocks processed).  The objective is ``round(scale * cost)`` with
    :func:`cpsat_scale`; any solution's objective then differs from the model's by at
    most ``0.5 / scale`` per unit of activity, i.e. by ``objective_precision`` =
    ``0.5 / scale * |R| (max_visits + L)`` ms in total (a route visits at most
    ``max_visits`` servers and processes L blocks), which is subtracted from the bound.
    The memory rows are exact tables (block count -> cache blocks that fit), not floats.
    ``start`` is the solution hint.
    """
    try:
        from ortools.sat.python import cp_model
    except ImportError:
        raise ValidationError("The 'cp-sat' solver needs OR-Tools: pip install "
                              "'distalloc[cpsat]' (or: pip install ortools).") from None
    scale = cpsat_scale(model)
    n = model.num_variables
    md = cp_model.CpModel()
    lb = np.ceil(model.lb - 1e-9).astype(np.int64)
    ub = np.floor(model.ub + 1e-9).astype(np.int64)
    v = [md.new_int_var(int(lb[i]), int(ub[i]), "") for i in range(n)]
    A = model.A
    for r in range(A.shape[0]):
        s, t = A.indptr[r], A.indptr[r + 1]
        coefs = A.data[s:t]
        ic = np.rint(coefs).astype(np.int64)
        assert np.all(ic == coefs), "CP-SAT rows must have integer coefficients"
        expr = sum(int(c) * v[i] for c, i in zip(ic, A.indices[s:t]))
        lo, hi = model.row_lb[r], model.row_ub[r]
        if lo == hi:
            md.add(expr == int(round(lo)))
        else:
            if np.isfinite(lo):
                md.add(expr >= int(math.ceil(lo - 1e-9)))
            if np.isfinite(hi):
                md.add(expr <= int(math.floor(hi + 1e-9)))
    for mr in model.memory:
        cap = int(model.cap[mr.server])
        table = mr.max_cache_blocks(model.block_gb, model.cache_gb, cap)
        m_j = md.new_int_var(1, cap, "")
        md.add(m_j == v[mr.e_col] - v[mr.a_col])
        room = md.new_int_var(min(table), max(table), "")
        md.add_element(m_j - 1, table, room)
        if len(mr.cache_cols):
            md.add(sum(int(c) * v[i] for c, i in zip(mr.cache_coef, mr.cache_cols)) <= room)
    icost = np.rint(model.cost * scale).astype(np.int64)
    nz = np.flatnonzero(icost)
    md.minimize(sum(int(icost[i]) * v[i] for i in nz))
    if start is not None:
        for i in range(n):
            md.add_hint(v[i], int(round(start[i])))
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = _remaining(deadline)
    p.num_workers = int(threads)
    p.random_seed = int(seed) % (2 ** 31)
    p.relative_gap_limit = float(rel_gap)
    st = solver.solve(md)
    precision = 0.5 / scale * num_requests * (max_visits + num_blocks)
    if st == cp_model.INFEASIBLE:
        return SolverOutcome("infeasible", None, None, "cp-sat", precision)
    has_x = st in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    x = np.array([solver.value(vi) for vi in v], dtype=float) if has_x else None
    bound = solver.best_objective_bound / scale - precision
    status = "optimal" if st == cp_model.OPTIMAL else "time_limit"
    return SolverOutcome(status, x, float(bound), "cp-sat", precision,
                         message=solver.status_name(st))
