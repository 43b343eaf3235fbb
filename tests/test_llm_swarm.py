"""The online engine ``Swarm``: random call sequences with invariants checked after every
call (memory never over-booked, now or in the plan or in hindsight; chains valid and alive;
cache released exactly once), bad input leaving the state unchanged, late finishes, and
the join/rebalance rules against their offline twins."""
import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from test_llm_simulation import online_scenario
from distalloc import ValidationError
from distalloc.llm import (Placement, Swarm, cg_bp_placement, clustered, petals_placement,
                           scenario_from_dict)
from distalloc.llm.placement import petals_block_counts


# ------------------------------------------------------------------------------------------
# A checker that watches a Swarm through its public state
# ------------------------------------------------------------------------------------------
class Watcher:
    """Mirror of what the caller knows, checking the Swarm after every call."""

    def __init__(self, swarm: Swarm):
        self.sw = swarm
        self.sc = swarm.scenario
        self.live = {}          # session -> dict(servers, client, service)
        self.confirmed = {}     # session -> start once a call came after it
        self.history = []       # (server, t0, t1, k) of caches actually held
        self.budget_log = {j: [(-math.inf, b)] for j, b in enumerate(self._budget())}
        self.check()

    def _budget(self):
        pl = self.sw.placement
        b = np.floor((self.sc.usable_memory_gb - self.sc.block_gb * pl.num_blocks)
                     / self.sc.cache_gb).astype(int)
        return np.where(self.sw.alive, np.maximum(b, 0), 0)

    def blocks(self, servers):
        pl = self.sw.placement
        return naive.route_blocks(pl.first_block.tolist(), pl.num_blocks.tolist(),
                                  self.sc.num_blocks, servers)

    def ended(self, sid, t_s, start_ms):
        """Session sid stopped holding its cache at t_s (finished or interrupted)."""
        info = self.live.pop(sid)
        t = t_s * 1000.0
        if start_ms < t:
            for j, k in info["k"]:
                self.history.append((j, start_ms, t, k))

    def start_ms(self, sid):
        return self.sw._engine.session(sid)[1]

    stats = None

    def check(self):
        """Everything in the engine's own units (ms), so comparisons are exact."""
        sw, sc, eng = self.sw, self.sc, self.sw._engine
        assert eng.check() is None, eng.check()
        d = sw.to_dict()
        now = eng.clock_ms
        sessions = {sid: (c, start, end, chain) for sid, c, start, end, chain in eng.sessions()}
        assert set(sessions) == set(self.live)
        assert {s["session"] for s in d["sessions"]} == set(sessions)
        budget = self._budget()
        for j, b in enumerate(budget):
            if self.budget_log[j][-1][1] != b:
                self.budget_log[j].append((now, b))
        used = np.zeros(sc.num_servers, dtype=int)
        plan = {j: [] for j in range(sc.num_servers)}
        for s in d["sessions"]:
            c, start, end, chain = sessions[s["session"]]
            assert s["servers"] == chain and s["client"] == c
            assert (s["start_s"] is None) == (start == math.inf)
            assert (s["finish_s"] is None) == (end == math.inf)
            if s["start_s"] is not None:
                assert s["start_s"] == pytest.approx(start / 1000.0, rel=1e-15, abs=0)
        for sid, (c, start, end, chain) in sessions.items():
            info = self.live[sid]
            assert chain == info["servers"] and c == info["client"]
            blocks = self.blocks(chain)
            assert blocks is not None, f"session {sid}: chain {chain} not valid"
            assert blocks == info["k"]
            assert all(d["alive"][j] for j in chain)
            if self.stats is not None:
                self.stats["late"] += start < math.inf and end == math.inf
                self.stats["moved"] += start == math.inf
            if start < math.inf and end < math.inf:
                assert end - start == pytest.approx(info["service"], rel=1e-9, abs=1e-6)
            assert end >= now, "a session past its predicted end must be late (inf)"
            if start < now:                   # confirmed started: never moves again
                if sid in self.confirmed:
                    assert start == self.confirmed[sid]
                self.confirmed[sid] = start
            elif sid in self.confirmed:
                pytest.fail(f"session {sid} was started at {self.confirmed[sid]} and moved")
            for j, k in blocks:
                used[j] += k
                plan[j].append((start, end, k))
        # cache booked exactly once: the engine's books equal the sessions' blocks
        assert np.array_equal(used, eng.cache_used)
        free = np.maximum(budget - used, 0) * sc.cache_gb
        assert np.allclose(d["free_cache_gb"], free)
        # the plan: at every instant from now on, the sessions holding cache fit the budget
        for j, rows in plan.items():
            events = sorted([(t0, 1, k) for t0, t1, k in rows if t0 < t1] +
                            [(t1, 0, -k) for t0, t1, k in rows if t0 < t1])
            held = 0
            for t, _, k in events:
                held += k
                assert held <= budget[j], f"server {j} over-booked at {t} in the plan"

    def check_history(self):
        """In hindsight: the caches actually held never exceeded the budget in force."""
        now = self.sw._engine.clock_ms
        rows = list(self.history)
        for sid, c, start, end, chain in self.sw._engine.sessions():
            if start < now:
                rows += [(j, start, min(now, end), k) for j, k in self.live[sid]["k"]]
        for j in range(self.sc.num_servers):
            events = sorted([(t0, 1, k) for jj, t0, t1, k in rows if jj == j and t0 < t1] +
                            [(t1, 0, -k) for jj, t0, t1, k in rows if jj == j and t0 < t1])
            log = self.budget_log[j]
            held = 0
            for t, kind, k in events:
                held += k
                if kind == 1:                 # ends at a time come first
                    cap = [b for t0, b in log if t0 <= t][-1]
                    assert held <= cap, f"server {j} held {held} > {cap} caches at t={t}"

    # the calls, mirrored
    def route(self, client, now, lo=None):
        a = self.sw.route(client, now, lo)
        if a is not None:
            self.stats["waited"] += a.wait_s > 0
            k = self.blocks(a.servers)
            _, start, end, _ = self.sw._engine.session(a.session)
            self.live[a.session] = dict(servers=a.servers, client=client, k=k,
                                        service=end - start)
            assert a.wait_s == pytest.approx(a.start_s - now, abs=1e-9)
            assert a.wait_s >= 0
        self.check()
        return a

    def finish(self, sid, now, public=True):
        """Through the public call after an advance to ``now`` (the session's start is then
        final), or straight after earlier calls through the engine, which says what start
        it settled on (inf: the session was still blocked, so finishing cancels it)."""
        if public:
            self.sw.advance(now)
            self.check()
            start = self.start_ms(sid)
            self.sw.finish(sid, now)
        else:
            start = self.sw._engine.finish(sid, now * 1000.0)
            self.sw._now_s = now
        self.ended(sid, now, start)
        self.check()

    def _interrupting(self, call, now, check=True):
        self.sw.advance(now)
        self.check()
        before = {s["session"]: s for s in self.sw.to_dict()["sessions"]}
        starts = {sid: self.start_ms(sid) for sid in before}
        out = call()
        lost = out if isinstance(out, list) else out.interrupted
        for sid in lost:
            self.ended(sid, now, starts[sid])
        if check:
            self.check()
        return out, before

    def leave(self, j, now):
        lost, before = self._interrupting(lambda: self.sw.leave(j, now), now)
        assert lost == sorted(s for s, x in before.items() if j in x["servers"])
        return lost

    def _ends(self):
        return {sid: (start, end) for sid, _, start, end, _ in self.sw._engine.sessions()}

    def updates(self, before):
        """WS-RR's waiting bookings re-routed when capacity appeared: only sessions not
        started, each finishing strictly earlier than it was booked to; the others keep
        their chain (checked by check())."""
        now = self.sw._engine.clock_ms
        for a in self.sw.take_updates():
            start0, end0 = before[a.session]
            assert start0 > now, f"session {a.session} had started and moved"
            assert a.session not in self.confirmed
            _, start, end, chain = self.sw._engine.session(a.session)
            assert chain == a.servers and end < end0 and start >= now
            info = self.live[a.session]
            info.update(servers=a.servers, k=self.blocks(a.servers), service=end - start)
            if self.stats is not None:
                self.stats["rerouted"] = self.stats.get("rerouted", 0) + 1

    def join(self, j, now):
        self.sw.advance(now)            # the late rule first: what is waiting at `now`
        self.check()
        before = self._ends()
        a, m = self.sw.join(j, now)
        assert self.sw.placement.num_blocks[j] == m and self.sw.placement.first_block[j] == a
        self.updates(before)
        self.check()
        return a, m

    def rebalance(self, now):
        self.sw.advance(now)
        before = self._ends()
        out, before_s = self._interrupting(lambda: self.sw.rebalance(now), now, check=False)
        self.updates(before)
        self.check()
        moved = {mv["server"] for mv in out.moves}
        assert out.interrupted == sorted(s for s, x in before_s.items()
                                         if moved & set(x["servers"]))
        return out


def swarm_scenario(rng):
    """A small random scenario whose memory binds: a few sessions fill a server's cache,
    so sessions wait, and both CG-BP and PETALS (tiny fixed cache, d_model = 1) can place
    the model (server 0 alone can hold it)."""
    S, L, C = int(rng.integers(2, 7)), int(rng.integers(2, 9)), int(rng.integers(1, 4))
    cache = float(rng.choice([0.1, 0.25]))
    servers = [{"name": f"s{j}", "memory_gb": float(rng.uniform(1.2, L + 1)) * (1 + 2 * cache),
                "decode_ms": float(rng.integers(1, 10)) / 2,
                "prefill_ms": float(rng.integers(1, 20))} for j in range(S)]
    servers[0]["memory_gb"] = L * (1 + 2 * cache) + 0.01
    return scenario_from_dict({
        "model": {"name": "tiny", "num_blocks": L, "block_gb": 1.0, "cache_gb": cache,
                  "d_model": 1},
        "servers": servers, "clients": [{"name": f"c{c}"} for c in range(C)],
        "rtt_ms": rng.integers(0, 40, size=(C, S)).astype(float).tolist(),
        "workload": {"input_tokens": 8, "output_tokens": int(rng.integers(2, 12)),
                     "requests": [0]}})


def run_sequence(seed, method, policy, steps=70):
    rng = np.random.default_rng(seed)
    sc = swarm_scenario(rng)
    R = int(rng.integers(1, 4))
    try:
        sw = Swarm(sc, method=method, policy=policy, planned_requests=R, seed=seed,
                   reroute_waiting=policy == "ws-rr" and seed % 2 == 1)
    except ValidationError:
        return None
    w = Watcher(sw)
    w.stats = dict(waited=0, late=0, moved=0)
    t = 0.0
    step = 0.2 * float(np.max(sc.prefill_ms) + sc.output_tokens * np.max(sc.decode_ms)
                       * sc.num_blocks) / 1000.0     # a fraction of a session's time
    for _ in range(steps):
        t += float(rng.choice([0.0, rng.exponential(step)]))
        op = rng.choice(["route", "route", "route", "finish", "finish", "leave", "join",
                         "rebalance", "advance", "bad"], p=[.2, .15, .15, .15, .1, .06, .07,
                                                            .04, .03, .05])
        live = sorted(w.live)
        if op == "route":
            w.route(int(rng.integers(sc.num_clients)), t,
                    int(rng.integers(1, sc.output_tokens + 1)) if rng.random() < .5 else None)
        elif op == "finish" and live:
            sid = int(rng.choice(live))
            s = sw.session(sid)
            if s["finish_s"] is not None and rng.random() < 0.6:
                # on time, early or late, never before the clock
                t = max(t, s["finish_s"] * float(rng.choice([1.0, 0.7, 1.3])))
            w.finish(sid, t, public=bool(rng.random() < 0.5))
        elif op == "leave":
            alive = np.flatnonzero(sw.alive)
            if alive.size:
                w.leave(int(rng.choice(alive)), t)
        elif op == "join":
            dead = np.flatnonzero(~sw.alive)
            if dead.size:
                w.join(int(rng.choice(dead)), t)
        elif op == "rebalance":
            w.rebalance(t)
        elif op == "advance":
            sw.advance(t)
            w.check()
        elif op == "bad":
            bad_call(sw, rng, live, t)
            w.check()
    w.check_history()
    return w


def bad_call(sw, rng, live, t):
    """One invalid call: it must raise a one-line ValidationError and change nothing."""
    S, C = sw.scenario.num_servers, sw.scenario.num_clients
    before = copy.deepcopy(sw.to_dict())
    finished = [s for s in range(sw._engine.next_id) if s not in live]
    alive = np.flatnonzero(sw.alive)
    dead = np.flatnonzero(~sw.alive)
    calls = [lambda: sw.finish(sw._engine.next_id + 3, t),
             lambda: sw.finish(-1, t),
             lambda: sw.route(C, t),
             lambda: sw.route(0, t, sw.scenario.output_tokens + 1),
             lambda: sw.route(0, t, 0),
             lambda: sw.route(0, float("nan")),
             lambda: sw.leave(S, t),
             lambda: sw.join(-1, t),
             lambda: sw.route(0, sw.now_s - 1.0),
             lambda: sw.advance(sw.now_s - 0.5)]
    if finished:
        calls.append(lambda: sw.finish(int(rng.choice(finished)), t))
    if live:
        calls.append(lambda: sw.finish(int(rng.choice(live)), sw.now_s - 1e-3))
    if dead.size:
        calls.append(lambda: sw.leave(int(rng.choice(dead)), t))
    if alive.size:
        calls.append(lambda: sw.join(int(rng.choice(alive)), t))
    call = calls[int(rng.integers(len(calls)))]
    with pytest.raises(ValidationError) as err:
        call()
    assert "\n" not in str(err.value)
    assert sw.to_dict() == before


@given(st.integers(0, 2**32 - 1), st.sampled_from([("cg-bprr", "ws-rr"), ("cg-bprr", "petals"),
                                                  ("petals", "petals"), ("petals", "ws-rr")]))
@settings(max_examples=60)
def test_random_call_sequences_keep_every_invariant(seed, method_policy):
    run_sequence(seed, *method_policy)


def test_sequences_exercise_late_finishes_and_churn():
    """The random sequences above do reach the cases they are meant to check: sessions
    that wait for cache, late sessions, sessions moved behind a late one, interruptions,
    waiting bookings re-routed when a server joins (reroute_waiting)."""
    total = dict(waited=0, late=0, moved=0, interrupted=0, rerouted=0)
    for seed in range(10):
        w = run_sequence(seed, "cg-bprr", "ws-rr", steps=120)
        if w is None:
            continue
        for k in ("waited", "late", "moved", "rerouted"):
            total[k] += w.stats.get(k, 0)
        total["interrupted"] += w.sw.to_dict()["interrupted"]
    assert all(v > 0 for v in total.values()), total


def test_reroute_waiting_moves_a_booking_to_a_returning_server():
    """Two whole-model servers of one session each: b waits for a's cache on server 0
    while server 1 is away; server 1 joins at 1 s, and b moves there (it starts now and
    finishes earlier) with reroute_waiting, and keeps its booking without."""
    d = {"model": {"name": "m", "num_blocks": 2, "block_gb": 1.0, "cache_gb": 0.5},
         "servers": [{"name": f"s{j}", "memory_gb": 3.25, "decode_ms": 500.0,
                      "prefill_ms": 1000.0} for j in range(2)],
         "clients": [{"name": "c"}], "rtt_ms": [[0.0, 0.0]],
         "workload": {"input_tokens": 1, "output_tokens": 3, "requests": [0]}}
    sc = scenario_from_dict(d)
    place = [{"server": j, "first_block": 0, "num_blocks": 2} for j in range(2)]
    for reroute in (False, True):
        sw = Swarm(sc, placement=place, planned_requests=1, reroute_waiting=reroute,
                   block_counts=[2, 2])
        sw.leave(1, 0.0)
        a = sw.route(0, 0.0)
        b = sw.route(0, 0.5)
        assert (a.servers, b.servers, b.start_s) == ([0], [0], 4.0)
        sw.join(1, 1.0)
        ups = sw.take_updates()
        if reroute:
            assert [(u.session, u.servers, u.start_s, u.finish_s, u.wait_s) for u in ups] == \
                [(b.session, [1], 1.0, 5.0, 0.5)]
        else:
            assert ups == [] and sw.session(b.session)["servers"] == [0]
        assert sw._engine.check() is None


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_cg_join_counts_the_free_session_slots(seed):
    """On a loaded swarm a re-joining server takes the window the pure-Python rule gives
    when each holder's session slots count less the sessions' worth of cache booked on it."""
    rng = np.random.default_rng(seed)
    sc = swarm_scenario(rng) if seed % 2 else online_scenario(rng)
    R = int(rng.integers(1, 6))
    try:
        sw = Swarm(sc, planned_requests=R)
    except ValidationError:
        return
    for i in range(int(rng.integers(0, 6 * R + 1))):
        sw.route(int(rng.integers(sc.num_clients)), 0.0)
    j = int(rng.choice(np.flatnonzero(sw.placement.num_blocks > 0)))
    sw.leave(j, 1.0)
    pl, used = sw.placement, sw._engine.cache_used.tolist()
    want = naive.join_window(sc, pl.first_block.tolist(), pl.num_blocks.tolist(), j,
                             "cg-bprr", R, list(sw._join_rank), used)
    assert sw.join(j, 2.0) == want


@pytest.mark.parametrize("j", [5, 6, 7])
def test_load_moves_a_joining_slice_to_the_booked_up_blocks(j):
    """Clustered, |R| = 20 (A100s on [0, 55) and [15, 70), slices on 4-block windows at
    both ends): with 60 sessions booked the A100s have no free session slots, so a slice
    re-joining goes to blocks 15-18, covered only by the two booked-up A100s, instead of
    the window it left at the tail, which the load-blind rule picks (the thinnest idle
    coverage)."""
    sc = clustered()
    sw = Swarm(sc, planned_requests=20)
    sw.leave(j, 0.0)
    for i in range(60):
        sw.route(i % 3, 0.0)
    pl = sw.placement
    blind = naive.join_window(sc, pl.first_block.tolist(), pl.num_blocks.tolist(), j,
                              "cg-bprr", 20, list(sw._join_rank))
    a, m = sw.join(j, 1.0)
    assert (a, m) == (15, 4) and blind[0] > 50
    idle = Swarm(sc, planned_requests=20)
    idle.leave(j, 0.0)
    assert idle.join(j, 1.0) == blind


# ------------------------------------------------------------------------------------------
# Hand-checked cases
# ------------------------------------------------------------------------------------------
def one_server_scenario(sessions=2):
    """One server holding both blocks, cache for ``sessions`` sessions; a session takes
    10 + 2 x (1 + 2) = 16 ms... x1000 for readability: prefill 1000 ms, decode 500 ms."""
    return scenario_from_dict({
        "model": {"name": "m", "num_blocks": 2, "block_gb": 1.0, "cache_gb": 0.5},
        "servers": [{"name": "s0", "memory_gb": 2.0 + 0.5 * 2 * sessions + 0.25,
                     "decode_ms": 500.0, "prefill_ms": 1000.0}],
        "clients": [{"name": "c"}], "rtt_ms": [[0.0]],
        "workload": {"input_tokens": 1, "output_tokens": 3, "requests": [0]}})


def test_late_finish_moves_the_session_booked_behind_it():
    sc = one_server_scenario(sessions=1)   # request time: 2 x 1000 + 2 x 2 x 500 = 4 s
    sw = Swarm(sc, placement=[{"server": 0, "first_block": 0, "num_blocks": 2}],
               planned_requests=1)
    a = sw.route(0, 0.0)
    assert (a.servers, a.start_s, a.finish_s) == ([0], 0.0, 4.0)
    b = sw.route(0, 1.0)                   # waits for a's cache
    assert (b.start_s, b.finish_s, b.wait_s) == (4.0, 8.0, 3.0)
    sw.advance(5.0)                        # a is late: b cannot start, its start is unknown
    assert sw.session(b.session)["start_s"] is None
    assert sw.session(a.session)["finish_s"] is None
    sw.finish(a.session, 6.0)              # a held its cache until 6 s: b starts then
    assert (sw.session(b.session)["start_s"], sw.session(b.session)["finish_s"]) == (6.0, 10.0)
    sw.finish(b.session, 10.0)
    assert sw.num_sessions == 0 and sw.free_cache_gb[0] == pytest.approx(1.0)


def test_late_finish_seen_only_at_finish_still_moves_the_waiting_session():
    sc = one_server_scenario(sessions=1)
    sw = Swarm(sc, placement=[{"server": 0, "first_block": 0, "num_blocks": 2}],
               planned_requests=1)
    a = sw.route(0, 0.0)
    b = sw.route(0, 0.0)
    assert b.start_s == 4.0
    sw.finish(a.session, 7.0)              # no call between 4 s and 7 s: b had not started
    assert sw.session(b.session)["start_s"] == 7.0
    c = sw.route(0, 7.5)                   # b is confirmed once a call comes after 7 s
    assert c.start_s == 11.0
    sw.finish(b.session, 9.0)              # early: c keeps its start (never earlier)
    assert sw.session(c.session)["start_s"] == 11.0


def test_session_on_a_server_that_leaves_is_reported():
    sc = clustered()
    sw = Swarm(sc, planned_requests=20)
    sessions = [sw.route(c % 3, 0.5 * c) for c in range(12)]
    on = {j: sorted(a.session for a in sessions if j in a.servers) for j in range(9)}
    j = max(on, key=lambda j: len(on[j]))
    assert sw.leave(j, 10.0) == on[j]
    assert all(j not in s["servers"] for s in sw.to_dict()["sessions"])
    d = sw.to_dict()
    assert d["alive"][j] is False and d["free_cache_gb"][j] == 0.0
    assert all(p["server"] != j for p in d["placement"])
    assert d["interrupted"] == len(on[j]) and d["lost_token_s"] > 0
    for sid in on[j]:
        with pytest.raises(ValidationError, match="interrupted"):
            sw.finish(sid, 11.0)


def test_petals_policy_leaves_back_off_to_the_caller():
    sc = one_server_scenario(sessions=1)
    sw = Swarm(sc, placement=[{"server": 0, "first_block": 0, "num_blocks": 2}],
               method="petals", policy="petals")
    a = sw.route(0, 0.0)
    assert a is not None and a.wait_s == 0.0
    assert sw.route(0, 1.0) is None        # no free cache now: the caller backs off
    sw.finish(a.session, 2.0)
    assert sw.route(0, 3.0).start_s == 3.0


def test_jffc_needs_a_chain_method_and_bad_policies_are_refused():
    with pytest.raises(ValidationError, match="jffc"):
        Swarm(clustered(), policy="jffc")
    with pytest.raises(ValidationError, match="'policy'"):
        Swarm(clustered(), policy="fifo")
    with pytest.raises(ValidationError, match="'method'"):
        Swarm(clustered(), method="milp")


def test_no_live_chain_returns_none():
    sc = clustered()
    sw = Swarm(sc, planned_requests=20)
    pl = sw.placement
    holders0 = [j for j in range(9) if pl.num_blocks[j] and pl.first_block[j] == 0]
    for j in holders0:
        sw.leave(j, 1.0)
    assert sw.route(0, 2.0) is None


# ------------------------------------------------------------------------------------------
# Join and rebalance rules against their offline twins
# ------------------------------------------------------------------------------------------
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
@settings(max_examples=40)
def test_joining_in_cg_order_onto_an_empty_swarm_is_cg_bp(seed, R):
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    cg = cg_bp_placement(sc, R)
    if not cg.feasible:
        return
    sw = Swarm(sc, planned_requests=R)
    assert np.array_equal(sw.placement.first_block, cg.placement.first_block)
    for j in range(sc.num_servers):
        sw.leave(j, 0.0)
    assert sw.placement.num_blocks.sum() == 0
    for j in cg.order:
        sw.join(int(j), 1.0)
    for j in set(range(sc.num_servers)) - set(cg.order.tolist()):
        assert sw.join(j, 1.0) == (0, 0)
    assert np.array_equal(sw.placement.num_blocks, cg.placement.num_blocks)
    assert np.array_equal(sw.placement.first_block, cg.placement.first_block)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_joining_in_order_onto_an_empty_swarm_is_petals(seed):
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    order = rng.permutation(sc.num_servers)
    ref, _ = petals_placement(sc, order)
    sw = Swarm(sc, placement=ref, method="petals", policy="petals")
    for j in range(sc.num_servers):
        sw.leave(j, 0.0)
    for j in order:
        sw.join(int(j), 1.0)
    assert np.array_equal(sw.placement.num_blocks, ref.num_blocks)
    assert np.array_equal(sw.placement.first_block, ref.first_block)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_join_rule_matches_the_pure_python_rule(seed):
    """A server re-joining a partly filled swarm takes the window the pure-Python rule
    picks on the same holders (CG-BP credited in amortised order; PETALS weakest window
    summed in join order)."""
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    for method in ("cg-bprr", "petals"):
        R = int(rng.integers(1, 4))
        try:
            sw = Swarm(sc, method=method, policy="ws-rr", planned_requests=R, seed=seed)
        except ValidationError:
            continue
        leaving = rng.permutation(sc.num_servers)[: int(rng.integers(1, sc.num_servers + 1))]
        for j in leaving:
            sw.leave(int(j), 0.0)
        for j in rng.permutation(leaving):
            pl = sw.placement
            want = naive.join_window(sc, pl.first_block.tolist(), pl.num_blocks.tolist(),
                                     int(j), method, R, list(sw._join_rank))
            assert sw.join(int(j), 1.0) == want


def test_rebalance_cg_re_plans_on_the_servers_alive():
    sc = clustered()
    sw = Swarm(sc, planned_requests=10)
    for c in range(6):
        sw.route(c % 3, 0.0)
    sw.leave(1, 1.0)
    out = sw.rebalance(2.0)
    alive = sw.alive
    masked = sc.memory_gb.copy()
    masked[~alive] = sc.reserve_gb[~alive]
    from dataclasses import replace
    ref = cg_bp_placement(replace(sc, memory_gb=masked), 10).placement
    assert np.array_equal(sw.placement.first_block, ref.first_block)
    assert np.array_equal(sw.placement.num_blocks, ref.num_blocks)
    assert out.moves and all(sw.placement.first_block[m["server"]] == m["first_block"]
                             for m in out.moves)
    assert sw._engine.check() is None


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_rebalance_petals_is_petals_check(seed):
    """Each server runs PETALS's should_choose_other_blocks, the servers and each check's
    passes in random orders from the seeded stream (PETALS's np.random.shuffle): the moves
    equal a pure-Python port's drawing the same orders."""
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    S, L = sc.num_servers, sc.num_blocks
    m = petals_block_counts(sc)
    first = rng.integers(0, L - m + 1)               # a random, often unbalanced start
    sw = Swarm(sc, placement=Placement.from_arrays(first, m), method="petals",
               policy="petals")
    thr = sc.server_throughput(m)
    ref_first = list(sw.placement.first_block)
    want = naive.petals_rebalance(ref_first, list(m), list(thr), L, list(range(S)), 0.75,
                                  naive.ShuffleStream(sw._shuffle_key))
    out = sw.rebalance(1.0)
    assert [(mv["server"], mv["first_block"]) for mv in out.moves] == want
    assert sw._engine.check() is None


# ------------------------------------------------------------------------------------------
# One engine, two users: a simulation replayed through Swarm
# ------------------------------------------------------------------------------------------
def replay_events(res, delay_s=0.0):
    """(time_s, kind, request) of a simulation run in the simulator's order: completions,
    then arrivals, then retries at equal times (PETALS's back-off reconstructed)."""
    wl = res.workload
    ev = []
    for r in range(wl.num_requests):
        t = wl.arrival_s[r] + delay_s
        ev.append((t * 1000.0, 1, r))
        tm = t * 1000.0
        for a in range(1, int(res.retries[r]) + 1):
            tm = tm + min(1000.0 * 2 ** (a - 1), 60_000.0)
            ev.append((tm, 2, r))
        if res.served[r]:
            ev.append((res.end_s[r] * 1000.0, 0, r))
    return sorted(ev)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["cg-bprr", "petals"]))
@settings(max_examples=25)
def test_simulation_replayed_through_swarm_gives_the_same_chains_and_times(seed, method):
    from distalloc.llm.simulation import simulate
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    res = simulate(sc, method, rate_per_s=float(rng.uniform(0.05, 5)), num_requests=40,
                   seed=seed)
    policy = "ws-rr" if method == "cg-bprr" else "petals"
    sw = Swarm(sc, placement=res.placement, method=method, policy=policy,
               planned_requests=res.planned_requests or 1)
    eng = sw._engine                       # the engine in ms, as the simulator drives it
    session = {}
    for t_ms, kind, r in replay_events(res):
        if kind == 0:
            eng.finish(session.pop(r), t_ms)
            continue
        status, sid, chain, start, end = eng.route(int(res.workload.client[r]),
                                                   int(res.workload.output_tokens[r]), t_ms)
        if status == 0:
            assert chain == res.route(r)
            assert start == res.start_s[r] * 1000.0 or math.isclose(start, res.start_s[r] * 1000.0, rel_tol=1e-15)
            assert math.isclose(end, res.end_s[r] * 1000.0, rel_tol=1e-15)
            session[r] = sid
        assert eng.check() is None
    # and through the public API in seconds (times equal up to the ms <-> s rounding)
    sw = Swarm(sc, placement=res.placement, method=method, policy=policy,
               planned_requests=res.planned_requests or 1)
    session = {}
    for t_ms, kind, r in replay_events(res):
        if kind == 0:
            sw.finish(session.pop(r), max(t_ms / 1000.0, sw.now_s))
            continue
        a = sw.route(int(res.workload.client[r]), max(t_ms / 1000.0, sw.now_s),
                     int(res.workload.output_tokens[r]))
        if a is not None:
            assert a.servers == res.route(r)
            assert a.start_s == pytest.approx(res.start_s[r], rel=1e-12)
            assert a.finish_s == pytest.approx(res.end_s[r], rel=1e-12)
            session[r] = a.session
    assert sw.num_sessions == 0


def test_contract_keys_and_json():
    """SPEC 5.1 contract: to_dict keys and Assignment fields; the state is JSON."""
    import json
    sc = clustered()
    sw = Swarm(sc, planned_requests=20)
    a = sw.route(0, 0.0, 64)
    assert set(a.to_dict()) == {"session", "servers", "start_s", "finish_s", "wait_s"}
    d = sw.to_dict()
    assert {"placement", "sessions", "free_cache_gb", "alive"} <= set(d)
    assert d["placement"] == sw.placement.to_list()
    assert d["sessions"] == [{"session": a.session, "client": 0, "servers": a.servers,
                              "start_s": a.start_s, "finish_s": a.finish_s}]
    assert len(d["free_cache_gb"]) == len(d["alive"]) == sc.num_servers
    json.dumps(d)
