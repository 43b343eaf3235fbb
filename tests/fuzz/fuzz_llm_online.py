"""Fuzz entries for the LLM family's online engine, chain composition and calibration
(issue 16): :class:`distalloc.llm.Swarm` driven by random call sequences under all three
policies, ``compose_chains``/``gbp_cr``/``gca``/``jffc_bounds``, ``compiled_dispatch``,
``calibrate``/``read_measurements``/``apply_profile``/``load_profile``/``predict``, and the
command lines that reach them (``llm plan|simulate`` with the chain methods, ``--churn``,
``--service``, ``--profile``, ``--trace-format``, ``--max-memory-gb``; ``llm calibrate``).

What a successful result may be (beyond the runner's checks): finite non-negative times,
chains and routes that process blocks 0..L-1 in order on servers that hold them, a Swarm
whose cache is never over-booked and whose state is JSON, a calibration that reproduces
the exact measurements it was fitted to.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from fuzz_api import api_draw, api_entry, build_scenario, scenario_spec
from fuzz_checks import (_finite, _json, check_plan_dict, check_simulate_dict, json_check,
                         need_finite)
from fuzz_cli import _for_scenario, cli_entry, flags, llm_scenario_arg
from fuzz_runner import EntryPoint
from fuzz_values import (Opt, api_arg, args_dict, cli_number, corrupt, extreme_number,
                         scenario_dict, small_floats, weird_value)

TOL = 1e-9


# ------------------------------------------------------------------------------------------
# checks shared by the entries
# ------------------------------------------------------------------------------------------
def route_problems(servers, first, num, L, blocks=None, where="route") -> list[str]:
    """A chain processes blocks 0..L-1 in order: each server j continues at the current
    block, which it holds (a_j <= pos < a_j + m_j), and (``blocks``: k_j of them, else up
    to its end) leaves it at pos + k_j <= a_j + m_j; the last one ends at L."""
    pos = 0
    for h, j in enumerate(servers):
        if not (isinstance(j, (int, np.integer)) and 0 <= j < len(first)):
            return [f"{where} {servers}: server {j!r} out of range"]
        a, m = int(first[j]), int(num[j])
        if not (m > 0 and a <= pos < a + m):
            return [f"{where} {servers}: server {j} (blocks [{a}, {a + m})) does not hold "
                    f"block {pos}"]
        k = (a + m - pos) if blocks is None else int(blocks[h])
        if k < 1 or pos + k > a + m:
            return [f"{where} {servers}: {k} blocks on server {j} from block {pos}, which "
                    f"holds [{a}, {a + m})"]
        pos += k
    if servers and pos != L:
        return [f"{where} {servers} ends at block {pos}, not L = {L}"]
    if not servers:
        return [f"{where} with no server"]
    return []


def json_problems(d, what) -> list[str]:
    try:
        json.dumps(d, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [f"{what} is not JSON: {type(exc).__name__}: {exc}"]
    return []


def chain_problems(chains, first, num, L, where="chain") -> list[str]:
    p = []
    for q, ch in enumerate(chains):
        if not (isinstance(ch.capacity, int) and ch.capacity >= 1):
            p.append(f"{where} {q} capacity {ch.capacity!r}")
        if not (_finite(ch.service_s) and ch.service_s > 0):
            p.append(f"{where} {q} service_s {ch.service_s!r}")
        p += route_problems(list(ch.servers), first, num, L, ch.blocks, f"{where} {q}")
    return p


def bounds_problems(lo, up, what="bounds") -> list[str]:
    if lo is None or up is None:
        return [] if lo is None and up is None else [f"{what} ({lo}, {up})"]
    if math.isinf(lo) and math.isinf(up) and lo > 0 and up > 0:
        return []
    if not (_finite(lo) and _finite(up) and 0 < lo <= up * (1 + 1e-9)):
        return [f"{what} ({lo!r}, {up!r}): not 0 < lower <= upper"]
    return []


def check_composition(c, comp) -> list[str]:
    sc = build_scenario(c["scenario"])
    pl = comp.placement
    p = chain_problems(comp.chains, pl.first_block, pl.num_blocks, sc.num_blocks)
    p += bounds_problems(comp.bound_lower_s, comp.bound_upper_s)
    if comp.chains:
        fastest = min(ch.service_s for ch in comp.chains)
        if _finite(comp.bound_lower_s) and comp.bound_lower_s < fastest * (1 - 1e-9):
            p.append(f"lower bound {comp.bound_lower_s} below the fastest chain's time {fastest}")
    over = np.flatnonzero(sc.block_gb * pl.num_blocks > sc.usable_memory_gb * (1 + 1e-9))
    if over.size:
        p.append(f"server {int(over[0])} given more blocks than its memory holds")
    return p + json_problems(comp.to_dict(), "ChainComposition.to_dict()")


# ------------------------------------------------------------------------------------------
# Swarm: construction, then a random sequence of calls
# ------------------------------------------------------------------------------------------
SWARM_METHODS = ["cg-bprr", "petals", "chains", "jffc-whole"]
POLICY_OF = {"cg-bprr": ["ws-rr", "petals"], "petals": ["ws-rr", "petals"],
             "chains": ["jffc"], "jffc-whole": ["jffc"]}
TIME_WEIRD = [math.nan, math.inf, -math.inf, -1.0, 1e308, 1.7976931348623157e308, 2 ** 63,
              "1", None, True, 1e15]
ID_WEIRD = [-1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 20, 1.0, 0.5, math.nan, None, "0",
            True, 10 ** 6]


@st.composite
def swarm_ops(draw) -> list[tuple]:
    """Calls with times that mostly move forward; ids mostly of sessions/servers that
    exist (("known", i): the i-th session routed so far), sometimes weird."""
    ops = []
    t = 0.0
    for _ in range(draw(st.integers(0, 25))):
        op = draw(st.sampled_from(["route", "route", "route", "finish", "finish", "advance",
                                   "leave", "join", "rebalance", "to_dict", "take_updates",
                                   "session", "leave_same"]))
        step = draw(st.sampled_from([0.0, 0.001, 0.5, 5.0, 60.0, 600.0, 1e5]))
        t += step
        if draw(st.integers(0, 14)) == 0:
            when = draw(st.sampled_from(TIME_WEIRD + [t - 1.0, -0.0]))
        else:
            when = t
        if draw(st.integers(0, 9)) == 0:
            ident = ("raw", draw(st.one_of(st.sampled_from(ID_WEIRD), st.integers(0, 50))))
        else:
            ident = ("known", draw(st.integers(0, 30)))
        extra = None
        if op == "route" and draw(st.integers(0, 3)) == 0:
            extra = draw(st.one_of(st.integers(1, 200), st.sampled_from(
                [0, -1, 2 ** 63, 1.5, math.nan, None, 10 ** 9])))
        ops.append((op, when, ident, extra))
    return ops


def _rarely_weird(draw, opt: Opt):
    """An argument that is weird one time in sixteen (a Swarm case has many)."""
    return opt.draw(draw, draw(st.integers(0, 15)) == 7)    # (not 0: hypothesis favours it)


@st.composite
def swarm_case(draw) -> dict:
    kind = draw(st.integers(0, 9))
    if kind < 6:
        scen = ("dict", draw(scenario_dict()))
    elif kind < 9:
        scen = ("builtin", draw(st.sampled_from(["clustered", "topology:Abvt"])), None)
    else:
        scen = draw(scenario_spec())
    method = _rarely_weird(draw, api_arg(st.sampled_from(
        ["cg-bprr", "petals", "chains", "chains", "jffc-whole"])))
    policy = (draw(st.one_of(st.none(), st.sampled_from(POLICY_OF[method])))
              if isinstance(method, str) and method in POLICY_OF else None)
    if draw(st.integers(0, 15)) == 0:
        policy = draw(st.sampled_from(["ws-rr", "petals", "jffc", "x", 3]))
    chained = method in ("chains", "jffc-whole")
    kw = {}
    if draw(st.integers(0, 3)) == 0:
        kw["seed"] = _rarely_weird(draw, api_arg(st.integers(0, 5)))
    if not chained:
        if draw(st.integers(0, 2)) == 0:
            kw["planned_requests"] = _rarely_weird(draw, api_arg(st.integers(1, 50)))
        if policy == "ws-rr" and draw(st.booleans()):
            kw["reroute_waiting"] = True
        if draw(st.integers(0, 6)) == 0:
            kw["balance_quality"] = _rarely_weird(draw, api_arg(small_floats(0.1, 2.0)))
    else:
        if draw(st.integers(0, 2)) == 0:
            kw["reservation"] = _rarely_weird(draw, api_arg(st.one_of(
                st.integers(1, 40), st.just("auto"), st.sampled_from(["3", 0, 10 ** 6]))))
        if draw(st.integers(0, 2)) == 0:
            kw["rate_per_s"] = _rarely_weird(draw, api_arg(small_floats(0.01, 5.0)))
        if draw(st.integers(0, 3)) == 0:
            kw["target_load"] = _rarely_weird(draw, api_arg(small_floats(0.05, 0.99)))
        if draw(st.integers(0, 3)) == 0:
            kw["client_groups"] = _rarely_weird(draw, api_arg(st.sampled_from(
                ["one", "each", "auto"])))
        if draw(st.integers(0, 5)) == 0:
            kw["dispatch"] = draw(st.sampled_from(GOOD_DISPATCHERS * 4 + DISPATCHERS))
    if draw(st.integers(0, 19)) == 0:              # an option of the other family: refused
        kw[draw(st.sampled_from(["reservation", "planned_requests", "dispatch",
                                 "reroute_waiting"]))] = 2
    placement = draw(st.sampled_from([None, None, None, None, "plan", "plan", "random"]))
    rand_pl = draw(st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 6), st.integers(-1, 6)),
                            max_size=4))
    block_counts = (_rarely_weird(draw, api_arg(st.lists(st.integers(0, 6), min_size=1,
                                                         max_size=4)))
                    if draw(st.integers(0, 9)) == 0 else None)
    return {"scenario": scen, "method": method, "policy": policy, "kw": kw,
            "placement": placement, "random_placement": rand_pl, "block_counts": block_counts,
            "ops": draw(swarm_ops())}


def _dispatchers():
    """Compiled dispatch scores (compiled once per worker)."""
    import numba

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def fastest(chain_service_s, wait_s, free_slots, client):
        return chain_service_s

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def most_free(chain_service_s, wait_s, free_slots, client):
        return -float(free_slots)

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def nan_score(chain_service_s, wait_s, free_slots, client):
        return math.nan if client % 2 == 0 else -math.inf

    @numba.cfunc("float64(float64, float64)")
    def two_args(a, b):
        return a

    @numba.cfunc("int64(float64, float64, int64, int64)")
    def int_result(chain_service_s, wait_s, free_slots, client):
        return free_slots

    @numba.cfunc("float64(float64, float64, int32, int64)")
    def int32_arg(chain_service_s, wait_s, free_slots, client):
        return chain_service_s

    def plain(chain_service_s, wait_s, free_slots, client):
        return chain_service_s

    import scipy

    return {"fastest": fastest, "most_free": most_free, "nan_score": nan_score,
            "two_args": two_args, "int_result": int_result, "int32_arg": int32_arg,
            "plain": plain, "lambda": (lambda a, b, c, d: a), "none": None, "int": 7,
            "str": "fastest", "ctypes_addr": fastest.address,
            "llc": scipy.LowLevelCallable(fastest.ctypes),
            "llc_user_data": "llc_user_data"}


GOOD_DISPATCHERS = ["fastest", "most_free", "nan_score", "llc"]
DISPATCHERS = ["fastest", "most_free", "nan_score", "two_args", "int_result", "int32_arg",
               "plain", "lambda", "none", "int", "str", "ctypes_addr", "llc", "llc_user_data"]


@lru_cache(maxsize=1)
def dispatchers() -> dict:
    return _dispatchers()


def _dispatch(name):
    d = dispatchers()
    if name == "llc_user_data":
        import ctypes

        import scipy
        return scipy.LowLevelCallable(d["fastest"].ctypes, ctypes.c_void_p(1))
    return d[name]


def _placement_arg(case, sc):
    if case["placement"] == "plan":
        from distalloc.llm import plan
        p = plan(sc, "cg-bprr" if case["method"] in ("cg-bprr", "chains") else "petals")
        return p.placement.to_list() if p.feasible else []
    if case["placement"] == "random":
        return [{"server": j, "first_block": a, "num_blocks": m}
                for j, a, m in case["random_placement"]]
    return None


def _often(idx) -> bool:
    """Three known ids in four pick from the live pool."""
    return idx[0] == "known" and idx[1] % 4 != 0


def occupancy_problems(d: dict, budget, where: str) -> list[str]:
    """Sessions of ``Swarm.to_dict()`` holding each server's cache at every instant (a
    session processes on server j the blocks from the previous server's end to j's end,
    one cache unit each) against the server's budget."""
    ends = {p["server"]: p["first_block"] + p["num_blocks"] for p in d["placement"]}
    events: dict[int, list[tuple[float, int]]] = {}
    for sess in d["sessions"]:
        start = sess["start_s"]
        stop = math.inf if sess["finish_s"] is None else sess["finish_s"]
        if start is None or not stop > start:
            continue
        prev = 0
        for j in sess["servers"]:
            e = ends.get(j, prev)
            k, prev = e - prev, e
            events.setdefault(j, []).extend([(start, k), (stop, -k)])
    for j, ev in events.items():
        held = 0
        for _, k in sorted(ev, key=lambda x: (x[0], x[1])):   # releases first at a tie
            held += k
            if held > budget[j]:
                return [f"after {where}: server {j} holds {held} cache units at once, "
                        f"budget {budget[j]} (over-booked)"]
    return []


def run_swarm(case) -> dict:
    """Builds the Swarm and plays the calls; returns what the check judges: the problems
    seen after every call (a ValidationError from a call is expected, the state must stay
    as it was)."""
    from distalloc import ValidationError
    from distalloc.llm import Swarm
    sc = build_scenario(case["scenario"])
    kw = dict(case["kw"])
    if "dispatch" in kw and isinstance(kw["dispatch"], str):
        kw["dispatch"] = _dispatch(kw["dispatch"])
    if case["block_counts"] is not None:
        bc = case["block_counts"]
        if isinstance(bc, list) and bc and bc[0] != -1:   # one per server, mostly in range
            bc = (bc * sc.num_servers)[:sc.num_servers]
        kw["block_counts"] = bc
    swarm = Swarm(sc, _placement_arg(case, sc), case["method"], case["policy"], **kw)
    L, S = sc.num_blocks, sc.num_servers
    problems: list[str] = []
    sessions: list[int] = []        # every session routed
    live: set[int] = set()          # ... not finished nor lost yet (mostly chosen)
    left: list[int] = []            # servers that left (mostly chosen to join)
    calls = 0

    def ident(x, pool_size, pool=None):
        kind, v = x
        if kind == "raw":
            return v
        if pool is not None:
            return pool[v % len(pool)] if pool else v
        return v % max(1, pool_size)

    def state(where):
        d = swarm.to_dict()
        out = json_problems(d, f"to_dict() after {where}")
        eng = swarm._engine
        used, budget = np.asarray(eng.cache_used), np.asarray(eng.cache_budget)
        if np.any(used < 0):
            j = int(np.flatnonzero(used < 0)[0])
            out.append(f"after {where}: server {j} has {used[j]} cache units booked")
        # cache_used also counts WS-RR bookings that wait for a predicted release, so the
        # invariant is per instant: the sessions holding a server's cache at any moment (an
        # unfinished session holds it until finished) never need more than its budget
        out += occupancy_problems(d, budget, where)
        free = d["free_cache_gb"]
        if any(not _finite(x) or x < 0 for x in free):
            out.append(f"after {where}: free_cache_gb {free}")
        if d["now_s"] != swarm.now_s or not _finite(d["now_s"]):
            out.append(f"after {where}: now_s {d['now_s']}")
        pl = swarm.placement
        alive = swarm.alive
        for e in d["placement"]:
            if not (0 <= e["first_block"] and e["first_block"] + e["num_blocks"] <= L
                    and e["num_blocks"] >= 1 and 0 <= e["server"] < S and alive[e["server"]]):
                out.append(f"after {where}: placement entry {e} (L = {L}, alive "
                           f"{alive.tolist()})")
        if len(d["sessions"]) != swarm.num_sessions:
            out.append(f"after {where}: {len(d['sessions'])} sessions listed, num_sessions "
                       f"{swarm.num_sessions}")
        for s in d["sessions"]:
            st_, fi = s["start_s"], s["finish_s"]
            if st_ is not None and not (_finite(st_) and st_ >= 0):
                out.append(f"after {where}: session {s} start_s")
            if fi is not None and not (_finite(fi) and (st_ is None or fi >= st_ - 1e-9)):
                out.append(f"after {where}: session {s} finish before start")
            if s["servers"]:
                if any(not alive[j] for j in s["servers"]):
                    out.append(f"after {where}: session {s} on a server that left")
                elif not (swarm.policy == "jffc" and st_ is None):
                    out += route_problems(s["servers"], pl.first_block, pl.num_blocks, L,
                                          where=f"after {where}: session {s['session']}")
        for ch in d.get("chains", []):
            if any(not alive[j] for j in ch["servers"]):
                out.append(f"after {where}: chain {ch} through a server that left")
            else:
                out += route_problems(ch["servers"], pl.first_block, pl.num_blocks, L,
                                      ch["blocks"], f"after {where}: chain {ch['chain']}")
            if not (0 <= ch["busy"] <= ch["capacity"]):
                out.append(f"after {where}: chain {ch} busy beyond its capacity")
        return out

    def assignment(a, where, now):
        if a is None:
            return []
        out = json_problems(a.to_dict(), f"{where}: Assignment.to_dict()")
        if a.servers:
            pl = swarm.placement
            if a.start_s is not None:
                out += route_problems(a.servers, pl.first_block, pl.num_blocks, L,
                                      where=f"{where}: session {a.session}")
        if a.start_s is not None:
            if not (_finite(a.start_s) and a.start_s >= now - 1e-9):
                out.append(f"{where}: start_s {a.start_s} before now {now}")
            if not (_finite(a.wait_s) and a.wait_s >= -1e-9):
                out.append(f"{where}: wait_s {a.wait_s}")
            if a.finish_s is not None and not (_finite(a.finish_s) and a.finish_s >= a.start_s):
                out.append(f"{where}: finish_s {a.finish_s} < start_s {a.start_s}")
        return out

    problems += state("construction")
    for op, when, idx, extra in case["ops"]:
        calls += 1
        where = f"call {calls} ({op} at {when!r})"
        before = json.dumps(swarm.to_dict(), sort_keys=True)
        try:
            if op == "route":
                client = ident(idx, sc.num_clients)
                a = swarm.route(client, when, extra)
                if a is not None:
                    sessions.append(a.session)
                    live.add(a.session)
                    problems += assignment(a, where, swarm.now_s)
            elif op == "finish":
                sid = ident(idx, 0, sorted(live) if live and _often(idx) else sessions)
                swarm.finish(sid, when)
                live.discard(sid)
            elif op == "advance":
                swarm.advance(when)
            elif op in ("leave", "leave_same"):
                j = ident(idx, S)
                lost = swarm.leave(j, when)
                left.append(j)
                live.difference_update(lost)
                if op == "leave_same":      # the same server again: must be refused
                    try:
                        swarm.leave(j, when)
                    except ValidationError:
                        pass
                    else:
                        problems.append(f"{where}: leaving server {j} twice was accepted")
                for sid in lost:
                    try:
                        swarm.session(sid)
                        problems.append(f"{where}: session {sid} lost server {j} but is "
                                        "still in progress")
                    except ValidationError:
                        pass
            elif op == "join":
                j = ident(idx, S, left if left and _often(idx) else None)
                first, num = swarm.join(j, when)
                left.remove(j) if j in left else None
                if not (0 <= first and 0 <= num and first + num <= L):
                    problems.append(f"{where}: join gave blocks ({first}, {num}), L = {L}")
            elif op == "rebalance":
                r = swarm.rebalance(when)
                live.difference_update(r.interrupted)
                problems += json_problems(r.to_dict(), f"{where}: Rebalance.to_dict()")
            elif op == "take_updates":
                for a in swarm.take_updates():
                    problems += assignment(a, where, 0.0)
            elif op == "session":
                s = swarm.session(ident(idx, 0, sorted(live) if live and _often(idx) else sessions))
                problems += json_problems(s, f"{where}: session()")
            else:
                swarm.to_dict()
        except ValidationError as exc:
            OP_STATS[(swarm.policy, op, "refused")] += 1
            OP_MSG[(swarm.policy, op, re.sub(r"\d[\d.e+-]*", "N", str(exc))[:90])] += 1
            if "\n" in str(exc):
                problems.append(f"{where}: multi-line error {exc}")
            after = json.dumps(swarm.to_dict(), sort_keys=True)
            if after != before and op not in ("leave_same",):
                problems.append(f"{where}: refused ({exc}) but the state changed")
            continue
        OP_STATS[(swarm.policy, op, "done")] += 1
        problems += state(where)
        if problems:
            break
    return {"problems": problems}


#: (policy, call, done|refused) counts of the Swarm calls played (to see what a budget reached)
OP_STATS: Counter = Counter()
OP_MSG: Counter = Counter()


# ------------------------------------------------------------------------------------------
# compose_chains, gbp_cr, gca, jffc_bounds
# ------------------------------------------------------------------------------------------
RESERVATION = api_arg(st.one_of(st.integers(1, 60), st.just("auto"),
                                st.sampled_from([0, -1, 10 ** 9, 2 ** 63, "x", "7", 1.5])))


@st.composite
def placement_list(draw, spec) -> object:
    """None, a valid placement (a plan's), an empty list, random entries, or weird."""
    k = draw(st.integers(0, 9))
    if k < 5:
        return None
    if k < 7:
        return ("plan", draw(st.sampled_from(["cg-bprr", "petals"])))
    if k == 7:
        return []
    if k == 8:
        return [{"server": j, "first_block": a, "num_blocks": m} for j, a, m in
                draw(st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 6),
                                        st.integers(-1, 6)), max_size=4))]
    return draw(weird_value)


def _placement_value(sc, p):
    if isinstance(p, tuple) and p and p[0] == "plan":
        from distalloc.llm import plan
        r = plan(sc, p[1])
        return r.placement.to_list() if r.feasible else []
    return p


def call_compose(c):
    from distalloc.llm import compose_chains
    sc = build_scenario(c["scenario"])
    kw = {k: v for k, v in c["kw"].items() if v != "<absent>"}
    if "placement" in kw:
        kw["placement"] = _placement_value(sc, kw["placement"])
    return compose_chains(sc, c["method"], **kw)


CHAIN_KW = {
    "reservation": RESERVATION,
    "rate_per_s": api_arg(st.one_of(st.none(), small_floats(0.01, 5.0),
                                    st.sampled_from([1e-300, 1e6]))),
    "target_load": api_arg(small_floats(0.05, 0.99)),
    "client_weights": api_arg(st.one_of(st.none(), st.none(), st.lists(
        st.integers(0, 3), min_size=1, max_size=3))),
    "objective": api_arg(st.sampled_from(["lower", "upper", "surrogate"])),
    "output_tokens": api_arg(st.one_of(st.none(), small_floats(1.0, 300.0))),
    "client_groups": Opt(st.sampled_from(["auto", "one", "each"]),
                         st.one_of(st.sampled_from([[0, 1], [0, 0], [0], None, 1.5]), weird_value)),
}


@st.composite
def compose_case(draw):
    kw = {k: _rarely_weird(draw, v) for k, v in CHAIN_KW.items() if draw(st.integers(0, 2))}
    pl = draw(placement_list(None))
    if pl is not None:
        kw["placement"] = pl
    return {"scenario": draw(scenario_spec()),
            "method": _rarely_weird(draw, api_arg(st.sampled_from(["chains", "chains",
                                                                   "jffc-whole"]))),
            "kw": kw}


def call_gbp_cr(c):
    from distalloc.llm import gbp_cr
    return gbp_cr(build_scenario(c["scenario"]), c["reservation"], c["rate_per_s"],
                  c["target_load"], client_groups=c["client_groups"])


def check_gbp_cr(c, pl) -> list[str]:
    sc = build_scenario(c["scenario"])
    p = []
    L = sc.num_blocks
    for j, (a, m) in enumerate(zip(pl.first_block, pl.num_blocks)):
        if m < 0 or (m > 0 and (a < 0 or a + m > L)):
            p.append(f"server {j} placed at ({a}, {m}), L = {L}")
    # m_j(c) blocks plus c jobs' cache on each of them must fit the server's memory
    need = sc.block_gb * pl.num_blocks + sc.cache_gb * pl.num_blocks * c["reservation"]
    over = np.flatnonzero((pl.num_blocks > 0) & (need > sc.usable_memory_gb * (1 + 1e-9)))
    if over.size:
        j = int(over[0])
        p.append(f"server {j}: {pl.num_blocks[j]} blocks with cache for c = "
                 f"{c['reservation']} need {need[j]:.4g} GB > {sc.usable_memory_gb[j]:.4g}")
    if pl.feasible and not pl.covers_all_blocks(L):
        p.append("feasible but some block is on no server")
    return p + json_problems(pl.to_list(), "to_list()")


def call_gca(c):
    from distalloc.llm import Placement, gca
    sc = build_scenario(c["scenario"])
    pl = _placement_value(sc, c["placement"])
    if c["as_arrays"] and isinstance(pl, list):
        try:
            first = np.zeros(sc.num_servers, dtype=np.int64)
            num = np.zeros(sc.num_servers, dtype=np.int64)
            for e in pl:
                first[e["server"]], num[e["server"]] = e["first_block"], e["num_blocks"]
            pl = Placement.from_arrays(first, num)
        except (IndexError, OverflowError, KeyError, TypeError):
            pass
    return sc, gca(sc, pl, client_weights=c["client_weights"])


def check_gca(c, r) -> list[str]:
    sc, chains = r
    pl = _placement_value(sc, c["placement"])
    first = np.zeros(sc.num_servers, dtype=np.int64)
    num = np.zeros(sc.num_servers, dtype=np.int64)
    for e in pl:
        first[e["server"]], num[e["server"]] = e["first_block"], e["num_blocks"]
    p = chain_problems(chains, first, num, sc.num_blocks)
    # the slots the chains reserve fit each server's cache
    used = np.zeros(sc.num_servers)
    for ch in chains:
        for j, k in zip(ch.servers, ch.blocks):
            used[j] += ch.capacity * k * sc.cache_gb
    over = np.flatnonzero(used + sc.block_gb * num > sc.usable_memory_gb * (1 + 1e-9) + 1e-9)
    if over.size:
        p.append(f"server {int(over[0])}: chains reserve {used[int(over[0])]:.4g} GB of cache "
                 f"beyond its memory")
    return p


@st.composite
def gca_case(draw):
    pl = draw(placement_list(None))
    if pl is None:
        pl = ("plan", "cg-bprr")
    return {"scenario": draw(scenario_spec()), "placement": pl,
            "as_arrays": draw(st.booleans()),
            "client_weights": api_draw(draw, CHAIN_KW["client_weights"])}


def erlang_c_response(mu, c, lam) -> float:
    """M/M/c mean response time (s)."""
    a = lam / mu
    rho = a / c
    s = sum(a ** k / math.factorial(k) for k in range(c))
    top = a ** c / math.factorial(c) / (1 - rho)
    pw = top / (s + top)
    return pw / (c * mu - lam) + 1 / mu


def check_jffc_bounds(c, r) -> list[str]:
    lo, up = r
    mu = np.asarray(c["rates"], dtype=float)
    cap = np.asarray(c["caps"])
    nu = float(np.dot(mu, cap))
    lam = c["rate"]
    if lam >= nu * (1 - 1e-12):
        return [] if (math.isinf(lo) and math.isinf(up)) or lam < nu else \
            [f"λ {lam} >= ν {nu} but bounds ({lo}, {up})"]
    p = bounds_problems(lo, up)
    if p:
        return p
    used = mu[cap > 0]
    if lo < 1 / used.max() * (1 - 1e-9):
        p.append(f"lower bound {lo} below the fastest service time {1 / used.max()}")
    if up < lo * (1 - 1e-9):
        p.append(f"upper {up} < lower {lo}")
    if len(set(used.tolist())) == 1 and int(cap.sum()) <= 150:
        want = erlang_c_response(float(used[0]), int(cap.sum()), lam)
        if abs(lo - want) > 1e-6 * want or abs(up - want) > 1e-6 * want:
            p.append(f"equal rates: bounds ({lo}, {up}) != Erlang C {want}")
    return p


@st.composite
def jffc_case(draw):
    n = draw(st.integers(0, 5))
    rates = draw(st.lists(st.one_of(small_floats(1e-3, 10.0), st.sampled_from([1.0, 0.25])),
                          min_size=n, max_size=n))
    caps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    case = {"rates": rates, "caps": caps,
            "rate": draw(st.one_of(small_floats(1e-3, 20.0), st.sampled_from([1.5, 2.0])))}
    w = draw(st.integers(0, 7))
    if w == 0 and n:
        case["rates"][draw(st.integers(0, n - 1))] = draw(extreme_number)
    elif w == 1 and n:
        case["caps"][draw(st.integers(0, n - 1))] = draw(st.one_of(extreme_number, weird_value))
    elif w == 2:
        case["rate"] = draw(weird_value)
    elif w == 3:
        case[draw(st.sampled_from(["rates", "caps"]))] = draw(st.one_of(
            weird_value, st.just([[1.0, 2.0]]), st.just(np.ones((2, 2)).tolist())))
    elif w == 4:
        case["caps"] = case["caps"] + [1]
    return case


def _safe_float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# ------------------------------------------------------------------------------------------
# calibration
# ------------------------------------------------------------------------------------------
NAMES = ["s0", "s1", "s2", "gpu a", "ü-3"]


@st.composite
def damaged_bytes(draw, data: bytes) -> bytes:
    """:func:`corrupt` one time in four (hypothesis favours its truncation)."""
    return draw(corrupt(data)) if draw(st.integers(0, 3)) == 2 else data


@st.composite
def measurements_csv(draw, names=None) -> tuple[bytes, bool, list[str]]:
    """(bytes, exact, server names): rows generated from a true profile (exact: no noise,
    no damage, every server in rows of two prompt lengths and chains of two lengths), or
    damaged rows/headers/bytes."""
    names = names or draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    dec = {n: draw(small_floats(0.5, 20.0)) for n in names}
    pre_i = {n: draw(small_floats(0.0, 30.0)) for n in names}
    pre_t = {n: draw(small_floats(0.0, 2.0)) for n in names}
    hop = draw(small_floats(0.0, 50.0))
    phop = draw(small_floats(0.0, 50.0))
    phop_t = draw(small_floats(0.0, 1.0))
    rows = []
    n_rows = draw(st.integers(1, 30))
    for r in range(n_rows):
        hops = draw(st.integers(1, min(3, len(names))))
        chain = draw(st.permutations(names))[:hops]
        blocks = [draw(st.integers(1, 8)) for _ in chain]
        rtt = [float(draw(st.integers(0, 40))) for _ in chain]
        l_in = draw(st.sampled_from([4, 16, 64]))
        l_out = draw(st.integers(1, 64))
        tok = sum(x + hop + dec[s] * k for s, k, x in zip(chain, blocks, rtt))
        ttft = sum(x + phop + phop_t * l_in + k * (pre_i[s] + pre_t[s] * l_in)
                   for s, k, x in zip(chain, blocks, rtt))
        rows.append([">".join(chain), ">".join(map(str, blocks)),
                     ">".join(f"{x:g}" for x in rtt), str(l_in), str(l_out), repr(ttft),
                     repr(tok)])
    header = ["servers", "blocks", "rtt_ms", "input_tokens", "output_tokens", "ttft_ms",
              "token_ms"]
    broken = False
    op = (draw(st.integers(0, 14)) + 8) % 15        # (hypothesis favours 0: a valid file)
    if op == 0:                                     # a column missing or renamed
        i = draw(st.integers(0, 6))
        if draw(st.booleans()):
            header.pop(i)
            rows = [row[:i] + row[i + 1:] for row in rows]
        else:
            header[i] = header[i].upper()
        broken = True
    elif op == 1:                                   # a weird cell
        r, i = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, 6))
        rows[r][i] = draw(st.sampled_from(
            ["nan", "-1", "inf", "-inf", "", "1e308", "0", "-0", "1e999", "x", "1.5", "a>b>c",
             ">", "s0>", "9999999999999999999999", "1>2", "NaN>1", "0>0", "\u00e9"]))
        broken = True
    elif op == 2:                                   # extra and reordered columns: still valid
        header.append("run")
        rows = [row + [f"r{k}"] for k, row in enumerate(rows)]
        perm = draw(st.permutations(range(len(header))))
        header = [header[i] for i in perm]
        rows = [[row[i] for i in perm] for row in rows]
    elif op == 3:                                   # a short or long row
        r = draw(st.integers(0, len(rows) - 1))
        rows[r] = rows[r][:-1] if draw(st.booleans()) else rows[r] + ["x"]
        broken = True
    elif op == 4:                                   # one row only
        rows = rows[:1]
    elif op == 5:                                   # no rows
        rows = []
        broken = True
    elif op == 6:                                   # a negative or zero time
        r = draw(st.integers(0, len(rows) - 1))
        rows[r][draw(st.sampled_from([5, 6]))] = draw(st.sampled_from(["-5", "0", "1e-320"]))
        broken = True
    elif op == 7:                                   # huge times
        r = draw(st.integers(0, len(rows) - 1))
        rows[r][draw(st.sampled_from([2, 5, 6]))] = draw(st.sampled_from(
            ["1e300", "1e308", "1.7976931348623157e308"]))
        broken = True
    text = ",".join(header) + "\n" + "".join(",".join(_csv_cell(x) for x in row) + "\n"
                                              for row in rows)
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data               # a BOM: still valid
    raw = draw(damaged_bytes(data))
    broken = broken or raw != data
    return raw, not broken, names


def _csv_cell(x: str) -> str:
    return f'"{x}"' if ("," in x or '"' in x) else x


def profile_dict(draw, names) -> dict:
    servers = {n: {"decode_ms": draw(small_floats(0.0, 20.0)),
                   "prefill_ms_intercept": draw(small_floats(0.0, 30.0)),
                   "prefill_ms_per_token": draw(small_floats(0.0, 2.0))} for n in names}
    return {"servers": servers, "hop_overhead_ms": draw(small_floats(0.0, 100.0)),
            "prefill_hop_overhead_ms": draw(small_floats(0.0, 100.0)),
            "prefill_hop_overhead_ms_per_token": draw(small_floats(0.0, 1.0))}


@st.composite
def profile_file(draw, names) -> bytes:
    from fuzz_values import mutated
    d = profile_dict(draw, names)
    if draw(st.integers(0, 9)) == 0:
        d["servers"][draw(st.sampled_from(names))]["decode_ms"] = draw(st.sampled_from(
            [1e308, 1e300, 1e200, 1.7976931348623157e308]))
    if draw(st.integers(0, 4)) == 0:
        d = draw(mutated(d, max_mutations=2))
    text = json.dumps(d)
    return draw(damaged_bytes(text.encode()))


def check_calibration(c, cal) -> list[str]:
    d = cal.to_dict()
    p = json_problems(d, "Calibration.to_dict()")
    for name, s in d["servers"].items():
        p += need_finite(s, ["decode_ms", "prefill_ms_intercept", "prefill_ms_per_token"],
                         where=f"server {name}: ")
    p += need_finite(d, ["hop_overhead_ms", "prefill_hop_overhead_ms",
                         "prefill_hop_overhead_ms_per_token", "token_rel_error_median",
                         "token_rel_error_p95", "ttft_rel_error_median", "ttft_rel_error_p95"])
    if c.get("exact") and not p:
        # noise-free rows of a full-rank design: the fit reproduces them
        for k in ("token_rel_error_p95", "ttft_rel_error_p95"):
            if d[k] > 1e-6:
                p.append(f"{k} = {d[k]:.3g} on exact measurements (a wrong fit)")
    return p


@st.composite
def calibrate_case(draw):
    data, exact, names = draw(measurements_csv())
    files = {"m.csv": data}
    case = {"files": files, "exact": exact, "path": "m.csv"}
    if draw(st.integers(0, 9)) == 5:
        case["path"] = draw(st.sampled_from(["missing.csv", "dir", "/dev/null"]))
        files["dir"] = None
    if draw(st.integers(0, 3)) == 0:
        v, _, _ = draw(measurements_csv(names if draw(st.booleans()) else None))
        files["v.csv"] = v
        case["validate"] = "v.csv"
    if draw(st.integers(0, 4)) == 0:
        case["classes"] = draw(st.one_of(
            st.just("one"), st.just({names[0]: "g"}), st.just({"nobody": "g"}),
            st.just({n: "g" for n in names}), weird_value))
        case["exact"] = False            # shared constants: the fit need not be exact
    if draw(st.integers(0, 4)) == 0:
        case["servers"] = draw(st.one_of(st.just(names[:1]), st.just(["zz"]),
                                         st.just(names + ["zz"]), weird_value))
    return case


def call_calibrate(c):
    from distalloc.llm import calibrate
    return calibrate(c["path"], servers=c.get("servers"), validate=c.get("validate"),
                     classes=c.get("classes"))


@st.composite
def predict_case(draw):
    data, exact, names = draw(measurements_csv())
    pnames = names if draw(st.integers(0, 3)) else draw(st.lists(
        st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return {"files": {"m.csv": data, "p.json": draw(profile_file(pnames))},
            "exact": exact}


def call_predict(c):
    from distalloc.llm import load_profile, predict, read_measurements
    rows = read_measurements("m.csv")
    prof = load_profile("p.json")
    return predict(prof, rows)


def check_predict(c, pr) -> list[str]:
    p = []
    for k in ("token_ms", "ttft_ms"):
        v = getattr(pr, k)
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            p.append(f"predicted {k} {v[:5]} not finite and >= 0")
    if not p:
        s = pr.summary()
        p += need_finite(s, [k for k in s if k != "token_rel_bias"], where="summary: ")
        p += json_problems(s, "summary()")
    return p


BUILTIN_NAMES = {"clustered": None, "topology:Abvt": None}


@lru_cache(maxsize=None)
def builtin_names(spec: str) -> tuple[str, ...]:
    from distalloc.llm import resolve_scenario
    return tuple(resolve_scenario(spec).server_names)


@st.composite
def apply_case(draw):
    spec = draw(scenario_spec())
    if spec[0] == "dict":
        servers = spec[1].get("servers") if isinstance(spec[1], dict) else None
        names = [s.get("name", "x") if isinstance(s, dict) else "x"
                 for s in (servers if isinstance(servers, list) else [])]
        names = [n for n in names if isinstance(n, str)] or ["s0"]
    else:
        names = list(builtin_names(spec[1]))
    names = list(dict.fromkeys(names))
    if draw(st.integers(0, 3)) == 0:
        names = names[:-1] or ["nobody"]
    return {"scenario": spec, "files": {"p.json": draw(profile_file(names))},
            "strict": draw(st.one_of(st.booleans(), st.just(True)))}


def call_apply(c):
    from distalloc.llm import apply_profile, load_profile
    return apply_profile(build_scenario(c["scenario"]), load_profile("p.json"),
                         strict=c["strict"])


def check_applied(c, sc) -> list[str]:
    from distalloc.llm import plan
    p = []
    for k in ("decode_ms", "prefill_ms", "rtt_ms", "prefill_rtt_ms"):
        v = np.asarray(getattr(sc, k))
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            p.append(f"applied scenario's {k} not finite and >= 0")
    if not p:
        r = plan(sc, "cg-bprr")
        p += check_plan_dict(r.to_dict(), sc.num_blocks, sc.num_servers)
    return p


# ------------------------------------------------------------------------------------------
# command lines
# ------------------------------------------------------------------------------------------
RESERVATION_CLI = Opt(st.one_of(st.integers(1, 60).map(str), st.just("auto")),
                      st.sampled_from(["0", "-1", "x", "1.5", "99999999999999999999", "",
                                       "9223372036854775807", "nan", "1e3"]))
MEMORY_CLI = Opt(st.sampled_from(["8", "0.5", "2", "0.001"]),
                 st.sampled_from(["0", "-1", "nan", "inf", "1e308", "x", "5e-324"]))
CHURN_CLI = Opt(st.one_of(st.sampled_from(["600", "3600:60", "50:5", "100", "1e4:1"]),
                          st.tuples(small_floats(10.0, 5000.0), small_floats(1.0, 500.0)).map(
                              lambda t: f"{t[0]:.4g}:{t[1]:.4g}")),
                st.sampled_from(["0", "-1", "nan", "inf", "1:2:3", "x", ":", "5:", ":5",
                                 "1e-300", "1e308", "1e308:1e308", "0:1", "1:0", "none",
                                 "5e-324:1", "1e-9", "1:-1"]))


def _names_for(scen: list[str], files: dict) -> list[str]:
    if scen[0] in ("clustered", "topology:Abvt", "topology:Bellcanada"):
        return list(builtin_names(scen[0]))
    data = files.get(scen[0])
    if isinstance(data, bytes) and scen[0].endswith(".json"):
        try:
            names = [s["name"] for s in json.loads(data)["servers"]]
            names = list(dict.fromkeys(n for n in names if isinstance(n, str)))
            if names:
                return names
        except Exception:  # noqa: BLE001 - a damaged file: any names
            pass
    return ["s0", "s1", "s2"]


CHAIN_SPEC = {"--reservation": RESERVATION_CLI,
              "--target-load": cli_number(small_floats(0.05, 0.99)),
              "--max-memory-gb": MEMORY_CLI}


@st.composite
def chain_flags(draw, scen, files, method) -> tuple[list[str], dict]:
    """--placement FILE, --profile FILE (the other chain options are in CHAIN_SPEC)."""
    argv = []
    extra = {}
    if draw(st.integers(0, 5)) == 0:
        extra["pl.json"] = draw(st.one_of(
            st.just(b"[]"), st.just(b"{}"), st.just(b"[{\"server\": 0}]"), st.just(b"\xff["),
            st.just(json.dumps([{"server": 0, "first_block": 0, "num_blocks": 1}]).encode()),
            st.just(b"[{\"server\": 0, \"first_block\": 0, \"num_blocks\": 99999999999}]")))
        argv += ["--placement", draw(st.sampled_from(["pl.json", "pl.json", "nope.json"]))]
    if draw(st.integers(0, 5)) == 0:
        extra["prof.json"] = draw(profile_file(_names_for(scen, files)))
        argv += ["--profile", draw(st.sampled_from(["prof.json", "prof.json", "nope.json"]))]
    return argv, extra


@st.composite
def plan_chains_case(draw) -> dict:
    scen, files = draw(llm_scenario_arg(allow_big=False))
    method = draw(st.sampled_from(["chains", "chains", "jffc-whole"]))
    spec = _for_scenario({"--rate": cli_number(small_floats(0.01, 5.0)), "--json": None,
                          "--seed": cli_number(st.integers(0, 5)), **CHAIN_SPEC}, scen)
    extra_argv, extra = draw(chain_flags(scen, files, method))
    argv = ["llm", "plan", *scen, "--method", method, *draw(flags(spec)), *extra_argv]
    if draw(st.integers(0, 8)) == 0:
        argv += ["--plot", draw(st.sampled_from(["c.png", "c.xyz"]))]
    return {"argv": argv, "files": {**files, **extra}}


@json_check
def check_plan_chains(case, d) -> list[str]:
    p = check_plan_dict(d)
    if d.get("feasible"):
        first = {e["server"]: e["first_block"] for e in d.get("placement") or []}
        num = {e["server"]: e["num_blocks"] for e in d.get("placement") or []}
        S = 1 + max([*first, *[j for ch in d.get("chains", []) for j in ch["servers"]], 0])
        a = [first.get(j, 0) for j in range(S)]
        m = [num.get(j, 0) for j in range(S)]
        L = max([x + y for x, y in zip(a, m)] + [0])
        for q, ch in enumerate(d.get("chains", [])):
            p += route_problems(ch["servers"], a, m, L, ch.get("blocks"), f"chain {q}")
            if not (isinstance(ch["capacity"], int) and ch["capacity"] >= 1):
                p.append(f"chain {q} capacity {ch['capacity']!r}")
            if not (_finite(ch["service_s"]) and ch["service_s"] > 0):
                p.append(f"chain {q} service_s {ch['service_s']!r}")
        lo, up = d.get("bound_lower_s"), d.get("bound_upper_s")
        p += bounds_problems(lo, up)
    return p


@st.composite
def simulate_online_case(draw) -> dict:
    from fuzz_cli import _online_spec, _trace_option
    scen, files = draw(llm_scenario_arg(allow_big=False))
    method = draw(st.sampled_from(["chains", "chains", "jffc-whole", "cg-bprr", "petals"]))
    spec = _for_scenario(_online_spec(), scen)
    del spec["--method"], spec["--client-weights"]      # (fuzzed by 'llm simulate')
    if method in ("chains", "jffc-whole"):
        spec.update(CHAIN_SPEC)
    else:
        spec["--max-memory-gb"] = MEMORY_CLI
    spec["--service"] = Opt(st.sampled_from(["model", "exponential"]), st.just("gamma"))
    spec["--churn"] = CHURN_CLI
    spec["--num-requests"] = cli_number(st.integers(1, 60))
    argv = ["llm", "simulate", *scen, "--method", method, *draw(flags(spec))]
    trace, tfiles = _trace_option(draw)
    if trace:
        argv += trace
        if draw(st.booleans()):
            argv += ["--trace-format", draw(st.sampled_from(["azure", "burstgpt", "mooncake",
                                                            "csv"]))]
        if tfiles.get("trace.csv") is not None and draw(st.integers(0, 3)) == 0:
            tfiles["trace.csv"] = draw(mooncake_file())
    elif draw(st.integers(0, 12)) == 0:
        argv += ["--trace-format", "azure"]          # without --trace: refused
    if method in ("chains", "jffc-whole"):
        extra_argv, extra = draw(chain_flags(scen, files, method))
    else:
        extra_argv, extra = [], {}
        if draw(st.integers(0, 5)) == 0:
            extra["prof.json"] = draw(profile_file(_names_for(scen, files)))
            extra_argv = ["--profile", "prof.json"]
        if draw(st.integers(0, 7)) == 0:
            extra_argv += ["--reservation", "3"]    # a chain option: refused
    if "--num-requests" not in argv and not trace:
        argv += ["--num-requests", str(draw(st.integers(1, 60)))]
    return {"argv": argv + extra_argv, "files": {**files, **tfiles, **extra}}


@st.composite
def mooncake_file(draw) -> bytes:
    lines = []
    t = 0
    for _ in range(draw(st.integers(0, 12))):
        t += draw(st.sampled_from([0, 10, 500, 3000]))
        row = {"timestamp": t, "input_length": draw(st.integers(0, 4000)),
               "output_length": draw(st.integers(0, 300))}
        if draw(st.integers(0, 12)) == 0:
            row[draw(st.sampled_from(list(row)))] = draw(weird_value)
        lines.append(json.dumps(row))
    if draw(st.integers(0, 10)) == 0:
        lines.append("{not json")
    return draw(damaged_bytes(("\n".join(lines) + "\n").encode()))


@json_check
def check_simulate_online(case, d) -> list[str]:
    p = check_simulate_dict(d)
    for k in ("mean_response_s", "p95_response_s"):
        if k in d:
            p += need_finite(d, [k])
    if "availability" in d and d["availability"] is not None and not (
            _finite(d["availability"]) and -1e-9 <= d["availability"] <= 1 + 1e-9):
        p.append(f"availability {d['availability']!r}")
    for k in ("interrupted", "failures", "lost_tokens", "dropped"):
        if k in d and d[k] is not None and not (isinstance(d[k], int) and d[k] >= 0):
            p.append(f"{k} {d[k]!r}")
    if "lost_token_s" in d and d["lost_token_s"] is not None:
        p += need_finite(d, ["lost_token_s"])
    if "bound_lower_s" in d:
        p += bounds_problems(d.get("bound_lower_s"), d.get("bound_upper_s"))
    return p


@st.composite
def calibrate_cli_case(draw) -> dict:
    data, exact, names = draw(measurements_csv())
    files = {"m.csv": data, "dir": None}
    argv = ["llm", "calibrate", draw(st.sampled_from(["m.csv"] * 8 + ["missing.csv", "dir"]))]
    if draw(st.integers(0, 3)) == 0:
        v, _, _ = draw(measurements_csv(names if draw(st.booleans()) else None))
        files["v.csv"] = v
        argv += ["--validate", "v.csv"]
    if draw(st.integers(0, 4)) == 0:
        argv += ["--classes", draw(st.sampled_from(
            ["one", f"{names[0]}=g", "nobody=g", "=", "a", ",", f"{names[0]}="]))]
        exact = False
    if draw(st.integers(0, 3)) == 0:
        argv += ["--out", draw(st.sampled_from(["p.json", "p.json", "dir", "no/p.json"]))]
    if draw(st.integers(0, 2)):
        argv.append("--json")
    return {"argv": argv, "files": files, "exact": exact}


def check_calibrate_cli(case, result) -> list[str]:
    from pathlib import Path
    p = []
    if "--out" in case["argv"]:
        out = Path(case["argv"][case["argv"].index("--out") + 1])
        try:
            from distalloc.llm import load_profile
            load_profile(out)
        except Exception as exc:  # noqa: BLE001
            p.append(f"--out {out} does not load back: {type(exc).__name__}: {exc}")
    if "--json" not in case["argv"]:
        return p
    d = _json(result)
    if d is None:
        return p + ["stdout is not JSON"]

    class _Cal:                      # check_calibration reads a Calibration's to_dict()
        def to_dict(self):
            return d
    return p + check_calibration(case, _Cal())


# ------------------------------------------------------------------------------------------
# distalloc.llm.simulate with the online options: chains, churn, service, dispatch
# ------------------------------------------------------------------------------------------
CHURN_API = Opt(st.one_of(st.none(), st.sampled_from([600.0, "3600:60", (50.0, 5.0), "100", 0,
                                                      "none", (1e4,)])),
                st.one_of(st.sampled_from([math.nan, -1.0, (1.0, 2.0, 3.0), "1:2:3", (0.0, 1.0),
                                           1e-300, "x", (math.inf, 1.0), [], {}, 1e308,
                                           (1e308, 1e308), "5e-324"]), weird_value))


@st.composite
def simulate_online_api_case(draw):
    kind = draw(st.integers(0, 5))
    scen = (("builtin", "clustered", None) if kind < 2 else
            ("dict", draw(scenario_dict())) if kind < 5 else draw(scenario_spec()))
    method = _rarely_weird(draw, api_arg(st.sampled_from(
        ["chains", "chains", "jffc-whole", "cg-bprr", "petals", "petals-opt-routing"])))
    kw = {"num_requests": _rarely_weird(draw, api_arg(st.integers(1, 60))),
          "rate_per_s": _rarely_weird(draw, api_arg(small_floats(0.05, 3.0))),
          "seed": draw(st.integers(0, 5))}
    kw["churn"] = _rarely_weird(draw, CHURN_API)
    if draw(st.booleans()):
        kw["service"] = _rarely_weird(draw, Opt(st.sampled_from(["model", "exponential"]),
                                                st.sampled_from(["gamma", None, 1])))
    if draw(st.integers(0, 3)) == 1:
        kw["noise"] = _rarely_weird(draw, api_arg(small_floats(0.0, 1.0)))
    chained = method in ("chains", "jffc-whole")
    if chained or draw(st.integers(0, 9)) == 3:      # (or refused for the other methods)
        for k in ("reservation", "target_load", "client_groups"):
            if draw(st.integers(0, 2)) == 1:
                kw[k] = _rarely_weird(draw, CHAIN_KW[k] if k != "reservation" else RESERVATION)
        if draw(st.integers(0, 3)) == 1:
            kw["design_rate_per_s"] = _rarely_weird(draw, api_arg(small_floats(0.05, 3.0)))
        if draw(st.integers(0, 4)) == 1:
            kw["dispatch"] = draw(st.sampled_from(GOOD_DISPATCHERS * 3 + DISPATCHERS))
    elif draw(st.integers(0, 3)) == 1:
        kw["reroute_waiting"] = True
    if draw(st.integers(0, 5)) == 1:
        kw["max_memory_gb"] = _rarely_weird(draw, api_arg(st.sampled_from([8.0, 1e-6])))
    return {"scenario": scen, "method": method, "kw": kw}


def call_simulate_online(c):
    from distalloc.llm import simulate
    kw = dict(c["kw"])
    if isinstance(kw.get("dispatch"), str):
        kw["dispatch"] = _dispatch(kw["dispatch"])
    return simulate(build_scenario(c["scenario"]), c["method"], **kw)


def check_simulate_online_api(c, r) -> list[str]:
    d = r.to_dict()
    p = json_problems({k: v for k, v in d.items() if k != "join_order"}, "to_dict()")
    p += check_simulate_online({"argv": ["--json"]}, ("cli", 0, json.dumps(d, default=str), ""))
    served = np.asarray(r.served)
    for k in ("token_s", "end_s"):
        v = np.asarray(getattr(r, k))[served]
        if v.size and (not np.all(np.isfinite(v)) or np.any(v < 0)):
            p.append(f"{k} of a served request not finite and >= 0")
    start = np.asarray(r.workload.arrival_s)[served]
    if served.any() and np.any(np.asarray(r.end_s)[served] < start - 1e-9):
        p.append("a request ends before it arrives")
    return p


# ------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------
def _run_dispatch(c):
    from distalloc.llm import compiled_dispatch
    cb = compiled_dispatch(_dispatch(c["f"]))
    if c["use"]:
        from distalloc.llm import Swarm, clustered
        sw = Swarm(clustered(), method="chains", dispatch=cb)
        for t in range(c["use"]):
            sw.route(t % 3, float(t))
        return ("swarm", sw.to_dict())
    return ("callback", cb)


def _check_dispatch(c, r):
    kind, v = r
    if c["f"] not in ("fastest", "most_free", "nan_score", "llc"):
        return [f"compiled_dispatch accepted {c['f']!r}"]
    if kind == "swarm":
        return json_problems(v, "Swarm.to_dict()")
    return [] if isinstance(v.address, int) and v.address else ["no address"]


LLM_ONLINE_ENTRIES: list[EntryPoint] = [
    api_entry("distalloc.llm.Swarm (route/finish/leave/join/rebalance)", swarm_case(),
              run_swarm, lambda c, r: r["problems"], weight=1.2),
    api_entry("distalloc.llm.compose_chains", compose_case(), call_compose, check_composition,
              weight=0.6),
    api_entry("distalloc.llm.gbp_cr", args_dict({
        "scenario": scenario_spec(), "reservation": api_arg(st.integers(1, 60)),
        "rate_per_s": api_arg(small_floats(0.01, 5.0)),
        "target_load": api_arg(small_floats(0.05, 0.99)),
        "client_groups": api_arg(st.sampled_from(["one", "each", "auto", [0, 1], [0]]))}),
        call_gbp_cr, check_gbp_cr, weight=0.4),
    api_entry("distalloc.llm.gca", gca_case(), call_gca, check_gca, weight=0.4),
    api_entry("distalloc.llm.jffc_bounds", jffc_case(),
              lambda c: __import__("distalloc.llm", fromlist=["x"]).jffc_bounds(
                  c["rates"], c["caps"], c["rate"]), check_jffc_bounds, weight=0.6),
    api_entry("distalloc.llm.compiled_dispatch", st.fixed_dictionaries({
        "f": st.sampled_from(DISPATCHERS), "use": st.sampled_from([0, 0, 5])}),
        _run_dispatch, _check_dispatch, weight=0.3),
    api_entry("distalloc.llm.calibrate (read_measurements)", calibrate_case(), call_calibrate,
              check_calibration, weight=0.6),
    api_entry("distalloc.llm.predict (load_profile)", predict_case(), call_predict,
              check_predict, weight=0.3),
    api_entry("distalloc.llm.apply_profile", apply_case(), call_apply, check_applied,
              weight=0.3),
    api_entry("distalloc.llm.simulate (chains, churn, service, dispatch)",
              simulate_online_api_case(), call_simulate_online, check_simulate_online_api,
              weight=0.8),
    cli_entry("llm plan --method chains|jffc-whole", plan_chains_case(), check_plan_chains,
              weight=0.5),
    cli_entry("llm simulate (chains, churn, service, profile, trace-format)",
              simulate_online_case(), check_simulate_online, weight=0.8),
    cli_entry("llm calibrate", calibrate_cli_case(), check_calibrate_cli, weight=0.5),
]
