"""``llm plan --method chains|jffc-whole`` (SPEC 1.10): the chain composition of
:mod:`distalloc.llm.chains` as a :class:`~distalloc.llm.result.Plan`, with the scenario's
request set assigned by JFFC into an empty system."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from distalloc._compiled import chain_kernels
from distalloc.llm.chain_groups import ClientGroups
from distalloc.llm.chains import (DEFAULT_TARGET_LOAD, Chain, NoChainsError, compose_chains)
from distalloc.llm.model import evaluate_routes
from distalloc.llm.result import Plan
from distalloc.llm.routing import request_time_costs
from distalloc.llm.scenario import Scenario

__all__ = ["chains_plan", "jffc_fill"]


# ------------------------------------------------------------------------------------------
# llm plan --method chains / jffc-whole
# ------------------------------------------------------------------------------------------
def jffc_fill(scenario: Scenario, chains: list[Chain], requests: np.ndarray,
              client_groups: ClientGroups | None = None) -> list[int]:
    """The chain of each request of an offline request set, by JFFC into an empty system
    (the kernel rule of ``llm_core``): each request takes its client's fastest chain with a
    free slot (its group's chains first, with ``client_groups``); when every slot is taken,
    a new wave starts (all sessions of a wave finish together)."""
    alpha, beta = request_time_costs(scenario)
    T = np.array([[sum(alpha[c, j] + beta[j] * k for j, k in zip(ch.servers, ch.blocks))
                   for ch in chains] for c in range(scenario.num_clients)]).reshape(
                       scenario.num_clients, len(chains))
    cap = np.array([ch.capacity for ch in chains], dtype=np.int64)
    if client_groups is None:
        home = labels = np.zeros(0, dtype=np.int64)
    else:
        home = np.array([ch.group for ch in chains], dtype=np.int64)
        labels = np.ascontiguousarray(client_groups.labels, dtype=np.int64)
    out = np.empty(len(requests), dtype=np.int64)
    chain_kernels.jffc_fill(cap, np.ascontiguousarray(T, dtype=np.float64), home, labels,
                            np.ascontiguousarray(requests, dtype=np.int64), out)
    return out.tolist()


def chains_plan(scenario: Scenario, method: str = "chains", *, reservation: Any = "auto",
                rate_per_s: float | None = None, target_load: float = DEFAULT_TARGET_LOAD,
                placement=None, client_weights=None) -> Plan:
    """``llm plan --method chains|jffc-whole``: :func:`compose_chains`, then the scenario's
    request set assigned by :func:`jffc_fill`.

    ``routes`` are those chains and ``mean_token_ms`` their mean per-token time (SPEC 1.1);
    memory is checked for the *reservation* (every chain's c_k jobs at once), which is what
    the method holds.  Besides the plan keys, ``to_dict()`` gives ``reservation``,
    ``chains``, ``service_rate_per_s``, ``bound_lower_s``, ``bound_upper_s`` (SPEC 1.10).
    """
    t0 = time.perf_counter()
    try:
        comp = compose_chains(scenario, method, reservation=reservation, rate_per_s=rate_per_s,
                              target_load=target_load, placement=placement,
                              client_weights=client_weights)
    except NoChainsError as exc:
        return Plan(method, "infeasible", None, [], scenario.requests, None,
                    time.perf_counter() - t0, reason=str(exc),
                    extra={"reservation": None, "chains": [], "service_rate_per_s": 0.0,
                           "bound_lower_s": None, "bound_upper_s": None})
    pick = jffc_fill(scenario, comp.chains, scenario.requests, comp.client_groups)
    routes = [list(comp.chains[k].servers) for k in pick]
    metrics = evaluate_routes(scenario, comp.placement, routes, scenario.requests)
    status, reason = "feasible", None
    use = scenario.block_gb * comp.placement.num_blocks.astype(float)
    for ch in comp.chains:
        for j, k in zip(ch.servers, ch.blocks):
            use[j] += scenario.cache_gb * k * ch.capacity
    over = np.flatnonzero(use > scenario.usable_memory_gb * (1 + 1e-12) + 1e-9)
    if not metrics.all_valid:
        status, reason = "infeasible", "a chain is not a valid route"
    elif over.size:
        j = int(over[0])
        status, reason = "infeasible", (f"server {j} needs {use[j]:.4f} GB for its blocks and "
                                        f"reservations but has {scenario.usable_memory_gb[j]:.4f} GB")
    mean = float(np.mean(metrics.token_ms))
    return Plan(method, status, comp.placement, routes, scenario.requests, mean,
                time.perf_counter() - t0, reason=reason, metrics=metrics,
                extra=comp.to_dict())
