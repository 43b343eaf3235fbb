"""The online engine's 'jffc' policy (SPEC 1.10, 5.1): Swarm on composed chains.

Random call sequences with invariants after every call (slots never over-booked, jobs on
live chains only, running jobs never move, one FCFS queue that is non-empty only while
every chain is full, the queue's head served first); hand-checked queue predictions, late
jobs and cancellations; leave/join/rebalance by the chain method's rule (the join window
against a brute force over GCA runs); a simulation replayed through Swarm with the same
chains and times; churn with the chain methods."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import two_chain_scenario
from test_llm_swarm import swarm_scenario
from distalloc import ValidationError
from distalloc._compiled import chain_kernels
from distalloc.llm import Swarm, clustered
from distalloc.llm.simulation import ONLINE_METHODS, poisson_workload, simulate


# ------------------------------------------------------------------------------------------
# A watcher of the jffc Swarm through its public state
# ------------------------------------------------------------------------------------------
class JWatcher:
    def __init__(self, sw):
        self.sw = sw
        self.running = {}        # sid -> (servers, start_ms)
        self.queued = []         # sids in FCFS order
        self.stats = dict(queued=0, started_from_queue=0, late=0, interrupted=0, joined=0,
                          chains_added=0)
        self.check()

    def take(self, heads_before):
        """Sessions the last call started from the queue: the queue's head ones, in order,
        each on a live chain, starting now."""
        ups = self.sw.take_updates()
        now = self.sw.now_s
        started = [a.session for a in ups]
        assert started == heads_before[:len(started)], (started, heads_before)
        for a in ups:
            assert a.start_s == pytest.approx(now, abs=1e-9) and a.servers
            self.queued.remove(a.session)
            self.running[a.session] = (a.servers, a.start_s * 1000.0)
            self.stats["started_from_queue"] += 1

    def check(self):
        sw, eng = self.sw, self.sw._engine
        assert eng.check() is None, eng.check()
        d = sw.to_dict()
        assert sw.queue == self.queued
        chains = {tuple(ch["servers"]): ch for ch in d["chains"]}
        busy = {}
        sessions = {s["session"]: s for s in d["sessions"]}
        assert set(sessions) == set(self.running) | set(self.queued)
        for sid, (servers, start) in self.running.items():
            _, st, end, chain = eng.session(sid)
            assert chain == servers and st == start, "a running job moved"
            assert tuple(servers) in chains, "a job runs on a chain that is gone"
            assert all(d["alive"][j] for j in servers)
            busy[tuple(servers)] = busy.get(tuple(servers), 0) + 1
            self.stats["late"] += end == math.inf
        for key, ch in chains.items():
            assert ch["busy"] == busy.get(key, 0) <= ch["capacity"]
        if self.queued:
            assert all(ch["busy"] == ch["capacity"] for ch in d["chains"])
        for sid in self.queued:
            s = sessions[sid]
            assert (s["start_s"] is None) == (s["servers"] == [])
            if s["start_s"] is not None:
                assert s["start_s"] >= sw.now_s - 1e-9
                assert tuple(s["servers"]) in chains
        # memory: the chains' reservations fit every server's slots, and are exact
        sc = sw.scenario
        pl = sw.placement
        res = np.zeros(sc.num_servers, dtype=int)
        for ch in d["chains"]:
            for j, k in zip(ch["servers"], ch["blocks"]):
                res[j] += ch["capacity"] * k
        slots = np.floor((sc.usable_memory_gb - sc.block_gb * pl.num_blocks) / sc.cache_gb
                         * (1 + 1e-12) + 1e-9).astype(int)
        assert np.all(res <= np.where(sw.alive, slots, 0))
        assert np.array_equal(res, eng.reserved_slots())

    def route(self, client, now, lo=None):
        a = self.sw.route(client, now, lo)
        assert a is not None
        if a.wait_s == 0.0 and self.sw._engine.is_queued(a.session) is False:
            self.running[a.session] = (a.servers, a.start_s * 1000.0)
        else:
            self.queued.append(a.session)
            self.stats["queued"] += 1
        self.check()
        return a

    def finish(self, sid, now):
        heads = list(self.queued)
        self.sw.finish(sid, now)
        if sid in self.running:
            del self.running[sid]
        else:
            self.queued.remove(sid)
            heads.remove(sid)
        self.take(heads)
        self.check()

    def leave(self, j, now):
        self.sw.advance(now)
        heads = list(self.queued)
        lost = self.sw.leave(j, now)
        assert lost == sorted(s for s, (servers, _) in self.running.items() if j in servers)
        for s in lost:
            del self.running[s]
        self.stats["interrupted"] += len(lost)
        self.take(heads)
        self.check()

    def join(self, j, now):
        before = len(self.sw.chains)
        heads = list(self.queued)
        a, m = self.sw.join(j, now)
        pl = self.sw.placement
        assert (pl.first_block[j], pl.num_blocks[j]) == ((a, m) if m else (0, 0))
        self.stats["joined"] += 1
        self.stats["chains_added"] += len(self.sw.chains) - before
        self.take(heads)
        self.check()

    def rebalance(self, now):
        self.sw.advance(now)
        heads = list(self.queued)
        out = self.sw.rebalance(now)
        moved = {mv["server"] for mv in out.moves}
        assert out.interrupted == sorted(s for s, (servers, _) in self.running.items()
                                         if moved & set(servers))
        for s in out.interrupted:
            del self.running[s]
        self.take(heads)
        self.check()


def jffc_sequence(seed, method, steps=80):
    rng = np.random.default_rng(seed)
    sc = swarm_scenario(rng)
    try:
        sw = Swarm(sc, method=method, rate_per_s=float(rng.uniform(0.5, 5)),
                   reservation=int(rng.integers(1, 4)) if rng.random() < 0.5 else "auto")
    except ValidationError:
        return None
    w = JWatcher(sw)
    t = 0.0
    step = 0.3 * max(ch["service_s"] for ch in sw.chains)
    for _ in range(steps):
        t += float(rng.choice([0.0, rng.exponential(step)]))
        op = rng.choice(["route", "finish", "leave", "join", "rebalance", "advance"],
                        p=[.4, .35, .08, .09, .03, .05])
        if op == "route":
            w.route(int(rng.integers(sc.num_clients)), t,
                    int(rng.integers(1, sc.output_tokens + 1)) if rng.random() < .5 else None)
        elif op == "finish" and (w.running or w.queued):
            sid = int(rng.choice(sorted(w.running) + w.queued))
            s = sw.session(sid)
            if sid in w.running and s["finish_s"] is not None and rng.random() < 0.7:
                t = max(t, s["finish_s"] * float(rng.choice([1.0, 0.8, 1.2])))
            w.finish(sid, t)
        elif op == "leave" and sw.alive.any():
            w.leave(int(rng.choice(np.flatnonzero(sw.alive))), t)
        elif op == "join" and (~sw.alive).any():
            w.join(int(rng.choice(np.flatnonzero(~sw.alive))), t)
        elif op == "rebalance":
            w.rebalance(t)
        elif op == "advance":
            sw.advance(t)
            w.check()
    return w


@given(st.integers(0, 2**32 - 1), st.sampled_from(["chains", "jffc-whole"]))
@settings(max_examples=50, deadline=None)
def test_jffc_random_call_sequences_keep_every_invariant(seed, method):
    jffc_sequence(seed, method)


def test_jffc_sequences_reach_queues_late_jobs_churn_and_new_chains():
    total = {}
    for seed in range(12):
        w = jffc_sequence(seed, "chains", steps=120)
        if w is not None:
            for k, v in w.stats.items():
                total[k] = total.get(k, 0) + v
    assert all(total.get(k, 0) > 0 for k in ("queued", "started_from_queue", "late",
                                             "interrupted", "joined", "chains_added")), total


# ------------------------------------------------------------------------------------------
# Hand-checked
# ------------------------------------------------------------------------------------------
def test_jffc_whole_queue_predictions_and_hand_over():
    sw = Swarm(two_chain_scenario(), method="jffc-whole")
    assert [(c["servers"], c["capacity"], c["service_s"]) for c in sw.chains] == \
        [([0], 2, 4.0), ([1], 1, 8.0)]
    a = sw.route(0, 0.0)
    b = sw.route(0, 1.0)
    c = sw.route(0, 2.0)                  # the fast chain is full: the slow one
    assert (a.servers, b.servers, c.servers) == ([0], [0], [1])
    assert (c.start_s, c.finish_s, c.wait_s) == (2.0, 10.0, 0.0)
    d = sw.route(0, 3.0)                  # every chain full: queued, a's slot at 4 s
    e = sw.route(0, 3.5)                  # then b's at 5 s
    f = sw.route(0, 3.6)                  # then d's (on 0, ends at 8 s) before c's (10 s)
    assert sw.queue == [d.session, e.session, f.session]
    assert (d.servers, d.start_s, d.finish_s, d.wait_s) == ([0], 4.0, 8.0, 1.0)
    assert (e.servers, e.start_s, e.finish_s) == ([0], 5.0, 9.0)
    assert (f.servers, f.start_s, f.finish_s) == ([0], 8.0, 12.0)
    # a is late: the replay no longer counts on its slot, b's (5 s) goes to d
    sw.advance(4.5)
    assert [sw.session(x.session)["start_s"] for x in (d, e, f)] == [5.0, 9.0, 10.0]
    assert sw.session(f.session)["servers"] == [1]
    sw.finish(a.session, 4.6)             # a's slot goes to the head, d, at 4.6 s
    ups = sw.take_updates()
    assert [(u.session, u.servers, u.start_s) for u in ups] == [(d.session, [0], 4.6)]
    assert ups[0].wait_s == pytest.approx(1.6)
    assert sw.queue == [e.session, f.session]
    sw.advance(11.0)                      # every running job is late: starts unknown
    assert sw.session(e.session)["start_s"] is None and sw.session(e.session)["servers"] == []
    sw.finish(f.session, 11.0)            # a queued job that finishes is cancelled
    assert sw.queue == [e.session] and sw.take_updates() == []
    sw.finish(c.session, 11.5)            # the slow chain's slot goes to e
    assert [(u.session, u.servers, u.start_s) for u in sw.take_updates()] == \
        [(e.session, [1], 11.5)]
    assert sw._engine.check() is None


def test_jffc_leave_removes_chains_join_restores_them():
    sc = clustered()
    sw = Swarm(sc, method="chains", rate_per_s=0.5)
    (ch,) = sw.chains
    n = ch["capacity"] + 2
    sessions = [sw.route(i % 3, 0.01 * i).session for i in range(n)]
    assert sw.queue == sessions[-2:]
    lost = sw.leave(ch["servers"][1], 5.0)
    assert lost == sessions[:-2] and sw.chains == [] and sw.queue == sessions[-2:]
    assert sw.to_dict()["interrupted"] == len(lost)
    late = sw.route(0, 6.0)                           # no chain: it waits, start unknown
    assert (late.servers, late.start_s, late.wait_s) == ([], None, None)
    waiting = sw.queue
    a, m = sw.join(ch["servers"][1], 7.0)            # the server comes back where it was
    assert (a, m) == (sw.composition.placement.first_block[ch["servers"][1]],
                      sw.composition.placement.num_blocks[ch["servers"][1]])
    assert [(c["servers"], c["capacity"]) for c in sw.chains] == [(ch["servers"], ch["capacity"])]
    ups = sw.take_updates()
    assert [u.session for u in ups] == waiting          # the queue's order, all started
    assert sw.queue == [] and all(u.start_s == 7.0 and u.servers == ch["servers"] for u in ups)


def residual_gain(sw, j, a, m):
    """Service rate GCA adds on the free slots with server j at [a, a + m): chain_kernels.gca
    on the whole swarm (the engine runs it on the servers with free slots only)."""
    eng, sc = sw._engine, sw.scenario
    first, num = eng.first_block.copy(), eng.num_blocks.copy()
    first[j], num[j] = a, m
    slots = np.maximum(eng.cache_budget - np.asarray(eng.reserved_slots()), 0)
    live = sw.alive | (np.arange(sc.num_servers) == j)
    slots[~live] = 0
    slots[j] = int(np.floor((sc.usable_memory_gb[j] - sc.block_gb * m) / sc.cache_gb
                            * (1 + 1e-12) + 1e-9))
    num = np.where(live, num, 0)
    slots[num == 0] = 0
    comp = sw.composition
    groups = comp.client_groups
    owner = getattr(comp.placement, "owner", None)
    if groups is not None and owner is not None:
        ga, sa, beta = groups.alpha_ms, groups.shared_alpha_ms, groups.beta_ms
    else:
        from distalloc.llm.chains import chain_costs
        sa, beta = chain_costs(sc, comp.client_weights)
        ga, owner = np.zeros((0, sc.num_servers)), np.full(sc.num_servers, -1)
    *_, caps, cost, _ = chain_kernels.gca(first, num, sc.num_blocks, ga, beta, slots,
                                          np.asarray(owner, dtype=np.int64), sa)
    return float(np.sum(caps / cost))


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_jffc_join_window_is_the_best_gca_gain(seed):
    """A server re-joining takes m_j(c) blocks at the window where GCA on the free slots
    gains the most service rate (ties: the smaller start), as a brute force over every
    window with the offline GCA computes; the weakest window by free slots if none gains."""
    rng = np.random.default_rng(seed)
    sc = swarm_scenario(rng)
    try:
        sw = Swarm(sc, method="chains", rate_per_s=float(rng.uniform(0.5, 5)))
    except ValidationError:
        return
    for _ in range(int(rng.integers(1, 6))):
        sw.route(int(rng.integers(sc.num_clients)), 0.0)
    leaving = rng.permutation(sc.num_servers)[: int(rng.integers(1, sc.num_servers + 1))]
    for j in leaving:
        sw.leave(int(j), 1.0)
    for j in rng.permutation(leaving):
        m = int(sw._engine.join_blocks_of(int(j)))
        if m == 0:
            assert sw.join(int(j), 2.0) == (0, 0)
            continue
        gains = [residual_gain(sw, int(j), a, m) for a in range(sc.num_blocks - m + 1)]
        a, mm = sw.join(int(j), 2.0)
        assert mm == m
        if max(gains) > 0:
            assert a == int(np.argmax(gains)) and gains[a] == max(gains)
        assert sw._engine.check() is None


@pytest.mark.parametrize("sc,leaving", [(clustered(), [0]), (clustered(), [4, 7]),
                                         (None, [3, 11, 12])])
def test_jffc_rebalance_re_runs_gbp_cr_on_the_servers_alive(sc, leaving):
    """GBP-CR at the composition's c on the servers alive, then GCA: on a swarm whose
    chains all went with the leaving servers (or that had none through them), the chains
    are exactly GCA's on the new placement; a second rebalance moves nothing."""
    from dataclasses import replace
    from distalloc.llm import synthetic_scenario
    from distalloc.llm.chains import _gbp_cr, _gca
    sc = sc or synthetic_scenario(20, 30, num_clients=2, seed=1)
    sw = Swarm(sc, method="chains", rate_per_s=0.5)
    for j in leaving:
        sw.leave(j, 1.0)
    kept = [c["servers"] for c in sw.chains]
    out = sw.rebalance(2.0)
    masked = replace(sc, memory_gb=np.where(sw.alive, sc.memory_gb, sc.reserve_gb))
    comp = sw.composition
    ref = _gbp_cr(masked, comp.reservation, comp.rate_per_s, comp.target_load,
                  comp.client_groups)
    assert np.array_equal(sw.placement.num_blocks, ref.num_blocks)
    used = ref.num_blocks > 0
    assert np.array_equal(sw.placement.first_block[used], ref.first_block[used])
    moved = {m["server"] for m in out.moves}
    survivors = [c for c in kept if not moved & set(c)]
    chains = [c["servers"] for c in sw.chains]
    assert all(c in chains for c in survivors)
    if not survivors:
        want = _gca(masked, ref, comp.client_groups.shared_alpha_ms, comp.client_groups.beta_ms)
        assert sorted(chains) == sorted(list(c.servers) for c in want)
    assert sw._engine.check() is None
    chains = sw.chains
    assert sw.rebalance(3.0).moves == [] and sw.chains == chains


def test_jffc_bad_input():
    sc = clustered()
    with pytest.raises(ValidationError, match="'policy' parameter 'jffc'"):
        Swarm(sc, policy="jffc")
    with pytest.raises(ValidationError, match="'policy' parameter 'jffc'"):
        Swarm(sc, method="chains", policy="ws-rr")
    with pytest.raises(ValidationError, match="'reservation' parameter applies only"):
        Swarm(sc, reservation=3)
    with pytest.raises(ValidationError, match="'reroute_waiting' parameter applies only"):
        Swarm(sc, method="petals", policy="petals", reroute_waiting=True)
    sw = Swarm(sc, method="chains", rate_per_s=0.5)
    a = sw.route(0, 1.0)
    before = sw.to_dict()
    for call in (lambda: sw.route(5, 2.0), lambda: sw.finish(a.session + 7, 2.0),
                 lambda: sw.finish(a.session, 0.5), lambda: sw.join(0, 2.0),
                 lambda: sw.leave(-1, 2.0)):
        with pytest.raises(ValidationError) as err:
            call()
        assert "\n" not in str(err.value)
        assert sw.to_dict() == before


# ------------------------------------------------------------------------------------------
# One engine, two users: a chains simulation replayed through Swarm
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,rate", [("chains", 3.0), ("chains", 0.8), ("jffc-whole", 2.0)])
def test_chains_simulation_replayed_through_swarm(method, rate):
    """Arrivals and completions of a simulation fed to a Swarm built on the same
    composition: every job gets the same chain and the same start and end (queued jobs
    start when the simulation said, handed the slot by a finish)."""
    sc = clustered() if method == "chains" else two_chain_scenario()
    res = simulate(sc, method, rate_per_s=rate, num_requests=300, seed=4)
    wl = res.workload
    d = res.to_dict()
    sw = Swarm(sc, method=method, rate_per_s=d["design_rate_per_s"],
               reservation=d["reservation"] if method == "chains" else "auto")
    assert [c["servers"] for c in sw.chains] == [c["servers"] for c in d["chains"]] \
        if "chains" in d else True
    ev = sorted([(wl.arrival_s[r], 1, r) for r in range(wl.num_requests)]
                + [(res.end_s[r], 0, r) for r in range(wl.num_requests)])
    sid, req = {}, {}
    got_start, got_chain = {}, {}
    for t, kind, r in ev:
        if kind == 1:
            a = sw.route(int(wl.client[r]), max(t, sw.now_s), int(wl.output_tokens[r]))
            sid[r] = a.session
            req[a.session] = r
            if not sw._engine.is_queued(a.session):
                got_start[r], got_chain[r] = a.start_s, a.servers
        else:
            sw.finish(sid[r], max(t, sw.now_s))
            for u in sw.take_updates():
                got_start[req[u.session]], got_chain[req[u.session]] = u.start_s, u.servers
    assert sw.num_sessions == 0
    for r in range(wl.num_requests):
        assert got_chain[r] == res.route(r)
        assert got_start[r] == pytest.approx(res.start_s[r], rel=1e-12, abs=1e-9)


# ------------------------------------------------------------------------------------------
# Churn with the chain methods
# ------------------------------------------------------------------------------------------
@given(st.integers(0, 2**32 - 1), st.sampled_from(["chains", "jffc-whole"]))
@settings(max_examples=20, deadline=None)
def test_chain_methods_under_churn(seed, method):
    """Every request is served once in the end; no server of a served chain fails while
    the job runs; interruptions and lost work are counted."""
    rng = np.random.default_rng(seed)
    sc = clustered() if method == "chains" else two_chain_scenario()
    res = simulate(sc, method, rate_per_s=float(rng.uniform(0.1, 2)), num_requests=60,
                   seed=seed, churn=str(float(rng.choice([30, 200, 2000]))))
    assert res.dropped == 0
    assert np.all(res.start_s >= res.workload.arrival_s - 1e-9)
    fails = {}
    for t, j, k in zip(res.churn.time_s, res.churn.server, res.churn.kind):
        if k == 0:
            fails.setdefault(int(j), []).append(t)
    for r in range(60):
        assert res.route(r)
        for j in res.route(r):
            assert not any(res.start_s[r] < t < res.end_s[r] for t in fails.get(j, []))
    d = res.to_dict()
    assert d["interrupted"] == int(res.interruptions.sum())
    if d["interrupted"] == 0:
        assert d["lost_token_s"] == 0


def test_chains_churn_same_failures_and_interruptions():
    sc = clustered()
    wl = poisson_workload(sc, 0.5, 300, seed=3)
    quiet = simulate(sc, "chains", workload=wl, seed=3)
    busy = simulate(sc, "chains", workload=wl, seed=3, churn="600:60")
    wsrr = simulate(sc, "cg-bprr", workload=wl, seed=3, churn="600:60")
    n = min(busy.churn.time_s.size, wsrr.churn.time_s.size)      # same streams
    assert busy.churn.key == wsrr.churn.key and n > 0
    assert np.array_equal(busy.churn.time_s[:n], wsrr.churn.time_s[:n])
    d = busy.to_dict()
    assert d["interrupted"] > 0 and d["lost_token_s"] > 0 and busy.dropped == 0
    assert d["mean_response_s"] > quiet.to_dict()["mean_response_s"]
    assert "churn" not in ONLINE_METHODS
