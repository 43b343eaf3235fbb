"""The online simulator: invariants on random scenarios, the pure-Python twin, closed
cases, workloads."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from conftest import random_scenario_dict
from distalloc import ValidationError
from distalloc.llm import (clustered, evaluate_routes, scenario_from_dict, shortest_routes,
                           synthetic_scenario)
from distalloc.llm.routing import request_time_costs
from distalloc.llm.simulation import (ONLINE_METHODS, Workload, choose_planned_requests,
                                      max_planned_requests, parse_allocation_delay,
                                      poisson_workload, simulate, trace_workload)

SIM_METHODS = [m for m in ONLINE_METHODS if m != "milp"]


def online_scenario(rng):
    """A random scenario with enough memory that every method can place the model."""
    d = random_scenario_dict(rng, max_servers=6, max_blocks=8, max_requests=1, max_clients=3,
                             binding=False)
    L = d["model"]["num_blocks"]
    d["model"]["cache_gb"] = float(rng.choice([0.02, 0.05, 0.1]))
    d["workload"]["output_tokens"] = int(rng.integers(2, 12))
    # PETALS budgets 4096 tokens of cache per block: cache_gb x 4096 / (8 + out) GB
    petals_block = 1.0 + d["model"]["cache_gb"] * 4096 / (8 + d["workload"]["output_tokens"])
    for s in d["servers"]:
        s["memory_gb"] = float(rng.uniform(1.5, L + 1.0)) * petals_block
    d["servers"][0]["memory_gb"] = L * petals_block + 1.0  # one server holds the model
    return scenario_from_dict(d)


def check_memory(result, scenario):
    """Sweep the sessions' [start, end) intervals: on no server does the cache in use ever
    exceed its budget (releases before starts at equal times)."""
    pl = result.placement
    spare = scenario.usable_memory_gb - scenario.block_gb * pl.num_blocks
    budget = np.floor(spare / scenario.cache_gb + 1e-9)
    events = []
    for r in np.flatnonzero(result.served):
        prev = 0
        for j in result.route(r):
            k = pl.first_block[j] + pl.num_blocks[j] - prev
            prev = pl.first_block[j] + pl.num_blocks[j]
            events.append((result.start_s[r], 1, j, k))
            events.append((result.end_s[r], 0, j, -k))
    use = np.zeros(scenario.num_servers)
    for t, kind, j, k in sorted(events):
        use[j] += k
        assert use[j] <= budget[j], f"server {j} over budget at t={t}"


@given(st.integers(0, 2**32 - 1), st.sampled_from(SIM_METHODS), st.floats(0.01, 3.0))
@settings(max_examples=40)
def test_invariants_random(seed, method, rate):
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    res = simulate(sc, method, rate_per_s=rate, num_requests=60, seed=seed, noise=0.1)
    # every request completes exactly once, after it arrived
    assert res.dropped == 0
    assert np.all(res.start_s >= res.workload.arrival_s - 1e-9)
    assert np.all(res.end_s > res.start_s)
    assert res.events == 2 * 60 + int(res.retries.sum())
    check_memory(res, sc)
    # service time = performance model x noise, on the chain the request took
    m = evaluate_routes(sc, res.placement, [res.route(r) for r in range(60)], res.workload.client)
    assert m.all_valid


@given(st.integers(0, 2**32 - 1), st.sampled_from(["cg-bprr", "petals", "petals-opt-routing"]))
@settings(max_examples=25)
def test_kernel_equals_pure_python_twin(seed, method):
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    res = simulate(sc, method, rate_per_s=float(rng.uniform(0.05, 5)), num_requests=40,
                   seed=seed, noise=0.2, allocation_delay_s=float(rng.choice([0.0, 3.0])))
    pl = res.placement
    budget = np.maximum(np.floor((sc.usable_memory_gb - sc.block_gb * pl.num_blocks) / sc.cache_gb), 0)
    noise = (res.end_s - res.start_s) * 1000 / np.array(
        [evaluate_routes(sc, pl, [res.route(r)], [res.workload.client[r]]).request_ms[0]
         for r in range(40)])
    start, end, ftok, retries, routes, events = naive.simulate(
        sc, pl.first_block.tolist(), pl.num_blocks.tolist(), (res.workload.arrival_s * 1000).tolist(),
        res.workload.client.tolist(), res.workload.output_tokens.tolist(), noise.tolist(),
        res.allocation_delay_s * 1000, budget.astype(int).tolist(),
        0 if ONLINE_METHODS[method][1] == "ws-rr" else 1)
    assert [res.route(r) for r in range(40)] == routes
    assert np.allclose(res.start_s * 1000, start, rtol=1e-9, atol=1e-6)
    assert np.allclose(res.end_s * 1000, end, rtol=1e-9, atol=1e-6)
    assert res.retries.tolist() == retries and res.events == events


def test_one_request_at_a_time_equals_the_model():
    """Arrivals 1000 s apart (sessions last ~100 s): no waits, each request on its
    request-time-optimal chain, and its request time is the performance model's."""
    sc = clustered()
    wl = Workload(np.arange(20) * 1000.0, np.arange(20) % 3, np.full(20, 128))
    for method in ("cg-bprr", "petals"):
        res = simulate(sc, method, workload=wl, planned_requests=20, seed=3)
        assert np.all(res.wait_s == 0) and np.all(res.retries == 0)
        m = evaluate_routes(sc, res.placement, [res.route(r) for r in range(20)], wl.client)
        assert np.allclose((res.end_s - res.start_s) * 1000, m.request_ms, rtol=1e-11)
        assert np.allclose((res.first_token_s - res.start_s) * 1000, m.ttft_ms, rtol=1e-11)
        if method == "cg-bprr":
            alpha, beta = request_time_costs(sc)
            best = shortest_routes(res.placement, sc.num_blocks, alpha, beta)
            assert np.allclose(m.request_ms, best.cost[wl.client])


@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
@settings(max_examples=30)
def test_no_wait_with_at_most_R_sessions(seed, R):
    """CG-BP reserves cache for |R| sessions on every block: a request that finds fewer
    than |R| sessions in the system never waits under WS-RR."""
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    if max_planned_requests(sc) < R:
        return
    res = simulate(sc, "cg-bprr", rate_per_s=float(rng.uniform(0.1, 20)), num_requests=80,
                   planned_requests=R, seed=seed)
    decision = res.workload.arrival_s
    for r in range(80):
        in_system = np.sum((decision[:r] <= decision[r]) & (res.end_s[:r] > decision[r]))
        if in_system < R:
            assert res.wait_s[r] == 0.0


def test_allocation_delay_is_added_per_method():
    sc = clustered()
    wl = poisson_workload(sc, 0.01, 30, seed=1)
    base = simulate(sc, "petals", workload=wl, seed=1)
    slow = simulate(sc, "petals", workload=wl, seed=1, allocation_delay_s="petals=250,cg-bprr=60")
    assert np.allclose(slow.end_s - base.end_s, 250.0)
    assert np.allclose(slow.token_s - base.token_s, 250.0 / 128)
    assert parse_allocation_delay("petals=250,cg-bprr=60", "cg-bprr") == 60.0
    assert parse_allocation_delay("petals=250", "cg-bprr") == 0.0
    assert parse_allocation_delay("7.5", "petals") == 7.5
    for bad in ("petals=x", "nobody=3", "-1", "petals"):
        with pytest.raises(ValidationError, match="allocation_delay"):
            parse_allocation_delay(bad, "petals")


def test_petals_backs_off_under_load_and_cg_bprr_does_not_need_to():
    sc = clustered()
    wl = poisson_workload(sc, 0.5, 400, client_weights=[1, 0, 0], seed=5)
    pt = simulate(sc, "petals", workload=wl, seed=5)
    cg = simulate(sc, "cg-bprr", workload=wl, seed=5)
    assert pt.retries.sum() > 0 and np.all(cg.retries == 0)
    assert np.nanmean(cg.token_s) < 0.5 * np.nanmean(pt.token_s)


def test_planned_requests_fixed_point():
    sc = clustered()
    r_max = max_planned_requests(sc)
    assert r_max >= 1
    from distalloc.llm import cg_bp_placement
    assert cg_bp_placement(sc, r_max).feasible and not cg_bp_placement(sc, r_max + 1).feasible
    lo, hi = choose_planned_requests(sc, 0.1), choose_planned_requests(sc, 1.0)
    assert 1 <= lo < hi <= r_max


def test_trace_workload(data_dir):
    sc = clustered()
    path = data_dir / "traces" / "azure_llm_inference_code_2023.csv"
    wl = trace_workload(sc, path, num_requests=500, time_scale=2.0)
    assert wl.num_requests == 500 and np.all(np.diff(wl.arrival_s) >= 0)
    assert wl.output_tokens.max() <= 128 and wl.output_tokens.min() >= 1
    res = simulate(sc, "cg-bprr", trace=str(path), num_requests=500, seed=0)
    assert res.dropped == 0 and res.workload.source.startswith("trace:")
    full = trace_workload(sc, path)
    with open(path) as fh:
        assert full.num_requests == sum(1 for line in fh if line.strip()) - 1  # minus header


def test_bad_trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,Tokens\n2023-01-01 00:00:00,1\n")
    with pytest.raises(ValidationError, match="must have the columns of one of the formats"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,1,-4\n")
    with pytest.raises(ValidationError, match="line 2: 'GeneratedTokens' must be a non-negative"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,4\n")
    with pytest.raises(ValidationError, match="line 2: 'TIMESTAMP' must be a number"):
        trace_workload(clustered(), p)


def test_simulate_validates_before_work():
    sc = clustered()
    with pytest.raises(ValidationError, match="'method'"):
        simulate(sc, "fifo", rate_per_s=1, num_requests=10)
    with pytest.raises(ValidationError, match="rate_per_s"):
        simulate(synthetic_scenario(5, 4), "cg-bprr", num_requests=10)  # no rate anywhere
    with pytest.raises(ValidationError, match="rate_per_s"):
        simulate(sc, "cg-bprr", rate_per_s=-1, num_requests=10)
    with pytest.raises(ValidationError, match="noise"):
        simulate(sc, "cg-bprr", rate_per_s=1, num_requests=10, noise=math.nan)


def test_milp_placement_online_on_a_small_instance():
    """'milp' places the model exactly for |R| planned sessions, then routes with WS-RR."""
    rng = np.random.default_rng(11)
    sc = online_scenario(rng)
    res = simulate(sc, "milp", rate_per_s=0.5, num_requests=30, planned_requests=2, seed=1,
                   time_limit_s=30)
    assert res.dropped == 0 and res.extra["milp_status"] in ("optimal", "time_limit")
    check_memory(res, sc)
