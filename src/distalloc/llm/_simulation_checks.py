"""Arguments of :func:`distalloc.llm.simulate`, parsed and checked before any work
(SPEC 1.7-1.9, 5.1): the methods and service models it accepts, ``churn`` and
``allocation_delay_s`` from their Python and command-line forms, a workload the caller
gives, and the runs refused before the event loop starts (issue 16: a memory estimate over
the limit, churn expected to exceed its event limit, a placement that serves nobody).

Public names are re-exported by :mod:`distalloc.llm.simulation`, which imports this module
(never the other way round).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from distalloc._validation import ValidationError, as_float_array, as_int_array, check_real
from distalloc.llm.limits import MAX_CHURN_EVENTS, MAX_SPAN_S, check_memory
from distalloc.llm.model import Placement
from distalloc.llm.routing import request_time_costs, shortest_routes
from distalloc.llm.scenario import Scenario
from distalloc.llm.workload import Workload

__all__ = ["ONLINE_METHODS", "SERVICE_MODELS", "parse_churn", "parse_allocation_delay",
           "BYTES_PER_SIMULATED_REQUEST", "check_simulation_memory", "check_workload",
           "check_churn_cost", "check_serves_someone"]

#: method -> (placement rule, routing rule)
ONLINE_METHODS = {
    "cg-bprr": ("cg-bp", "ws-rr"),
    "petals": ("petals", "petals"),
    "petals-cg-order": ("petals-cg-order", "petals"),
    "petals-cg-counts": ("petals-cg-counts", "petals"),
    "petals-opt-routing": ("petals", "ws-rr"),
    "milp": ("milp", "ws-rr"),
    # chain composition (SPEC 1.10): served by distalloc.llm.jffc, see simulate()
    "chains": ("gbp-cr", "jffc"),
    "jffc-whole": ("whole", "jffc"),
}
#: service-time models of every method: the performance model, or Exp(1) work x model time
SERVICE_MODELS = ("model", "exponential")


# ------------------------------------------------------------------------------------------
# Churn and allocation delay: the Python and the command-line forms
# ------------------------------------------------------------------------------------------
#: mean time to repair when only the MTBF is given: a tenth of it (90.9% availability)
DEFAULT_MTTR_FRACTION = 0.1


def parse_churn(spec: Any) -> tuple[float, float] | None:
    """``churn`` as (MTBF s, MTTR s): None/0 for no churn, a number (MTBF; MTTR = MTBF/10),
    a pair, or the command line's ``"MTBF_S[:MTTR_S]"``."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "0", "none")):
        return None
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) > 2:
            raise ValidationError(f"The 'churn' parameter must be 'MTBF_S[:MTTR_S]'. "
                                  f"Got {spec!r} instead.")
        try:
            spec = tuple(float(p) for p in parts)
        except ValueError:
            raise ValidationError(f"The 'churn' parameter must be 'MTBF_S[:MTTR_S]' (seconds). "
                                  f"Got {spec!r} instead.") from None
    if isinstance(spec, (tuple, list)):
        if len(spec) not in (1, 2):
            raise ValidationError(f"The 'churn' parameter must be (MTBF_S, MTTR_S). "
                                  f"Got {spec!r} instead.")
        mtbf = check_real(spec[0], "churn MTBF_S", low=0, low_open=True, high=MAX_SPAN_S)
        mttr = (check_real(spec[1], "churn MTTR_S", low=0, low_open=True, high=MAX_SPAN_S)
                if len(spec) == 2 else _default_mttr(mtbf))
        return mtbf, mttr
    if spec == 0:
        return None
    mtbf = check_real(spec, "churn MTBF_S", low=0, low_open=True, high=MAX_SPAN_S)
    return mtbf, _default_mttr(mtbf)


def _default_mttr(mtbf: float) -> float:
    mttr = DEFAULT_MTTR_FRACTION * mtbf
    if not mttr > 0:            # a subnormal MTBF: its tenth underflows to 0
        raise ValidationError(f"The 'churn MTBF_S' parameter must be a float in (0, "
                              f"{MAX_SPAN_S:g}] whose tenth (the default MTTR) is > 0. "
                              f"Got {mtbf!r} instead.")
    return mttr


def parse_allocation_delay(spec: Any, method: str) -> float:
    """``allocation_delay_s`` as a number, a mapping method -> seconds, or a string
    ``"petals=250,cg-bprr=60"`` (methods not named get 0)."""
    if spec is None:
        return 0.0
    if isinstance(spec, str):
        table: dict[str, Any] = {}
        try:
            return check_real(float(spec), "allocation_delay", low=0)
        except ValueError:
            pass
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValidationError(f"The 'allocation_delay' parameter must be seconds or "
                                      f"'method=seconds,...'. Got {spec!r} instead.")
            try:
                table[name.strip()] = float(value)
            except ValueError:
                raise ValidationError(f"The 'allocation_delay' parameter has a bad value for "
                                      f"{name.strip()!r}: {value!r}.") from None
        spec = table
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(ONLINE_METHODS))
        if unknown:
            raise ValidationError(f"The 'allocation_delay' parameter names unknown method "
                                  f"{unknown[0]!r} (known: {', '.join(ONLINE_METHODS)}).")
        return check_real(spec.get(method, 0.0), f"allocation_delay[{method}]", low=0)
    return check_real(spec, "allocation_delay", low=0)


# ------------------------------------------------------------------------------------------
# Checks made before a simulation starts (issue 16)
# ------------------------------------------------------------------------------------------
#: bytes per simulated request besides its chain (8 per hop): the workload, the noise
#: draws, seven per-request outputs, the event heap and the summaries' temporaries
#: (measured peak: ~130 bytes per request on clustered, 10^5 to 3 x 10^6 requests)
BYTES_PER_SIMULATED_REQUEST = 160


def check_simulation_memory(scenario: Scenario, num_requests: int, limit_gb: float) -> None:
    """Refuse a run whose memory estimate (per request, plus each client's cached chain of
    up to L + 1 servers in the kernel) exceeds the limit, before any work."""
    hops = min(scenario.num_blocks, scenario.num_servers, 64)
    need = (num_requests * (BYTES_PER_SIMULATED_REQUEST + 8 * hops)
            + 8 * (scenario.num_clients + 1) * (scenario.num_blocks + 1)
            + 64 * scenario.num_servers)
    check_memory(need, f"simulating {num_requests} requests", limit_gb)


def check_workload(workload: Any, scenario: Scenario) -> None:
    """A workload given by the caller: sorted finite arrival times, clients of the
    scenario, output lengths in [1, output_tokens]."""
    if not isinstance(workload, Workload):
        raise ValidationError(f"'workload' must be a Workload. Got {type(workload).__name__} instead.")
    n = workload.arrival_s.shape[0] if isinstance(workload.arrival_s, np.ndarray) else -1
    if n < 1:
        raise ValidationError("'workload.arrival_s' must be a non-empty 1-D array.")
    t = as_float_array(workload.arrival_s, "workload.arrival_s", shape=(n,))
    if np.any(np.diff(t) < 0) or abs(t[-1]) > MAX_SPAN_S or abs(t[0]) > MAX_SPAN_S:
        raise ValidationError(f"'workload.arrival_s' must be sorted and within "
                              f"+-{MAX_SPAN_S:g} s.")
    as_int_array(workload.client, "workload.client", shape=(n,), low=0,
                 high=scenario.num_clients - 1)
    as_int_array(workload.output_tokens, "workload.output_tokens", shape=(n,), low=1,
                 high=scenario.output_tokens)


def check_churn_cost(scenario: Scenario, workload: Workload, churn_s: tuple[float, float],
                     delay_s: float, max_churn_events: int = MAX_CHURN_EVENTS) -> None:
    """Refuse, before the run, churn whose expected failures and repairs over the arrivals'
    span alone exceed ``max_churn_events`` (each server goes through a fail-repair cycle
    every MTBF + MTTR seconds on average, two events each)."""
    mtbf_s, mttr_s = churn_s
    span_s = float(workload.arrival_s[-1]) + delay_s
    expected = 2.0 * scenario.num_servers * span_s / (mtbf_s + mttr_s)
    if expected > max_churn_events:
        raise ValidationError(
            f"The churn (MTBF {mtbf_s:g} s, MTTR {mttr_s:g} s) of {scenario.num_servers} "
            f"servers over the arrivals' {span_s:.4g} s means about {expected:.3g} failures "
            f"and repairs, more than the limit of {max_churn_events:g}; give a larger MTBF (or "
            f"raise max_churn_events= in Python).")


def check_serves_someone(scenario: Scenario, method: str, placement: Placement,
                         budget: np.ndarray, workload: Workload) -> None:
    """"Serves nobody", decided before the event loop: if no chain of the placement has
    cache for one session of some client even on an idle swarm, that client's requests
    can never be served (WS-RR drops them at once, PETALS retries them max_attempts times
    first); when this holds for every client of the workload, the method serves nobody."""
    alpha, beta = request_time_costs(scenario)
    routes = shortest_routes(placement, scenario.num_blocks, alpha, beta, budget, math.inf)
    present = np.unique(workload.client)
    if not np.isfinite(routes.cost[present]).any():
        used = np.flatnonzero(placement.num_blocks > 0)
        j = int(used[np.argmin(budget[used])])  # the placement covers every block: used != []
        raise ValidationError(
            f"Method '{method}' serves none of the {workload.num_requests} requests: no chain "
            f"of its placement has cache for one session (server {j} holds "
            f"{int(placement.num_blocks[j])} blocks and cache for {int(budget[j])} "
            "(session, block) pairs).")
