"""Chain composition (SPEC 1.10): the search over the reservation c (GBP-CR + GCA + Theorem 4
per candidate) at 100 and 10 000 servers, GCA against the brute-force greedy over all paths,
and the swarm-scale comparison with PETALS (synthetic:10000 at 50 req/s)."""
import numpy as np
import pytest

from conftest import best_time
from distalloc._compiled import chain_kernels
from distalloc.llm import synthetic_scenario
from distalloc.llm.chains import _slots, chain_costs, gbp_cr, search_reservation
from distalloc.llm.simulation import poisson_workload, simulate


@pytest.mark.parametrize("servers, blocks, rate", [(100, 70, 1.0), (10_000, 96, 50.0)])
def test_reservation_search(benchmark, servers, blocks, rate):
    """The 1-D search of c with its exact early stops; the issue asks for well under 1 s at
    100 servers, L = 70."""
    sc = synthetic_scenario(servers, blocks, num_clients=4, seed=0)
    s = benchmark.pedantic(search_reservation, args=(sc, rate), rounds=3 if servers <= 100 else 1,
                           iterations=1)
    assert s.best is not None and s.stop in ("bound", "blocks")
    i = int(np.flatnonzero(s.reservation == s.best)[0])
    assert s.status[i] == "ok" and s.lower_s[i] <= s.upper_s[i]
    if servers <= 100:
        assert s.search_s < 1.0
    benchmark.extra_info.update(servers=servers, blocks=blocks, rate_per_s=rate, best=s.best,
                                evaluated=int(s.reservation.size), stop=s.stop,
                                search_s=s.search_s, lower_s=float(s.lower_s[i]))
    print(f"\nsearch over c, {servers} servers, L = {blocks}, λ = {rate}: c* = {s.best}, "
          f"{s.reservation.size} values, {s.search_s * 1e3:.1f} ms (stopped: {s.stop})")


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
    args = (pl.first_block, pl.num_blocks, sc.num_blocks, alpha, beta, slots)
    servers, blocks, offs, caps, cost = benchmark(chain_kernels.gca, *args)
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


def test_swarm_chains_vs_petals(benchmark):
    """synthetic:10000 at 50 req/s: chains (auto c) against PETALS on the same arrivals;
    the ratio of mean per-token and response times is recorded."""
    sc = synthetic_scenario(10_000, 96, num_clients=4, seed=0)
    wl = poisson_workload(sc, 50.0, 5000, seed=0)
    res = benchmark.pedantic(simulate, args=(sc, "chains"), kwargs=dict(workload=wl, seed=0),
                             rounds=1, iterations=1)
    pet = simulate(sc, "petals", workload=wl, seed=0)
    assert res.dropped == 0 and res.events == 2 * wl.num_requests
    d, p = res.to_dict(), pet.to_dict()
    ratio_token = d["mean_token_s"] / p["mean_token_s"]
    ratio_resp = d["mean_response_s"] / p["mean_response_s"]
    benchmark.extra_info.update(servers=10_000, requests=wl.num_requests,
                                reservation=d["reservation"], chains=d["num_chains"],
                                chains_mean_token_s=d["mean_token_s"],
                                petals_mean_token_s=p["mean_token_s"],
                                ratio_token_to_petals=ratio_token,
                                ratio_response_to_petals=ratio_resp)
    print(f"\nsynthetic:10000, 50 req/s: chains {d['mean_token_s']:.3f} s/token "
          f"(c = {d['reservation']}, {d['num_chains']} chains), PETALS "
          f"{p['mean_token_s']:.3f}; ratio {ratio_token:.3f} (response {ratio_resp:.3f})")
