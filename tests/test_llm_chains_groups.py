"""Chain composition with several clients (client groups, distalloc.llm.chain_groups): exact
reduction to the paper's single-client algorithm, the multi-group GBP-CR and GCA against
plain-Python references, memory never over-booked, the grouping family, and a hand-checked
swarm where per-client chains must win."""
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from distalloc import ValidationError
from distalloc._compiled import chain_kernels
from distalloc.llm import gbp_cr, plan, scenario_from_dict, synthetic_scenario
from distalloc.llm.chain_groups import client_costs, client_groupings
from distalloc.llm.chains import compose_chains, resolve_client_weights, search_reservation
from distalloc.llm.simulation import poisson_workload, simulate
from distalloc.llm.workload import Workload
from conftest import random_scenario_dict
from test_llm_chains import naive_gca


def costed_clients(memory, tau_c, tau_p, L, block_gb=1.0, cache_gb=0.1):
    """C clients, one output token: client c's T_k is exactly sum tau_c[c, j] + tau_p_j k_j."""
    S, C = len(memory), len(tau_c)
    return scenario_from_dict({
        "model": {"name": "toy", "num_blocks": L, "block_gb": block_gb, "cache_gb": cache_gb},
        "servers": [{"name": f"j{j}", "memory_gb": float(memory[j]), "decode_ms": 0.0,
                     "prefill_ms": float(tau_p[j])} for j in range(S)],
        "clients": [{"name": f"c{c}"} for c in range(C)],
        "rtt_ms": [[0.0] * S for _ in range(C)],
        "prefill_rtt_ms": [[float(t) for t in row] for row in tau_c],
        "workload": {"input_tokens": 1, "output_tokens": 1, "requests": list(range(C))}})


def only_client(sc, c):
    """The same swarm seen by client c alone."""
    return dataclasses.replace(sc, client_names=[sc.client_names[c]],
                               rtt_ms=np.ascontiguousarray(sc.rtt_ms[c:c + 1]),
                               prefill_rtt_ms=np.ascontiguousarray(sc.prefill_rtt_ms[c:c + 1]),
                               requests=np.zeros(1, dtype=np.int64), online={})


def same_composition(a, b, rel=0.0):
    """Equal compositions; floats exactly, or within ``rel`` when the inputs differ in the
    last bits (e.g. weights normalised twice)."""
    assert a.reservation == b.reservation
    np.testing.assert_array_equal(a.placement.first_block, b.placement.first_block)
    np.testing.assert_array_equal(a.placement.num_blocks, b.placement.num_blocks)
    assert [(ch.servers, ch.blocks, ch.capacity) for ch in a.chains] == \
           [(ch.servers, ch.blocks, ch.capacity) for ch in b.chains]
    for x, y in [(ch.service_s, dh.service_s) for ch, dh in zip(a.chains, b.chains)] + \
            [(a.bound_lower_s, b.bound_lower_s), (a.bound_upper_s, b.bound_upper_s)]:
        assert x == y or x == pytest.approx(y, rel=rel, abs=0)


# ------------------------------------------------------------------------------------------
# With one client (or all arrivals from one), exactly the paper's algorithm
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_arrivals_from_one_client_is_that_clients_single_client_composition(seed):
    sc = synthetic_scenario(60, 24, num_clients=3, seed=seed)
    lam = 0.4
    many = compose_chains(sc, rate_per_s=lam, client_weights=[0, 1, 0])
    one = compose_chains(only_client(sc, 1), rate_per_s=lam)
    same_composition(many, one)
    assert many.client_groups.to_list() == [None, 0, None]
    s, t = many.search, one.search
    np.testing.assert_array_equal(s.reservation, t.reservation)
    np.testing.assert_array_equal(s.lower_s, t.lower_s)
    assert s.status == t.status and s.stop == t.stop and len(s.groupings) == 1
    # and JFFC serves the same arrivals identically
    wl = poisson_workload(only_client(sc, 1), lam, 300, seed=seed)
    a = simulate(sc, "chains", workload=Workload(wl.arrival_s, np.ones(300, dtype=np.int64),
                                                 wl.output_tokens), seed=seed)
    b = simulate(only_client(sc, 1), "chains", workload=wl, seed=seed)
    np.testing.assert_array_equal(a.start_s, b.start_s)
    np.testing.assert_array_equal(a.end_s, b.end_s)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_one_group_is_the_paper_algorithm_on_the_mean_client(seed):
    """client_groups='one' on C clients is the paper's algorithm for one client whose
    per-visit times are the arrival-weighted mean (exact with one output token)."""
    rng = np.random.default_rng(seed)
    S, C, L = int(rng.integers(2, 9)), int(rng.integers(2, 4)), int(rng.integers(2, 8))
    tau_c = rng.uniform(1, 50, (C, S))
    args = (rng.uniform(1.5, L + 3, S), rng.uniform(0.5, 10, S))
    w = rng.dirichlet(np.ones(C))
    many = costed_clients(args[0], tau_c, args[1], L, cache_gb=0.05)
    mean_row = resolve_client_weights(many, w) @ client_costs(many)[0]
    mean = costed_clients(args[0], [mean_row], args[1], L, cache_gb=0.05)
    lam = float(rng.uniform(0.5, 40))
    for res in ("auto", int(rng.integers(1, 6))):
        try:
            a = compose_chains(many, rate_per_s=lam, client_weights=w, client_groups="one",
                               reservation=res)
        except ValidationError as exc:
            with pytest.raises(ValidationError, match=str(exc)[:30]):
                compose_chains(mean, rate_per_s=lam, reservation=res)
            continue
        b = compose_chains(mean, rate_per_s=lam, reservation=res)
        same_composition(a, b, rel=1e-13)
        assert a.note == b.note


# ------------------------------------------------------------------------------------------
# The grouping family
# ------------------------------------------------------------------------------------------
def test_groupings_family():
    rng = np.random.default_rng(4)
    alpha = rng.uniform(0, 100, (6, 30))
    alpha[3] = alpha[1]                                   # two clients at one place
    beta = rng.uniform(1, 2, 30)
    w = np.array([0.1, 0.3, 0.0, 0.2, 0.25, 0.15])        # client 2 has no arrivals
    fam = client_groupings(w, alpha, beta)
    assert [g.num_groups for g in fam] == sorted(g.num_groups for g in fam)
    assert fam[0].num_groups == 1 and fam[-1].num_groups == 4   # 5 clients, two identical
    for g in fam:
        assert g.labels[2] == -1 and g.labels[1] == g.labels[3]
        assert g.weight.sum() == pytest.approx(1.0)
        for k in range(g.num_groups):                       # arrival-weighted group mean
            mine = g.labels == k
            np.testing.assert_allclose(g.alpha_ms[k], w[mine] @ alpha[mine] / w[mine].sum())
        np.testing.assert_allclose(g.shared_alpha_ms, w @ alpha)
    for coarse, fine in zip(fam, fam[1:]):                  # nested: fine refines coarse
        for k in range(fine.num_groups):
            assert len(set(coarse.labels[fine.labels == k])) == 1
    each = client_groupings(w, alpha, beta, "each")[0]
    np.testing.assert_array_equal(each.alpha_ms, alpha[[0, 1, 3, 4, 5]])   # exact rows
    assert client_groupings(w, alpha, beta, [0, 0, 5, 1, 1, 0])[0].to_list() == \
        [0, 0, None, 1, 1, 0]
    with pytest.raises(ValidationError, match="'client_groups'"):
        client_groupings(w, alpha, beta, "nearest")
    with pytest.raises(ValidationError, match="one group"):
        client_groupings(w, alpha, beta, [0, 1])


# ------------------------------------------------------------------------------------------
# GBP-CR with groups against a plain-Python reference
# ------------------------------------------------------------------------------------------
def naive_gbp_cr_groups(memory, alpha_g, beta, block_gb, cache_gb, c, L, targets):
    """The pair greedy of chains.gbp_cr: (first, num, owner, chain_of, rate per group,
    chains per group, feasible); chains numbered complete first (in completion order)."""
    S, G = len(memory), len(alpha_g)
    per = block_gb + cache_gb * c
    m = [min(int(math.floor(M / per * (1 + 1e-12) + 1e-9)), L) for M in memory]
    pairs = sorted(((alpha_g[g][j] + beta[j] * m[j]) / m[j], j, g)
                   for j in range(S) if m[j] > 0 for g in range(G))
    owner, first = [-1] * S, [0] * S
    a, T, nu, K_g = [0] * G, [0.0] * G, [0.0] * G, [0] * G
    done = [t <= 0 for t in targets]
    cur, chains, K = [None] * G, [], 0
    for _, j, g in pairs:
        if all(done):
            break
        if owner[j] >= 0 or done[g]:
            continue
        owner[j], first[j] = g, min(a[g], L - m[j])
        if cur[g] is None:
            cur[g] = len(chains)
            chains.append({"members": [], "id": None})
        chains[cur[g]]["members"].append(j)
        T[g] += alpha_g[g][j] + beta[j] * m[j]
        a[g] = min(a[g] + m[j], L)
        if a[g] == L:
            nu[g] += 1.0 / T[g]
            K_g[g] += 1
            chains[cur[g]]["id"] = K
            K += 1
            cur[g] = None
            done[g] = done[g] or nu[g] >= targets[g]
            a[g], T[g] = 0, 0.0
    for ch in chains:
        if ch["id"] is None:
            ch["id"] = K
            K += 1
    chain_of = [-1] * S
    for ch in chains:
        for j in ch["members"]:
            chain_of[j] = ch["id"]
    num = [m[j] if owner[j] >= 0 else 0 for j in range(S)]
    return first, num, owner, chain_of, nu, K_g, all(done), chains


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_gbp_cr_groups_matches_reference_and_invariants(seed):
    rng = np.random.default_rng(seed)
    S, C, L = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 12))
    mem = rng.uniform(1.2, L + 2, S)
    sc = costed_clients(mem, rng.uniform(1, 50, (C, S)), rng.uniform(0.1, 5, S), L,
                        cache_gb=float(rng.choice([0.02, 0.1])))
    w = rng.dirichlet(np.ones(C)) * (rng.random(C) < 0.8)
    w = w if w.sum() > 0 else np.ones(C)
    labels = rng.integers(0, C, C).tolist()
    c = int(rng.integers(1, 6))
    p = gbp_cr(sc, c, float(rng.uniform(0.01, 100)), client_weights=w, client_groups=labels)
    g = p.client_groups
    targets = (g.weight * p.target_rate_per_s / 1000.0).tolist()
    first, num, owner, chain_of, nu, K_g, ok, chains = naive_gbp_cr_groups(
        sc.usable_memory_gb.tolist(), g.alpha_ms.tolist(), g.beta_ms.tolist(), sc.block_gb,
        sc.cache_gb, c, L, targets)
    assert p.first_block.tolist() == first and p.num_blocks.tolist() == num
    assert p.owner.tolist() == owner and p.group.tolist() == chain_of
    assert p.feasible == ok and p.group_chains.tolist() == K_g
    assert p.num_chains == sum(K_g)
    np.testing.assert_allclose(p.group_rate_per_s, np.array(nu) * 1000.0, rtol=1e-12)
    # invariants: disjoint chains, each complete chain covers [0, L) with its group's
    # servers; a feasible placement reaches every group's share of the rate
    for ch in chains:
        assert len({owner[j] for j in ch["members"]}) == 1
        if ch["id"] < p.num_chains:
            assert naive.route_blocks(first, num, L, ch["members"]) is not None
            assert first[ch["members"][-1]] + num[ch["members"][-1]] == L
    if p.feasible:
        assert np.all(p.group_rate_per_s >= g.weight * p.target_rate_per_s * (1 - 1e-12))


# ------------------------------------------------------------------------------------------
# GCA with groups against the brute-force greedy per group, then shared
# ------------------------------------------------------------------------------------------
@st.composite
def grouped_placements(draw):
    S = draw(st.integers(1, 6))
    L = draw(st.integers(1, 5))
    G = draw(st.integers(1, 3))
    first, num = [], []
    for _ in range(S):
        m = draw(st.integers(0, L))
        first.append(draw(st.integers(0, L - m)) if m else 0)
        num.append(m)
    owner = draw(st.lists(st.integers(-1, G - 1), min_size=S, max_size=S))
    slots = draw(st.lists(st.integers(0, 12), min_size=S, max_size=S))
    alpha = [draw(st.lists(st.floats(0.5, 50.0), min_size=S, max_size=S)) for _ in range(G + 1)]
    beta = draw(st.lists(st.floats(0.01, 5.0), min_size=S, max_size=S))
    return first, num, L, owner, slots, alpha[:G], alpha[G], beta


@given(grouped_placements())
@settings(max_examples=150, deadline=None)
def test_gca_groups_matches_brute_force_and_never_overbooks(inst):
    first, num, L, owner, slots, alpha_g, shared, beta = inst
    S = len(num)
    servers, blocks, offs, caps, cost, home = chain_kernels.gca(
        np.array(first, dtype=np.int64), np.array(num, dtype=np.int64), L, np.array(alpha_g),
        np.array(beta), np.array(slots, dtype=np.int64), np.array(owner, dtype=np.int64),
        np.array(shared))
    got = [(servers[offs[q]:offs[q + 1]].tolist(), int(caps[q]), int(home[q]))
           for q in range(caps.size)]
    want, free = [], list(slots)
    for g in range(len(alpha_g) + 1):
        mask = [num[j] if (g == len(alpha_g) or owner[j] == g) else 0 for j in range(S)]
        out, free = naive_gca(first, mask, L, alpha_g[g] if g < len(alpha_g) else shared,
                              beta, free)
        want += [(path, cap, g if g < len(alpha_g) else -1) for path, cap, _ in out]
    assert got == want
    use = np.zeros(S, dtype=np.int64)
    for q, (path, cap, h) in enumerate(got):
        assert h == -1 or all(owner[j] == h for j in path)
        for j, k in zip(path, blocks[offs[q]:offs[q + 1]]):
            use[j] += cap * k
    assert np.all(use <= np.array(slots))


# ------------------------------------------------------------------------------------------
# Composition: memory, the search, and a swarm where per-client chains must win
# ------------------------------------------------------------------------------------------
@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_compositions_never_overbook_memory_and_search_prunes_exactly(seed):
    rng = np.random.default_rng(seed)
    sc = scenario_from_dict(random_scenario_dict(rng, max_servers=9, max_blocks=8,
                                                 max_clients=4, max_requests=6))
    lam = float(rng.uniform(0.05, 20.0))
    w = rng.dirichlet(np.ones(sc.num_clients))
    full = search_reservation(sc, lam, client_weights=w, prune=False)
    fast = search_reservation(sc, lam, client_weights=w, prune=True)
    assert (fast.best, fast.best_grouping) == (full.best, full.best_grouping)
    if full.best is not None:
        ok = np.array(full.status) == "ok"
        i = np.flatnonzero((full.reservation == full.best) & (full.grouping == full.best_grouping))
        assert full.lower_s[i[0]] == np.min(full.lower_s[ok])
    for groups in ("auto", "each"):
        try:
            comp = compose_chains(sc, rate_per_s=lam, client_weights=w, client_groups=groups)
        except ValidationError:
            continue
        use = sc.block_gb * comp.placement.num_blocks.astype(float)
        for ch in comp.chains:
            for j, k in zip(ch.servers, ch.blocks):
                use[j] += sc.cache_gb * k * ch.capacity
        assert np.all(use <= sc.usable_memory_gb * (1 + 1e-12) + 1e-9)
        for ch in comp.chains:
            assert naive.route_blocks(comp.placement.first_block, comp.placement.num_blocks,
                                      sc.num_blocks, list(ch.servers)) is not None
    p = plan(sc, "chains", rate_per_s=lam, client_weights=w)
    assert p.status == "feasible" or "reservation" in (p.reason or "")


def two_sites():
    """Two clients 100 ms apart, each with two whole-model servers beside it (1 ms)."""
    near, far = 1.0, 100.0
    tau = [[near, near, far, far], [far, far, near, near]]
    return costed_clients([3.0] * 4, tau, [0.5] * 4, 1, block_gb=1.0, cache_gb=0.25)


def test_two_sites_get_chains_beside_them():
    sc = two_sites()                   # each server: 1 block + 8 jobs
    # GBP-CR at c = 8, ρ̄ = 0.7 needs chains of total rate λ/(ρ̄ c) = 1.5/51 per ms: two
    # servers at the mean per-visit time (1 + 100)/2 + 0.5 = 51 ms, one 1.5 ms server per
    # client with per-client groups
    lam = 1.5 / 51 * 1000 * 0.7 * 8
    one = compose_chains(sc, rate_per_s=lam, client_groups="one", reservation=8)
    auto = compose_chains(sc, rate_per_s=lam, reservation=8)
    # the mean reading sees four equal servers and takes servers 0 and 1 (ties by index);
    # per-client groups take one server beside each client
    assert sorted(ch.servers for ch in one.chains if ch.capacity) == [(0,), (1,)]
    assert auto.client_groups.to_list() == [0, 1]
    assert [(ch.servers, ch.group) for ch in auto.chains] == [((0,), 0), ((2,), 1)]
    assert auto.bound_lower_s < one.bound_lower_s
    # JFFC: each client uses the server beside it while it has a free slot
    wl = poisson_workload(sc, lam, 4000, seed=3)
    res = simulate(sc, "chains", workload=wl, seed=3, reservation=8)
    routes = np.array([res.route(r)[0] for r in range(wl.num_requests)])
    assert np.all((routes < 2) == (wl.client == 0))
    np.testing.assert_allclose(res.end_s - res.start_s, 1.5e-3)


def test_scarce_servers_fall_back_to_one_shared_group():
    """The clustered deployment: both clients must share the only fast chain."""
    from distalloc.llm import clustered
    comp = compose_chains(clustered(), rate_per_s=0.5)
    assert comp.client_groups.num_groups == 1 and len(comp.search.groupings) == 2
    assert all(s == "infeasible" for s, g in zip(comp.search.status, comp.search.grouping)
               if g == 1)


@given(st.integers(0, 2**32 - 1), st.sampled_from([None, 0.01, 0.002]))
@settings(max_examples=30, deadline=None)
def test_search_skips_only_c_with_the_same_placement(seed, cache_gb):
    """Fuzz finding (10^4 budget): with 2-token sessions (c_max = 710 603 on BellCanada)
    the scan evaluated 9 122 c per search, 24 s for one `llm compare`.  A run of c with the
    same GBP-CR placement is now evaluated once; against the scan of every c: the same
    winner, the same values at the runs' first c, and every skipped c has its run's
    placement (so its bounds too)."""
    from distalloc.llm.chain_types import DEFAULT_TARGET_LOAD as rho
    from distalloc.llm.chains import _gbp_cr
    rng = np.random.default_rng(seed)
    d = random_scenario_dict(rng, max_servers=8, max_blocks=8, max_clients=3, max_requests=6)
    if cache_gb is not None:
        d["model"]["cache_gb"] = cache_gb
    sc = scenario_from_dict(d)
    lam = float(rng.choice([0.05, 1.0, 20.0, 500.0]))
    w = rng.dirichlet(np.ones(sc.num_clients))
    every = search_reservation(sc, lam, client_weights=w, prune=False, skip_identical=False)
    runs = search_reservation(sc, lam, client_weights=w, prune=False)
    assert (runs.best, runs.best_grouping) == (every.best, every.best_grouping)
    assert runs.stop == every.stop
    at = {(g, c): i for i, (g, c) in enumerate(zip(every.grouping.tolist(),
                                                    every.reservation.tolist()))}
    assert set(at) >= set(zip(runs.grouping.tolist(), runs.reservation.tolist()))
    for i, (g, c) in enumerate(zip(runs.grouping.tolist(), runs.reservation.tolist())):
        j = at[(g, c)]
        assert runs.status[i] == every.status[j] and runs.num_chains[i] == every.num_chains[j]
        np.testing.assert_array_equal(
            [runs.lower_s[i], runs.upper_s[i], runs.service_rate_per_s[i]],
            [every.lower_s[j], every.upper_s[j], every.service_rate_per_s[j]])
    # every c of the full scan: the placement of the run it falls in
    for g, c in zip(every.grouping.tolist(), every.reservation.tolist()):
        starts = runs.reservation[runs.grouping == g]
        first = int(starts[starts <= c].max())
        groups = every.groupings[g]
        a, b = _gbp_cr(sc, c, lam, rho, groups), _gbp_cr(sc, first, lam, rho, groups)
        for field in ("first_block", "num_blocks", "group", "owner"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.feasible, a.num_chains) == (b.feasible, b.num_chains)


def test_two_token_sessions_search_once_per_placement():
    """The reproducer: BellCanada with 1 input and 1 output token (c_max = 710 603)."""
    from distalloc.llm import resolve_scenario
    from distalloc.llm.chains import max_reservation
    sc = resolve_scenario("topology:Bellcanada", input_tokens=1, output_tokens=1)
    assert max_reservation(sc) > 700_000
    s = search_reservation(sc, 0.5)
    assert s.best is not None and s.reservation.size < 100
    every = search_reservation(sc, 0.5, skip_identical=False, max_c=3000)
    assert every.best == s.best
