"""Scenario construction and validation: the vectorised path against the per-element path
it replaced (kept as ``tests/scenario_reference.py``), on 10^4- and 10^5-server synthetic
swarms, and against the CG-BPRR run on the same swarm (issue 11: the old path cost 31x
the run it prepared).  Both paths must build the same scenario (asserted array by
array), so a faster build cannot be a different one."""
import time

import numpy as np
import pytest

import scenario_reference
from conftest import best_time
from distalloc.llm import cg_bprr, scenario_from_dict, synthetic_scenario

FIELDS = ("memory_gb", "decode_ms", "prefill_ms", "reserve_gb", "rtt_ms", "prefill_rtt_ms",
          "requests", "forward_rps", "network_rps")


def _cpu(fn):
    """CPU seconds of one call (the issue's measure; insensitive to other processes)."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


@pytest.mark.parametrize("servers", [10_000, 100_000])
def test_synthetic_construction(benchmark, servers):
    if benchmark.disabled and servers > 10_000:
        pytest.skip("smoke mode: the 10^5-server per-element reference takes ~3 s of CPU")
    build = lambda: synthetic_scenario(servers, 96, seed=1)  # noqa: E731
    sc = benchmark.pedantic(build, rounds=1, iterations=1) if benchmark.disabled else benchmark(build)
    # the same scenario as the per-element path, field by field
    old_s, old = _cpu(lambda: scenario_reference.synthetic_scenario(servers, 96, seed=1))
    for f in FIELDS:
        assert np.array_equal(getattr(sc, f), getattr(old, f)), f
    assert sc.cache_gb == old.cache_gb and sc.server_names == old.server_names
    new_s = min(_cpu(build)[0] for _ in range(3))
    run_s = min(_cpu(lambda: cg_bprr(sc))[0] for _ in range(3))
    assert cg_bprr(sc).feasible
    benchmark.extra_info.update(servers=servers, vectorised_cpu_s=new_s, per_element_cpu_s=old_s,
                                speedup=old_s / new_s, cg_bprr_cpu_s=run_s,
                                construction_over_cg_bprr=new_s / run_s,
                                old_construction_over_cg_bprr=old_s / run_s)
    print(f"\n{servers} servers: vectorised {new_s * 1e3:.0f} ms CPU, per-element "
          f"{old_s * 1e3:.0f} ms ({old_s / new_s:.0f}x); CG-BPRR {run_s * 1e3:.0f} ms, so "
          f"construction is {new_s / run_s:.2g}x the run (was {old_s / run_s:.0f}x)")
    assert new_s < 1.0 and old_s / new_s > 5


def test_file_validation_10k_servers(benchmark):
    """A 10^4-server scenario file (as dictionaries, the JSON reader's output) validated by
    the vectorised path against the per-element one."""
    d = synthetic_scenario(10_000, 96, seed=2).to_dict()
    sc = benchmark(scenario_from_dict, d)
    old = scenario_reference.scenario_from_dict(d)
    assert all(np.array_equal(getattr(sc, f), getattr(old, f)) for f in FIELDS)
    t_new = best_time(lambda: scenario_from_dict(d))
    t_old = best_time(lambda: scenario_reference.scenario_from_dict(d), repeat=1, min_total_s=0)
    benchmark.extra_info.update(servers=10_000, vectorised_s=t_new, per_element_s=t_old,
                                speedup=t_old / t_new)
    print(f"\n10 000-server file: vectorised {t_new * 1e3:.1f} ms, per-element "
          f"{t_old * 1e3:.0f} ms ({t_old / t_new:.0f}x)")
