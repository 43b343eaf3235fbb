"""Calibration of the performance model from measurements (SPEC 1.11): recovery of known
constants, refusal of designs that cannot determine them, one-line errors for bad files,
profiles applied to scenarios."""
from __future__ import annotations

import json

import numpy as np
import pytest

from distalloc._validation import ValidationError
from distalloc.cli import main
from distalloc.llm import clustered, plan
from distalloc.llm.calibrate import (MEASUREMENT_COLUMNS, Measurement, Profile, ServerProfile,
                                     apply_profile, calibrate, load_profile, predict,
                                     read_measurements, write_measurements)


def true_profile(rng, S) -> Profile:
    return Profile({f"s{j}": ServerProfile(float(rng.uniform(0.2, 3.0)),
                                           float(rng.uniform(0.5, 5.0)),
                                           float(rng.uniform(0.01, 0.2)))
                    for j in range(S)},
                   hop_overhead_ms=float(rng.uniform(2, 8)),
                   prefill_hop_overhead_ms=float(rng.uniform(3, 12)),
                   prefill_hop_overhead_ms_per_token=float(rng.uniform(0.0, 0.3)))


def synthetic_rows(rng, profile: Profile, n: int, noise: float = 0.0,
                   lengths=(8, 16, 32, 64)) -> list[Measurement]:
    """Requests over random chains of the servers, times from the model times log-normal
    noise of relative size ``noise``."""
    names = list(profile.servers)
    rows = []
    for _ in range(n):
        hops = int(rng.integers(1, min(len(names), 4) + 1))
        chain = [names[i] for i in rng.permutation(len(names))[:hops]]
        blocks = tuple(int(b) for b in rng.integers(1, 9, size=hops))
        rtt = tuple(float(x) for x in rng.uniform(0, 50, size=hops).round(1))
        l_in = int(rng.choice(lengths))
        m = Measurement(tuple(chain), blocks, rtt, l_in, 16, 1.0, 1.0)
        p = predict(profile, [m])
        tok, ttft = p.token_ms[0], p.ttft_ms[0]
        if noise:
            tok *= float(np.exp(rng.normal(0, noise)))
            ttft *= float(np.exp(rng.normal(0, noise)))
        rows.append(Measurement(m.servers, blocks, rtt, l_in, 16, float(ttft), float(tok)))
    return rows


def flat(profile: Profile) -> np.ndarray:
    out = []
    for p in profile.servers.values():
        out += [p.decode_ms, p.prefill_ms_intercept, p.prefill_ms_per_token]
    return np.array(out + [profile.hop_overhead_ms, profile.prefill_hop_overhead_ms,
                           profile.prefill_hop_overhead_ms_per_token])


@pytest.mark.parametrize("S", [1, 2, 3, 6])
def test_exact_recovery_without_noise(S):
    rng = np.random.default_rng(S)
    truth = true_profile(rng, S)
    cal = calibrate(synthetic_rows(rng, truth, 40 * S))
    assert set(cal.profile.servers) == set(truth.servers)
    got = Profile({n: cal.profile.servers[n] for n in truth.servers}, cal.profile.hop_overhead_ms,
                  cal.profile.prefill_hop_overhead_ms, cal.profile.prefill_hop_overhead_ms_per_token)
    np.testing.assert_allclose(flat(got), flat(truth), rtol=1e-7, atol=1e-7)
    assert cal.to_dict()["token_rel_error_p95"] < 1e-9


@pytest.mark.parametrize("S,seed", [(1, 0), (3, 1), (6, 2), (6, 3)])
def test_recovery_with_noise(S, seed):
    """2% log-normal noise, 400 rows: every per-token constant within 5 standard errors of
    the truth.  The standard error comes from the weighted design (rows / measured time),
    so the tolerance scales with how well the design pins each unknown."""
    rng = np.random.default_rng(100 + seed)
    truth = true_profile(rng, S)
    rows = synthetic_rows(rng, truth, 400, noise=0.02)
    cal = calibrate(rows)
    names = list(truth.servers)
    # standard errors of the per-token unknowns from (A_w^T A_w)^-1 sigma^2
    K = np.array([[sum(k for s, k in zip(m.servers, m.blocks) if s == n) for n in names]
                  + [len(m.servers)] for m in rows], dtype=float)
    tok = np.array([m.token_ms for m in rows])
    Aw = K / tok[:, None]
    se = 0.02 * np.sqrt(np.diag(np.linalg.inv(Aw.T @ Aw)))
    est = np.array([cal.profile.servers[n].decode_ms for n in names] + [cal.profile.hop_overhead_ms])
    true = np.array([truth.servers[n].decode_ms for n in names] + [truth.hop_overhead_ms])
    assert np.all(np.abs(est - true) <= 5 * se + 1e-9), (est, true, se)
    # the fit's own errors are the noise's: median |log-normal(0.02) - 1| ~ 0.0135
    d = cal.to_dict()
    assert 0.005 < d["token_rel_error_median"] < 0.03
    assert d["token_rel_error_p95"] < 0.06
    # held-out rows from the same swarm are predicted as well as the fitted ones
    held = calibrate(rows, validate=synthetic_rows(rng, truth, 200, noise=0.02)).validation
    assert held["token_rel_error_median"] < 0.03 and held["ttft_rel_error_median"] < 0.03


def test_interior_solution_equals_unconstrained_least_squares():
    """Where no bound is active, BVLS is ordinary weighted least squares (numpy oracle)."""
    rng = np.random.default_rng(7)
    truth = true_profile(rng, 3)
    rows = synthetic_rows(rng, truth, 120, noise=0.01)
    cal = calibrate(rows)
    names = sorted(truth.servers)
    A = np.array([[sum(k for s, k in zip(m.servers, m.blocks) if s == n) for n in names]
                  + [len(m.servers)] for m in rows], dtype=float)
    tok = np.array([m.token_ms for m in rows])
    b = tok - np.array([sum(m.rtt_ms) for m in rows])
    x, *_ = np.linalg.lstsq(A / tok[:, None], b / tok, rcond=None)
    assert np.all(x > 0)
    got = [cal.profile.servers[n].decode_ms for n in names] + [cal.profile.hop_overhead_ms]
    np.testing.assert_allclose(got, x, rtol=1e-8)


def test_terms_are_never_negative():
    """Zero true hop overhead plus noise: unconstrained least squares would go negative."""
    rng = np.random.default_rng(3)
    truth = Profile({"a": ServerProfile(1.0, 2.0, 0.05), "b": ServerProfile(2.0, 1.0, 0.1)},
                    0.0, 0.0, 0.0)
    negative_seen = False
    for seed in range(6):
        rows = synthetic_rows(np.random.default_rng(seed), truth, 30, noise=0.05)
        p = calibrate(rows).profile
        assert all(v >= 0 for v in flat(p))
        negative_seen |= p.hop_overhead_ms == 0.0 or p.prefill_hop_overhead_ms == 0.0
    assert negative_seen   # the bound was active at least once


# -- designs that cannot determine every unknown -------------------------------------------
def test_single_prompt_length_is_refused_naming_the_per_token_terms():
    rng = np.random.default_rng(0)
    rows = synthetic_rows(rng, true_profile(rng, 2), 50, lengths=(16,))
    with pytest.raises(ValidationError, match=r"prefill_ms_per_token of 's0'.*two prompt lengths"):
        calibrate(rows)


def test_fixed_chains_cannot_separate_hop_overhead_from_decode():
    rows = [Measurement(("a",), (4,), (10.0,), l, 8, 50.0 + l, 20.0) for l in (8, 16, 32)]
    with pytest.raises(ValidationError, match=r"decode_ms of 'a', hop_overhead_ms \(per-token"):
        calibrate(rows)
    # two block counts on the single server (at two prompt lengths) make it determinable
    rows += [Measurement(("a",), (2,), (10.0,), l, 8, 40.0 + l, 15.0) for l in (8, 16)]
    calibrate(rows)


def test_server_that_never_appears_is_named():
    rng = np.random.default_rng(1)
    rows = synthetic_rows(rng, true_profile(rng, 2), 40)
    with pytest.raises(ValidationError, match="Server 'gpu-9' never appears in the measurements"):
        calibrate(rows, servers=["s0", "gpu-9"])
    assert list(calibrate(rows, servers=["s1", "s0"]).profile.servers) == ["s1", "s0"]


def test_every_message_is_one_line():
    rows = [Measurement(("a", "b"), (2, 2), (1.0, 1.0), 8, 8, 30.0, 10.0)] * 5
    with pytest.raises(ValidationError) as e:
        calibrate(rows)
    assert "\n" not in str(e.value)


# -- files ------------------------------------------------------------------------------------
HEADER = ",".join(MEASUREMENT_COLUMNS)


@pytest.mark.parametrize("body,match", [
    ("servers,blocks,rtt_ms,input_tokens,output_tokens,ttft_ms\na,1,0,8,8,5\n",
     "lacks the column 'token_ms'"),
    (HEADER + "\n", "has no rows"),
    ("", "lacks the column 'servers'"),
    (HEADER + "\na>b,1,0>0,8,8,5,2\n", r"row 1: the 'blocks' column has 1 entries but 'servers' has 2"),
    (HEADER + "\na,1,0,8,8,5,2\na>,1>1,0>0,8,8,5,2\n", r"row 2: the 'servers' column must be a '>'-separated"),
    (HEADER + "\na,x,0,8,8,5,2\n", r"row 1: the 'blocks' column must be an int\.$"),
    (HEADER + "\na,0,0,8,8,5,2\n", r"'blocks' parameter of .*row 1 must be an int in \[1, 2\^20\]. Got 0"),
    (HEADER + "\na,1.5,0,8,8,5,2\n", r"'blocks' parameter .* must be an int"),
    (HEADER + "\na,1,-3,8,8,5,2\n", r"'rtt_ms' parameter .* Got -3.0"),
    (HEADER + "\na,1,0,8,8,5,nan\n", r"'token_ms' parameter .* Got nan"),
    (HEADER + "\na,1,0,8,8,0,2\n", r"'ttft_ms' parameter .* \[1e-06, 1e\+15\]"),
    (HEADER + "\na,1,0,8,8,5\n", "row 1: expected 7 fields"),
    (HEADER + "\na,1,0,8,8,5,2,9\n", "row 1: expected 7 fields"),
])
def test_bad_files_are_one_line_errors(tmp_path, capsys, body, match):
    f = tmp_path / "m.csv"
    f.write_text(body)
    with pytest.raises(ValidationError, match=match):
        read_measurements(f)
    assert main(["llm", "calibrate", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("distalloc: error: ")


def test_missing_file(tmp_path, capsys):
    assert main(["llm", "calibrate", str(tmp_path / "none.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_extra_columns_are_kept_out_of_the_fit(tmp_path):
    rng = np.random.default_rng(5)
    truth = true_profile(rng, 2)
    rows = synthetic_rows(rng, truth, 30)
    f = tmp_path / "m.csv"
    write_measurements(f, rows, [{"run": "r1", "load_avg_1m": 2.5}] * len(rows))
    back = read_measurements(f)
    assert [m.servers for m in back] == [m.servers for m in rows]
    np.testing.assert_allclose(flat(calibrate(back).profile)[:3],
                               flat(calibrate(rows).profile)[:3], rtol=1e-5)


# -- profiles and the command line -------------------------------------------------------------
def test_cli_json_keys_profile_round_trip_and_plan_with_profile(tmp_path, capsys):
    sc = clustered()
    rng = np.random.default_rng(11)
    truth = Profile({n: ServerProfile(float(rng.uniform(1, 20)), 20.0, 0.1) for n in sc.server_names},
                    hop_overhead_ms=100.0, prefill_hop_overhead_ms=67.0,
                    prefill_hop_overhead_ms_per_token=0.7)
    rows = synthetic_rows(rng, truth, 300, noise=0.0)
    f = tmp_path / "m.csv"
    write_measurements(f, rows)
    prof = tmp_path / "profile.json"
    assert main(["llm", "calibrate", str(f), "--json", "--out", str(prof)]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("servers", "hop_overhead_ms", "prefill_hop_overhead_ms",
                "token_rel_error_median", "token_rel_error_p95", "num_rows"):
        assert key in d
    assert d["num_rows"] == 300
    assert set(d["servers"]["a100-0"]) == {"decode_ms", "prefill_ms_intercept", "prefill_ms_per_token"}
    assert d["hop_overhead_ms"] == pytest.approx(100.0, rel=1e-5)
    p = load_profile(prof)
    assert p.servers["mig-3"].decode_ms == pytest.approx(truth.servers["mig-3"].decode_ms, rel=1e-5)

    # the profile on a scenario whose RTTs are raw round trips: the plan's per-token time is
    # the model with the profile's constants
    raw = clustered()
    from dataclasses import replace
    raw = replace(raw, rtt_ms=raw.rtt_ms - 100.0, prefill_rtt_ms=raw.rtt_ms - 100.0)
    cal_sc = apply_profile(raw, p)
    np.testing.assert_allclose(cal_sc.rtt_ms, sc.rtt_ms, rtol=1e-6)
    # (the CSV keeps 4 decimals of each time)
    np.testing.assert_allclose(cal_sc.decode_ms, [truth.servers[n].decode_ms for n in sc.server_names],
                               rtol=1e-5)
    np.testing.assert_allclose(cal_sc.prefill_ms, 20.0 + 0.1 * sc.input_tokens, rtol=1e-5)
    pl = plan(cal_sc, "cg-bprr")
    assert pl.feasible
    # and the same through the command line
    scen = tmp_path / "raw.json"
    scen.write_text(raw.to_json())
    assert main(["llm", "plan", str(scen), "--profile", str(prof), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mean_token_ms"] == pytest.approx(pl.mean_token_ms, rel=1e-9)
    assert main(["llm", "simulate", str(scen), "--profile", str(prof), "--num-requests", "5",
                 "--json"]) == 0
    capsys.readouterr()


def test_profile_missing_a_server(tmp_path, capsys):
    p = Profile({"a100-0": ServerProfile(1, 1, 0)}, 0, 0)
    with pytest.raises(ValidationError, match="Server 'a100-1' of scenario 'clustered' is not in the profile"):
        apply_profile(clustered(), p)
    kept = apply_profile(clustered(), p, strict=False)
    assert kept.decode_ms[0] == 1 and kept.decode_ms[1] == clustered().decode_ms[1]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(p.to_dict()))
    assert main(["llm", "plan", "clustered", "--profile", str(f)]) == 2
    assert "not in the profile" in capsys.readouterr().err


@pytest.mark.parametrize("data,match", [
    ({"servers": {}, "hop_overhead_ms": 0, "prefill_hop_overhead_ms": 0}, "non-empty object"),
    ({"servers": {"a": {"decode_ms": -1, "prefill_ms_intercept": 0, "prefill_ms_per_token": 0}},
      "hop_overhead_ms": 0, "prefill_hop_overhead_ms": 0}, r"'decode_ms' parameter of profile"),
    ({"servers": {"a": {"decode_ms": 1, "prefill_ms_intercept": 0}},
      "hop_overhead_ms": 0, "prefill_hop_overhead_ms": 0}, "Missing key 'prefill_ms_per_token'"),
    ({"servers": {"a": {"decode_ms": 1, "prefill_ms_intercept": 0, "prefill_ms_per_token": 0}},
      "hop_overhead": 0, "prefill_hop_overhead_ms": 0}, "Unknown key 'hop_overhead'"),
])
def test_bad_profiles(tmp_path, data, match):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=match):
        load_profile(f)


def test_cli_text_output(tmp_path, capsys):
    rng = np.random.default_rng(2)
    truth = true_profile(rng, 2)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_measurements(a, synthetic_rows(rng, truth, 40, noise=0.01))
    write_measurements(b, synthetic_rows(rng, truth, 20, noise=0.01))
    assert main(["llm", "calibrate", str(a), "--validate", str(b)]) == 0
    out = capsys.readouterr().out
    assert "calibrated on 40 measured requests" in out and "held out:" in out
    assert main(["llm", "calibrate", str(a), "--validate", str(b), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["validation"]["num_rows"] == 20


# -- classes of servers sharing constants ------------------------------------------------------
def test_classes_share_constants_and_need_fewer_measurements():
    """Six servers of two hardware classes: with the classes the fit recovers each class's
    constants from designs too small to pin six servers apart."""
    rng = np.random.default_rng(21)
    fast, slow = ServerProfile(0.5, 2.0, 0.05), ServerProfile(2.0, 6.0, 0.2)
    names = [f"s{j}" for j in range(6)]
    kinds = {n: ("fast" if j < 2 else "slow") for j, n in enumerate(names)}
    truth = Profile({n: fast if kinds[n] == "fast" else slow for n in names}, 4.0, 9.0, 0.1)
    # four chain designs (x two prompt lengths): fewer than the 7 per-token unknowns
    designs = [(("s0", "s2"), (30, 40)), (("s1", "s3", "s4"), (10, 20, 40)),
               (("s5",), (70,)), (("s2", "s0", "s5"), (5, 30, 35))]
    rows = []
    for servers, blocks in designs:
        for l_in in (8, 32):
            m = Measurement(servers, blocks, tuple(10.0 for _ in servers), l_in, 16, 1.0, 1.0)
            p = predict(truth, [m])
            rows.append(Measurement(servers, blocks, m.rtt_ms, l_in, 16, float(p.ttft_ms[0]),
                                    float(p.token_ms[0])))
    with pytest.raises(ValidationError, match="cannot separate decode_ms of 's0'"):
        calibrate(rows)
    cal = calibrate(rows, classes=kinds)
    for n in names:
        np.testing.assert_allclose(flat(Profile({n: cal.profile.servers[n]}, 0, 0)),
                                   flat(Profile({n: truth.servers[n]}, 0, 0)), rtol=1e-7, atol=1e-9)
    assert cal.profile.hop_overhead_ms == pytest.approx(4.0)
    assert cal.to_dict()["server_classes"] == kinds
    # 'one' ties everything: the slow/fast difference is lost, but the fit runs
    one = calibrate(rows, classes="one")
    assert len({p.decode_ms for p in one.profile.servers.values()}) == 1


def test_class_rank_errors_name_the_class(tmp_path, capsys):
    rows = [Measurement(("a", "b"), (35, 35), (1.0, 1.0), l, 8, 30.0 + l, 10.0) for l in (8, 16)]
    with pytest.raises(ValidationError, match="decode_ms of class 'gpu', hop_overhead_ms"):
        calibrate(rows, classes={"a": "gpu", "b": "gpu"})
    with pytest.raises(ValidationError, match="names server 'zz', which never appears"):
        calibrate(rows, classes={"zz": "gpu"})
    f = tmp_path / "m.csv"
    write_measurements(f, rows)
    assert main(["llm", "calibrate", str(f), "--classes", "a=gpu,b"]) == 2
    assert "NAME=CLASS pairs" in capsys.readouterr().err
