"""The command-line contract (SPEC 4.2): JSON keys, exit codes, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import random_scenario_dict
from distalloc.cli import main

PLAN_KEYS = {"method", "feasible", "status", "placement", "routes", "mean_token_ms",
             "bound_ms", "gap", "solve_s"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "distalloc.cli", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("method", ["cg-bprr", "petals", "petals-cg-order", "petals-cg-counts",
                                    "petals-opt-routing"])
def test_plan_json_keys(method, capsys):
    assert main(["llm", "plan", "clustered", "--method", method, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert PLAN_KEYS <= set(d)
    assert d["method"] == method and d["status"] in ("optimal", "feasible", "time_limit", "infeasible")
    if d["feasible"]:
        assert len(d["routes"]) == 20
        assert all(set(p) == {"server", "first_block", "num_blocks"} for p in d["placement"])


def test_plan_milp_on_a_file(tmp_path, capsys):
    d = random_scenario_dict(np.random.default_rng(4))
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(d))
    assert main(["llm", "plan", str(p), "--method", "milp", "--time-limit", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "optimal" and out["gap"] <= 1e-6
    assert out["mean_token_ms"] == pytest.approx(116 / 3)
    assert out["bound_ms"] <= out["mean_token_ms"] + 1e-6


def test_plan_table_and_plot(tmp_path, capsys):
    png = tmp_path / "map.png"
    assert main(["llm", "plan", "clustered", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "cg-bprr" in out and "petals" in out and "mean per-token ms" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_infeasible_is_reported_not_an_error(capsys):
    assert main(["llm", "plan", "clustered", "--num-requests", "5000", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["feasible"] is False and d["status"] == "infeasible" and "|R| = 5000" in d["reason"]


@pytest.mark.parametrize("args, needle", [
    (["llm", "plan", "clustered", "--method", "magic"], "invalid choice"),
    (["llm", "plan", "clustered", "--time-limit", "-1", "--method", "milp"], "time_limit"),
    (["llm", "plan", "clustered", "--num-requests", "0"], "num_requests"),
    (["llm", "plan", "topology:Nowhere"], "Unknown topology"),
    (["llm", "plan", "missing.json"], "does not exist"),
    (["llm", "scenario", "clustered", "--servers", "3", "--json"], "servers"),
])
def test_bad_input_exit_2_one_line(args, needle):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


SIM_KEYS = {"method", "num_requests", "mean_token_s", "mean_ttft_s", "mean_wait_s",
            "p50_token_s", "p95_token_s"}


@pytest.mark.parametrize("method", ["cg-bprr", "petals", "petals-opt-routing"])
def test_simulate_json_keys(method, capsys):
    assert main(["llm", "simulate", "clustered", "--method", method, "--rate", "0.3",
                 "--num-requests", "50", "--seed", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert SIM_KEYS <= set(d) and d["method"] == method and d["num_requests"] == 50
    assert d["p50_token_s"] <= d["p95_token_s"]


def test_compare_table_json_and_plot(tmp_path, capsys):
    png = tmp_path / "cdf.png"
    assert main(["llm", "compare", "clustered", "--seeds", "2", "--num-requests", "40",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "mean_token_s" in out and "than petals" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["llm", "compare", "clustered", "--seeds", "2", "--num-requests", "40",
                 "--allocation-delay", "petals=250,cg-bprr=60", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["methods"]) == {"cg-bprr", "petals", "chains"}   # SPEC 1.10: chains by default
    assert len(d["methods"]["petals"]["per_seed_mean_token_s"]) == 2
    # the allocation delay alone adds 250 / 128 s per token to PETALS
    assert d["methods"]["petals"]["mean_token_s"] > 250 / 128


@pytest.mark.parametrize("args, needle", [
    (["llm", "simulate", "clustered", "--rate", "-2"], "rate_per_s"),
    (["llm", "simulate", "clustered", "--allocation-delay", "petals=soon"], "allocation_delay"),
    (["llm", "simulate", "clustered", "--client-weights", "1,x,0"], "client-weights"),
    (["llm", "simulate", "clustered", "--client-weights", "1,1"], "client_weights"),
    (["llm", "compare", "clustered", "--methods", "cg-bprr,nope"], "methods"),
    (["llm", "simulate", "clustered", "--trace", "missing.csv"], "does not exist"),
])
def test_online_bad_input_exit_2(args, needle):
    out = run(*args)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
