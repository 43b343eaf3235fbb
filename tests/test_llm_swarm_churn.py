"""Churn in the simulator (servers fail and come back): the compiled event loop around the
engine against its pure-Python twin, invariants, and availability against the alternating
renewal process it draws."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from test_llm_simulation import online_scenario
from distalloc import ValidationError
from distalloc.llm import clustered
from distalloc.llm.placement import conservative_block_counts, petals_block_counts
from distalloc.llm.simulation import (ONLINE_METHODS, parse_churn, poisson_workload,
                                      simulate)

CHURN_METHODS = ["cg-bprr", "petals", "petals-opt-routing", "petals-cg-counts"]


def twin_of(sc, res, churn=None):
    """Run the pure-Python twin on ``res``'s placement and arrivals (noise recovered from
    the served requests' service times)."""
    pl, wl = res.placement, res.workload
    budget = np.maximum(np.floor((sc.usable_memory_gb - sc.block_gb * pl.num_blocks)
                                 / sc.cache_gb), 0).astype(int).tolist()
    routing = ONLINE_METHODS[res.method][1]
    return naive.simulate(sc, pl.first_block.tolist(), pl.num_blocks.tolist(),
                          (wl.arrival_s * 1000).tolist(), wl.client.tolist(),
                          wl.output_tokens.tolist(), [1.0] * wl.num_requests,
                          res.allocation_delay_s * 1000, budget, 0 if routing == "ws-rr" else 1,
                          churn=churn)


def run(sc, method, seed, churn, n=50, reroute=False):
    rng = np.random.default_rng(seed)
    return simulate(sc, method, rate_per_s=float(rng.uniform(0.2, 5)), num_requests=n,
                    seed=seed, churn=churn, planned_requests=2, reroute_waiting=reroute)


def churn_twin_args(sc, res, method, reroute=False):
    """The churn dict the twin needs: the same key the simulator drew, the join rule."""
    rule = ONLINE_METHODS[method][0]
    planned = res.planned_requests
    if rule in ("cg-bp", "milp"):
        d = dict(rule="cg-bp", counts=conservative_block_counts(sc, planned).tolist(), R=planned,
                 rank=None)
    else:
        rank = [float(sc.num_servers)] * sc.num_servers
        for i, j in enumerate(res.extra["join_order"]):
            rank[j] = float(i)
        counts = (conservative_block_counts(sc, planned) if rule == "petals-cg-counts"
                  else petals_block_counts(sc))
        d = dict(rule="petals", counts=counts.tolist(), R=planned or 1, rank=rank)
    d.update(mtbf_ms=res.churn.mtbf_s * 1000, mttr_ms=res.churn.mttr_s * 1000,
             key=res.churn.key, reroute=reroute)
    return d


def assert_twin(sc, res, method, reroute=False):
    start, end, _, retries, routes, events, out = twin_of(
        sc, res, churn=churn_twin_args(sc, res, method, reroute))
    assert [res.route(r) for r in range(res.workload.num_requests)] == routes
    assert np.array_equal(np.isnan(res.start_s), np.isnan(start))
    assert np.allclose(res.start_s * 1000, start, rtol=1e-12, atol=1e-9, equal_nan=True)
    assert np.allclose(res.end_s * 1000, end, rtol=1e-12, atol=1e-9, equal_nan=True)
    assert res.retries.tolist() == retries and res.events == events
    assert res.interruptions.tolist() == out["interruptions"]
    log = list(zip(res.churn.time_s * 1000, res.churn.server.tolist(), res.churn.kind.tolist()))
    assert len(log) == len(out["log"])
    assert all(math.isclose(a, b, rel_tol=1e-12) and (j, k) == (jj, kk)
               for (a, j, k), (b, jj, kk) in zip(log, out["log"]))
    assert res.churn.lost_token_s * 1000 == pytest.approx(out["lost_ms"], rel=1e-9, abs=1e-9)
    assert res.churn.lost_tokens == out["lost_tokens"]
    assert res.churn.availability == pytest.approx(
        out["up_ms"] / (out["horizon_ms"] * sc.num_servers), rel=1e-9)
    return out


@given(st.integers(0, 2**32 - 1), st.sampled_from(CHURN_METHODS),
       st.sampled_from(["20", "3:1", "0.5:0.5"]), st.booleans())
@settings(max_examples=30)
def test_churn_kernel_equals_pure_python_twin(seed, method, churn, reroute):
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    reroute = reroute and ONLINE_METHODS[method][1] == "ws-rr"
    assert_twin(sc, run(sc, method, seed, churn, reroute=reroute), method, reroute)


def test_load_aware_join_and_reroute_equal_the_twin_where_they_act():
    """Loaded clustered runs where repaired servers join a busy swarm (CG-BP's join counts
    the free session slots) and, with reroute_waiting, waiting bookings move: the kernel
    equals the twin decision by decision, and the bookings did move."""
    sc = clustered()
    moved = 0
    for seed in range(3):
        for reroute in (False, True):
            res = simulate(sc, "cg-bprr", rate_per_s=2.0, num_requests=80, seed=seed,
                           churn="300:100", planned_requests=10, reroute_waiting=reroute)
            moved += assert_twin(sc, res, "cg-bprr", reroute)["moved"]
    assert moved > 0


@given(st.integers(0, 2**32 - 1), st.sampled_from(CHURN_METHODS))
@settings(max_examples=25)
def test_churn_invariants(seed, method):
    """Every request is served exactly once in the end (servers come back), after it
    arrived; no server of a served chain fails while the session runs; interruptions
    are counted and their progress too."""
    rng = np.random.default_rng(seed)
    sc = online_scenario(rng)
    res = run(sc, method, seed, "2:1", n=40)
    assert res.dropped == 0
    assert np.all(res.start_s >= res.workload.arrival_s - 1e-9)
    assert np.all(res.end_s > res.start_s)
    fails = {}
    for t, j, k in zip(res.churn.time_s, res.churn.server, res.churn.kind):
        if k == 0:
            fails.setdefault(int(j), []).append(t)
    for r in range(40):
        for j in res.route(r):
            assert not any(res.start_s[r] < t < res.end_s[r] for t in fails.get(j, []))
    d = res.to_dict()
    assert d["interrupted"] == int(res.interruptions.sum())
    assert d["lost_token_s"] >= 0 and d["lost_tokens"] >= 0
    if d["interrupted"] == 0:
        assert d["lost_token_s"] == 0 and d["lost_tokens"] == 0
    assert 0 < d["availability"] <= 1
    assert d["failures"] == int(np.sum(res.churn.kind == 0))


def test_churn_reaches_interruptions_and_lost_work():
    sc = clustered()
    wl = poisson_workload(sc, 0.5, 300, seed=3)
    quiet = simulate(sc, "cg-bprr", workload=wl, seed=3)
    busy = simulate(sc, "cg-bprr", workload=wl, seed=3, churn="600:60")
    assert quiet.to_dict()["interrupted"] == 0 and quiet.to_dict()["availability"] == 1.0
    d = busy.to_dict()
    assert d["interrupted"] > 0 and d["lost_token_s"] > 0 and d["lost_tokens"] > 0
    assert d["mean_token_s"] > quiet.to_dict()["mean_token_s"]
    assert busy.dropped == 0


def test_same_seed_same_failures_for_every_method():
    sc = clustered()
    wl = poisson_workload(sc, 0.2, 100, seed=1)
    logs = []
    for method in ("cg-bprr", "petals"):
        res = simulate(sc, method, workload=wl, seed=1, churn="300:30")
        first_fail = {}
        for t, j, k in zip(res.churn.time_s, res.churn.server, res.churn.kind):
            first_fail.setdefault(int(j), t)
        logs.append(first_fail)
    common = set(logs[0]) & set(logs[1])
    assert common and all(logs[0][j] == logs[1][j] for j in common)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_availability_matches_the_renewal_process(seed):
    """Each server alternates Exp(MTBF) up and Exp(MTTR) down: the time-average fraction
    alive tends to MTBF / (MTBF + MTTR).  Starting up biases a finite run upwards by at
    most (MTBF + MTTR) / horizon; the rest is within 5 standard errors."""
    sc = clustered()
    wl = poisson_workload(sc, 0.05, 400, seed=seed)
    res = simulate(sc, "cg-bprr", workload=wl, seed=seed, churn="200:100")
    a = 200 / 300
    horizon = res.end_s[res.served].max()
    cycles = sc.num_servers * horizon / 300
    se = math.sqrt(a * (1 - a) / cycles) * 2       # renewal-reward variance, generous
    assert abs(res.churn.availability - a) <= 5 * se + 300 / horizon


def test_parse_churn():
    assert parse_churn(None) is None and parse_churn("0") is None
    assert parse_churn("3600") == (3600.0, 360.0)
    assert parse_churn("600:30") == (600.0, 30.0)
    assert parse_churn((60, 6)) == (60.0, 6.0)
    for bad in ("-5", "a:b", "1:2:3", "10:0", "nan"):
        with pytest.raises(ValidationError, match="churn"):
            parse_churn(bad)
    with pytest.raises(ValidationError, match="churn"):
        simulate(clustered(), "cg-bprr", rate_per_s=1, num_requests=5, churn="x", seed=0)
