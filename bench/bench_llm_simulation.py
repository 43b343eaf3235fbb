"""The online simulator: compiled event loop (around the online engine) against the
pure-Python heapq twin of the same semantics (tests/naive.py, same answers asserted), and
scale: 10^6 requests over 10^4 servers, and 10^5 with every server failing about once a
day (MTTR 2.4 h): about 2 300 failures and repairs."""
import numpy as np
import pytest

import naive
from conftest import best_time
from distalloc.llm import clustered, synthetic_scenario
from distalloc.llm.simulation import ONLINE_METHODS, poisson_workload, simulate


def _twin(sc, res):
    pl = res.placement
    budget = np.maximum(np.floor((sc.usable_memory_gb - sc.block_gb * pl.num_blocks) / sc.cache_gb), 0)
    wl = res.workload
    return lambda: naive.simulate(
        sc, pl.first_block.tolist(), pl.num_blocks.tolist(), (wl.arrival_s * 1000).tolist(),
        wl.client.tolist(), wl.output_tokens.tolist(), [1.0] * wl.num_requests, 0.0,
        budget.astype(int).tolist(), 0 if ONLINE_METHODS[res.method][1] == "ws-rr" else 1)


@pytest.mark.parametrize("method, rate", [("cg-bprr", 0.5), ("cg-bprr", 2.0), ("petals", 0.5)])
def test_simulator_vs_pure_python(benchmark, method, rate):
    sc = clustered()
    wl = poisson_workload(sc, rate, 2000, client_weights=[1, 1, 0], seed=0)
    res = benchmark(simulate, sc, method, workload=wl, seed=0)
    twin = _twin(sc, res)
    start, end, *_ , events = twin()
    assert np.allclose(res.end_s * 1000, end, rtol=1e-9) and res.events == events
    # the kernel alone against the twin: same placement, same arrivals
    t_fast = best_time(lambda: simulate(sc, method, workload=wl, seed=0).wall_s)
    kernel_s = min(simulate(sc, method, workload=wl, seed=0).wall_s for _ in range(5))
    t_slow = best_time(twin, repeat=1, min_total_s=0)
    d = res.to_dict()
    benchmark.extra_info.update(requests=2000, rate_per_s=rate, events=res.events,
                                api_s=t_fast, kernel_s=kernel_s, pure_python_s=t_slow,
                                speedup_api=t_slow / t_fast, speedup_kernel=t_slow / kernel_s,
                                mean_token_s=d["mean_token_s"], mean_wait_s=d["mean_wait_s"])
    print(f"\n{method} λ={rate}: API {t_fast * 1e3:.1f} ms (kernel {kernel_s * 1e3:.2f} ms), "
          f"pure Python {t_slow * 1e3:.0f} ms, ratio {t_slow / t_fast:.0f}x "
          f"(kernel {t_slow / kernel_s:.0f}x)")


@pytest.mark.parametrize("method, num_requests, kw", [
    ("cg-bprr", 1_000_000, {"planned_requests": 100}),
    ("petals", 100_000, {}),
    ("cg-bprr", 100_000, {"planned_requests": 100, "churn": "86400"}),
])
def test_simulator_scale(benchmark, method, num_requests, kw):
    """10^4 servers (L = 96, 8 clients), 5 requests/s.  CG-BP + WS-RR mostly takes each
    client's cached static chain; PETALS's short chains fill up, so nearly every request
    runs the routing DP over all 10^4 servers."""
    sc = synthetic_scenario(10_000, 96, num_clients=8, seed=1)
    res = benchmark.pedantic(simulate, args=(sc, method), kwargs=dict(
        rate_per_s=5.0, num_requests=num_requests, seed=0, **kw), rounds=1, iterations=1)
    assert res.dropped == 0 and res.events >= 2 * num_requests
    d = res.to_dict()
    if "churn" in kw:
        assert d["failures"] > 0 and d["interrupted"] > 0
        benchmark.extra_info.update(failures=d["failures"], interrupted=d["interrupted"])
    benchmark.extra_info.update(servers=10_000, requests=num_requests, events=res.events,
                                kernel_s=res.wall_s, events_per_s=res.events / res.wall_s,
                                mean_token_s=d["mean_token_s"], mean_wait_s=d["mean_wait_s"])
    print(f"\n{method}{' with churn ' + kw['churn'] if 'churn' in kw else ''}: "
          f"{num_requests} requests on 10^4 servers, {res.events} events in "
          f"{res.wall_s:.2f} s = {res.events / res.wall_s:,.0f} events/s")
