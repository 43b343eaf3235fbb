"""Online workloads (SPEC 1.7, 1.9): Poisson arrivals with client weights, and trace replay.

A :class:`Workload` is drawn once from the seed, so every method simulated with that seed
sees the same arrivals.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.llm.scenario import Scenario

__all__ = ["Workload", "poisson_workload", "trace_workload", "workload_from_args",
           "client_probs"]


@dataclass(frozen=True, eq=False)
class Workload:
    """Arrival times (s, sorted), client index and output tokens of each request."""

    arrival_s: np.ndarray
    client: np.ndarray
    output_tokens: np.ndarray
    source: str = "poisson"

    @property
    def num_requests(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def rate_per_s(self) -> float:
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if self.num_requests > 1 else 0.0
        return (self.num_requests - 1) / span if span > 0 else math.inf


def client_probs(scenario: Scenario, client_weights) -> np.ndarray:
    C = scenario.num_clients
    if client_weights is None:
        return np.full(C, 1.0 / C)
    w = list(client_weights)
    if len(w) != C:
        raise ValidationError(f"'client_weights' must have {C} entries (one per client). Got {len(w)} instead.")
    w = np.array([check_number(x, f"client_weights[{i}]", low=0) for i, x in enumerate(w)])
    if w.sum() <= 0:
        raise ValidationError(f"'client_weights' must have a positive sum. Got {w.tolist()} instead.")
    return w / w.sum()


def poisson_workload(scenario: Scenario, rate_per_s: float, num_requests: int,
                     client_weights=None, seed: Any = 0) -> Workload:
    """Poisson arrivals at ``rate_per_s``; clients drawn with ``client_weights``
    (uniform by default); every request generates the scenario's ``output_tokens``."""
    rate = check_number(rate_per_s, "rate_per_s", low=0, low_open=True)
    n = check_number(num_requests, "num_requests", low=1, integer=True)
    probs = client_probs(scenario, client_weights)
    rng = as_generator(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n))
    clients = rng.choice(scenario.num_clients, size=n, p=probs).astype(np.int64)
    return Workload(arrivals, clients, np.full(n, scenario.output_tokens, dtype=np.int64))


def _parse_timestamp(text: str) -> np.datetime64:
    return np.datetime64(text.strip().replace(" ", "T"), "ns")


def trace_workload(scenario: Scenario, path: str | Path, *, time_scale: float = 1.0,
                   num_requests: int | None = None, client_weights=None,
                   seed: Any = 0) -> Workload:
    """Replay a trace with columns ``TIMESTAMP, ContextTokens, GeneratedTokens`` (the Azure
    LLM inference trace, SPEC 1.9).

    Inter-arrival gaps are multiplied by ``time_scale`` (0.5 = twice the load); output
    lengths are capped at the scenario's ``output_tokens`` (the static maximum its cache is
    sized for; at least 1).  Prompt lengths are read and validated, but prefill times stay
    the scenario's profiled values at its static ``input_tokens``.  Clients are drawn with
    ``client_weights``.

    Raises
    ------
    ValidationError
        missing file, missing column, unparsable or negative values, timestamps out of order.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"Trace file '{path}' does not exist.")
    scale = check_number(time_scale, "time_scale", low=0, low_open=True)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValidationError(f"Trace file '{path.name}' must have columns {sorted(need)}. "
                                  f"Got {reader.fieldnames} instead.")
        stamps, outs = [], []
        for line, row in enumerate(reader, start=2):
            try:
                stamps.append(_parse_timestamp(row["TIMESTAMP"]))
                ctx, gen = int(row["ContextTokens"]), int(row["GeneratedTokens"])
            except (ValueError, TypeError):
                raise ValidationError(f"Trace file '{path.name}' line {line}: cannot parse "
                                      f"{row!r}.") from None
            if ctx < 0 or gen < 0:
                raise ValidationError(f"Trace file '{path.name}' line {line}: negative token "
                                      f"count ({ctx}, {gen}).")
            outs.append(gen)
            if num_requests is not None and len(outs) >= num_requests:
                break
    if not outs:
        raise ValidationError(f"Trace file '{path.name}' has no requests.")
    t = np.array(stamps, dtype="datetime64[ns]")
    rel = (t - t[0]).astype(np.int64) / 1e9
    if np.any(np.diff(rel) < 0):
        raise ValidationError(f"Trace file '{path.name}': timestamps are not in order.")
    n = len(outs)
    rng = as_generator(seed)
    probs = client_probs(scenario, client_weights)
    clients = rng.choice(scenario.num_clients, size=n, p=probs).astype(np.int64)
    out = np.clip(np.array(outs, dtype=np.int64), 1, scenario.output_tokens)
    return Workload(rel * scale, clients, out, source=f"trace:{path.name}")


def workload_from_args(scenario, rng, rate_per_s, num_requests, client_weights, trace,
                        time_scale) -> Workload:
    online = scenario.online
    trace = trace if trace is not None else online.get("trace")
    weights = client_weights if client_weights is not None else online.get("client_weights")
    if trace is not None:
        scale = time_scale if time_scale is not None else online.get("time_scale", 1.0)
        return trace_workload(scenario, trace, time_scale=scale, num_requests=num_requests,
                              client_weights=weights, seed=rng)
    rate = rate_per_s if rate_per_s is not None else online.get("rate_per_s")
    n = num_requests if num_requests is not None else online.get("num_requests")
    if rate is None:
        raise ValidationError("A Poisson workload needs 'rate_per_s' (or give a trace).")
    if n is None:
        raise ValidationError("A Poisson workload needs 'num_requests'.")
    return poisson_workload(scenario, rate, n, weights, rng)
