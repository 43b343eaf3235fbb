"""Fuzz of the LLM family's entry points (issue 16): extreme values anywhere in a
scenario, hostile arrays in the array API.  CI runs a small budget; set
``DISTALLOC_FUZZ_EXAMPLES=10000`` to run more cases per property."""
import copy
import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from distalloc import ValidationError
from distalloc.llm import Placement, plan, scenario_from_dict, shortest_routes
from distalloc.llm.simulation import simulate
from test_llm_hardening import two_server


# ------------------------------------------------------------------------------------------
# Fuzz: extreme values anywhere in a scenario, hostile arrays in the array API
# ------------------------------------------------------------------------------------------
EXTREME = st.sampled_from([0, -1, 1, 2, 3, 0.5, 1e-300, 1e-12, 1e15, 1e20, 1e300, 1e308,
                           2 ** 53, 2 ** 63, 2 ** 64, 10 ** 30, math.inf, -math.inf, math.nan,
                           True, None, "7", [], {}])
FIELDS = [("model", "num_blocks"), ("model", "block_gb"), ("model", "cache_gb"),
          ("model", "d_model"), ("model", "dtype_bytes"),
          ("servers", 0, "memory_gb"), ("servers", 1, "decode_ms"), ("servers", 0, "prefill_ms"),
          ("servers", 1, "reserve_gb"), ("rtt_ms", 0, 1), ("workload", "input_tokens"),
          ("workload", "output_tokens"), ("workload", "requests", 1),
          ("workload", "rate_per_s"), ("workload", "num_requests"), ("workload", "time_scale")]


def _set(d, path, value):
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _finite_metrics(obj):
    for key, v in obj.items():
        if isinstance(v, float):
            assert math.isfinite(v) and v >= 0, (key, v)


@given(st.lists(st.tuples(st.sampled_from(FIELDS), EXTREME), min_size=1, max_size=3))
@settings(max_examples=int(os.environ.get("DISTALLOC_FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_scenario_values(edits):
    """Any scenario with up to three extreme values: a ValidationError naming a field, or
    a scenario on which plan and a short simulation give finite, non-negative metrics or
    a clean error.  Never another exception, a crash or a hang."""
    d = two_server()
    d["workload"]["requests"] = [0, 0]
    for path, value in edits:
        _set(d, path, copy.deepcopy(value))
    try:
        sc = scenario_from_dict(d)
    except ValidationError as exc:
        assert "\n" not in str(exc)
        return
    for method in ("cg-bprr", "petals"):
        p = plan(sc, method)
        if p.feasible:
            assert math.isfinite(p.mean_token_ms) and p.mean_token_ms >= 0
    for method in ("cg-bprr", "petals"):
        try:
            res = simulate(sc, method, rate_per_s=1.0, num_requests=15, max_attempts=20,
                           max_memory_gb=1.0)
        except ValidationError as exc:
            assert "\n" not in str(exc)
            continue
        _finite_metrics({k: v for k, v in res.to_dict().items() if k != "wall_s"})


ARRAYS = st.sampled_from([[0], [100000], [-5], [2 ** 62], [0, 0], [1, 1, 1], [], [0.5],
                          [[0]], [True], [2 ** 64], ["x"], [math.nan], [math.inf], [1e308]])


@given(ARRAYS, ARRAYS, ARRAYS, ARRAYS, st.sampled_from([0, 1, 2, 5, 2 ** 63, -1, 2.0]))
@settings(max_examples=int(os.environ.get("DISTALLOC_FUZZ_EXAMPLES", 120)), deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_array_api(first, num, alpha, beta, L):
    """shortest_routes and Placement with hostile arrays: a ValidationError or a valid
    answer (finite cost with a chain inside the placement, or inf with no chain)."""
    try:
        pl = Placement.from_arrays(first, num)
        r = shortest_routes(pl, L, [alpha] if np.ndim(alpha) == 1 else alpha, beta)
    except ValidationError:
        return
    for c in range(r.cost.shape[0]):
        path = r.path(c)
        if math.isfinite(r.cost[c]):
            assert path and all(0 <= j < pl.num_blocks.shape[0] for j in path)
        else:
            assert path == []
