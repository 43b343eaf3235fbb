"""Numeric limits of the LLM family, and the checks that keep work and memory predictable.

Every number a scenario or a workload can hold is bounded so that every quantity the
kernels derive from it stays finite and every count stays an exact int64 (issue 16):

* ``num_blocks`` L <= :data:`MAX_BLOCKS`: routing allocates O(L) per call, placement
  O(S L m).
* counts (requests, tokens, ``d_model``, planned sessions) <= :data:`MAX_COUNT` = 2^53,
  the largest range in which a float64 holds every integer exactly.
* every time (``decode_ms``, ``prefill_ms``, ``rtt_ms``, ``prefill_rtt_ms``) <=
  :data:`TIME_LIMIT_MS` / (L x ``output_tokens``).  A chain visits at most L servers and
  processes L blocks, so the request time of any request on any chain is below
  2 x :data:`TIME_LIMIT_MS` (~63 000 years): sums of times over requests, waits and
  back-offs stay far from the float maximum.
* ``memory_gb - reserve_gb`` <= 2^53 x min(``block_gb``, ``cache_gb``): block and cache
  counts stay exact integers.
* arrival spans (Poisson, trace, allocation delay) <= :data:`MAX_SPAN_S`; the rates the
  chain methods are designed for in [:data:`MIN_RPS`, :data:`MAX_RPS`] (a subnormal rate
  made GBP-CR's rate target 0, "feasible" with no chain, and Theorem 4's bounds 0).
* failures and repairs of a churn simulation <= :data:`MAX_CHURN_EVENTS`: expected over
  the arrivals' span, checked before the run, and counted by the event loop, which stops
  with an error if servers fail so much faster than sessions end that the workload never
  drains (a churn study of 1 000 servers failing hourly over 20 days needs ~10^6; the
  ``max_churn_events`` parameter of :func:`distalloc.llm.simulate` raises it).

Work whose size is known up front (requests to simulate, servers to build) is estimated
before it starts and refused, with the estimate and the option that raises the limit,
when it would need more memory than :func:`default_max_memory_gb`.
"""
from __future__ import annotations

from distalloc._resources import default_max_memory_gb
import numpy as np

from distalloc._validation import ValidationError, check_number, check_real

__all__ = ["MAX_BLOCKS", "MAX_COUNT", "MAX_CHURN_EVENTS", "MIN_RPS", "TIME_LIMIT_MS", "MAX_SPAN_S", "MAX_NOISE",
           "MAX_RPS", "BYTES_PER_REQUEST", "time_bound_ms", "check_output_tokens", "default_max_memory_gb", "check_memory",
           "max_memory_limit", "span_error"]

MAX_BLOCKS = 1 << 20
MAX_COUNT = 1 << 53
TIME_LIMIT_MS = 1e15
MAX_SPAN_S = 1e12
MAX_NOISE = 10.0
MAX_RPS = 1e15
MIN_RPS = 1.0 / MAX_SPAN_S       # arrival rates the chain methods are designed for: >= 1e-12/s
MAX_CHURN_EVENTS = 1_000_000

#: memory per offline request while a plan is built and reported (the request array, the
#: route lists and the performance-model arrays), an upper estimate for chains of ~10 hops
BYTES_PER_REQUEST = 400

_GB = 1e9


def time_bound_ms(num_blocks: int, output_tokens: int) -> float:
    """The largest time (ms) any per-block or per-visit time may have: TIME_LIMIT_MS / (L x
    l_out), so that no request time can exceed 2 x TIME_LIMIT_MS."""
    return TIME_LIMIT_MS / (float(num_blocks) * float(output_tokens))


def check_output_tokens(scenario, output_tokens) -> float:
    """``output_tokens`` (a job length the caller asks for instead of the scenario's) checked
    against the time bound: every per-block and per-visit time of the scenario must stay
    within :func:`time_bound_ms` for that length, so request times stay finite."""
    times = [np.max(a, initial=0.0) for a in (scenario.decode_ms, scenario.prefill_ms,
                                                scenario.rtt_ms, scenario.prefill_rtt_ms)]
    t_max = max(max(times), 1e-300)
    high = min(float(MAX_COUNT), TIME_LIMIT_MS / (float(scenario.num_blocks) * t_max))
    return check_number(output_tokens, "output_tokens", low=1, high=max(1.0, high))


def max_memory_limit(max_memory_gb: float | None) -> float:
    """``max_memory_gb`` validated, or the default."""
    if max_memory_gb is None:
        return default_max_memory_gb()
    return check_real(max_memory_gb, "max_memory_gb", low=0, low_open=True)


def check_memory(estimate_bytes: float, what: str, max_memory_gb: float | None = None) -> None:
    """Refuse work whose memory estimate exceeds the limit, before it starts.

    The message gives the estimate, the limit and how to raise it (``--max-memory-gb`` on
    the command line, ``max_memory_gb=`` in Python)."""
    limit = max_memory_limit(max_memory_gb)
    need = estimate_bytes / _GB
    if need > limit:
        raise ValidationError(
            f"{what} needs about {need:.3g} GB of memory, more than the limit of {limit:.3g} GB; "
            "raise it with --max-memory-gb (max_memory_gb= in Python) if the machine has room.")


def span_error(num_requests: int, rate_per_s: float, owner: str = "") -> ValidationError:
    """The error for Poisson arrivals spanning more than MAX_SPAN_S: it names both fields
    (a huge ``num_requests`` is the usual cause, a tiny rate the other) and the limit on
    each."""
    of = f" of {owner}" if owner else ""
    return ValidationError(
        f"The 'num_requests' parameter{of} ({num_requests}) at its 'rate_per_s' "
        f"{rate_per_s:g} spans {num_requests / rate_per_s:.3g} s of arrivals, more than "
        f"{MAX_SPAN_S:g} s (so that arrival times stay finite): give at most "
        f"{int(rate_per_s * MAX_SPAN_S)} requests at this rate, or a rate_per_s of at least "
        f"{num_requests / MAX_SPAN_S:.3g}.")
