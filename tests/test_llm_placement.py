"""CG-BPRR, PETALS and their kernels against the pure-Python references; invariants of
every returned plan."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import naive
from conftest import random_scenario_dict
from distalloc import ValidationError
from distalloc.llm import (METHODS, cg_bp_placement, cg_bprr, clustered, petals, plan,
                           scenario_from_dict, synthetic_scenario, topology_scenario)
from distalloc.llm.placement import petals_block_counts, petals_placement


def check_plan_feasible(sc, p):
    """Independent check of a plan claimed feasible: contiguous windows, every route a
    chain covering all blocks in order, memory with all requests' caches."""
    first, num = p.placement.first_block.tolist(), p.placement.num_blocks.tolist()
    L = sc.num_blocks
    for a, m in zip(first, num):
        assert 0 <= m <= L and (m == 0 or 0 <= a <= L - m)
    assert len(p.routes) == sc.num_requests
    for route, c in zip(p.routes, sc.requests):
        assert naive.route_blocks(first, num, L, route) is not None
    mem = naive.memory_use(sc, first, num, p.routes)
    assert all(u <= cap + 1e-9 for u, cap in zip(mem, sc.usable_memory_gb))
    toks = [naive.evaluate_route(sc, first, num, r, int(c))[0] for r, c in zip(p.routes, sc.requests)]
    assert p.mean_token_ms == pytest.approx(sum(toks) / len(toks))


@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_cg_bp_kernel_matches_reference(seed, R):
    rng = np.random.default_rng(seed)
    sc = synthetic_scenario(int(rng.integers(1, 40)), num_blocks=int(rng.integers(1, 30)),
                            num_requests=R, seed=int(rng.integers(0, 1000)))
    cg = cg_bp_placement(sc)
    first, num, C, amort, order = naive.cg_bp(
        sc.usable_memory_gb.tolist(), sc.decode_ms.tolist(), sc.rtt_ms.max(axis=0).tolist(),
        sc.block_gb, sc.cache_gb, R, sc.num_blocks)
    assert cg.order.tolist() == order
    if sum(num) >= sc.num_blocks:
        assert cg.placement.num_blocks.tolist() == num
        used = [j for j in range(len(num)) if num[j] > 0]
        assert cg.placement.first_block[used].tolist() == [first[j] for j in used]
        assert cg.capacity.tolist() == C
        assert cg.feasible == all(c >= R for c in C)
    else:
        assert not cg.feasible


def test_cg_bp_ties_break_by_smallest_index_and_start():
    # identical servers: stable order by index; equal windows: smallest start
    d = {"model": {"name": "m", "num_blocks": 4, "block_gb": 1.0, "cache_gb": 0.5},
         "servers": [{"name": f"s{j}", "memory_gb": 3.0, "decode_ms": 1.0, "prefill_ms": 1.0}
                     for j in range(4)],
         "clients": [{"name": "c"}], "rtt_ms": [[10.0] * 4],
         "workload": {"input_tokens": 1, "output_tokens": 1, "requests": [0]}}
    cg = cg_bp_placement(scenario_from_dict(d))
    # m = floor(3 / 1.5) = 2 each; server 0 takes [0,2), server 1 the under-served [2,4),
    # servers 2, 3 the lexicographically smallest windows: [0,2) then [2,4)
    assert cg.placement.first_block.tolist() == [0, 2, 0, 2]
    assert cg.order.tolist() == [0, 1, 2, 3]


@given(st.integers(0, 2**32 - 1))
def test_petals_kernel_matches_reference(seed):
    rng = np.random.default_rng(seed)
    sc = synthetic_scenario(int(rng.integers(1, 40)), num_blocks=int(rng.integers(1, 30)),
                            seed=int(rng.integers(0, 1000)))
    order = rng.permutation(sc.num_servers)
    m = rng.integers(0, sc.num_blocks + 1, size=sc.num_servers)
    pl, _ = petals_placement(sc, order, m)
    ref = naive.petals_place(m.tolist(), sc.server_throughput(m).tolist(), order.tolist(), sc.num_blocks)
    used = m > 0
    assert pl.first_block[used].tolist() == np.array(ref)[used].tolist()


def test_petals_rule_fills_weakest_blocks():
    sc = clustered()
    m = petals_block_counts(sc)
    # the two A100s join first: the second must cover the blocks the first left at 0
    pl, thr = petals_placement(sc, np.arange(sc.num_servers), m)
    assert pl.first_block[:2].tolist() == [0, 17]
    assert np.all(thr > 0)


def test_cg_bprr_full_pipeline_matches_pure_python():
    for sc in [clustered(), synthetic_scenario(200, seed=3)]:
        p = cg_bprr(sc)
        first, num, routes, mean_ms = naive.cg_bprr(sc)
        assert p.placement.num_blocks.tolist() == num
        assert p.routes == routes
        assert p.mean_token_ms == pytest.approx(mean_ms)
        check_plan_feasible(sc, p)


@given(st.integers(0, 2**32 - 1), st.sampled_from([m for m in METHODS if m != "milp"]))
def test_every_plan_claimed_feasible_is_feasible(seed, method):
    rng = np.random.default_rng(seed)
    sc = scenario_from_dict(random_scenario_dict(rng, max_servers=8, max_blocks=10, max_requests=12,
                                                 max_clients=3, binding=bool(rng.integers(0, 2))))
    p = plan(sc, method, seed=seed % 1000)
    assert p.status in ("feasible", "infeasible")
    if p.feasible and method in ("chains", "jffc-whole"):
        # chain methods hold memory per chain (c_k jobs each, SPEC 1.10), and their routes
        # are waves of the JFFC assignment: check the reservation instead of all routes
        first, num = p.placement.first_block.tolist(), p.placement.num_blocks.tolist()
        for route in p.routes:
            assert naive.route_blocks(first, num, sc.num_blocks, route) is not None
        held = [ch["servers"] for ch in p.extra["chains"] for _ in range(ch["capacity"])]
        mem = naive.memory_use(sc, first, num, held)
        assert all(u <= cap + 1e-9 for u, cap in zip(mem, sc.usable_memory_gb))
    elif p.feasible:
        check_plan_feasible(sc, p)
    else:
        assert p.reason and p.routes == [] and p.mean_token_ms is None


@given(st.integers(0, 2**32 - 1))
def test_cg_bprr_never_exceeds_its_bound(seed):
    rng = np.random.default_rng(seed)
    sc = synthetic_scenario(int(rng.integers(1, 60)), num_blocks=int(rng.integers(1, 80)),
                            num_clients=int(rng.integers(1, 4)),
                            num_requests=int(rng.integers(1, 150)), seed=seed % 10_000)
    p = cg_bprr(sc)
    if p.feasible:
        assert p.mean_token_ms <= p.bound_ms * (1 + 1e-12)
        check_plan_feasible(sc, p)


def test_cg_bprr_beats_petals_on_clustered():
    sc = clustered()
    cg, pt = cg_bprr(sc), petals(sc, seed=0)
    assert cg.feasible and pt.feasible
    # CG-BPRR's chain is the two A100s: 2 RTTs + 70 A100 blocks per token
    assert cg.mean_token_ms == pytest.approx(np.mean([2 * 200 + 70 * 3.2197, 2 * 105 + 70 * 3.2197]))
    assert cg.mean_token_ms < pt.mean_token_ms


def test_infeasible_request_count_says_so():
    sc = clustered().with_requests(10_000)
    p = cg_bprr(sc)
    assert p.status == "infeasible" and not p.feasible
    assert "|R| = 10000" in p.reason
    d = p.to_dict()
    assert d["feasible"] is False and d["routes"] == [] and d["mean_token_ms"] is None


def test_plan_validates_before_work():
    with pytest.raises(ValidationError, match="'method' parameter"):
        plan(clustered(), "greedy")
    with pytest.raises(ValidationError, match="'time_limit'"):
        plan(clustered(), "milp", time_limit_s=-1)
    with pytest.raises(ValidationError, match="'num_requests'"):
        plan(clustered(), "cg-bprr", num_requests=0)


def test_gtsce_plans(data_dir):
    sc = topology_scenario("GtsCe", seed=0, num_requests=100)
    for method in ("cg-bprr", "petals"):
        p = plan(sc, method)
        assert p.feasible, p.reason
        check_plan_feasible(sc, p)
    assert math.isfinite(cg_bprr(sc).bound_ms)
