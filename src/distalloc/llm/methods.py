"""The offline method registry and :func:`plan`, the one dispatcher over it.

A method is a callable ``(scenario, seed=..., time_limit_s=..., **kw) -> Plan``; this
module imports the methods, the methods never import it.
"""
from __future__ import annotations

from typing import Any, Callable

from distalloc._validation import ValidationError, as_generator, check_choice, check_number
from distalloc.llm.chains import CHAIN_METHODS
from distalloc.llm.chains_plan import chains_plan
from distalloc.llm.limits import max_memory_limit
from distalloc.llm.milp import solve_milp
from distalloc.llm.placement import cg_bprr, petals
from distalloc.llm.result import Plan
from distalloc.llm.scenario import Scenario, check_scenario

__all__ = ["METHODS", "plan"]


def _milp(scenario: Scenario, seed: Any = 0, time_limit_s: float = 60.0,
          formulation: str = "aggregated", solver: str = "highs", threads: int = 1,
          max_memory_gb: float | None = None, **kw: Any) -> Plan:
    return solve_milp(scenario, time_limit_s=time_limit_s, seed=seed, formulation=formulation,
                      solver=solver, threads=threads, max_memory_gb=max_memory_gb)


METHODS: dict[str, Callable[..., Plan]] = {
    "cg-bprr": lambda sc, seed=0, **kw: cg_bprr(sc),
    "petals": lambda sc, seed=0, **kw: petals(sc, seed),
    "petals-cg-order": lambda sc, seed=0, **kw: petals(sc, seed, join="cg-order",
                                                        method="petals-cg-order"),
    "petals-cg-counts": lambda sc, seed=0, **kw: petals(sc, seed, counts="cg-bprr",
                                                         method="petals-cg-counts"),
    "petals-opt-routing": lambda sc, seed=0, **kw: petals(sc, seed, routing="optimal",
                                                           method="petals-opt-routing"),
    "milp": _milp,
    # chain composition (SPEC 1.10): GBP-CR + GCA, and the whole-model baseline; the plan's
    # routes are the JFFC assignment of the request set into an empty system
    "chains": lambda sc, seed=0, time_limit_s=60.0, **kw: chains_plan(sc, "chains", **kw),
    "jffc-whole": lambda sc, seed=0, time_limit_s=60.0, **kw: chains_plan(sc, "jffc-whole", **kw),
}
#: options of plan() that only the chain methods take
CHAIN_OPTIONS = ("reservation", "rate_per_s", "target_load", "placement", "client_weights")


def plan(scenario: Scenario, method: str = "cg-bprr", *, seed: Any = 0,
         num_requests: int | None = None, time_limit_s: float = 60.0,
         formulation: str = "aggregated", solver: str = "highs", threads: int = 1,
         max_memory_gb: float | None = None, **options: Any) -> Plan:
    """Place blocks and route the scenario's request set with ``method``.

    Parameters
    ----------
    scenario : Scenario
    method : str
        one of ``METHODS``: 'cg-bprr', 'petals', 'petals-cg-order', 'petals-cg-counts',
        'petals-opt-routing', 'milp', 'chains', 'jffc-whole'.
    seed : int
        PETALS's join order (and the MILP's solver seed).
    num_requests : int, optional
        replace the request set by this many requests (clients repeat cyclically).
    time_limit_s : float
        MILP only: wall-clock limit; at the limit the best plan known is returned with
        status ``time_limit``, the bound and the gap.
    formulation : {'aggregated', 'per-request', 'window'}
        MILP only (see :mod:`distalloc.llm.milp`).
    solver : {'highs', 'cp-sat'}
        MILP only; 'cp-sat' needs OR-Tools (``pip install 'distalloc[cpsat]'``).
    threads : int
        MILP only: solver threads, at most ``os.cpu_count()``.
    max_memory_gb : float, optional
        refuse, before any work, a MILP model (or a request set) whose memory estimate
        exceeds this (default: half the machine's memory, at most 8 GB).
    **options
        'chains' and 'jffc-whole' only: ``reservation`` (int or 'auto'), ``rate_per_s``,
        ``target_load``, ``placement`` (GCA on this placement), ``client_weights``; see
        :func:`distalloc.llm.chains_plan.chains_plan`.

    Raises
    ------
    ValidationError
        unknown method or bad parameters, a scenario whose workload names a trace file
        that cannot be read, before any work.
    """
    check_scenario(scenario, "plan")
    check_choice(method, "method", METHODS)
    if "trace" in scenario.online:   # a scenario that simulate would refuse: refused here too
        from distalloc._validation import check_readable_file
        check_readable_file(scenario.online["trace"], "The workload's trace file")
    time_limit_s = check_number(time_limit_s, "time_limit", low=0, low_open=True)
    as_generator(seed)  # validate early
    unknown = sorted(set(options) - set(CHAIN_OPTIONS))
    if unknown:
        raise ValidationError(f"Unknown option '{unknown[0]}' for plan() "
                              f"(the chain methods take {', '.join(CHAIN_OPTIONS)}).")
    options = {k: v for k, v in options.items() if v is not None}
    if options and method not in CHAIN_METHODS:
        raise ValidationError(f"Option '{sorted(options)[0]}' applies only to the chain "
                              f"methods ({', '.join(CHAIN_METHODS)}), not {method!r}.")
    if max_memory_gb is not None:       # checked for every method, not only where it binds
        max_memory_gb = max_memory_limit(max_memory_gb)
    if num_requests is not None:
        scenario = scenario.with_requests(num_requests, max_memory_gb=max_memory_gb)
    if method == "milp":
        return _milp(scenario, seed=seed, time_limit_s=time_limit_s, formulation=formulation,
                     solver=solver, threads=threads, max_memory_gb=max_memory_gb)
    return METHODS[method](scenario, seed=seed, time_limit_s=time_limit_s, **options)
