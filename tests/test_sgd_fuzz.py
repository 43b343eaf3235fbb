"""Every SGD command line with extreme and malformed numbers (issue 16): exit 0 with finite,
physically possible output, or exit 2 with exactly one stderr line; never a traceback,
a warning before the error, or a hang (20 s per case)."""
import contextlib
import io
import json
import math
import signal
import warnings

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from distalloc.cli import main

WEIRD = ["0", "-1", "1e-300", "5e-324", "1e300", "1e308", "nan", "inf", "-inf", "2",
         "0.001", "9223372036854775808", "1e-9", "abc"]
INTS = ["0", "-3", "1", "2", "5", "50", "2001", "99999999999999999999", "1.5", "x"]
MODELS = ["exp:1", "exp:1e-300", "exp:1e300", "shifted-exp:1e308:1", "pareto:1:0.05",
          "pareto:1:0.9", "pareto:1e-300:2", "lognormal:1000:1", "lognormal:0:1e-300",
          "lognormal:-700:1", "lognormal:0:50", "gamma:1", "exp:nan", "exp", "pareto:1",
          "exp:1:2"]
POLICIES = ["fixed:1", "fixed:0", "fixed:3", "sync", "bound", "bound:0", "pflug",
            "pflug:1:1:0:0", "pflug:1:99999999999999999999", "dbw", "dbw:1", "async", "x:1"]


def _finite(x):
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return x is not None and (not isinstance(x, float) or math.isfinite(x))


class _Timeout(Exception):
    pass


def _run(argv):
    def alarm(*_):
        raise _Timeout(argv)
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert not caught, (argv, [str(w.message) for w in caught])
    return code, out.getvalue(), err.getvalue()


def _check(argv, code, out, err):
    assert code in (0, 2), (argv, code)
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("distalloc: error:"), (argv, err)
        return None
    assert "Traceback" not in err and "Warning" not in err, (argv, err)
    return json.loads(out)


@given(st.fixed_dictionaries({k: st.sampled_from(WEIRD) for k in
                              ("--lr", "--smoothness", "--strong-convexity", "--noise-var",
                               "--initial-gap", "--rate")}),
       st.sampled_from(INTS), st.sampled_from(INTS), st.sampled_from(MODELS + [None]))
@settings(max_examples=int(__import__("os").environ.get("SGD_FUZZ", 80)), deadline=None, suppress_health_check=list(HealthCheck))
def test_sgd_schedule_fuzz(floats, workers, batch, model):
    argv = ["sgd", "schedule", "--workers", workers, "--batch", batch, "--json"]
    for k, v in floats.items():
        argv += [k, v]
    if model:
        argv += ["--model", model]
    d = _check(argv, *_run(argv))
    if d is not None:
        assert _finite(d["switch_times"]) and _finite(d["switch_errors"])
        assert all(e >= 0 for e in d["switch_errors"])
        assert d["switch_times"] == sorted(d["switch_times"])
        assert len(d["k_values"]) == len(d["switch_times"]) + 1


@given(st.sampled_from(POLICIES), st.sampled_from(["1", "2", "7", "50", "2001", "0", "1e20",
                                                   "99999999999999999999"]),
       st.sampled_from(MODELS + [None]), st.sampled_from(["0.5", "20", "-1", "nan", "1e300",
                                                          "1e-300", "200"]),
       st.sampled_from([None, "1e-300", "0.01", "1e308", "-1", "0.0005"]),
       st.sampled_from([None, "1", "2", "0", "100"]))
@settings(max_examples=int(__import__("os").environ.get("SGD_FUZZ", 80)), deadline=None, suppress_health_check=list(HealthCheck))
def test_sgd_run_fuzz(policy, workers, model, horizon, lr, k_max):
    argv = ["sgd", "run", "--problem", "diabetes", "--policy", policy, "--workers", workers,
            "--horizon", horizon, "--json", "--max-iterations", "200000"]
    if model:
        argv += ["--model", model]
    if lr:
        argv += ["--lr", lr]
    if k_max:
        argv += ["--k-max", k_max]
    d = _check(argv, *_run(argv))
    if d is not None:
        assert _finite(d["time"]) and _finite(d["error"]) and all(e >= -1e-9 for e in d["error"])
        assert all(1 <= k <= int(workers) for k in d["k"])
        assert d["uplink_gradients"] >= 0 and d["downlink_models"] >= d["uplink_gradients"] * 0


@pytest.mark.parametrize("content", [b"", b"1", b"1 1 1", b"nan 1 2", b"1e309 1 2", b"-1 2 3",
                                     b"\xff\xfe", b"[1, 2, \"a\"]", b"{}", b"[[1, 2], [3]]",
                                     b"0 0 0 1", b"1e-320 1 2 3", b"1e300 1 2"])
def test_sgd_fit_fuzz(tmp_path, content):
    f = tmp_path / "t"
    f.write_bytes(content)
    argv = ["sgd", "fit", str(f), "--json"]
    d = _check(argv, *_run(argv))
    if d is not None:
        assert d["spec"] and math.isfinite(min(a for a in d["aic"].values() if a is not None))
