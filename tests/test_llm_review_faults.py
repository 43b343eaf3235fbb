"""LLM-family faults of the fresh-user review (issues 14 and 16), one section per kind;
each test holds the right behaviour: a one-line ValidationError naming the field and the
value (CLI: exit 2, one stderr line, no traceback), or the right answer."""
import json
import time

import pytest

from distalloc import ValidationError
from distalloc.llm import clustered, plan, synthetic_scenario
from distalloc.llm import milp_model
from distalloc.llm.milp import solve_milp
from distalloc.llm.milp_model import FORMULATIONS, BuildTimeLimit, build_model, estimate_model_size

from cli_helpers import assert_one_line_error, cli


# --- 1. the exact MILP is bounded in memory and time ---------------------------------------
@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("cuts", [True, False])
@pytest.mark.parametrize("requests", [None, 7])
def test_model_size_estimate_is_within_a_factor_two_of_the_built_model(formulation, cuts, requests):
    for sc in (clustered(), synthetic_scenario(6, seed=1)):
        if requests is not None:
            sc = sc.with_requests(requests)
        n_vars, n_nz = estimate_model_size(sc, formulation, cuts)
        model = build_model(sc, formulation, cuts)
        assert 0.5 <= n_vars / model.num_variables <= 2.0, (n_vars, model.num_variables)
        assert 0.5 <= n_nz / model.A.nnz <= 2.0, (n_nz, model.A.nnz)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_milp_refuses_a_model_above_max_memory_before_building_it(formulation):
    sc = synthetic_scenario(200, seed=0)
    t0 = time.perf_counter()
    with pytest.raises(ValidationError, match=r"MILP model of 200 servers.*needs about .* GB.*"
                       r"limit of 0\.5 GB.*--max-memory-gb") as exc:
        solve_milp(sc, formulation=formulation, time_limit_s=5, max_memory_gb=0.5)
    assert "\n" not in str(exc.value)
    assert time.perf_counter() - t0 < 3.0     # refused from the estimate, nothing built
    with pytest.raises(ValidationError, match="limit of 0.5 GB"):
        plan(sc, "milp", time_limit_s=5, formulation=formulation, max_memory_gb=0.5)


def test_milp_cli_refuses_a_model_above_max_memory(capsys):
    err = assert_one_line_error(capsys, "llm", "plan", "synthetic:200", "--method", "milp",
                         "--time-limit", "5", "--max-memory-gb", "0.5", needle="--max-memory-gb")
    assert "nonzeros" in err and "200 servers" in err
    assert_one_line_error(capsys, "llm", "plan", "synthetic:100000", "--method", "milp",
                   "--time-limit", "10", needle="GB of memory")


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_model_building_stops_at_the_deadline(formulation, monkeypatch):
    monkeypatch.setattr(milp_model, "_CLOCK_EVERY", 1)
    with pytest.raises(BuildTimeLimit):
        build_model(clustered(), formulation, deadline=time.perf_counter() - 1.0)
    assert build_model(clustered(), formulation, deadline=None).num_variables > 0


def test_milp_time_limit_covers_model_building():
    """synthetic:60 takes over a second to build; at a 0.2 s limit the answer is the
    heuristic plan with the trivial bound, no proof, and the call ends soon after."""
    sc = synthetic_scenario(60, seed=0)
    t0 = time.perf_counter()
    p = solve_milp(sc, time_limit_s=0.2, max_memory_gb=8)
    assert time.perf_counter() - t0 < 4.0
    assert p.feasible and p.status == "time_limit"
    assert p.extra["solver_status"] == "not_started"
    assert p.extra["source"] in ("cg-bprr", "petals")
    assert p.mean_token_ms == pytest.approx(p.extra["heuristic_cutoff_ms"])
    assert 0 < p.bound_ms <= p.mean_token_ms and p.gap == pytest.approx(
        (p.mean_token_ms - p.bound_ms) / p.mean_token_ms)


# --- 3. contradictory or inapplicable options -----------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--time-limit", "5"], "'--time-limit' applies only to --method milp"),
    (["--solver", "cp-sat"], "'--solver' applies only to --method milp"),
    (["--formulation", "window"], "'--formulation' applies only to --method milp"),
    (["--threads", "2", "--method", "cg-bprr"], "'--threads' applies only to --method milp"),
])
def test_plan_refuses_milp_options_without_milp(capsys, argv, needle):
    assert_one_line_error(capsys, "llm", "plan", "clustered", *argv, needle=needle)


def test_milp_refuses_more_threads_than_cpus(capsys):
    import os
    n = (os.cpu_count() or 1) + 1
    assert_one_line_error(capsys, "llm", "plan", "clustered", "--method", "milp", "--threads", str(n),
                   needle=f"'threads' parameter must be at most the {n - 1} CPUs")
    with pytest.raises(ValidationError, match=f"Got {n} instead"):
        solve_milp(clustered(), threads=n)


# --- 2. output paths are checked before any work ------------------------------------------
@pytest.mark.parametrize("path,needle", [("/nonexistent_dir/p.json", "does not exist"),
                                         ("/tmp", "names a folder"),
                                         ("/proc/version", "Cannot write"),
                                         ("", "names a folder")])
def test_calibrate_out_is_checked_first(capsys, tmp_path, path, needle):
    measurements = tmp_path / "m.csv"        # no rows: the output check must come first
    measurements.write_text("servers,blocks,rtt_ms,input_tokens,output_tokens,ttft_ms,token_ms\n")
    assert_one_line_error(capsys, "llm", "calibrate", str(measurements), "--out", path, needle=needle)


@pytest.mark.parametrize("command", [["plan", "clustered"],
                                     ["simulate", "clustered", "--method", "chains"],
                                     ["compare", "clustered", "--seeds", "1"]])
@pytest.mark.parametrize("path", ["/nonexistent_dir/p.png", "/tmp", "/proc/version", "", "x.txt"])
def test_llm_plot_paths_are_checked_first(capsys, command, path):
    assert_one_line_error(capsys, "llm", *command, "--num-requests", "5", "--plot", path, needle="'plot'")


def test_simulate_refuses_rate_with_a_trace_unless_it_is_a_design_rate(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n1,10,5\n2,10,5\n")
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(trace), "--rate", "1",
                   needle="Option '--rate' (1) does not apply to a trace workload")
    assert_one_line_error(capsys, "llm", "compare", "clustered", "--methods", "cg-bprr,petals",
                   "--seeds", "1", "--trace", str(trace), "--rate", "1", needle="'--rate'")
    status, out, err = cli(capsys, "llm", "simulate", "clustered", "--trace", str(trace),
                           "--rate", "1", "--method", "chains", "--json")
    assert status == 0 and json.loads(out)["design_rate_per_s"] == 1.0


# --- 4. wrong answers accepted ---------------------------------------------------------------
def test_churn_zero_means_no_churn_and_the_help_says_so(capsys):
    from distalloc.llm.simulation import parse_churn
    assert parse_churn(0) is None and parse_churn("0") is None and parse_churn("none") is None
    status, out, err = cli(capsys, "llm", "simulate", "--help")
    assert "0 or 'none' means no churn" in " ".join(out.split())
    with pytest.raises(ValidationError, match="churn MTBF_S"):
        parse_churn("0:5")


@pytest.mark.parametrize("text,needle", [
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n1,10,5,GARBAGE,more\n",
     "line 3: has 5 fields; the header has 3"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n1,10\n", "line 3: has 2 fields"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens,GeneratedTokens\n0,10,5,6\n",
     "line 1: names the column GeneratedTokens twice"),
    ("Timestamp,Request tokens,Response tokens,Timestamp\n0,10,5,1\n",
     "names the column Timestamp twice"),
    ("Timestamp,Request tokens,Response tokens\n0,10,5,x\n", "has 4 fields"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 3, "output_length": 9}\n',
     "line 1: names the key output_length twice"),
])
def test_trace_readers_refuse_extra_fields_and_duplicated_columns(capsys, tmp_path, text, needle):
    from distalloc.llm.workload import trace_workload
    trace = tmp_path / ("t.jsonl" if text.startswith("{") else "t.csv")
    trace.write_text(text)
    with pytest.raises(ValidationError, match=needle):
        trace_workload(clustered(), trace)
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(trace), needle=needle)


def test_evaluate_routes_refuses_a_server_out_of_range():
    from distalloc.llm import evaluate_routes
    sc = clustered()
    p = plan(sc)
    with pytest.raises(ValidationError, match=r"'routes' entry routes\[0\]\[1\] must be a server "
                       r"index in \[0, 8\]. Got 99 instead"):
        evaluate_routes(sc, p.placement, [[0, 99]], sc.requests[:1])


def test_a_placement_must_cover_every_block():
    from distalloc.llm import Swarm
    partial = [{"server": 0, "first_block": 0, "num_blocks": 10}]
    for make in (lambda: Swarm(clustered(), placement=partial),
                 lambda: Swarm(clustered(), method="chains", placement=partial),
                 lambda: plan(clustered(), "chains", placement=partial)):
        with pytest.raises(ValidationError, match=r"'placement' leaves block 10 on no server.*"
                           r"60 of 70 blocks"):
            make()
    halves = partial + [{"server": 1, "first_block": 10, "num_blocks": 60}]
    assert Swarm(clustered(), placement=halves).placement.num_blocks[1] == 60


def test_plan_refuses_a_scenario_whose_trace_file_is_missing(capsys, tmp_path):
    d = clustered().to_dict()
    d["workload"]["trace"] = str(tmp_path / "missing.csv")
    path = tmp_path / "s.json"
    path.write_text(json.dumps(d))
    from distalloc.llm import load_scenario
    with pytest.raises(ValidationError, match="trace file .*missing.csv' does not exist"):
        plan(load_scenario(path))
    assert_one_line_error(capsys, "llm", "plan", str(path), needle="missing.csv' does not exist")


# --- 5. messages name the field the user set -------------------------------------------------
def test_huge_output_tokens_blames_output_tokens(capsys):
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--output-tokens", "100000000000",
                   needle="The 'output_tokens' parameter of workload must be at most 68537423043 "
                   "with 'prefill_ms' of servers[2]")
    with pytest.raises(ValidationError, match="'output_tokens' parameter of workload.*Got "
                       "100000000000 instead"):
        clustered(output_tokens=10 ** 11)


def test_a_time_no_output_length_allows_still_blames_the_time():
    from distalloc.llm import scenario_from_dict
    d = clustered().to_dict()
    d["servers"][0]["decode_ms"] = 1e308
    with pytest.raises(ValidationError, match=r"'decode_ms' parameter of servers\[0\] must be a "
                       r"float in \[0, "):
        scenario_from_dict(d)


def test_huge_num_requests_blames_num_requests(capsys, tmp_path):
    d = clustered().to_dict()
    d["workload"]["num_requests"] = 10 ** 12
    path = tmp_path / "s.json"
    path.write_text(json.dumps(d))
    assert_one_line_error(capsys, "llm", "plan", str(path),
                   needle="The 'num_requests' parameter of workload (1000000000000) at its "
                   "'rate_per_s' 0.5 spans 2e+12 s")
    from distalloc.llm.workload import poisson_workload
    with pytest.raises(ValidationError, match=r"'num_requests' parameter \(10\) at its 'rate_per_s' "
                       r"1e-12.*at most 1 requests"):
        poisson_workload(clustered(), 1e-12, 10)


def test_empty_scenario_name(capsys):
    assert_one_line_error(capsys, "llm", "plan", "", needle="The 'scenario' argument is empty")


@pytest.mark.parametrize("name", ["plan", "simulate", "solve_milp", "cg_bprr", "petals",
                                  "cg_bp_placement", "compose_chains"])
def test_public_functions_refuse_a_non_scenario(name):
    import distalloc.llm as llm
    with pytest.raises(ValidationError, match=rf"The 'scenario' parameter of {name}\(\) must be a "
                       r"Scenario.*Got NoneType instead"):
        getattr(llm, name)(None)
    with pytest.raises(ValidationError, match="Got str instead"):
        getattr(llm, name)("clustered")


def test_churn_that_keeps_every_server_down_is_named(capsys):
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--churn", "1e-9:1e9",
                   "--num-requests", "20",
                   needle="the 'churn' MTBF 1e-09 s, MTTR 1e+09 s kept the servers down")
