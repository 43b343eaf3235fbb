"""Chain composition (SPEC 1.10): the search over the reservation c (GBP-CR + GCA + Theorem 4
per candidate, for each client grouping) at 100 and 10 000 servers, GCA against the
brute-force greedy over all paths, and the swarm-scale comparison with PETALS
(synthetic:1000 at 5 req/s, synthetic:10000 at 50 req/s)."""
import time

import numpy as np
import pytest

from conftest import best_time
from distalloc._compiled import chain_kernels
from distalloc.llm import synthetic_scenario
from distalloc.llm.chains import _slots, chain_costs, gbp_cr, search_reservation
from distalloc.llm.simulation import poisson_workload, simulate


@pytest.mark.parametrize("servers, blocks, rate", [(100, 70, 1.0), (10_000, 96, 50.0)])
def test_reservation_search(benchmark, servers, blocks, rate):
    """The search of c (and of the client grouping, 4 clients) with its exact early stops;
    the issue asks for well under 1 s at 100 servers, L = 70.  Baseline in the same run:
    the paper's one-group search (mean tau^c).  CPU time is recorded beside wall time (the
    machine is shared)."""
    sc = synthetic_scenario(servers, blocks, num_clients=4, seed=0)
    calls = []

    def search():
        calls.append(1)
        return search_reservation(sc, rate)
    cpu0 = time.process_time()
    s = benchmark.pedantic(search, rounds=3 if servers <= 100 else 1, iterations=1)
    cpu = (time.process_time() - cpu0) / len(calls)
    cpu0 = time.process_time()
    one = search_reservation(sc, rate, client_groups="one")
    cpu_one = time.process_time() - cpu0
    assert s.best is not None and s.stop in ("bound", "blocks")
    i = int(np.flatnonzero((s.reservation == s.best) & (s.grouping == s.best_grouping))[0])
    assert s.status[i] == "ok" and s.lower_s[i] <= s.upper_s[i]
    j = int(np.flatnonzero(one.reservation == one.best)[0])
    assert s.lower_s[i] <= one.lower_s[j]           # the family holds the one-group reading
    if servers <= 100:
        assert s.search_s < 1.0
    benchmark.extra_info.update(servers=servers, blocks=blocks, rate_per_s=rate, best=s.best,
                                client_groups=s.best_groups.num_groups,
                                groupings=len(s.groupings), evaluated=int(s.reservation.size),
                                stop=s.stop, search_s=s.search_s, search_cpu_s=cpu,
                                one_group_search_s=one.search_s, one_group_cpu_s=cpu_one,
                                ratio_to_one_group=s.search_s / one.search_s,
                                lower_s=float(s.lower_s[i]),
                                one_group_lower_s=float(one.lower_s[j]))
    print(f"\nsearch over c, {servers} servers, L = {blocks}, λ = {rate}: c* = {s.best}, "
          f"{s.best_groups.num_groups} client groups, {s.reservation.size} values over "
          f"{len(s.groupings)} groupings, {s.search_s * 1e3:.1f} ms (CPU {cpu * 1e3:.1f} ms; "
          f"one group: {one.search_s * 1e3:.1f} ms, CPU {cpu_one * 1e3:.1f} ms; stopped: "
          f"{s.stop}); lower bound {s.lower_s[i]:.3f} s (one group {one.lower_s[j]:.3f} s)")


def _naive_gca(first, num, L, alpha, beta, slots):
    """GCA by Dijkstra-free brute force: a plain-Python block-ordered DP per round."""
    free = list(slots)
    S = len(num)
    out = []
    while True:
        D = [0.0] + [float("inf")] * L
        arg = [None] * (L + 1)
        for e in range(1, L + 1):
            for j in range(S):
                if num[j] <= 0 or first[j] + num[j] != e:
                    continue
                for p in range(first[j], e):
                    k = e - p
                    if D[p] == float("inf") or free[j] < k:
                        continue
                    cand = D[p] + alpha[j] + beta[j] * k
                    if cand < D[e]:
                        D[e], arg[e] = cand, (j, p)
        if D[L] == float("inf"):
            return out
        path, e = [], L
        while e > 0:
            j, p = arg[e]
            path.append((j, e - p))
            e = p
        cap = min(free[j] // k for j, k in path)
        for j, k in path:
            free[j] -= cap * k
        out.append((path[::-1], cap))


def test_gca_vs_pure_python(benchmark):
    """GCA on GBP-CR's placement of 1 000 servers with the rate target set so that every
    server is placed: the compiled rounds against the same DP in plain Python."""
    sc = synthetic_scenario(1000, 96, num_clients=4, seed=0)
    pl = gbp_cr(sc, 20, 1e6)
    alpha, beta = chain_costs(sc)
    slots = _slots(sc, pl)
    args = (pl.first_block, pl.num_blocks, sc.num_blocks, np.zeros((0, sc.num_servers)), beta,
            slots, np.full(sc.num_servers, -1, dtype=np.int64), alpha)
    servers, blocks, offs, caps, cost, _ = benchmark(chain_kernels.gca, *args)
    fast = best_time(lambda: chain_kernels.gca(*args))
    slow_args = (pl.first_block.tolist(), pl.num_blocks.tolist(), sc.num_blocks,
                 alpha.tolist(), beta.tolist(), slots.tolist())
    want = _naive_gca(*slow_args)
    slow = best_time(lambda: _naive_gca(*slow_args), repeat=1, min_total_s=0)
    assert [c for _, c in want] == caps.tolist()
    assert [[j for j, _ in p] for p, _ in want] == [servers[offs[q]:offs[q + 1]].tolist()
                                                    for q in range(caps.size)]
    benchmark.extra_info.update(servers=1000, chains=int(caps.size), kernel_s=fast,
                                pure_python_s=slow, speedup=slow / fast)
    print(f"\nGCA, 1000 servers, {caps.size} chains: {fast * 1e3:.2f} ms, pure Python "
          f"{slow * 1e3:.0f} ms, ratio {slow / fast:.0f}x")


@pytest.mark.parametrize("servers, rate", [(1000, 5.0), (10_000, 50.0)])
def test_swarm_chains_vs_petals(benchmark, servers, rate):
    """synthetic:S at λ: chains (auto c and client grouping) against PETALS on the same
    5 000 arrivals; the goal of issue 10 is never worse than PETALS in mean per-token and
    response time (asserted), and the ratios are recorded."""
    sc = synthetic_scenario(servers, 96, num_clients=4, seed=0)
    wl = poisson_workload(sc, rate, 5000, seed=0)
    res = benchmark.pedantic(simulate, args=(sc, "chains"), kwargs=dict(workload=wl, seed=0),
                             rounds=1, iterations=1)
    pet = simulate(sc, "petals", workload=wl, seed=0)
    assert res.dropped == 0 and res.events == 2 * wl.num_requests
    d, p = res.to_dict(), pet.to_dict()
    ratio_token = d["mean_token_s"] / p["mean_token_s"]
    ratio_resp = d["mean_response_s"] / p["mean_response_s"]
    assert ratio_token <= 1.0 and ratio_resp <= 1.0
    groups = max(g for g in d["client_groups"] if g is not None) + 1
    benchmark.extra_info.update(servers=servers, requests=wl.num_requests,
                                reservation=d["reservation"], chains=d["num_chains"],
                                client_groups=groups,
                                chains_mean_token_s=d["mean_token_s"],
                                petals_mean_token_s=p["mean_token_s"],
                                chains_mean_response_s=d["mean_response_s"],
                                petals_mean_response_s=p["mean_response_s"],
                                ratio_token_to_petals=ratio_token,
                                ratio_response_to_petals=ratio_resp)
    print(f"\nsynthetic:{servers}, {rate:g} req/s: chains {d['mean_token_s']:.4f} s/token "
          f"(c = {d['reservation']}, {groups} client groups, {d['num_chains']} chains), PETALS "
          f"{p['mean_token_s']:.4f}; ratio {ratio_token:.4f} (response {ratio_resp:.4f})")
