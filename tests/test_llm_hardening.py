"""Bad input never crashes, hangs or lies in the LLM family (issues 14 and 16).

One section per kind of fault; each test holds the right value, not only "no crash".
Trace readers: test_llm_hardening_traces.py; fuzz: test_llm_hardening_fuzz.py.
The memory-safety reproducers also run under AddressSanitizer in
``test_kernels_under_asan`` (slow; ``tests/asan_llm.py``)."""
import json
import math
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc._compiled import llm_kernels
from distalloc.cli import main
from distalloc.llm import (Placement, cg_bp_placement, clustered, evaluate_routes, plan,
                           scenario_from_dict, shortest_routes, synthetic_scenario)
from distalloc.llm.limits import MAX_COUNT, TIME_LIMIT_MS, time_bound_ms
from distalloc.llm.placement import petals_placement
from distalloc.llm.routing import per_token_costs
from distalloc.llm.simulation import ONLINE_METHODS, simulate

from cli_helpers import assert_one_line_error

HERE = Path(__file__).resolve().parent


def two_server(**server0):
    """The issue's 2-server, 5-block scenario; ``server0`` overrides fields of server 0."""
    s0 = {"name": "s0", "memory_gb": 4.0, "decode_ms": 2.0, "prefill_ms": 10.0, **server0}
    return {"model": {"name": "m", "num_blocks": 5, "block_gb": 1.0, "cache_gb": 0.01},
            "servers": [s0, {"name": "s1", "memory_gb": 4.0, "decode_ms": 2.0, "prefill_ms": 10.0}],
            "clients": [{"name": "c0"}], "rtt_ms": [[10.0, 10.0]],
            "workload": {"input_tokens": 8, "output_tokens": 16, "requests": [0, 0]}}


def write_json(tmp_path, data, name="s.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return str(p)


# ------------------------------------------------------------------------------------------
# 1. Memory safety: values whose sums overflow, indices computed from data
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_decode_1e308_is_refused_in_a_fresh_process(tmp_path, command):
    """The reported abort ("double free or corruption") and SIGBUS: a subprocess, so a
    crash would show as a signal, not as a failed assertion."""
    path = write_json(tmp_path, two_server(decode_ms=1e308))
    out = subprocess.run([sys.executable, "-m", "distalloc.cli", "llm", command, path],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    bound = time_bound_ms(5, 16)
    assert f"'decode_ms' parameter of servers[0] must be a float in [0, {bound:.4g}]" in lines[0]
    assert "num_blocks x output_tokens" in lines[0]


@pytest.mark.parametrize("field", ["decode_ms", "prefill_ms"])
def test_time_bound_is_exact(field):
    """A time at the bound is accepted and every time the model derives stays finite;
    the next float above it is refused."""
    bound = time_bound_ms(5, 16)
    assert bound == TIME_LIMIT_MS / 80
    d = two_server(**{field: bound})
    d["rtt_ms"] = [[bound, bound]]
    sc = scenario_from_dict(d)
    for method in ("cg-bprr", "petals"):
        p = plan(sc, method)
        assert p.mean_token_ms is None or math.isfinite(p.mean_token_ms)
    with pytest.raises(ValidationError, match=field):
        scenario_from_dict(two_server(**{field: np.nextafter(bound, np.inf)}))
    with pytest.raises(ValidationError, match=r"rtt_ms\[0\]\[1\]"):
        d = two_server()
        d["rtt_ms"] = [[1.0, 1e300]]
        scenario_from_dict(d)


def test_greedy_window_stays_in_range_on_nan_sums():
    """The kernel behind the abort, called directly with the 1e308 times that used to make
    its window sums NaN and its window start -1: every window is inside [0, L)."""
    S, L = 2, 5
    m, amort = np.empty(S, np.int64), np.empty(S)
    sessions, order, first = (np.empty(S, np.int64) for _ in range(3))
    cap = np.empty(L)
    llm_kernels.cg_bp(np.array([4.0, 4.0]), np.array([1e308, 2.0]), np.array([1e308, 10.0]),
                      1.0, 0.01, 2, L, m, amort, sessions, order, first, cap)
    used = m > 0
    assert np.all(first[used] >= 0) and np.all(first[used] + m[used] <= L)


def test_huge_memory_is_refused_with_the_bound_and_used_below_it():
    """memory_gb 1e20 used to wrap the block count negative (server silently unused, plan
    2x worse).  Now: refused, naming the bound; a server just below the bound holds all L
    blocks and serves alone (per-token time = rtt + L x decode)."""
    with pytest.raises(ValidationError, match=r"2\^53 x min\(block_gb, cache_gb\)"):
        scenario_from_dict(two_server(memory_gb=1e20))
    big = scenario_from_dict(two_server(memory_gb=0.999 * 2.0 ** 53 * 0.01, decode_ms=1.0))
    p = plan(big, "cg-bprr")
    assert p.feasible and p.placement.num_blocks[0] == 5
    assert p.mean_token_ms == pytest.approx(10.0 + 5 * 1.0)


def test_kernel_clamps_counts_in_floating_point():
    """Counts beyond int64 are clamped before the cast: 1e300 GB holds all L blocks and
    |R| sessions (the old cast gave INT64_MIN, an unused server)."""
    S, L, R = 2, 5, 2 ** 62
    m, amort = np.empty(S, np.int64), np.empty(S)
    sessions, order, first = (np.empty(S, np.int64) for _ in range(3))
    llm_kernels.cg_bp(np.array([1e300, 4.0]), np.array([2.0, 2.0]), np.array([1.0, 1.0]),
                      1.0, 1e-300, R, L, m, amort, sessions, order, first, np.empty(L))
    assert m[0] == L and sessions[0] == R


def test_shortest_routes_validates_placements_and_widths():
    sc = clustered()
    alpha, beta = per_token_costs(sc)
    with pytest.raises(ValidationError, match=r"Placement of server 0 must lie in blocks \[0, 2\)"):
        shortest_routes(Placement.from_arrays([0], [100000]), 2, alpha[:, :1], beta[:1])
    with pytest.raises(ValidationError, match="'alpha' must have one column per server"):
        shortest_routes(Placement.from_arrays([0, 0], [2, 2]), 2, alpha[:, :1], beta[:1])
    with pytest.raises(ValidationError, match="one entry per server each"):
        Placement.from_arrays([0, 0, 0], [2])
    with pytest.raises(ValidationError, match="'beta' must have shape"):
        shortest_routes(Placement.from_arrays([0, 0], [2, 2]), 2, alpha[:, :2], beta)
    with pytest.raises(ValidationError, match="'alpha' must have finite|non-NaN"):
        shortest_routes(Placement.from_arrays([0], [2]), 2, [[math.nan]], [1.0])
    with pytest.raises(ValidationError, match="integers"):
        Placement.from_arrays([0.5], [2])
    with pytest.raises(ValidationError, match="integers"):
        Placement.from_arrays([0], [True])
    with pytest.raises(ValidationError, match="int64"):
        Placement.from_arrays([0], [2 ** 64])
    with pytest.raises(ValidationError, match="num_blocks_total"):
        shortest_routes(Placement.from_arrays([0], [2]), 2 ** 63, [[1.0]], [1.0])
    # the right answer on a valid call: one server holding both blocks, cost rtt + 2 tau
    r = shortest_routes(Placement.from_arrays([0, 0], [2, 0]), 2, [[5.0, 1.0]], [3.0, 1.0])
    assert r.cost[0] == 11.0 and r.path(0) == [0]


def test_evaluate_routes_validates_everything_it_indexes():
    sc = clustered()
    pl = Placement.from_arrays([0, 35] + [0] * 7, [35, 35] + [0] * 7)
    assert evaluate_routes(sc, pl, [[0, 1]], [0]).token_ms[0] == pytest.approx(625.379)
    with pytest.raises(ValidationError, match="first_block"):
        evaluate_routes(sc, Placement.from_arrays([0, -5] + [0] * 7, [35, 40] + [0] * 7),
                        [[0, 1]], [0])
    with pytest.raises(ValidationError, match="Placement of server 1"):
        evaluate_routes(sc, Placement.from_arrays([0, 60] + [0] * 7, [35, 35] + [0] * 7),
                        [[0, 1]], [0])
    with pytest.raises(ValidationError, match="one entry per server"):
        evaluate_routes(sc, Placement.from_arrays([0], [70]), [[0]], [0])
    with pytest.raises(ValidationError, match="'clients'"):
        evaluate_routes(sc, pl, [[0, 1]], [7])
    with pytest.raises(ValidationError, match="'route_placement'"):
        evaluate_routes(sc, pl, [[0, 1]], [0], route_placement=[3])
    with pytest.raises(ValidationError, match="integer server indices"):
        evaluate_routes(sc, pl, [[0, "1"]], [0])
    # a server index beyond int64 or the swarm is a wrong input (review, issue 16), one line
    for bad, where in ((2 ** 70, "routes[1][1]"), (-1, "routes[1][1]"), (99, "routes[1][1]")):
        with pytest.raises(ValidationError, match=rf"'routes' entry {re.escape(where)} must be a "
                           rf"server index in \[0, 8\]. Got {bad} instead"):
            evaluate_routes(sc, pl, [[0, 1], [0, bad]], [0, 0])
    # a server that holds no block is an invalid route: status 2
    m = evaluate_routes(sc, pl, [[0, 5]], [0])
    assert m.status.tolist() == [2] and np.isnan(m.token_ms).all()


def test_petals_placement_validates_counts_and_join_order():
    sc = clustered()
    with pytest.raises(ValidationError, match="'num_blocks' must have entries <= 70"):
        petals_placement(sc, np.arange(9), np.full(9, 1000))
    with pytest.raises(ValidationError, match="'join_order' must have entries <= 8"):
        petals_placement(sc, np.array([100]))


@pytest.mark.parametrize("call", [
    lambda: llm_kernels.shortest_routes(np.array([0]), np.array([100000]), 2, np.zeros((1, 1)),
                                        np.ones(1), np.full(1, 2), 0.0, np.empty(1),
                                        np.empty((1, 2), np.int64), np.empty(1, np.int64)),
    lambda: llm_kernels.shortest_routes(np.arange(8), np.ones(8, np.int64), 8, np.zeros((1, 8)),
                                        np.ones(8), np.full(8, 8), 0.0, np.empty(1),
                                        np.empty((1, 1), np.int64), np.empty(1, np.int64)),
    lambda: llm_kernels.petals_place(np.array([1000, 2]), np.ones(2), np.array([0, 1]), 4,
                                     np.zeros(2, np.int64), np.zeros(4)),
    lambda: llm_kernels.petals_place(np.array([1, 2]), np.ones(2), np.array([7]), 4,
                                     np.zeros(2, np.int64), np.zeros(4)),
    lambda: llm_kernels.evaluate_routes(
        np.zeros((1, 1), np.int64), np.ones((1, 1), np.int64), 1, np.zeros(1, np.int64),
        np.array([9]), np.array([0, 1]), np.array([0]), np.zeros((1, 1)), np.zeros((1, 1)),
        np.ones(1), np.ones(1), 4, 1.0, 0.1, np.empty(1), np.empty(1), np.empty(1),
        np.empty(1, np.int8), np.empty((1, 1))),
], ids=["routes-range", "routes-width", "petals-counts", "petals-order", "evaluate-client"])
def test_kernel_guards_refuse_out_of_range_indices(call):
    """Kernels check every index they take from data before any work (defence in depth
    behind the API's validation); under ASan these inputs overflowed the old kernels."""
    with pytest.raises(ValueError, match="precondition violated"):
        call()


@pytest.mark.parametrize("argv, needle", [
    (["llm", "plan", "synthetic:99999999999999999999"], "'servers' parameter"),
    (["llm", "plan", "topology:GtsCe", "--servers", "99999999999999999999"], "[1, 148]"),
    (["llm", "plan", "synthetic:10:99999999999"], "num_blocks"),
    (["llm", "simulate", "clustered", "--planned-requests", "99999999999999999999"], "2^53"),
    (["llm", "scenario", "synthetic:3:4", "--input-tokens", "99999999999999999999"], "input_tokens"),
])
def test_integers_beyond_int64_are_one_line_errors(capsys, argv, needle):
    msg = assert_one_line_error(capsys, *argv, needle=needle)
    assert "99999999999999999999" in msg or "digits" in msg or "99999999999" in msg


def test_num_blocks_two_to_the_63(tmp_path, capsys):
    d = two_server()
    d["model"]["num_blocks"] = 2 ** 63
    assert_one_line_error(capsys, "llm", "plan", write_json(tmp_path, d),
                          needle="'num_blocks' parameter of model must be an int in [1, 2^20]")
    d["model"]["num_blocks"] = 10 ** 400
    assert_one_line_error(capsys, "llm", "plan", write_json(tmp_path, d), needle="401 digits")


# ------------------------------------------------------------------------------------------
# 2. Tracebacks become one-line errors
# ------------------------------------------------------------------------------------------
def test_non_utf8_and_unreadable_files(tmp_path, capsys, monkeypatch):
    scen = tmp_path / "latin1.json"
    scen.write_bytes(b'{"model": "caf\xe9"}')
    assert_one_line_error(capsys, "llm", "plan", str(scen), needle="is not UTF-8 text")
    trace = tmp_path / "t.csv"
    trace.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,\xff\n")
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(trace),
                          needle="is not UTF-8 text (undecodable byte at offset 44, line 2)")
    assert_one_line_error(capsys, "llm", "plan", str(tmp_path), needle="is a folder")
    # permissions cannot be taken away from root: make the OS refuse instead

    def refuse(*args, **kw):
        raise PermissionError(13, "Permission denied")
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(two_server()))
    monkeypatch.setattr(Path, "read_text", refuse)
    assert_one_line_error(capsys, "llm", "plan", str(ok), needle="cannot be read (Permission denied)")
    trace.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,2\n")
    monkeypatch.setattr(Path, "open", refuse)
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(trace),
                          needle="cannot be read (Permission denied)")


@pytest.mark.parametrize("argv, needle", [
    (["--noise", "1e308"], "'noise' parameter must be a float in [0, 10]"),
    (["--allocation-delay", "1e308"], "allocation_delay"),
    (["--rate", "1e-300"], "rate_per_s"),
    (["--client-weights", "1,nan,1"], "client_weights[1]"),
])
def test_float_overflow_options(capsys, argv, needle):
    assert_one_line_error(capsys, "llm", "simulate", "clustered", *argv, needle=needle)


def test_prefill_1e308_is_refused(tmp_path, capsys):
    assert_one_line_error(capsys, "llm", "simulate", write_json(tmp_path, two_server(prefill_ms=1e308)),
                          needle="'prefill_ms' parameter of servers[0]")


def test_huge_client_weights_mean_equal_weights(capsys):
    """Weights 1e308 each used to overflow their sum (NaN probabilities, a traceback); they
    are relative weights, so the run equals the one with weights 1, 1, 1."""
    base = ["llm", "simulate", "clustered", "--num-requests", "30", "--json"]
    assert main(base + ["--client-weights", "1e308,1e308,1e308"]) == 0
    big = json.loads(capsys.readouterr().out)
    assert main(base + ["--client-weights", "1,1,1"]) == 0
    ones = json.loads(capsys.readouterr().out)
    big.pop("wall_s"), ones.pop("wall_s")
    assert big == ones


def test_compare_when_a_method_serves_nothing(tmp_path, capsys):
    assert_one_line_error(capsys, "llm", "compare", write_json(tmp_path, nobody_scenario()),
                          "--seeds", "1", "--methods", "petals,petals-opt-routing",
                          needle="Method 'petals' serves none of the 100 requests")


def test_data_dir_error_names_the_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DISTALLOC_DATA_DIR", str(tmp_path))
    msg = assert_one_line_error(capsys, "llm", "plan", "topology:Abvt", needle="Unknown topology 'Abvt'")
    assert str(tmp_path / "topologies") in msg and "DISTALLOC_DATA_DIR" in msg


def test_topology_errors_quote_no_content(tmp_path):
    from distalloc.llm.topology import read_topology
    p = tmp_path / "g.graph"
    p.write_text("root:x:0:0:secret-line\n")
    with pytest.raises(ValidationError) as err:
        read_topology(str(p))
    assert "secret" not in str(err.value) and "line 1" in str(err.value)
    p.write_text("NODES 2\nlabel x y\n0_A 0 0\n1_B 0 0\n\nEDGES 1\nlabel\nsecret-edge-line 0\n")
    with pytest.raises(ValidationError) as err:
        read_topology(str(p))
    assert "secret" not in str(err.value) and "line 8" in str(err.value)


def test_calibration_files_and_profiles(tmp_path, capsys):
    """llm calibrate's readers: non-UTF-8 measurements and profiles are one line; a
    profile whose decode_ms would overflow request times is refused when applied (the
    profile's numbers pass the scenario's checks), and replace()d scenarios can be
    re-checked with revalidated()."""
    from dataclasses import replace

    from distalloc.llm.calibrate import Profile, ServerProfile, apply_profile
    from distalloc.llm.scenario import revalidated
    m = tmp_path / "m.csv"
    m.write_bytes(b"servers,blocks,rtt_ms,input_tokens,output_tokens,ttft_ms,token_ms\n"
                  + bytes([0xFF]) + b",1\n")
    assert_one_line_error(capsys, "llm", "calibrate", str(m), needle="is not UTF-8 text")
    prof = tmp_path / "p.json"
    prof.write_bytes(b'{"servers": "' + bytes([0xE9]) + b'"}')
    assert_one_line_error(capsys, "llm", "plan", "clustered", "--profile", str(prof),
                          needle="is not UTF-8 text")
    sc = clustered()
    # within the profile's own bound (1e15 ms) but not the scenario's (1e15 / (L l_out) ms)
    huge = Profile({n: ServerProfile(1e14, 1.0, 0.0) for n in sc.server_names}, 0.0, 0.0, 0.0)
    with pytest.raises(ValidationError, match="'decode_ms' parameter of servers"):
        apply_profile(sc, huge)
    ok = Profile({n: ServerProfile(2.0, 30.0, 0.1) for n in sc.server_names}, 0.0, 0.0, 0.0)
    assert apply_profile(sc, ok).decode_ms.tolist() == [2.0] * 9
    with pytest.raises(ValidationError, match=r"rtt_ms\[0\]\[0\]"):
        revalidated(replace(sc, rtt_ms=np.full_like(sc.rtt_ms, math.inf)))
    assert revalidated(sc).to_dict() == sc.to_dict()


# ------------------------------------------------------------------------------------------
# 3. Serves nobody: a clean error for every method, never a run with every metric null
# ------------------------------------------------------------------------------------------
def nobody_scenario():
    """PETALS sizes its blocks for a tiny fixed cache (d_model = 1); the real cache per
    session (5 GB) fits nowhere next to its 4 blocks, so no chain can ever hold a session.
    CG-BP sizes for the real cache and finds no feasible |R|."""
    return {"model": {"name": "m", "num_blocks": 4, "block_gb": 1.0, "cache_gb": 5.0,
                      "d_model": 1},
            "servers": [{"name": f"s{j}", "memory_gb": 4.5, "decode_ms": 2.0, "prefill_ms": 10.0}
                        for j in range(3)],
            "clients": [{"name": "c0"}], "rtt_ms": [[10.0, 10.0, 10.0]],
            "workload": {"input_tokens": 8, "output_tokens": 16, "requests": [0]}}


@pytest.mark.parametrize("method", [m for m in ONLINE_METHODS if m != "milp"])
def test_serves_nobody_is_an_error_for_every_method(method):
    sc = scenario_from_dict(nobody_scenario())
    with pytest.raises(ValidationError) as err:
        simulate(sc, method, rate_per_s=1.0, num_requests=20)
    msg = str(err.value)
    if method in ("cg-bprr", "petals-cg-order", "petals-cg-counts"):
        assert "No |R| >= 1 lets CG-BP cover every block" in msg
    elif method == "chains":
        assert "No reservation c gives a chain that covers all 4 blocks" in msg
    elif method == "jffc-whole":
        assert "No server can hold all blocks with the cache of one job" in msg
    else:
        assert f"Method '{method}' serves none of the 20 requests" in msg
        assert "server 0 holds 4 blocks and cache for 0" in msg


def test_serves_nobody_after_the_run_petals_routing():
    """Server 0 holds the model but no cache; server 1 holds it with cache behind a 30 s
    RTT.  PETALS's Dijkstra prefers server 0 plus its 10 s no-cache penalty every time,
    so every request gives up: an error.  WS-RR on the same placement serves everyone."""
    d = {"model": {"name": "m", "num_blocks": 2, "block_gb": 1.0, "cache_gb": 0.5, "d_model": 1},
         "servers": [{"name": "fast", "memory_gb": 2.2, "decode_ms": 1.0, "prefill_ms": 1.0},
                     {"name": "far", "memory_gb": 3.0, "decode_ms": 1.0, "prefill_ms": 1.0}],
         "clients": [{"name": "c0"}], "rtt_ms": [[1.0, 30000.0]],
         "workload": {"input_tokens": 8, "output_tokens": 4, "requests": [0]}}
    sc = scenario_from_dict(d)
    with pytest.raises(ValidationError, match="served none of the 10 requests.*gave up after"):
        simulate(sc, "petals", rate_per_s=0.001, num_requests=10, max_attempts=3)
    ok = simulate(sc, "petals-opt-routing", rate_per_s=0.001, num_requests=10)
    assert ok.dropped == 0 and all(ok.route(r) == [1] for r in range(10))


# ------------------------------------------------------------------------------------------
# 5. Unbounded work is estimated and refused before it starts
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["llm", "simulate", "clustered", "--num-requests", "100000000"],
    ["llm", "plan", "clustered", "--num-requests", "100000000000"],
    ["llm", "scenario", "clustered", "--num-requests", "100000000000", "--json"],
    ["llm", "plan", "synthetic:1000000000"],
    ["llm", "compare", "clustered", "--seeds", "100000000000", "--num-requests", "10"],
])
def test_absurd_sizes_are_refused_with_the_estimate(capsys, argv):
    msg = assert_one_line_error(capsys, *argv, needle="GB of memory, more than the limit")
    assert "--max-memory-gb" in msg and "max_memory_gb=" in msg


def test_memory_limit_option_is_honoured(capsys):
    argv = ["llm", "simulate", "clustered", "--num-requests", "2000", "--json"]
    assert_one_line_error(capsys, *argv, "--max-memory-gb", "0.0001", needle="simulating 2000 requests")
    assert main(argv + ["--max-memory-gb", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["num_requests"] == 2000


def test_synthetic_scenario_memory_check():
    with pytest.raises(ValidationError, match="a synthetic swarm of 100000 servers"):
        synthetic_scenario(100_000, max_memory_gb=0.001)
    assert synthetic_scenario(1000, max_memory_gb=0.1).num_servers == 1000


def test_poisson_rate_bound():
    from distalloc.llm.workload import poisson_workload
    sc = clustered()
    with pytest.raises(ValidationError, match="spans 1e\\+13 s of arrivals, more than 1e\\+12 s"):
        poisson_workload(sc, 1e-12, 10)
    wl = poisson_workload(sc, 1e-11, 10)  # at the bound: mean span 1e12 s
    assert np.all(np.isfinite(wl.arrival_s * 1000.0))
    assert np.all(np.isfinite(wl.arrival_s))


# ------------------------------------------------------------------------------------------
# 6. Warnings never garble output; where they signal a wrong answer, no answer
# ------------------------------------------------------------------------------------------
def test_runtime_warning_becomes_the_one_line_error(monkeypatch, capsys):
    import distalloc.llm.simulation as simulation

    def overflowing(*args, **kw):
        return np.float64(1e308) * 10  # a RuntimeWarning, as a sum overflowing would give
    monkeypatch.setattr(simulation, "simulate", overflowing)
    assert_one_line_error(capsys, "llm", "simulate", "clustered",
                          needle="a numeric computation failed (overflow")


def test_other_warnings_go_after_the_answer_on_stderr(monkeypatch, capsys):
    import distalloc.llm.builtins as scenario_mod
    real = scenario_mod.resolve_scenario

    def noisy(*args, **kw):
        warnings.warn("something to know", UserWarning)
        return real(*args, **kw)
    monkeypatch.setattr(scenario_mod, "resolve_scenario", noisy)
    assert main(["llm", "plan", "clustered", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["feasible"] is True
    assert out.err.strip() == "distalloc: warning: something to know"


def test_zero_decode_time_warns_nowhere(tmp_path, capsys):
    """decode_ms = 0 makes PETALS's default forward throughput infinite: intended, no
    division warning anywhere in plan or simulate."""
    d = two_server(decode_ms=0.0)
    d["model"]["d_model"] = 64  # PETALS's fixed cache budget: 1 MB per block
    path = write_json(tmp_path, d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for argv in (["llm", "plan", path, "--json"],
                     ["llm", "simulate", path, "--method", "petals", "--num-requests", "20", "--json"]):
            assert main(argv) == 0
            assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# 7/8. Vectorised scenario construction: same scenarios as the old per-element path,
# the same one-line messages for bad entries deep in large files
# ------------------------------------------------------------------------------------------
def test_builtins_equal_the_per_element_reference(data_dir):
    import scenario_reference as ref
    from distalloc.llm import builtins as new
    pairs = [(ref.clustered(), new.clustered()),
             (ref.clustered(33, 64, 7), new.clustered(33, 64, 7)),
             (ref.synthetic_scenario(500, 40, seed=3), new.synthetic_scenario(500, 40, seed=3)),
             (ref.topology_scenario("GtsCe", seed=2), new.topology_scenario("GtsCe", seed=2))]
    for old, fast in pairs:
        assert old.to_dict() == fast.to_dict()
        for f in ("memory_gb", "decode_ms", "prefill_ms", "reserve_gb", "rtt_ms",
                  "prefill_rtt_ms", "requests", "forward_rps", "network_rps"):
            assert np.array_equal(getattr(old, f), getattr(fast, f)), f
        assert old.cache_gb == fast.cache_gb and old.online == fast.online


@pytest.mark.parametrize("field, value, needle", [
    ("memory_gb", "80", "The 'memory_gb' parameter of servers[700] must be a float in (0, inf). Got '80' instead."),
    ("decode_ms", None, "The 'decode_ms' parameter of servers[700] must be a float"),
    ("prefill_ms", True, "The 'prefill_ms' parameter of servers[700]"),
    ("reserve_gb", -1, "The 'reserve_gb' parameter of servers[700] must be a float in [0, inf). Got -1 instead."),
    ("name", 7, "The 'name' parameter of servers[700] must be a non-empty string. Got 7 instead."),
    ("gpu", "x", "Unknown key 'gpu' in 'servers[700]'"),
])
def test_large_file_names_the_bad_entry(field, value, needle):
    d = synthetic_scenario(1000, 8).to_dict()
    d["servers"][700][field] = value
    with pytest.raises(ValidationError) as err:
        scenario_from_dict(d)
    assert needle in str(err.value)


def test_large_file_matrix_and_requests_entries():
    d = synthetic_scenario(1000, 8).to_dict()
    d["rtt_ms"][2][999] = float("nan")
    with pytest.raises(ValidationError, match=r"'rtt_ms\[2\]\[999\]' parameter"):
        scenario_from_dict(d)
    d = synthetic_scenario(1000, 8).to_dict()
    d["workload"]["requests"][55] = 4
    with pytest.raises(ValidationError, match=r"The 'requests\[55\]' parameter of workload must be an int in \[0, 3\]"):
        scenario_from_dict(d)
    d["workload"]["requests"][55] = 1.5
    with pytest.raises(ValidationError, match=r"requests\[55\]"):
        scenario_from_dict(d)
    d = synthetic_scenario(10, 8).to_dict()
    d["servers"][9]["name"] = "s3"
    with pytest.raises(ValidationError, match="Server names must be unique. Got 's3' twice."):
        scenario_from_dict(d)


def test_counts_bounded_for_kernels():
    assert MAX_COUNT == 2 ** 53
    with pytest.raises(ValidationError, match="num_requests"):
        cg_bp_placement(clustered(), 2 ** 53 + 1)
    assert not cg_bp_placement(clustered(), 2 ** 53).feasible


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc and libasan")
def test_kernels_under_asan():
    """Purpose: prove memory safety of the LLM kernels on the issue's reproducers and on
    hostile arrays passed to the kernels directly, with an AddressSanitizer build
    (~90 s: two compiles, 23 fresh interpreters)."""
    pytest.importorskip("Cython")
    out = subprocess.run([sys.executable, str(HERE / "asan_llm.py")], capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
