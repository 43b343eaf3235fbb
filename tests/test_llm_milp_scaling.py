"""The MILP that scales (issue 15) and returns what it found (issue 14): the aggregated
formulation against the brute force with many requests per client, formulations and
solvers against each other, the warm start, the answer at the time limit."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import naive
from conftest import random_scenario_dict
from distalloc._validation import ValidationError
from distalloc.cli import main
from distalloc.llm import cg_bprr, petals, plan, scenario_from_dict, solve_milp
import distalloc.llm.milp_solvers as milp_solvers
from distalloc.llm.milp import milp_size
from distalloc.llm.milp_model import build_model, visit_capacity, _upper_hull

pytest.importorskip("ortools", reason="the cp-sat solver's tests need OR-Tools (extra cpsat)")


@pytest.mark.parametrize("seed", range(25))
def test_many_requests_per_client_equal_brute_force(seed):
    """Up to 5 requests of up to 2 clients: flows of 2-5 units, 2-3 bits each (aggregated),
    loads of several sessions per window (window)."""
    rng = np.random.default_rng(50_000 + seed)
    sc = scenario_from_dict(random_scenario_dict(rng, max_servers=3, max_blocks=5,
                                                 max_requests=5))
    opt = naive.brute_force_bprr(sc)
    for formulation, solver in [("aggregated", "highs"), ("aggregated", "cp-sat"),
                                ("window", "highs"), ("window", "cp-sat")]:
        p = solve_milp(sc, formulation=formulation, solver=solver)
        if opt is None:
            assert p.status == "infeasible" and not p.feasible
        else:
            assert p.status == "optimal", p.reason
            assert p.mean_token_ms == pytest.approx(opt, rel=1e-7, abs=1e-7)


@pytest.mark.parametrize("highspy_installed", [True, False])
@pytest.mark.parametrize("warm", [True, False])
def test_highs_paths_equal_brute_force(highspy_installed, warm, monkeypatch):
    """highspy (warm start) and scipy (cutoff row), with and without the heuristic start."""
    monkeypatch.setattr(milp_solvers, "have_highspy", lambda: highspy_installed)
    for seed in range(12):
        sc = scenario_from_dict(random_scenario_dict(np.random.default_rng(60_000 + seed),
                                                     max_requests=4))
        opt = naive.brute_force_bprr(sc)
        for formulation in ("aggregated", "per-request", "window"):
            p = solve_milp(sc, formulation=formulation, cutoff=warm)
            assert p.extra["solver"] == ("highs" if highspy_installed else "highs-scipy")
            if opt is None:
                assert p.status == "infeasible"
            else:
                assert p.status == "optimal"
                assert p.mean_token_ms == pytest.approx(opt, rel=1e-7, abs=1e-7)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_heuristic_plans_encode_as_model_solutions(seed):
    """The warm start is a solution of both models (identical servers permuted into the
    symmetry-breaking order), with the plan's objective; decoding it gives the plan back."""
    d = random_scenario_dict(np.random.default_rng(seed), max_servers=5, max_requests=5)
    if seed % 3 == 0:   # identical servers, so the symmetry rows bind
        d["servers"][1:] = [dict(d["servers"][0], name=f"s{j}") for j in range(1, len(d["servers"]))]
        d["rtt_ms"] = [[row[0]] * len(row) for row in d["rtt_ms"]]
    sc = scenario_from_dict(d)
    for p in (cg_bprr(sc), petals(sc, seed=seed)):
        if not p.feasible:
            continue
        for formulation in ("aggregated", "per-request", "window"):
            model = build_model(sc, formulation)
            x = model.encode(p.placement.first_block, p.placement.num_blocks, p.routes)
            assert model.check(x) is None, formulation
            value = model.cost @ x / sc.num_requests
            if formulation == "window":   # its RTT order may move windows: never dearer
                assert value <= p.mean_token_ms + 1e-9
            else:
                assert value == pytest.approx(p.mean_token_ms)
            a, m, routes = model.decode(x)
            from distalloc.llm.model import Placement, evaluate_routes
            again = evaluate_routes(sc, Placement.from_arrays(a, m), routes, sc.requests)
            assert again.all_valid
            assert float(again.token_ms.mean()) == pytest.approx(value)


def test_visit_capacity_envelope_is_above_every_point():
    sc = scenario_from_dict(random_scenario_dict(np.random.default_rng(3), max_requests=3))
    for j in range(sc.num_servers):
        g = visit_capacity(sc, j, 8)
        for dv, dg, rhs in _upper_hull(g):
            assert all(dv * g[v] - dg * v <= rhs for v in range(len(g)))


@pytest.mark.parametrize("servers, requests, seed", [(4, 2, 0), (4, 3, 1), (5, 2, 2)])
def test_formulations_and_solvers_agree_on_abovenet(servers, requests, seed):
    """The instances of the README table, small enough for every combination to prove."""
    from distalloc.llm.scenario import topology_scenario
    sc = topology_scenario("Abvt", num_servers=servers, seed=seed, num_requests=requests)
    values = {}
    # window/cp-sat is left out: on the window model's ~7 000 columns CP-SAT did not prove
    # even 4 x 2 within 120 s (measured); it is checked on the tiny instances instead
    for formulation, solver in [("aggregated", "highs"), ("aggregated", "cp-sat"),
                                ("per-request", "highs"), ("per-request", "cp-sat"),
                                ("window", "highs")]:
        p = solve_milp(sc, formulation=formulation, solver=solver, time_limit_s=120)
        assert p.status == "optimal", (formulation, solver)
        values[formulation, solver] = p.mean_token_ms
    ref = values["aggregated", "highs"]
    assert all(v == pytest.approx(ref, rel=1e-6) for v in values.values()), values
    cg = cg_bprr(sc)
    assert not cg.feasible or cg.mean_token_ms >= ref - 1e-9


def swarm24(num_requests=4):
    """Issue 14's field fault: 24 servers whose memory fits exactly 3 of BLOOM's 70 blocks
    (plus caches), one client.  Every chain crosses all 24 servers (23 x 3 < 70), the decode
    time is the same everywhere, so every feasible plan costs sum_j rtt_j + 70 tau: CG-BPRR's
    (about 1 900 ms per token) is optimal, and the MILP cannot prove it in seconds."""
    rng = np.random.default_rng(24)
    S = 24
    return scenario_from_dict({
        "model": {"name": "bloom-176b", "num_blocks": 70, "block_gb": 1.32, "cache_gb": 0.00849},
        "servers": [{"name": f"node{j}", "memory_gb": 3 * 1.32 + 0.2, "decode_ms": 3.22,
                     "prefill_ms": 34.5} for j in range(S)],
        "clients": [{"name": "c0"}],
        "rtt_ms": [rng.uniform(60.0, 80.0, S).round(1).tolist()],
        "workload": {"input_tokens": 20, "output_tokens": 128, "requests": [0] * num_requests}})


@pytest.mark.parametrize("solver", ["highs", "cp-sat"])
def test_time_limit_returns_the_best_plan_known(solver):
    sc = swarm24()
    cg = cg_bprr(sc)
    assert cg.feasible and cg.mean_token_ms == pytest.approx(sum(sc.rtt_ms[0]) + 70 * 3.22)
    assert 1850 < cg.mean_token_ms < 1950
    p = solve_milp(sc, time_limit_s=1.5, solver=solver)
    assert p.feasible and p.status in ("time_limit", "optimal")
    assert p.placement is not None and len(p.routes) == sc.num_requests
    assert p.mean_token_ms == pytest.approx(cg.mean_token_ms)   # optimal here
    assert p.bound_ms is not None and p.bound_ms <= p.mean_token_ms + 1e-9
    assert p.gap == pytest.approx((p.mean_token_ms - p.bound_ms) / p.mean_token_ms)
    d = p.to_dict()
    assert d["feasible"] is True and d["mean_token_ms"] is not None and d["gap"] is not None


def test_cli_field_fault(capsys, tmp_path):
    path = tmp_path / "swarm24.json"
    path.write_text(json.dumps(swarm24().to_dict()))
    assert main(["llm", "plan", str(path), "--method", "milp", "--time-limit", "1.5",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is True and d["status"] in ("time_limit", "optimal")
    assert len(d["placement"]) == 24 and d["gap"] is not None and d["bound_ms"] is not None


def test_tiny_time_limit_is_never_called_infeasible():
    from distalloc.llm.scenario import topology_scenario
    sc = topology_scenario("Abvt", num_servers=6, seed=0, num_requests=4)
    for solver in ("highs", "cp-sat"):
        p = solve_milp(sc, time_limit_s=1e-3, solver=solver)
        assert p.status == "time_limit" and p.feasible
        assert p.bound_ms is not None and 0 <= p.gap < 1


def test_no_plan_from_anyone_at_the_time_limit_is_time_limit_not_infeasible():
    sc = swarm24()
    p = solve_milp(sc, time_limit_s=1e-3, cutoff=False)
    assert p.status == "time_limit" and not p.feasible and "time limit" in p.reason


def test_simulator_milp_rule_uses_the_best_plan_at_the_time_limit():
    from distalloc.llm.scenario import topology_scenario
    from distalloc.llm.simulation import simulate
    sc = topology_scenario("Abvt", num_servers=6, seed=0)
    res = simulate(sc, "milp", rate_per_s=0.2, num_requests=20, planned_requests=4,
                   time_limit_s=1e-3)
    d = res.to_dict()
    assert d["milp_status"] == "time_limit" and d["milp_gap"] is not None
    assert np.isfinite(d["mean_token_s"])


def test_parameters_are_validated():
    sc = swarm24(1)
    with pytest.raises(ValidationError, match="'formulation'"):
        solve_milp(sc, formulation="dense")
    with pytest.raises(ValidationError, match="'solver'"):
        solve_milp(sc, solver="gurobi")
    with pytest.raises(ValidationError, match="'threads'"):
        plan(sc, "milp", threads=0)


def test_cp_sat_missing_is_one_line(monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *a, **kw):
        if name.startswith("ortools"):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert main(["llm", "plan", "topology:Abvt", "--servers", "4", "--num-requests", "2",
                 "--method", "milp", "--solver", "cp-sat", "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "OR-Tools" in err


def test_sizes():
    sc = swarm24(6)
    assert build_model(sc, "aggregated").num_variables == milp_size(24, 6, "aggregated")
    assert build_model(sc, "per-request").num_variables == milp_size(24, 6)
    with pytest.raises(ValueError, match="window"):
        milp_size(24, 6, "window")


@pytest.mark.parametrize("solver", ["highs", "cp-sat"])
def test_threads_change_nothing_but_speed(solver):
    """Two threads, then one again (HiGHS's global thread pool is reset in between)."""
    sc = scenario_from_dict(random_scenario_dict(np.random.default_rng(5)))
    values = [solve_milp(sc, threads=t, solver=solver).mean_token_ms for t in (2, 1)]
    assert values[0] == pytest.approx(values[1]) == pytest.approx(naive.brute_force_bprr(sc))
