"""The online engine ``Swarm`` (SPEC 5.1): one ``route`` through the Python API against a
plain Python Dijkstra and ``networkx.shortest_path`` over the same feasible-link DAG with the
same WS-RR link costs (same chain asserted); ``leave``/``join`` on 10^4 servers against a
full re-plan; the memory of a swarm with 10^4 servers and 10^5 sessions in progress."""
import gc
import time

import numpy as np

import naive
from distalloc.llm import Swarm, cg_bp_placement, synthetic_scenario
from distalloc.llm.routing import request_time_costs


def _chain_cost(chain, first, num, L, alpha_row, beta, budget, used, lists, now):
    """WS-RR cost (request time + waits for cache) of ``chain`` on a snapshot."""
    prev, cost = 0, 0.0
    for j in chain:
        e = first[j] + num[j]
        k = e - prev
        prev = e
        cost += alpha_row[j] + beta[j] * k
        if k > budget[j] - used[j]:
            t = naive._release_at([(x, b, None) for x, b in lists[j]], used[j], budget[j], k)
            cost += max(t - now, 0.0)
    return cost


def test_route_100_servers(benchmark):
    """100 servers (20% A100), L = 70, 4 clients, CG-BP with |R| = 10, 200 sessions in
    progress: each measured call finishes the oldest session, then routes a new one.  The
    clients' cheapest chains are mostly full, so most calls run the routing DP."""
    sc = synthetic_scenario(100, 70, num_clients=4, seed=2)
    sw = Swarm(sc, planned_requests=10)
    eng = sw._engine
    sids = [sw.route(i % 4, 0.0).session for i in range(200)]
    calls = 400 if benchmark.disabled else 4000
    api_ns, dp_ns, fast_ns = [], [], []
    snapshot = None
    for i in range(calls):
        now = 0.001 * (i + 1)
        sw.finish(sids.pop(0), now)
        c = i % 4
        if i == calls // 2:                      # the state the baselines route on
            snapshot = (c, now, eng.first_block.tolist(), eng.num_blocks.tolist(),
                        eng.cache_budget.tolist(), eng.cache_used.tolist(),
                        eng.session_lists())
        d0 = eng.dp_runs
        t0 = time.perf_counter_ns()
        a = sw.route(c, now)
        dt = time.perf_counter_ns() - t0
        api_ns.append(dt)
        (dp_ns if eng.dp_runs > d0 else fast_ns).append(dt)
        if i == calls // 2:
            chosen = a.servers
        sids.append(a.session)
    assert sw.num_sessions == 200
    # the baselines, on the snapshot
    c, now, first, num, budget, used, lists = snapshot
    alpha, beta = request_time_costs(sc)
    args = (first, num, sc.num_blocks, alpha[c].tolist(), beta.tolist(), budget, used, lists,
            now * 1000.0)
    cost_py, path_py = naive.dijkstra_wsrr(*args)
    cost_nx, _ = naive.networkx_wsrr(*args)
    # the same optimum three ways (the chain itself may differ only on an exact tie)
    cost_engine = _chain_cost(chosen, *args)
    assert abs(cost_py - cost_engine) <= 1e-9 * cost_py
    assert abs(cost_nx - cost_engine) <= 1e-9 * cost_py
    reps = 3 if benchmark.disabled else 30
    t_py = sorted(_time(lambda: naive.dijkstra_wsrr(*args)) for _ in range(reps))[reps // 2]
    t_nx = sorted(_time(lambda: naive.networkx_wsrr(*args)) for _ in range(reps))[reps // 2]
    med = float(np.median(api_ns)) / 1e9
    med_dp = float(np.median(dp_ns)) / 1e9 if dp_ns else float("nan")
    benchmark.extra_info.update(
        servers=100, blocks=70, sessions=200, calls=calls, dp_fraction=len(dp_ns) / calls,
        route_us=med * 1e6, route_dp_us=med_dp * 1e6,
        route_static_us=float(np.median(fast_ns)) / 1e3 if fast_ns else None,
        python_dijkstra_us=t_py * 1e6, networkx_us=t_nx * 1e6,
        ratio_dijkstra=t_py / med, ratio_networkx=t_nx / med,
        ratio_dijkstra_dp=t_py / med_dp)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nroute: median {med * 1e6:.1f} us per call through the API ({len(dp_ns) / calls:.0%}"
          f" ran the DP: {med_dp * 1e6:.1f} us); plain Python Dijkstra {t_py * 1e6:.0f} us "
          f"({t_py / med:.0f}x, {t_py / med_dp:.0f}x vs DP calls); networkx {t_nx * 1e6:.0f} us "
          f"({t_nx / med:.0f}x)")
    assert t_py / med_dp >= 20


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_leave_join_10000_servers(benchmark):
    """10^4 servers (L = 96, 8 clients), CG-BP with |R| = 100, 2 000 sessions in progress:
    a server leaves (its sessions reported) and re-joins by CG-BP's window rule, against a
    full re-plan (CG-BP placement + a fresh engine)."""
    sc = synthetic_scenario(10_000, 96, num_clients=8, seed=1)
    sw = Swarm(sc, planned_requests=100)
    for i in range(2000):
        sw.route(i % 8, 0.0)
    rng = np.random.default_rng(0)
    holders = np.flatnonzero(sw.placement.num_blocks > 0)
    n = 10 if benchmark.disabled else 100
    leave_s, join_s = [], []
    t = 1.0
    for j in rng.choice(holders, size=n, replace=False):
        t0 = time.perf_counter()
        sw.leave(int(j), t)
        leave_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, m = sw.join(int(j), t)
        join_s.append(time.perf_counter() - t0)
        assert m == sw.placement.num_blocks[j] > 0
        t += 0.01
    assert sw._engine.check() is None

    def replan():
        cg = cg_bp_placement(sc, 100)
        return Swarm(sc, cg.placement, planned_requests=100)
    t_plan = min(_time(replan) for _ in range(1 if benchmark.disabled else 3))
    med_leave, med_join = float(np.median(leave_s)), float(np.median(join_s))
    benchmark.extra_info.update(servers=10_000, blocks=96, sessions=2000, calls=n,
                                leave_ms=med_leave * 1e3, join_ms=med_join * 1e3,
                                replan_ms=t_plan * 1e3, ratio_leave=t_plan / med_leave,
                                ratio_join=t_plan / med_join)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n10^4 servers: leave {med_leave * 1e3:.3f} ms, join {med_join * 1e3:.3f} ms per "
          f"call; full re-plan {t_plan * 1e3:.1f} ms ({t_plan / med_leave:.0f}x, "
          f"{t_plan / med_join:.0f}x)")


def _rss_bytes():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_memory_10000_servers_100000_sessions(benchmark):
    """A swarm of 10^4 servers with 10^5 sessions in progress (smoke mode: 10^4): the
    engine's own buffers (exact) and the process's resident-memory growth."""
    sessions = 10_000 if benchmark.disabled else 100_000
    sc = synthetic_scenario(10_000, 96, num_clients=8, seed=1)
    gc.collect()
    rss0 = _rss_bytes()
    sw = Swarm(sc, planned_requests=100)
    base = sw._engine.nbytes()
    t0 = time.perf_counter()
    t = 0.0
    for i in range(sessions):
        t += 0.0001
        assert sw.route(i % 8, t) is not None
    build_s = time.perf_counter() - t0
    assert sw.num_sessions == sessions and sw._engine.check() is None
    gc.collect()
    rss = _rss_bytes() - rss0
    nbytes = sw._engine.nbytes()
    per_session = (nbytes - base) / sessions
    benchmark.extra_info.update(servers=10_000, sessions=sessions, engine_mb=nbytes / 1e6,
                                engine_empty_mb=base / 1e6, bytes_per_session=per_session,
                                rss_growth_mb=rss / 1e6, route_us=build_s / sessions * 1e6)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n10^4 servers, {sessions} sessions: engine {nbytes / 1e6:.1f} MB "
          f"({base / 1e6:.1f} MB empty, {per_session:.0f} B per session), RSS growth "
          f"{rss / 1e6:.1f} MB; {build_s / sessions * 1e6:.0f} us per route on average")


# ------------------------------------------------------------------------------------------
# The 'jffc' policy (chains) and a user's dispatch score (SPEC 1.10, 5.2)
# ------------------------------------------------------------------------------------------
def test_route_jffc_100_servers(benchmark):
    """100 servers, L = 70, 4 clients, chains composed for 10 req/s (client groups, c by
    the search): each measured call finishes the oldest session and routes a new one, (a)
    with 200 sessions running and free slots left (JFFC's pick: the first set bit of the
    client's free-chain bitset, then the booking), (b) with every slot taken and 200
    sessions queued (the session joins the queue; its predicted chain and start come from
    the replay kept current as queued arrivals come); WS-RR's route on the same swarm as the
    reference of the same run."""
    sc = synthetic_scenario(100, 70, num_clients=4, seed=2)
    sw = Swarm(sc, method="chains", rate_per_s=10.0)
    slots = sum(c["capacity"] for c in sw.chains)
    assert slots > 200
    calls = 400 if benchmark.disabled else 4000
    sids = [sw.route(i % 4, 0.0).session for i in range(200)]
    free_ns = []
    for i in range(calls):
        now = 0.001 * (i + 1)
        sw.finish(sids.pop(0), now)
        t0 = time.perf_counter_ns()
        a = sw.route(i % 4, now)
        free_ns.append(time.perf_counter_ns() - t0)
        assert a.wait_s == 0.0
        sids.append(a.session)
    # fill every slot, then 200 more wait in the queue
    now = 10.0
    for i in range(slots - 200):
        assert sw.route(i % 4, now).wait_s == 0.0
    queued = [sw.route(i % 4, now).session for i in range(200)]
    assert sw.queue == queued
    q_ns = []
    for i in range(calls):
        now += 0.001
        sw.finish(queued.pop(0), now)           # a queued session leaves (cancelled)
        t0 = time.perf_counter_ns()
        a = sw.route(i % 4, now)
        q_ns.append(time.perf_counter_ns() - t0)
        assert a.wait_s is not None and a.wait_s > 0
        queued.append(a.session)
    assert sw._engine.check() is None
    ws = Swarm(sc, planned_requests=10)
    wsids = [ws.route(i % 4, 0.0).session for i in range(200)]
    ws_ns = []
    for i in range(calls):
        now = 0.001 * (i + 1)
        ws.finish(wsids.pop(0), now)
        t0 = time.perf_counter_ns()
        a = ws.route(i % 4, now)
        ws_ns.append(time.perf_counter_ns() - t0)
        wsids.append(a.session)
    med = {k: float(np.median(v)) / 1e3 for k, v in (("free", free_ns), ("queued", q_ns),
                                                       ("wsrr", ws_ns))}
    benchmark.extra_info.update(servers=100, blocks=70, chains=len(sw.chains), job_slots=slots,
                                route_free_us=med["free"], route_queued_us=med["queued"],
                                route_wsrr_us=med["wsrr"], calls=calls)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\njffc route: {med['free']:.1f} us with free slots, {med['queued']:.1f} us queued "
          f"({len(sw.chains)} chains, {slots} slots); ws-rr route {med['wsrr']:.1f} us")


def test_dispatch_score_overhead(benchmark):
    """The chains simulation of synthetic:1000 (4 clients, 20 000 requests at 5 req/s in
    smoke mode, 200 000 otherwise; 12 chains) with the built-in JFFC rule, and with the
    built-in rule written as a numba.cfunc dispatch score (identical records, asserted),
    called through its C function pointer once per free chain per arrival: the event
    loop's time (kernel only, best of 3), ratio to the built-in's in the same run."""
    import numba
    from distalloc.llm import compiled_dispatch
    from distalloc.llm.simulation import poisson_workload, simulate

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def constant(chain_service_s, wait_s, free_slots, client):
        return 0.0
    score = compiled_dispatch(constant)
    sc = synthetic_scenario(1000, 96, num_clients=4, seed=0)
    n = 20_000 if benchmark.disabled else 200_000
    wl = poisson_workload(sc, 5.0, n, seed=0)
    reps = 1 if benchmark.disabled else 3
    base = [simulate(sc, "chains", workload=wl, seed=0) for _ in range(reps)]
    user = [simulate(sc, "chains", workload=wl, seed=0, dispatch=score) for _ in range(reps)]
    np.testing.assert_array_equal(base[0].end_s, user[0].end_s)
    t_base = min(r.wall_s for r in base)
    t_user = min(r.wall_s for r in user)
    chains = base[0].to_dict()["num_chains"]
    benchmark.extra_info.update(requests=n, chains=chains, builtin_ms=t_base * 1e3,
                                callback_ms=t_user * 1e3, overhead=t_user / t_base - 1,
                                ns_per_request_builtin=t_base / n * 1e9,
                                ns_per_request_callback=t_user / n * 1e9)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\ndispatch score: {n} requests, {chains} chains: built-in {t_base * 1e3:.1f} ms, "
          f"callback {t_user * 1e3:.1f} ms ({t_user / t_base - 1:+.0%})")


def test_leave_join_chains_10000_servers(benchmark):
    """10^4 servers (L = 96, 8 clients), chains composed for 50 req/s, 2 000 jobs running:
    a server of a chain leaves (its chains go, their jobs reported) and re-joins (GBP-CR's
    block count at the window where GCA on the free slots gains most; the chains found are
    added), against a full re-composition (the c search, GBP-CR, GCA, a fresh engine)."""
    from distalloc.llm.chains import compose_chains
    sc = synthetic_scenario(10_000, 96, num_clients=8, seed=1)
    t0 = time.perf_counter()
    sw = Swarm(sc, method="chains", rate_per_s=50.0)
    t_build = time.perf_counter() - t0
    for i in range(2000):
        sw.route(i % 8, 0.0)
    rng = np.random.default_rng(0)
    in_chains = sorted({j for c in sw.chains for j in c["servers"]})
    n = 5 if benchmark.disabled else 40
    leave_s, join_s, restored = [], [], 0
    t = 1.0
    for j in rng.choice(in_chains, size=n, replace=False):
        before = len(sw.chains)
        t0 = time.perf_counter()
        sw.leave(int(j), t)
        leave_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sw.join(int(j), t)
        join_s.append(time.perf_counter() - t0)
        restored += len(sw.chains) >= before
        t += 0.01
    assert sw._engine.check() is None
    t0 = time.perf_counter()
    compose_chains(sc, "chains", rate_per_s=50.0)
    t_compose = time.perf_counter() - t0
    med_leave, med_join = float(np.median(leave_s)), float(np.median(join_s))
    benchmark.extra_info.update(servers=10_000, chains=len(sw.chains), calls=n,
                                leave_ms=med_leave * 1e3, join_ms=med_join * 1e3,
                                recompose_ms=t_compose * 1e3, swarm_build_ms=t_build * 1e3,
                                restored=restored)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nchains, 10^4 servers: leave {med_leave * 1e3:.2f} ms, join {med_join * 1e3:.2f} ms "
          f"per call ({restored}/{n} joins restored the chain count); full re-composition "
          f"{t_compose * 1e3:.0f} ms")
