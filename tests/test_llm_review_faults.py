"""LLM-family faults of the fresh-user review (issues 14 and 16), one section per kind;
each test holds the right behaviour: a one-line ValidationError naming the field and the
value (CLI: exit 2, one stderr line, no traceback), or the right answer."""
import json
import time

import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.llm import clustered, plan, synthetic_scenario
from distalloc.llm import milp_model
from distalloc.llm.milp import solve_milp
from distalloc.llm.milp_model import FORMULATIONS, BuildTimeLimit, build_model, estimate_model_size


def cli(capsys, *argv):
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err.strip().splitlines()


def one_line_error(capsys, *argv, needle=""):
    status, out, err = cli(capsys, *argv)
    assert status == 2 and out == "", (status, out, err)
    assert len(err) == 1 and err[0].startswith("distalloc: error: "), err
    assert needle in err[0], err[0]
    return err[0]


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
    err = one_line_error(capsys, "llm", "plan", "synthetic:200", "--method", "milp",
                         "--time-limit", "5", "--max-memory-gb", "0.5", needle="--max-memory-gb")
    assert "nonzeros" in err and "200 servers" in err
    one_line_error(capsys, "llm", "plan", "synthetic:100000", "--method", "milp",
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
    one_line_error(capsys, "llm", "plan", "clustered", *argv, needle=needle)


def test_milp_refuses_more_threads_than_cpus(capsys):
    import os
    n = (os.cpu_count() or 1) + 1
    one_line_error(capsys, "llm", "plan", "clustered", "--method", "milp", "--threads", str(n),
                   needle=f"'threads' parameter must be at most the {n - 1} CPUs")
    with pytest.raises(ValidationError, match=f"Got {n} instead"):
        solve_milp(clustered(), threads=n)
