"""The result of every offline placement method, and the independent check every plan
passes before it is reported feasible (SPEC 1.4-1.6, 4.2 ``llm plan --json``).

Solvers import this module; nothing here imports a solver (as SciPy keeps
``OptimizeResult`` apart from the methods that return it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distalloc.llm.model import Placement, RouteMetrics, evaluate_routes
from distalloc.llm.scenario import Scenario

__all__ = ["Plan", "finish_plan", "STATUSES"]

STATUSES = ("optimal", "feasible", "time_limit", "infeasible")


@dataclass(eq=False)
class Plan:
    """A placement with one route per request, and what the performance model says of it.

    ``status`` is one of optimal | feasible | time_limit | infeasible; ``feasible`` is true
    iff the placement and routes are present, every route is valid and every server's
    memory holds its blocks and all requests' caches.  ``reason`` says why not.
    """

    method: str
    status: str
    placement: Placement | None
    routes: list[list[int]]
    request_clients: np.ndarray
    mean_token_ms: float | None
    solve_s: float
    bound_ms: float | None = None
    gap: float | None = None
    reason: str | None = None
    metrics: RouteMetrics | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.status != "infeasible" and self.placement is not None and bool(self.routes)

    def to_dict(self) -> dict[str, Any]:
        """The ``llm plan --json`` contract keys, plus ``reason`` and ``num_requests``."""
        return {
            "method": self.method,
            "feasible": self.feasible,
            "status": self.status,
            "placement": self.placement.to_list() if self.placement is not None else [],
            "routes": self.routes,
            "mean_token_ms": self.mean_token_ms,
            "bound_ms": self.bound_ms,
            "gap": self.gap,
            "solve_s": self.solve_s,
            "reason": self.reason,
            "num_requests": int(self.request_clients.shape[0]),
            **self.extra,
        }


def finish_plan(scenario: Scenario, method: str, placement: Placement | None,
                routes: list[list[int]], t0: float, status: str = "feasible",
                reason: str | None = None, **kw: Any) -> Plan:
    """Evaluate a candidate plan with the performance model and check it: routes valid,
    memory respected.  Any violation turns the status into ``infeasible`` with a reason;
    a plan is never reported feasible without this check."""
    clients = scenario.requests
    if placement is None or not routes or reason is not None:
        return Plan(method, "infeasible", placement, [], clients, None, time.perf_counter() - t0,
                    reason=reason or "no plan", **kw)
    metrics = evaluate_routes(scenario, placement, routes, clients)
    mean = float(metrics.token_ms.sum()) / len(routes)
    if not metrics.all_valid:
        r = int(np.flatnonzero(metrics.status != 0)[0])
        status, reason = "infeasible", f"route of request {r} is invalid (status {metrics.status[r]})"
    else:
        limit = scenario.usable_memory_gb
        over = np.flatnonzero(metrics.memory_gb[0] > limit * (1 + 1e-12) + 1e-9)
        if over.size:
            j = int(over[0])
            status = "infeasible"
            reason = (f"server {j} needs {metrics.memory_gb[0, j]:.4f} GB with all caches "
                      f"but has {limit[j]:.4f} GB")
    return Plan(method, status, placement, routes, clients, mean, time.perf_counter() - t0,
                reason=reason, metrics=metrics, **kw)
