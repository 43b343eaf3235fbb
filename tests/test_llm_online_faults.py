"""Faults the fuzz suite found in the LLM online engine, chain composition and calibration
(issue 16, tests/fuzz/fuzz_llm_online.py), one test per kind with the right value: a
one-line ValidationError naming the field (or the right answer), never another exception,
a non-finite number or a file written half-way."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.llm import (Measurement, Profile, Swarm, apply_profile, calibrate, clustered,
                           compose_chains, gbp_cr, jffc_bounds, plan, predict, simulate)
from distalloc.llm.calibrate import ServerProfile, write_measurements
from distalloc.llm.milp import solve_milp
from distalloc.llm.workload import trace_workload

NOT_A_NAME = [[], {}, math.nan, 3, ["cg-bprr"]]      # (None is the default of some)


def one_line(exc_info, *words):
    text = str(exc_info.value)
    assert "\n" not in text
    for w in words:
        assert w in text, (w, text)


# ------------------------------------------------------------------------------------------
# a choice parameter given something that is not one of its names (lists, dicts: TypeError
# "unhashable type" before)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", NOT_A_NAME)
@pytest.mark.parametrize("call, field", [
    (lambda sc, v: Swarm(sc, method=v), "method"),
    (lambda sc, v: Swarm(sc, policy=v), "policy"),
    (lambda sc, v: simulate(sc, v, num_requests=3), "method"),
    (lambda sc, v: simulate(sc, "cg-bprr", num_requests=3, service=v), "service"),
    (lambda sc, v: plan(sc, v), "method"),
    (lambda sc, v: compose_chains(sc, v), "method"),
    (lambda sc, v: compose_chains(sc, objective=v), "objective"),
    (lambda sc, v: solve_milp(sc, solver=v), "solver"),
])
def test_choice_parameters_refuse_what_is_not_a_name(call, field, bad):
    with pytest.raises(ValidationError) as e:
        call(clustered(), bad)
    one_line(e, f"'{field}'", "must be one of")


def test_trace_format_refuses_what_is_not_a_name(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,10,5\n")
    with pytest.raises(ValidationError) as e:
        trace_workload(clustered(), p, trace_format=["azure"])
    one_line(e, "'trace_format'", "must be one of")


@pytest.mark.parametrize("bad", [None, 1.5, 3, True])
def test_client_groups_neither_a_name_nor_a_list(bad):
    with pytest.raises(ValidationError) as e:
        compose_chains(clustered(), client_groups=bad)
    one_line(e, "'client_groups'", "list of one group per client")
    with pytest.raises(ValidationError):
        gbp_cr(clustered(), 3, 0.5, client_groups=bad)


# ------------------------------------------------------------------------------------------
# Swarm: ids beyond int64 (OverflowError before), times whose milliseconds overflow
# (a NaN start and a to_dict() that is not JSON before), block counts that are not a list
# ------------------------------------------------------------------------------------------
def test_swarm_session_ids_of_any_size_are_one_line_errors():
    sw = Swarm(clustered(), planned_requests=20)
    a = sw.route(0, 0.0)
    for bad in (2 ** 63, 2 ** 64, 10 ** 30, -1):
        with pytest.raises(ValidationError) as e:
            sw.finish(bad, 1.0)
        one_line(e, "'session'")
        with pytest.raises(ValidationError):
            sw.session(bad)
    sw.finish(a.session, a.finish_s)          # the state is unchanged by the refusals
    assert sw.num_sessions == 0


@pytest.mark.parametrize("when", [1.7976931348623157e308, 1e300, 1e13, math.inf, math.nan])
def test_swarm_times_are_bounded_so_that_the_state_stays_finite(when):
    sw = Swarm(clustered(), planned_requests=20)
    with pytest.raises(ValidationError) as e:
        sw.route(0, when)
    one_line(e, "'now_s'", "1e+12")
    assert sw.now_s == 0.0 and sw.num_sessions == 0
    # the bound itself works: the session's times are finite and 82.2 s apart as at t = 0
    a = sw.route(0, 1e12)
    assert a.start_s == 1e12 and a.finish_s == pytest.approx(1e12 + 82.1986, abs=1e-3)
    json.dumps(sw.to_dict(), allow_nan=False)


@pytest.mark.parametrize("bad", [1.5, 3, "2,2", {}, [[1, 2]], [1.0] * 9])
def test_swarm_block_counts_must_be_one_int_per_server(bad):
    with pytest.raises(ValidationError) as e:
        Swarm(clustered(), planned_requests=20, block_counts=bad)
    one_line(e, "'block_counts'")


# ------------------------------------------------------------------------------------------
# jffc_bounds: ragged or non-numeric arrays (TypeError/ValueError before), a total service
# rate that overflows
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rates, caps", [([1.0, [2.0]], [1, 1]), ({"a": 1}, [1]),
                                         ([[1.0, 2.0]], [1, 1]), ([1.0, 2.0], [1]),
                                         ([1.0], [1.5]), (["1"], [1]),
                                         (1e8, [7]), ([1.0], 7)])      # no scalar as (1,)
def test_jffc_bounds_arrays_are_checked_before_any_arithmetic(rates, caps):
    with pytest.raises(ValidationError) as e:
        jffc_bounds(rates, caps, 0.5)
    assert "\n" not in str(e.value)


def test_jffc_bounds_refuse_a_total_rate_that_overflows():
    with pytest.raises(ValidationError) as e:
        jffc_bounds([1e308, 1e308], [2 ** 53, 2 ** 53], 0.5)
    one_line(e, "total service rate")
    # the right value where it is defined: M/M/3 at λ = 2 (Erlang C), 13/9 s
    lo, up = jffc_bounds([1.0], [3], 2.0)
    assert lo == pytest.approx(13 / 9) and up == pytest.approx(13 / 9)


# ------------------------------------------------------------------------------------------
# calibration: measured values whose sums or weights overflow (LinAlgError "SVD did not
# converge", relative errors of inf before), arguments that are not rows, profiles with
# constants whose predictions overflow
# ------------------------------------------------------------------------------------------
def exact_rows():
    dec, pre_i, pre_t, hop, phop = {"a": 2.0, "b": 3.0}, {"a": 4.0, "b": 1.0}, \
        {"a": 0.1, "b": 0.2}, 5.0, 7.0
    rows = []
    for chain, blocks in ((("a",), (3,)), (("b",), (2,)), (("a", "b"), (1, 4)),
                          (("b", "a"), (2, 2)), (("a",), (5,)), (("b",), (6,))):
        for l_in in (4, 16):
            tok = sum(10.0 + hop + dec[s] * k for s, k in zip(chain, blocks))
            ttft = sum(10.0 + phop + k * (pre_i[s] + pre_t[s] * l_in)
                       for s, k in zip(chain, blocks))
            rows.append(Measurement(chain, blocks, (10.0,) * len(chain), l_in, 8, ttft, tok))
    return rows


@pytest.mark.parametrize("column, value", [("token_ms", "1e308"), ("ttft_ms", "1e300"),
                                           ("rtt_ms", "1.7976931348623157e308"),
                                           ("token_ms", "1e-320"), ("ttft_ms", "1e-9")])
def test_measured_values_are_bounded(tmp_path, column, value):
    path = tmp_path / "m.csv"
    write_measurements(path, exact_rows())
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index(column)] = value
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError) as e:
        calibrate(path)
    one_line(e, f"'{column}'", "row 1")


def test_calibrate_recovers_the_constants_of_exact_rows():
    p = calibrate(exact_rows()).profile
    assert p.servers["a"].decode_ms == pytest.approx(2.0)
    assert p.servers["b"].prefill_ms_per_token == pytest.approx(0.2)
    assert p.hop_overhead_ms == pytest.approx(5.0)
    assert p.prefill_hop_overhead_ms == pytest.approx(7.0)


@pytest.mark.parametrize("kw, field", [({"servers": True}, "servers"),
                                       ({"servers": "a"}, "servers"),
                                       ({"validate": 3}, "validate"),
                                       ({"validate": [1, 2]}, "validate[0]")])
def test_calibrate_arguments_that_are_not_rows_or_names(kw, field):
    with pytest.raises(ValidationError) as e:
        calibrate(exact_rows(), **kw)
    one_line(e, field)


@pytest.mark.parametrize("bad", [3, None, Measurement(("a",), (1,), (1.0,), 4, 8, 1.0, 1.0)])
def test_calibrate_measurements_must_be_a_path_or_rows(bad):
    with pytest.raises(ValidationError) as e:
        calibrate(bad)
    one_line(e, "'measurements'")


@pytest.mark.parametrize("field, value", [("token_ms", math.nan), ("ttft_ms", -1.0),
                                          ("token_ms", 1e-320), ("blocks", (0,)),
                                          ("rtt_ms", (math.inf,)), ("servers", ("a>b",)),
                                          ("input_tokens", 2 ** 64)])
def test_measurements_built_in_python_are_checked_as_rows(field, value):
    rows = exact_rows()
    m = rows[0]
    rows[0] = Measurement(**{**m.__dict__, field: value})
    with pytest.raises(ValidationError) as e:
        calibrate(rows)
    one_line(e, "measurements[0]", field)


def test_profiles_with_constants_whose_predictions_overflow():
    big = Profile({"a": ServerProfile(1e308, 0.0, 0.0), "b": ServerProfile(1.0, 0.0, 0.0)},
                  0.0, 0.0)
    with pytest.raises(ValidationError) as e:
        predict(big, exact_rows())
    one_line(e, "'decode_ms'", "1e+15")
    sc = clustered()
    with pytest.raises(ValidationError):
        apply_profile(sc, Profile({n: ServerProfile(1e308, 0, 0) for n in sc.server_names},
                                  0.0, 0.0))
    with pytest.raises(ValidationError) as e:
        predict(calibrate(exact_rows()).profile, [])
    one_line(e, "at least one")
    # the right value: the fitted profile predicts its exact rows exactly
    pr = predict(calibrate(exact_rows()).profile, exact_rows())
    assert pr.summary()["token_rel_error_p95"] < 1e-9


def test_calibrate_cli_checks_out_before_any_work_and_never_clobbers(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    write_measurements("m.csv", exact_rows())
    (tmp_path / "dir").mkdir()
    for out, words in (("no/p.json", "does not exist"), ("dir", "folder")):
        assert main(["llm", "calibrate", "m.csv", "--out", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    (tmp_path / "p.json").write_text("keep")
    write_measurements("bad.csv", exact_rows()[:1])     # one row: cannot be fitted
    assert main(["llm", "calibrate", "bad.csv", "--out", "p.json"]) == 2
    assert (tmp_path / "p.json").read_text() == "keep"
    assert main(["llm", "calibrate", "m.csv", "--out", "p.json", "--json"]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["hop_overhead_ms"] == \
        pytest.approx(5.0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.json")]


# ------------------------------------------------------------------------------------------
# one Poisson request: its realised rate is undefined, the rate asked for is not (the chain
# methods refused it, CG-BP planned for an infinite rate, |R| = R_max)
# ------------------------------------------------------------------------------------------
def test_one_poisson_request_is_designed_for_the_rate_asked_for(capsys):
    from distalloc.llm.simulation import choose_planned_requests
    sc = clustered()
    r = simulate(sc, "chains", num_requests=1, rate_per_s=0.5)
    assert r.extra["design_rate_per_s"] == 0.5 and r.dropped == 0
    assert math.isfinite(r.to_dict()["mean_token_s"])
    r = simulate(sc, "cg-bprr", num_requests=1, rate_per_s=0.5)
    counts = np.bincount(r.workload.client, minlength=sc.num_clients)
    assert r.planned_requests == choose_planned_requests(sc, 0.5, counts / counts.sum())
    assert main(["llm", "simulate", "clustered", "--method", "chains", "--num-requests",
                 "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["design_rate_per_s"] == 0.5


# ------------------------------------------------------------------------------------------
# rates the chain methods are designed for: a subnormal rate made GBP-CR "feasible" with no
# chain and Theorem 4's lower bound 0; a group whose target underflows still gets a chain
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [5e-324, 1e-300, 0.0, 1e300])
def test_chain_rates_are_bounded(rate):
    sc = clustered()
    for call in (lambda: gbp_cr(sc, 1, rate), lambda: compose_chains(sc, rate_per_s=rate),
                 lambda: jffc_bounds([1.0], [3], rate),
                 lambda: simulate(sc, "chains", num_requests=3, design_rate_per_s=rate)):
        with pytest.raises(ValidationError) as e:
            call()
        one_line(e, "rate_per_s", "1e-12")


def test_light_load_limits_are_right():
    # λ -> 0: every job finds the system empty; the bounds tend to the fastest and the
    # slowest slot's time (Theorem 4), here at the smallest rate accepted
    lo, up = jffc_bounds([4.0, 0.5], [2, 3], 1e-12)
    assert lo == pytest.approx(0.25, rel=1e-9) and up == pytest.approx(2.0, rel=1e-9)
    p = gbp_cr(clustered(), 1, 1e-12)
    assert p.feasible and p.num_chains == 1 and p.covers_all_blocks(clustered().num_blocks)


# ------------------------------------------------------------------------------------------
# churn whose failures outnumber what a run can afford (the event loop ran for minutes,
# its log growing, when servers failed far faster than sessions end)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("churn, words", [("1e-9", "failures and repairs, more than the limit"),
                                          ("5e-324", "default MTTR"),
                                          ("1e300", "(0, 1e+12]"),
                                          ((1.0, math.inf), "MTTR_S")])
def test_churn_cost_is_checked_before_the_run(churn, words):
    with pytest.raises(ValidationError) as e:
        simulate(clustered(), "cg-bprr", num_requests=20, churn=churn)
    one_line(e, words)


@pytest.mark.parametrize("method", ["cg-bprr", "chains"])
def test_churn_that_never_drains_stops_at_the_event_limit(method):
    # MTBF 1 s against sessions of ~80 s: the expected events over the arrivals are few,
    # but no session ever finishes; the loop stops at max_churn_events
    with pytest.raises(ValidationError) as e:
        simulate(clustered(), method, num_requests=3, rate_per_s=5.0, churn="1:1",
                 max_churn_events=20_000)
    one_line(e, "more than 20000 failures and repairs", "max_churn_events")
    r = simulate(clustered(), method, num_requests=20, churn="100:10")   # drains: runs
    assert r.dropped == 0 and r.to_dict()["failures"] > 0


def test_jffc_bounds_refuse_job_slots_beyond_memory():
    # one term per job slot: 2^40 slots (44 TB) raised MemoryError (masked as a known fault)
    with pytest.raises(ValidationError) as e:
        jffc_bounds([1.0, 2.0], [2 ** 40, 3], 0.5)
    one_line(e, "1099511627779 slots", "limit")
    lo, up = jffc_bounds([1.0], [10 ** 6], 2.0)     # a million slots still computed
    assert lo == pytest.approx(1.0) and up == pytest.approx(1.0)


def test_chain_job_length_beyond_the_time_bound_is_refused():
    """Fuzz finding (10^4 budget): output_tokens 1.4e243 made client costs infinite and
    scipy's linkage raised a ValueError; the job length is bounded like a scenario's."""
    from distalloc._validation import ValidationError
    from distalloc.llm import clustered, compose_chains
    sc = clustered()
    with pytest.raises(ValidationError, match=r"'output_tokens' .* \[1, .*Got 1.4e\+243"):
        compose_chains(sc, "chains", reservation="auto", output_tokens=1.4e243,
                       client_groups="auto")
    assert compose_chains(sc, "chains", reservation="auto", output_tokens=128).chains


def test_reroute_waiting_must_be_a_bool():
    """Fuzz finding (10^4 budget): reroute_waiting=2 was taken as truthy."""
    from distalloc._validation import ValidationError
    from distalloc.llm import Swarm, clustered, simulate
    with pytest.raises(ValidationError, match="'reroute_waiting' parameter must be True or False. Got 2"):
        Swarm(clustered(), None, "cg-bprr", "ws-rr", reroute_waiting=2)
    with pytest.raises(ValidationError, match="'reroute_waiting' parameter must be True or False"):
        simulate(clustered(), "cg-bprr", num_requests=5, reroute_waiting="yes")
