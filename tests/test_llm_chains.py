"""Chain composition (SPEC 1.10): GBP-CR, GCA and Theorem 4 against their oracles — the
worked Fig.-2 example of the notes, brute-force greedy over all paths, brute force over
disjoint groupings (Theorem 2), Erlang C."""
import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from distalloc import ValidationError
from distalloc._compiled import chain_kernels
from distalloc.llm import (Placement, clustered, gbp_cr, gca, jffc_bounds, plan,
                           scenario_from_dict)
from distalloc.llm.chains import (chain_costs, compose_chains, max_reservation,
                                  placement_from_list, search_reservation,
                                  whole_model_placement)
from distalloc.llm.chains_plan import jffc_fill

EPS = 0.01


def costed_scenario(memory, tau_c, tau_p, L, block_gb=1.0, cache_gb=0.1):
    """One client, one output token: a chain's T_k is exactly sum tau_c_j + tau_p_j k_j (ms)."""
    S = len(memory)
    return scenario_from_dict({
        "model": {"name": "toy", "num_blocks": L, "block_gb": block_gb, "cache_gb": cache_gb},
        "servers": [{"name": f"j{j + 1}", "memory_gb": float(memory[j]), "decode_ms": 0.0,
                     "prefill_ms": float(tau_p[j])} for j in range(S)],
        "clients": [{"name": "o"}],
        "rtt_ms": [[0.0] * S], "prefill_rtt_ms": [[float(t) for t in tau_c]],
        "workload": {"input_tokens": 1, "output_tokens": 1, "requests": [0]}})


def fig2():
    return costed_scenario([2, 3, 2, 2, 2], [1, 2, 1, 1, 1], [EPS * (j + 1) for j in range(5)], 3)


# ------------------------------------------------------------------------------------------
# Fig. 2 of the tech report (notes §8.1)
# ------------------------------------------------------------------------------------------
def test_fig2_gbp_cr():
    sc = fig2()
    two_chains = 1 / (3 + 5 * EPS) + 1 / (3 + 12 * EPS)          # per ms
    lam = 0.7 * 1 * two_chains * 1000 * 0.999                     # just needs both chains
    p = gbp_cr(sc, 1, lam)
    assert p.feasible and p.num_chains == 2
    assert p.num_blocks.tolist() == [1, 2, 1, 1, 1]
    assert p.first_block.tolist() == [0, 1, 0, 1, 2]             # 1-based (1, 2, 1, 2, 3)
    assert p.group.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_allclose(p.amortised_ms, [1 + (j + 1) * EPS for j in range(5)])
    assert p.rate_per_s == pytest.approx(two_chains * 1000)
    # a higher rate: the servers run out (K(c) = inf), the placement is kept for GCA
    q = gbp_cr(sc, 1, lam * 2)
    assert not q.feasible and q.num_blocks.tolist() == [1, 2, 1, 1, 1]


def test_fig2_gca_and_the_float_floor_trap():
    sc = fig2()
    pl = Placement.from_arrays([0, 1, 0, 1, 2], [1, 2, 1, 1, 1])
    chains = gca(sc, pl)
    assert [ch.servers for ch in chains] == [(0, 1), (0, 3, 4), (2, 3, 4)]
    assert [ch.capacity for ch in chains] == [5, 5, 5]           # 10 slots, not 9
    np.testing.assert_allclose([ch.service_s * 1000 for ch in chains],
                               [3 + 5 * EPS, 3 + 10 * EPS, 3 + 12 * EPS])
    comp = compose_chains(sc, placement=pl, rate_per_s=1.0)
    assert comp.service_rate_per_s == pytest.approx(
        1000 * (5 / (3 + 5 * EPS) + 5 / (3 + 10 * EPS) + 5 / (3 + 12 * EPS)))
    # the float-floor trap: 0.3 GB spare / 0.1 GB per slot is 2.999... in floating point
    assert math.floor((2.3 - 2 * 1.0) / 0.1) == 2
    slots = np.empty(1, dtype=np.int64)
    chain_kernels.slot_counts(np.array([2.3]), np.array([2]), 1.0, 0.1, slots)
    assert slots[0] == 3
    trap = costed_scenario([2.3, 2.3], [1, 1], [1, 1], 2)
    assert [ch.capacity for ch in gca(trap, Placement.from_arrays([0, 0], [2, 2]))] == [1, 1]
    # the contract form of a placement gives the same chains
    same = gca(sc, pl.to_list())
    assert [(c.servers, c.capacity) for c in same] == [(c.servers, c.capacity) for c in chains]


# ------------------------------------------------------------------------------------------
# GCA: invariants and the brute-force greedy over all paths
# ------------------------------------------------------------------------------------------
def naive_gca(first, num, L, alpha, beta, slots):
    """GCA by enumerating every path each round (costs are random floats: no ties)."""
    free = list(slots)
    paths = naive._paths(first, num, L)
    out = []
    while True:
        ok = [p for p in paths if all(free[j] >= k for j, k in p)]
        if not ok:
            return out, free
        best = min(ok, key=lambda p: sum(alpha[j] + beta[j] * k for j, k in p))
        cap = min(free[j] // k for j, k in best)
        for j, k in best:
            free[j] -= cap * k
        out.append(([j for j, _ in best], cap, sum(alpha[j] + beta[j] * k for j, k in best)))


@st.composite
def tiny_placements(draw):
    S = draw(st.integers(1, 6))
    L = draw(st.integers(1, 6))
    first, num = [], []
    for _ in range(S):
        m = draw(st.integers(0, L))
        a = draw(st.integers(0, L - m)) if m else 0
        first.append(a)
        num.append(m)
    slots = draw(st.lists(st.integers(0, 12), min_size=S, max_size=S))
    alpha = draw(st.lists(st.floats(0.5, 50.0), min_size=S, max_size=S))
    beta = draw(st.lists(st.floats(0.01, 5.0), min_size=S, max_size=S))
    return first, num, L, alpha, beta, slots


@given(tiny_placements())
@settings(max_examples=150)
def test_gca_matches_brute_force_greedy_and_invariants(inst):
    first, num, L, alpha, beta, slots = inst
    a = np.array(first, dtype=np.int64)
    m = np.array(num, dtype=np.int64)
    servers, blocks, offs, caps, cost, home = chain_kernels.gca(
        a, m, L, np.zeros((0, len(num))), np.array(beta), np.array(slots, dtype=np.int64),
        np.full(len(num), -1, dtype=np.int64), np.array(alpha))
    assert np.all(home == -1)
    # one group owning every server gives the same chains (the shared pass finds nothing)
    again = chain_kernels.gca(a, m, L, np.array([alpha]), np.array(beta),
                              np.array(slots, dtype=np.int64), np.zeros(len(num), dtype=np.int64),
                              np.array(alpha))
    assert all(np.array_equal(x, y) for x, y in zip(again[:5], (servers, blocks, offs, caps, cost)))
    assert np.all(again[5] == 0)
    got = [(servers[offs[q]:offs[q + 1]].tolist(), int(caps[q]), float(cost[q]))
           for q in range(caps.size)]
    want, free_left = naive_gca(first, num, L, alpha, beta, slots)
    assert [(s, c) for s, c, _ in got] == [(s, c) for s, c, _ in want]
    np.testing.assert_allclose([t for *_, t in got], [t for *_, t in want], rtol=1e-12)
    # invariants: valid paths with the right blocks, capacity >= 1, T non-decreasing,
    # slots never over-booked, at most one chain per link
    use = np.zeros(len(num), dtype=np.int64)
    for q, (path, cap, _) in enumerate(got):
        hops = naive.route_blocks(first, num, L, path)
        assert hops is not None and cap >= 1
        assert [k for _, k in hops] == blocks[offs[q]:offs[q + 1]].tolist()
        for j, k in hops:
            use[j] += cap * k
    assert np.all(use <= np.array(slots))
    assert all(x[2] <= y[2] + 1e-12 for x, y in zip(got, got[1:]))
    links = {(-1 if i == 0 else p[i - 1], p[i]) for p, _, _ in got for i in range(len(p))}
    assert len(got) <= max(1, len(links))
    # termination: no chain is left whose every server has the slots it needs
    left = np.array(slots) - use
    assert not any(all(left[j] >= k for j, k in p) for p in naive._paths(first, num, L))


# ------------------------------------------------------------------------------------------
# GBP-CR: brute force over disjoint groupings (Theorem 2) and coverage
# ------------------------------------------------------------------------------------------
def brute_force_groups(t, m, L, target):
    """Fewest disjoint groups (each with sum m >= L) whose rates sum_k 1/sum t reach target;
    None if no grouping does (Eq. 7)."""
    S = len(t)
    best = None
    for labels in itertools.product(range(S + 1), repeat=S):   # 0 = unused
        groups = {}
        for j, g in enumerate(labels):
            if g:
                groups.setdefault(g, []).append(j)
        if not groups or any(sum(m[j] for j in g) < L for g in groups.values()):
            continue
        rate = sum(1.0 / sum(t[j] for j in g) for g in groups.values())
        if rate >= target * (1 - 1e-12) and (best is None or len(groups) < best):
            best = len(groups)
    return best


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_gbp_cr_matches_brute_force_homogeneous_memory(seed):
    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 6))
    L = int(rng.integers(1, 7))
    mem = float(rng.uniform(1.5, L + 1.5))
    c = int(rng.integers(1, 4))
    tau_c = rng.uniform(1, 30, S)
    tau_p = rng.uniform(0.1, 5, S)
    sc = costed_scenario([mem] * S, tau_c, tau_p, L, cache_gb=0.05)
    m = np.minimum(np.floor(mem / (1 + 0.05 * c) + 1e-9), L).astype(int)
    t = tau_c + tau_p * m
    lam = float(rng.uniform(0.01, 2.0)) * 1000 / t.mean()
    target = lam / (0.7 * c) / 1000.0                             # per ms
    p = gbp_cr(sc, c, lam, 0.7)
    want = brute_force_groups(t, [m] * S, L, target) if m > 0 else None
    if want is None:
        assert not p.feasible
    else:
        assert p.feasible and p.num_chains == want


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=80)
def test_gbp_cr_chains_cover_every_block(seed):
    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 12))
    L = int(rng.integers(1, 20))
    sc = costed_scenario(rng.uniform(1.2, L + 2, S), rng.uniform(1, 50, S),
                         rng.uniform(0.1, 5, S), L, cache_gb=float(rng.choice([0.02, 0.1])))
    c = int(rng.integers(1, 6))
    p = gbp_cr(sc, c, float(rng.uniform(0.01, 100)))
    a, m, g = p.first_block, p.num_blocks, p.group
    assert np.all((m > 0) == (g >= 0))
    for k in range(p.num_chains):
        members = np.flatnonzero(g == k)          # in placement order = increasing t~
        members = members[np.argsort(p.amortised_ms[members], kind="stable")]
        prev = 0
        for j in members:                          # a chain of consecutive windows
            assert a[j] <= prev <= a[j] + m[j] - 1 and a[j] + m[j] <= L
            prev = a[j] + m[j]
        assert prev == L
        route = naive.route_blocks(a, m, L, members.tolist())
        assert route is not None


def test_gbp_cr_rejects_bad_parameters():
    sc = fig2()
    for kw, needle in [({"reservation": 0, "rate_per_s": 1}, "'reservation'"),
                       ({"reservation": 1, "rate_per_s": -1}, "'rate_per_s'"),
                       ({"reservation": 1, "rate_per_s": 1, "target_load": 1.0}, "'target_load'")]:
        with pytest.raises(ValidationError, match=needle):
            gbp_cr(sc, **kw)


# ------------------------------------------------------------------------------------------
# Theorem 4
# ------------------------------------------------------------------------------------------
def erlang_c_response(lam, mu, c):
    a = lam / mu
    rho = a / c
    tail = a ** c / math.factorial(c) / (1 - rho)
    p_wait = tail / (sum(a ** n / math.factorial(n) for n in range(c)) + tail)
    return p_wait / (c * mu - lam) + 1 / mu


@given(st.floats(0.05, 20.0), st.integers(1, 60), st.floats(0.01, 0.99), st.integers(1, 4))
def test_theorem4_is_erlang_c_for_one_chain_or_equal_rates(mu, c, load, split):
    lam = load * mu * c
    want = erlang_c_response(lam, mu, c)
    lo, up = jffc_bounds([mu], [c], lam)
    assert lo == pytest.approx(want, rel=1e-9) and up == pytest.approx(want, rel=1e-9)
    caps = [c // split + (1 if i < c % split else 0) for i in range(split)]
    caps = [x for x in caps if x]
    lo, up = jffc_bounds([mu] * len(caps), caps, lam)
    assert lo == pytest.approx(want, rel=1e-9) and up == pytest.approx(want, rel=1e-9)


def test_theorem4_table_of_the_notes_and_large_capacity():
    for lam, lo_w, up_w in [(0.5, 1.039, 3.807), (1.5, 1.348, 2.898), (2.5, 2.737, 3.558)]:
        lo, up = jffc_bounds([1.0, 0.25], [2, 4], lam)
        assert round(lo, 3) == lo_w and round(up, 3) == up_w
    # C in the thousands: the products of λ/d_i overflow without log space
    lo, up = jffc_bounds([1.0, 0.5, 0.2], [800, 900, 1000], 1000.0)
    assert math.isfinite(lo) and math.isfinite(up) and 1.0 <= lo <= up
    assert jffc_bounds([1.0], [2], 2.0) == (math.inf, math.inf)   # λ >= ν
    with pytest.raises(ValidationError, match="'service_rates_per_s\\[1\\]'"):
        jffc_bounds([1.0, -1.0], [1, 1], 0.5)
    with pytest.raises(ValidationError, match=r"'capacities' must have shape \(2,\)"):
        jffc_bounds([1.0, 2.0], [1], 0.5)


# ------------------------------------------------------------------------------------------
# The search over c, composition, plan
# ------------------------------------------------------------------------------------------
@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_search_pruning_is_exact(seed):
    rng = np.random.default_rng(seed)
    S = int(rng.integers(2, 10))
    L = int(rng.integers(2, 12))
    sc = costed_scenario(rng.uniform(1.5, L + 3, S), rng.uniform(1, 100, S),
                         rng.uniform(0.5, 20, S), L, cache_gb=float(rng.choice([0.02, 0.05])))
    lam = float(rng.uniform(0.5, 50))
    full = search_reservation(sc, lam, prune=False)
    fast = search_reservation(sc, lam, prune=True)
    assert fast.best == full.best
    assert fast.reservation.size <= full.reservation.size
    if full.best is not None:                         # the minimiser of the lower bound
        ok = np.array(full.status) == "ok"
        i = int(np.flatnonzero(full.reservation == full.best)[0])
        assert full.lower_s[i] == np.min(full.lower_s[ok])
    # the scan stops at the first c with sum_j m_j(c) < L, or at c_max
    assert full.stop in ("blocks", "c_max")
    assert full.reservation.size <= max_reservation(sc)


def test_compose_and_plan_contract_clustered():
    sc = clustered()
    comp = compose_chains(sc, rate_per_s=0.5)
    assert comp.search is not None and comp.reservation == comp.search.best
    lo, up = comp.bound_lower_s, comp.bound_upper_s
    assert min(ch.service_s for ch in comp.chains) <= lo * (1 + 1e-12) and lo <= up
    d = plan(sc, "chains", rate_per_s=0.5).to_dict()
    for key in ("method", "feasible", "status", "placement", "routes", "mean_token_ms",
                "bound_ms", "gap", "solve_s", "reservation", "chains", "service_rate_per_s",
                "bound_lower_s", "bound_upper_s"):
        assert key in d
    assert d["feasible"] and d["reservation"] == comp.reservation
    assert all(set(ch) == {"servers", "capacity", "service_s"} for ch in d["chains"])
    assert d["routes"][0] == d["chains"][0]["servers"]
    # a fixed reservation; the bounds are null (inf) when λ >= ν
    p = plan(sc, "chains", reservation=3, rate_per_s=0.05)
    assert p.feasible and p.extra["reservation"] == 3
    big = plan(sc, "chains", reservation=3, rate_per_s=0.05).extra["service_rate_per_s"]
    q = plan(sc, "chains", placement=p.placement.to_list(), rate_per_s=big * 2)
    assert q.extra["bound_lower_s"] is None and q.extra["bound_upper_s"] is None
    with pytest.raises(ValidationError, match="only to the chain methods"):
        plan(sc, "cg-bprr", reservation=3)
    with pytest.raises(ValidationError, match="'reservation'"):
        plan(sc, "chains", reservation="x")


def test_plan_infeasible_is_reported():
    sc = fig2()
    p = plan(sc, "jffc-whole")                       # no server holds 3 blocks + cache
    assert p.status == "infeasible" and "whole" in p.reason
    q = plan(sc, "chains", rate_per_s=1e9)            # overload: the fastest-serving c
    assert q.feasible and q.extra["bound_lower_s"] is None and "unstable" in q.extra["note"]
    tiny = costed_scenario([1.05, 1.05], [1, 1], [1, 1], 2)   # no block with one job's cache
    r = plan(tiny, "chains", rate_per_s=1.0)
    assert r.status == "infeasible" and "reservation" in r.reason


def test_jffc_fill_waves_and_whole_model():
    sc = costed_scenario([5, 5, 2], [1, 2, 3], [1, 1, 1], 2, cache_gb=0.5)
    pl = whole_model_placement(sc)
    assert pl.num_blocks.tolist() == [2, 2, 0]       # 2 + 2 x 0.5 <= 5; 2 + 1 > 2
    chains = gca(sc, pl)
    assert [(ch.servers, ch.capacity) for ch in chains] == [((0,), 3), ((1,), 3)]
    pick = jffc_fill(sc, chains, np.zeros(8, dtype=np.int64))
    assert pick == [0, 0, 0, 1, 1, 1, 0, 0]          # fastest first, then a new wave
    # with client groups: the group's chains first (chain 1 is group 0's home)
    from distalloc.llm.chain_groups import make_groups
    grouped = [dataclasses.replace(chains[0], group=1), dataclasses.replace(chains[1], group=0)]
    groups = make_groups(np.array([0]), np.array([1.0]), np.zeros((1, 3)), np.zeros(3))
    pick = jffc_fill(sc, grouped, np.zeros(8, dtype=np.int64), groups)
    assert pick == [1, 1, 1, 0, 0, 0, 1, 1]


def test_placement_file_validation():
    sc = fig2()
    with pytest.raises(ValidationError, match="twice"):
        placement_from_list([{"server": 0, "first_block": 0, "num_blocks": 1}] * 2, sc)
    with pytest.raises(ValidationError, match="'first_block'"):
        placement_from_list([{"server": 0, "first_block": 3, "num_blocks": 1}], sc)
    with pytest.raises(ValidationError, match="Unknown key 'blocks'"):
        placement_from_list([{"server": 0, "first_block": 0, "blocks": 1}], sc)
    with pytest.raises(ValidationError, match="cannot hold"):
        placement_from_list([{"server": 0, "first_block": 0, "num_blocks": 3}], sc)


def test_weighted_costs_of_several_clients():
    sc = clustered()
    alpha, beta = chain_costs(sc, [3, 1, 0])
    n = sc.output_tokens - 1
    want = 0.75 * (sc.prefill_rtt_ms[0] + n * sc.rtt_ms[0]) + 0.25 * (sc.prefill_rtt_ms[1] + n * sc.rtt_ms[1])
    np.testing.assert_allclose(alpha, want)
    np.testing.assert_allclose(beta, sc.prefill_ms + n * sc.decode_ms)
