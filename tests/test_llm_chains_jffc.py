"""JFFC: the compiled simulator (the online engine's event loop with the 'jffc' policy)
against a pure-Python event loop (same decisions, request by request), against the exact
truncated CTMC of JFFC within confidence intervals and between Theorem 4's bounds; --service
for every method; the CLI contract of SPEC 1.10."""
import heapq
import json
import math

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings, strategies as st
from scipy import stats

from conftest import random_scenario_dict, two_chain_scenario
from distalloc._compiled import swarm_kernels
from distalloc.cli import main
from distalloc import ValidationError
from distalloc.llm import clustered, compiled_dispatch, jffc_bounds, scenario_from_dict
from distalloc.llm.chains import compose_chains
from distalloc.llm.jffc import chain_times_ms
from distalloc.llm.simulation import ONLINE_METHODS, simulate


# ------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------
def naive_jffc(cap, rank, service, arrival, client, home=None, group=None, score=None):
    """JFFC with one central FCFS queue, heapq event loop: (start, chain) per request.
    Completions before arrivals at equal times, completions in request order.  With client
    groups, a client takes its group's chains first (home[k] == group[client]).  With a
    ``score(service_s, wait_s, free_slots, client)``: the free chain of lowest score
    (NaN as +inf), ties by the rule above."""
    K, N = len(cap), len(arrival)
    busy = [0] * K
    queue, heap = [], []
    start, chain = [math.nan] * N, [-1] * N
    i = 0
    while i < N or heap:
        if heap and (i == N or heap[0][0] <= arrival[i]):
            now, r = heapq.heappop(heap)
            k = chain[r]
            if queue:
                q = queue.pop(0)
                start[q], chain[q] = now, k
                heapq.heappush(heap, (now + service[q][k], q))
            else:
                busy[k] -= 1
            continue
        now, r = arrival[i], i
        i += 1
        free = [k for k in range(K) if busy[k] < cap[k]]
        if not free:
            queue.append(r)
            continue
        g = -1 if home is None else group[client[r]]
        c = client[r]

        def key(k):
            x = 0.0 if score is None else score(rank[c][k] / 1000.0, 0.0, cap[k] - busy[k], c)
            return (math.inf if x != x else x, g < 0 or home[k] != g, rank[c][k], k)
        k = min(free, key=key)
        busy[k] += 1
        start[r], chain[r] = now, k
        heapq.heappush(heap, (now + service[r][k], r))
    return start, chain


def ctmc_mean_response(mu, cap, lam, qmax=400):
    """Exact mean response time of JFFC (chains sorted fastest first) from its CTMC with the
    queue truncated at qmax (arrivals to a full truncated queue are lost)."""
    K = len(mu)
    occ = list(np.ndindex(*[c + 1 for c in cap]))
    full = tuple(cap)
    states = [(z, 0) for z in occ] + [(full, q) for q in range(1, qmax + 1)]
    index = {s: n for n, s in enumerate(states)}
    rows, cols, vals = [], [], []

    def add(a, b, rate):
        if rate > 0:
            rows.append(index[a]); cols.append(index[b]); vals.append(rate)
    for z, q in states:
        s = (z, q)
        free = [l for l in range(K) if z[l] < cap[l]]
        if free:
            z2 = list(z); z2[free[0]] += 1
            add(s, (tuple(z2), 0), lam)
        elif q < qmax:
            add(s, (z, q + 1), lam)
        if q > 0:
            add(s, (z, q - 1), sum(c * m for c, m in zip(cap, mu)))
        else:
            for l in range(K):
                if z[l]:
                    z2 = list(z); z2[l] -= 1
                    add(s, (tuple(z2), 0), z[l] * mu[l])
    n = len(states)
    Q = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    Q = Q - sp.diags(np.asarray(Q.sum(axis=1)).ravel())
    A = Q.T.tolil()
    A[0, :] = 1.0
    b = np.zeros(n)
    b[0] = 1.0
    pi = spla.spsolve(A.tocsr(), b)
    jobs = np.array([sum(z) + q for z, q in states])
    lost = pi[index[(full, qmax)]]
    return float(pi @ jobs) / (lam * (1 - lost))


def jffc_simulate(cap, rank, home, group, pre, tok, arrival, client, out_tok, factor,
                  delay=0.0, score=None):
    """The simulator's event loop around a 'jffc' engine whose chains are given as tables:
    K servers holding the one block, chain k = server k with cap[k] slots, client c's job on
    it taking (pre[c, k] + (l - 1) tok[c, k]) x factor, ranked by rank[c, k].  Returns
    (start, end, first token, wait, chain, events)."""
    K, C, N = len(cap), rank.shape[0], len(arrival)
    cap = np.asarray(cap, dtype=np.int64)
    zeros = np.zeros(K)
    eng = swarm_kernels.Engine(
        np.zeros(K, dtype=np.int64), np.ones(K, dtype=np.int64), 1, np.zeros((C, K)),
        np.zeros((C, K)), zeros, zeros, np.zeros((C, K)), zeros, 1.0 + cap, zeros, zeros,
        zeros, np.ones(K, dtype=np.int64), zeros, 1.0, 1.0, 1, swarm_kernels.POLICIES["jffc"],
        swarm_kernels.JOIN_RULES["chains"], 1e4, 0.75)
    eng.set_chains(np.arange(K), np.ones(K, dtype=np.int64), np.arange(K + 1), cap,
                   np.ones(K), np.asarray(home if len(home) else np.full(K, -1)),
                   np.asarray(pre, float), np.asarray(tok, float), np.asarray(rank, float),
                   np.full(K, -1), np.zeros((0, K)), zeros, zeros, np.asarray(group, np.int64),
                   1.0)
    if score is not None:
        eng.set_score(score.address, score)
    out = [np.empty(N) for _ in range(4)] + [np.empty(N, dtype=np.int64) for _ in range(4)]
    chains, events, *_ = swarm_kernels.simulate(
        eng, np.asarray(arrival, float), np.asarray(client, np.int64),
        np.asarray(out_tok, np.int64), np.asarray(factor, float), delay, 1e3, 6e4, 10,
        0.0, 0.0, 0, *out)
    start, end, ttft, wait, _, _, offset, _ = out
    chain = np.where(offset >= 0, chains[np.maximum(offset, 0)], -1)
    return start, end, ttft, wait, chain, events


def run_kernel(cap, mu, lam, n, seed):
    """JFFC with one client and Exp(1) work: per-job response times (s)."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / lam, n)) * 1000.0
    factor = rng.exponential(1.0, n)
    T = (1000.0 / np.asarray(mu))[None, :]
    K = len(cap)
    none = np.zeros(0, dtype=np.int64)
    _, end, *_ = jffc_simulate(cap, T, none, none, T, np.zeros((1, K)), arrival,
                               np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64), factor)
    return (end - arrival) / 1000.0


# ------------------------------------------------------------------------------------------
# The compiled loop makes the reference's decisions
# ------------------------------------------------------------------------------------------
def random_jffc_case(rng, max_chains, max_slots):
    """Chains, clients and requests on integer times (many ties between arrivals and
    completions, and between chains); client groups (home chains first) half the time."""
    K, C = int(rng.integers(1, max_chains + 1)), int(rng.integers(1, 3))
    N = int(rng.integers(1, 60))
    cap = rng.integers(1, max_slots + 1, K)
    rank = rng.integers(1, 6, (C, K)).astype(float)
    pre = rng.integers(0, 4, (C, K)).astype(float)
    tok = rng.integers(0, 3, (C, K)).astype(float)
    arrival = np.sort(rng.integers(0, 40, N)).astype(float)
    client = rng.integers(0, C, N)
    out_tok = rng.integers(1, 4, N)
    home = group = np.zeros(0, dtype=np.int64)
    if rng.random() < 0.5:
        G = int(rng.integers(1, 3))
        home, group = rng.integers(-1, G, K), rng.integers(-1, G, C)
    return cap, rank, home, group, pre, tok, arrival, client, out_tok


def naive_for(case, score=None):
    """The pure-Python JFFC loop on the same case."""
    cap, rank, home, group, pre, tok, arrival, client, out_tok = case
    service = [[pre[c, k] + (n - 1) * tok[c, k] for k in range(len(cap))]
               for c, n in zip(client, out_tok)]
    return naive_jffc(cap.tolist(), rank.tolist(), service, arrival.tolist(), client.tolist(),
                      home.tolist() if home.size else None,
                      group.tolist() if group.size else None, score=score)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=60)
def test_kernel_matches_naive_jffc_decision_by_decision(seed):
    case = random_jffc_case(np.random.default_rng(seed), max_chains=4, max_slots=3)
    want_start, want_chain = naive_for(case)
    arrival = case[6]
    N = len(arrival)
    start, end, ttft, wait, chain, events = jffc_simulate(*case, np.ones(N))
    assert chain.tolist() == want_chain
    np.testing.assert_array_equal(start, want_start)
    np.testing.assert_array_equal(wait, start - arrival)
    assert events == 2 * N
    # the queue is served FCFS: start times in arrival order among jobs that waited
    waited = np.flatnonzero(wait > 0)
    assert np.all(np.diff(start[waited]) >= 0)


# ------------------------------------------------------------------------------------------
# A user's dispatch score (SPEC 5.2), called through its C function pointer
# ------------------------------------------------------------------------------------------
def _score(chain_service_s, wait_s, free_slots, client):
    # uses every argument; NaN for one case, ties for others
    if free_slots == 3:
        return math.nan
    return round(chain_service_s * (1 + client) - 0.004 * free_slots + wait_s, 3)


SCORE = numba.cfunc("float64(float64, float64, int64, int64)")(_score)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=40)
def test_kernel_with_a_user_score_matches_naive(seed):
    """Through the function pointer: every arrival takes the free chain of lowest score
    (ties and NaN by the built-in ranking), as the pure-Python loop with the same function."""
    case = random_jffc_case(np.random.default_rng(seed), max_chains=5, max_slots=4)
    want_start, want_chain = naive_for(case, score=_score)
    start, *_, chain, _ = jffc_simulate(*case, np.ones(len(case[6])),
                                        score=compiled_dispatch(SCORE))
    assert chain.tolist() == want_chain
    np.testing.assert_array_equal(start, want_start)


@numba.cfunc("float64(float64, float64, int64, int64)")
def builtin_as_callback(chain_service_s, wait_s, free_slots, client):
    """JFFC: the fastest free chain for this client."""
    return chain_service_s


@numba.cfunc("float64(float64, float64, int64, int64)")
def constant(chain_service_s, wait_s, free_slots, client):
    return 0.0


@pytest.mark.parametrize("clients,rate,groups,fn", [
    (1, 3.0, "auto", builtin_as_callback),      # one client: no groups
    (4, 3.0, "one", constant),                  # one group of four clients
    (4, 3.0, "auto", constant),                 # four groups
    (0, 3.0, "auto", builtin_as_callback),      # clustered: one chain, a long queue
])
def test_builtin_rule_as_a_callback_gives_identical_records(clients, rate, groups, fn):
    """The built-in JFFC rule written as a user callback: the same seed gives the same
    records, request for request (chains, start, end, first token, wait, events).  Without
    client groups JFFC is 'lowest chain_service_s'; with groups the built-in ranks the
    group's chains first, which a score cannot see, and a constant score (every tie to the
    built-in ranking) reproduces it."""
    from distalloc.llm import synthetic_scenario
    sc = synthetic_scenario(200, 96, num_clients=clients, seed=0) if clients else clustered()
    kw = dict(rate_per_s=rate, num_requests=3000, seed=5, noise=0.3, client_groups=groups)
    ref = simulate(sc, "chains", **kw)
    got = simulate(sc, "chains", dispatch=compiled_dispatch(fn), **kw)
    assert ref.to_dict()["num_chains"] > 1 or not clients
    for r in range(3000):
        assert got.route(r) == ref.route(r)
    for x in ("start_s", "end_s", "first_token_s", "wait_s"):
        np.testing.assert_array_equal(getattr(got, x), getattr(ref, x))
    assert got.events == ref.events and got.to_dict()["dispatch"].startswith("compiled:")


def test_a_different_score_changes_the_decisions():
    from distalloc.llm import synthetic_scenario

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def most_free(chain_service_s, wait_s, free_slots, client):
        return -free_slots
    sc = synthetic_scenario(200, 96, num_clients=4, seed=0)
    ref = simulate(sc, "chains", rate_per_s=3.0, num_requests=2000, seed=0)
    got = simulate(sc, "chains", rate_per_s=3.0, num_requests=2000, seed=0, dispatch=most_free)
    assert sum(got.route(r) != ref.route(r) for r in range(2000)) > 100
    assert got.to_dict()["mean_token_s"] > ref.to_dict()["mean_token_s"]


def test_compiled_dispatch_checks_its_signature():
    from scipy import LowLevelCallable

    def plain(chain_service_s, wait_s, free_slots, client):
        return 0.0

    @numba.cfunc("float64(float64, float64, int64, float64)")
    def wrong_args(chain_service_s, wait_s, free_slots, client):
        return 0.0

    @numba.cfunc("int64(float64, float64, int64, int64)")
    def wrong_return(chain_service_s, wait_s, free_slots, client):
        return 0
    llc = LowLevelCallable(wrong_args.ctypes)
    for f, got in ((plain, "plain Python function 'plain'"), (wrong_args, "float64(float64, "
                   "float64, int64, float64)"), (wrong_return, "int64("), (3, "int 3"),
                   (llc, "LowLevelCallable with signature")):
        with pytest.raises(ValidationError) as exc:
            compiled_dispatch(f)
        msg = str(exc.value)
        assert "double score(double chain_service_s, double wait_s, int64 free_slots, int64 " \
               "client)" in msg and got in msg and "\n" not in msg
    ok = compiled_dispatch(LowLevelCallable(constant.ctypes))
    assert ok.address == constant.address
    with pytest.raises(ValidationError, match="only to the chain methods"):
        simulate(clustered(), "cg-bprr", rate_per_s=1.0, num_requests=10, dispatch=constant)
    with pytest.raises(ValidationError, match="'dispatch' parameter applies only"):
        from distalloc.llm import Swarm
        Swarm(clustered(), dispatch=constant)
    with pytest.raises(ValidationError, match="compiled dispatch score"):
        simulate(clustered(), "chains", rate_per_s=1.0, num_requests=10, dispatch=plain)


def test_swarm_routes_with_the_score():
    from distalloc.llm import Swarm

    @numba.cfunc("float64(float64, float64, int64, int64)")
    def slowest(chain_service_s, wait_s, free_slots, client):
        return -chain_service_s
    sc = two_chain_scenario()
    fast = Swarm(sc, method="jffc-whole")
    slow = Swarm(sc, method="jffc-whole", dispatch=compiled_dispatch(slowest))
    assert fast.route(0, 0.0).servers == [0] and slow.route(0, 0.0).servers == [1]
    assert slow.route(0, 0.0).servers == [0]         # the slow chain is full now


# ------------------------------------------------------------------------------------------
# The simulator against the exact CTMC, and Theorem 4 around both
# ------------------------------------------------------------------------------------------
CTMC_CASES = [
    ([1.0, 0.25], [2, 4], 0.5),
    ([1.0, 0.25], [2, 4], 1.5),
    ([1.0, 0.25], [2, 4], 2.5),
    ([2.0, 1.0, 0.4], [1, 2, 2], 2.5),
]


@pytest.mark.parametrize("mu,cap,lam", CTMC_CASES)
def test_simulator_matches_exact_ctmc_and_lies_within_theorem4(mu, cap, lam):
    exact = ctmc_mean_response(mu, cap, lam)
    lo, up = jffc_bounds(mu, cap, lam)
    assert lo <= exact <= up
    n, batches = 200_000, 20
    resp = run_kernel(cap, mu, lam, n, seed=12345)[n // 20:]      # drop the empty start
    means = np.array([b.mean() for b in np.array_split(resp, batches)])
    half = stats.t.ppf(0.9995, batches - 1) * means.std(ddof=1) / math.sqrt(batches)
    assert abs(means.mean() - exact) <= half + 0.005 * exact, (means.mean(), exact, half)


def test_end_to_end_simulate_exponential_matches_ctmc():
    """simulate(..., 'chains', service='exponential') on a scenario whose GCA chains are
    known: the mean response time is the CTMC's."""
    d = {"model": {"name": "toy", "num_blocks": 2, "block_gb": 1.0, "cache_gb": 0.25},
         "servers": [{"name": "fast", "memory_gb": 3.0, "decode_ms": 0.0, "prefill_ms": 250.0},
                     {"name": "slow", "memory_gb": 4.5, "decode_ms": 0.0, "prefill_ms": 1000.0}],
         "clients": [{"name": "o"}], "rtt_ms": [[0.0, 0.0]], "prefill_rtt_ms": [[500.0, 2000.0]],
         "workload": {"input_tokens": 1, "output_tokens": 1, "requests": [0]}}
    sc = scenario_from_dict(d)
    placement = [{"server": 0, "first_block": 0, "num_blocks": 2},
                 {"server": 1, "first_block": 0, "num_blocks": 2}]
    comp = compose_chains(sc, placement=placement, rate_per_s=1.0)
    assert [(c.servers, c.capacity, c.service_s) for c in comp.chains] == [((0,), 2, 1.0),
                                                                           ((1,), 5, 4.0)]
    exact = ctmc_mean_response([1.0, 0.25], [2, 5], 1.5)
    res = simulate(sc, "chains", rate_per_s=1.5, num_requests=150_000, seed=7,
                   service="exponential", placement=placement, design_rate_per_s=1.5)
    resp = res.response_s[5000:]
    means = np.array([b.mean() for b in np.array_split(resp, 20)])
    half = stats.t.ppf(0.9995, 19) * means.std(ddof=1) / math.sqrt(20)
    assert abs(means.mean() - exact) <= half + 0.005 * exact
    d = res.to_dict()
    assert d["bound_lower_s"] <= exact <= d["bound_upper_s"]


# ------------------------------------------------------------------------------------------
# simulate(): chains and jffc-whole, --service for every method
# ------------------------------------------------------------------------------------------
def test_simulate_chains_semantics_clustered():
    sc = clustered()
    res = simulate(sc, "chains", rate_per_s=1.0, num_requests=400, seed=3)
    d = res.to_dict()
    for key in ("method", "num_requests", "mean_token_s", "mean_ttft_s", "mean_wait_s",
                "p50_token_s", "p95_token_s", "mean_response_s", "p95_response_s",
                "reservation", "service_rate_per_s", "bound_lower_s", "bound_upper_s"):
        assert key in d
    assert res.dropped == 0 and d["num_requests"] == 400
    # every job ran on one of the composed chains for its model service time
    comp = compose_chains(sc, rate_per_s=res.workload.rate_per_s,
                          client_weights=np.bincount(res.workload.client, minlength=3))
    chains = {tuple(c.servers): q for q, c in enumerate(comp.chains)}
    pre, tok = chain_times_ms(sc, comp)
    wl = res.workload
    for r in range(wl.num_requests):
        k = chains[tuple(res.route(r))]
        c = wl.client[r]
        want = (pre[c, k] + (wl.output_tokens[r] - 1) * tok[c, k]) / 1000.0
        assert res.end_s[r] - res.start_s[r] == pytest.approx(want)
    # never more jobs on a chain than its capacity
    cap = {k: comp.chains[k].capacity for k in range(len(comp.chains))}
    ev = sorted([(res.start_s[r], 1, chains[tuple(res.route(r))]) for r in range(400)]
                + [(res.end_s[r], 0, chains[tuple(res.route(r))]) for r in range(400)])
    busy = dict.fromkeys(cap, 0)
    for _, kind, k in ev:
        busy[k] += 1 if kind else -1
        assert busy[k] <= cap[k]


@pytest.mark.parametrize("method", [m for m in ONLINE_METHODS if m != "milp"])
def test_every_method_takes_service_exponential(method):
    d = random_scenario_dict(np.random.default_rng(11), max_servers=4, max_blocks=4,
                             binding=False)
    for s in d["servers"]:
        s["memory_gb"] = 40.0
    sc = scenario_from_dict(d)
    a = simulate(sc, method, rate_per_s=0.2, num_requests=300, seed=1)
    b = simulate(sc, method, rate_per_s=0.2, num_requests=300, seed=1, service="exponential")
    np.testing.assert_array_equal(a.workload.arrival_s, b.workload.arrival_s)
    sa, sb = a.end_s - a.start_s, b.end_s - b.start_s
    assert np.std(sb / sa) > 0.3            # Exp(1) work: coefficient of variation ~ 1
    assert "mean_response_s" in b.to_dict() and "p95_response_s" in b.to_dict()
    with pytest.raises(Exception, match="'service'"):
        simulate(sc, method, rate_per_s=0.2, num_requests=10, service="gamma")


def test_same_work_draws_for_every_method():
    sc = clustered()
    runs = [simulate(sc, m, rate_per_s=0.1, num_requests=50, seed=2, service="exponential")
            for m in ("cg-bprr", "chains")]
    # at light load both use the 2-A100 chain with no waiting: identical service times
    np.testing.assert_allclose(runs[0].end_s - runs[0].start_s,
                               runs[1].end_s - runs[1].start_s)


def test_jffc_whole_serves_whole_model_chains():
    d = random_scenario_dict(np.random.default_rng(5), max_servers=4, max_blocks=4,
                             binding=False)
    L = d["model"]["num_blocks"]
    d["servers"][0]["memory_gb"] = L * 1.0 + 3 * L * 0.01 + 0.001   # holds L blocks + 3 jobs
    sc = scenario_from_dict(d)
    res = simulate(sc, "jffc-whole", rate_per_s=5.0, num_requests=200, seed=0)
    assert all(len(res.route(r)) == 1 for r in range(200))
    assert res.to_dict()["num_chains"] >= 1
    with pytest.raises(Exception, match="only to the chain methods"):
        simulate(sc, "cg-bprr", rate_per_s=1.0, num_requests=10, reservation=3)


# ------------------------------------------------------------------------------------------
# CLI (SPEC 1.10 contract)
# ------------------------------------------------------------------------------------------
def test_cli_plan_chains_json(tmp_path, capsys):
    assert main(["llm", "plan", "clustered", "--method", "chains", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"reservation", "chains", "service_rate_per_s", "bound_lower_s",
            "bound_upper_s", "routes", "mean_token_ms", "placement"} <= set(d)
    pfile = tmp_path / "placement.json"
    pfile.write_text(json.dumps(d["placement"]))
    assert main(["llm", "plan", "clustered", "--method", "chains", "--placement", str(pfile),
                 "--rate", "0.2", "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["chains"] and e["reservation"] is None
    assert main(["llm", "plan", "clustered", "--method", "chains", "--reservation", "5",
                 "--target-load", "0.5", "--plot", str(tmp_path / "map.png")]) == 0
    out = capsys.readouterr().out
    assert "reservation c = 5" in out and (tmp_path / "map.png").stat().st_size > 1000


def test_cli_simulate_chains_json_and_plot(tmp_path, capsys):
    assert main(["llm", "simulate", "clustered", "--method", "chains", "--num-requests", "60",
                 "--service", "exponential", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"mean_response_s", "p95_response_s", "mean_token_s", "reservation",
            "bound_lower_s", "bound_upper_s"} <= set(d)
    assert main(["llm", "simulate", "clustered", "--method", "jffc-whole", "--json"]) == 2
    assert "jffc-whole needs at least one" in capsys.readouterr().err
    plot = tmp_path / "curve.png"
    assert main(["llm", "simulate", "clustered", "--method", "chains", "--num-requests", "80",
                 "--rate", "1.0", "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 1000


def test_cli_compare_includes_chains(capsys):
    assert main(["llm", "compare", "clustered", "--seeds", "1", "--num-requests", "30",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["methods"]) == {"cg-bprr", "petals", "chains"}
    assert "mean_response_s" in d["methods"]["chains"]


@pytest.mark.parametrize("args,needle", [
    (["llm", "plan", "clustered", "--method", "chains", "--reservation", "0"], "'reservation'"),
    (["llm", "plan", "clustered", "--method", "chains", "--target-load", "1.5"], "'target_load'"),
    (["llm", "plan", "clustered", "--method", "cg-bprr", "--reservation", "3"], "only to"),
    (["llm", "plan", "clustered", "--method", "chains", "--placement", "nope.json"], "does not exist"),
    (["llm", "simulate", "clustered", "--method", "cg-bprr", "--plot", "x.png"], "needs --method chains"),
    (["llm", "simulate", "clustered", "--method", "petals", "--service", "gamma"], "invalid choice"),
])
def test_cli_bad_input_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
