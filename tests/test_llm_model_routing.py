"""Performance-model kernel and routing kernel against the slow references."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import naive
from conftest import random_scenario_dict
from distalloc.llm import Placement, clustered, evaluate_routes, scenario_from_dict, shortest_routes
from distalloc.llm.routing import feasible_links


def random_placement(rng, S, L, p_unused=0.2):
    num = rng.integers(1, L + 1, size=S)
    num[rng.random(S) < p_unused] = 0
    first = np.array([rng.integers(0, L - m + 1) if m else 0 for m in num])
    return Placement.from_arrays(first, num)


def random_route(rng, S, max_len):
    """Server indices in range (an index out of range is a ValidationError, tested in
    test_llm_review_faults.py); unused servers, gaps and short routes stay common."""
    return rng.integers(0, S, size=int(rng.integers(0, max_len + 1))).tolist()


def test_hand_checked_clustered_chain():
    """Cluster0 client through both A100s, 35 blocks each: 2 * 200 ms + 70 * 3.2197 ms per
    token; prefill 2 * 181.098 ms + 70 * 34.476 ms; request time adds 127 per-token times."""
    sc = clustered()
    pl = Placement.from_arrays([0, 35] + [0] * 7, [35, 35] + [0] * 7)
    m = evaluate_routes(sc, pl, [[0, 1], [0, 1]], [0, 1])
    assert m.token_ms[0] == pytest.approx(2 * 200 + 70 * 3.2197)
    assert m.token_ms[1] == pytest.approx(2 * 105 + 70 * 3.2197)
    ttft = 2 * (100 + 0.7049 * 20 + 67) + 70 * (0.0743 * 20 + 32.99)
    assert m.ttft_ms[0] == pytest.approx(ttft)
    assert m.request_ms[0] == pytest.approx(ttft + 127 * (400 + 70 * 3.2197))
    assert m.memory_gb[0, 0] == pytest.approx(35 * 1.32 + 2 * 35 * sc.cache_gb)
    assert m.memory_gb[0, 2] == 0.0


@given(st.integers(0, 2**32 - 1))
def test_evaluate_matches_reference(seed):
    rng = np.random.default_rng(seed)
    sc = scenario_from_dict(random_scenario_dict(rng, max_servers=6, max_blocks=8))
    S, L = sc.num_servers, sc.num_blocks
    placements = [random_placement(rng, S, L) for _ in range(3)]
    routes, clients, owner = [], [], []
    for _ in range(30):
        p = int(rng.integers(0, 3))
        if rng.random() < 0.5:  # a valid route from the DP, so valid cases are common
            r = shortest_routes(placements[p], L, sc.rtt_ms, sc.decode_ms)
            c = int(rng.integers(0, sc.num_clients))
            route = r.path(c) if math.isfinite(r.cost[c]) else random_route(rng, S, 4)
        else:
            route = random_route(rng, S, 4)
        routes.append(route)
        clients.append(int(rng.integers(0, sc.num_clients)))
        owner.append(p)
    m = evaluate_routes(sc, placements, routes, clients, owner)
    for i, (route, c, p) in enumerate(zip(routes, clients, owner)):
        pl = placements[p]
        ref = naive.evaluate_route(sc, pl.first_block.tolist(), pl.num_blocks.tolist(), route, c)
        if ref is None:
            assert m.status[i] != 0 and math.isnan(m.token_ms[i])
        else:
            assert m.status[i] == 0
            assert m.token_ms[i] == pytest.approx(ref[0])
            assert m.ttft_ms[i] == pytest.approx(ref[1])
            assert m.request_ms[i] == pytest.approx(ref[2])
    for p, pl in enumerate(placements):
        mine = [r for r, o in zip(routes, owner) if o == p]
        ref = naive.memory_use(sc, pl.first_block.tolist(), pl.num_blocks.tolist(), mine)
        assert np.allclose(m.memory_gb[p], ref)


@given(st.integers(0, 2**32 - 1), st.booleans())
def test_dp_routing_equals_dijkstra(seed, with_penalty):
    """SciPy-csgraph style: two algorithms on the same graphs, equal answers."""
    rng = np.random.default_rng(seed)
    S, L, C = int(rng.integers(1, 12)), int(rng.integers(1, 12)), int(rng.integers(1, 4))
    pl = random_placement(rng, S, L)
    alpha = rng.uniform(0, 50, size=(C, S))
    beta = rng.uniform(0, 10, size=S)
    free = rng.integers(0, L + 1, size=S) if with_penalty else None
    penalty = float(rng.choice([100.0, math.inf])) if with_penalty else 0.0
    r = shortest_routes(pl, L, alpha, beta, free, penalty)
    first, num = pl.first_block.tolist(), pl.num_blocks.tolist()
    for c in range(C):
        ref_cost, _ = naive.dijkstra_route(first, num, L, alpha[c], beta,
                                           None if free is None else free.tolist(), penalty)
        if math.isinf(ref_cost):
            assert math.isinf(r.cost[c]) and r.path_len[c] == 0
            continue
        assert r.cost[c] == pytest.approx(ref_cost)
        # the returned path really has that cost and is feasible
        blocks = naive.route_blocks(first, num, L, r.path(c))
        assert blocks is not None
        cost = sum(alpha[c, j] + beta[j] * k + (penalty if free is not None and k > free[j] else 0)
                   for j, k in blocks)
        assert cost == pytest.approx(ref_cost)


def test_routing_uncovered_block_is_unreachable():
    pl = Placement.from_arrays([0, 3], [2, 2])  # block 2 hosted by nobody
    r = shortest_routes(pl, 5, np.zeros((1, 2)), np.ones(2))
    assert math.isinf(r.cost[0]) and r.path(0) == []


def test_feasible_links_lemma1():
    pl = Placement.from_arrays([0, 1, 2], [2, 2, 1])  # [0,2) [1,3) [2,3)
    links = set(feasible_links(pl, 3))
    # start->0 ; start->? server 1 starts at 1 > 0: no ; 0 (end 2) -> 1 (a=1<=2<=2) and -> 2
    assert links == {(-1, 0), (0, 1), (0, 2), (1, -2), (2, -2)}
