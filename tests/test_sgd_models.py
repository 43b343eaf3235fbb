"""Response-time models: fitting measured times (SPEC 2.5), the batched order-statistic
kernel (SPEC 5.3), heavy tails with finite order-statistic means (issue 14), and the
schedule / run faults of issues 14 and 16, each with its right value."""
import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.sgd import (DivergenceError, Exponential, LogNormal, Pareto, ShiftedExponential,
                           bound_schedule, expected_order_statistics, fit_response_model, read_times,
                           from_arrays, parse_model, run, synthetic_regression)

# --- fit_response_model: parameters within 5-sigma confidence intervals, right family ------
N_FIT = 10_000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_shifted_exponential(seed):
    shift, rate = 0.5, 2.0
    x = ShiftedExponential(shift, rate).sample(N_FIT, 1, seed).ravel()
    fit = fit_response_model(x)
    assert fit.family == "shifted-exponential" and fit.spec.startswith("shifted-exp:")
    # MLE shift = min: shift_hat - shift ~ Exp(n rate); rate_hat has sd rate / sqrt(n)
    assert 0 <= fit.model.shift - shift <= 20 / (N_FIT * rate)
    assert abs(fit.model.rate - rate) <= 5 * rate / math.sqrt(N_FIT)
    assert parse_model(fit.spec) == fit.model                  # spec recreates the model
    assert set(fit.aic) == {"exponential", "shifted-exponential", "pareto", "lognormal"}
    assert min(fit.aic, key=fit.aic.get) == fit.family


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_exponential(seed):
    """Exponential data: the exponential wins AIC unless the shifted family's MLE shift
    (the minimum, ~ Exp(n rate)) buys more than one unit of log-likelihood (probability
    1/e); then the shift is within its confidence interval of 0 and the rate the same."""
    rate = 3.0
    x = Exponential(rate).sample(N_FIT, 1, seed).ravel()
    fit = fit_response_model(x)
    rate_hat = fit.model.rate
    assert abs(rate_hat - rate) <= 5 * rate / math.sqrt(N_FIT)
    assert fit.family in ("exponential", "shifted-exponential")
    if fit.family == "shifted-exponential":
        assert fit.model.shift <= 20 / (N_FIT * rate)
    assert fit.aic["exponential"] < min(fit.aic["pareto"], fit.aic["lognormal"]) - 100


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_pareto_and_lognormal(seed):
    scale, shape = 0.2, 2.5
    fit = fit_response_model(Pareto(scale, shape).sample(N_FIT, 1, seed).ravel())
    assert fit.family == "pareto"
    assert 0 <= fit.model.scale - scale <= 20 * scale / (N_FIT * shape)
    assert abs(fit.model.shape - shape) <= 5 * shape / math.sqrt(N_FIT)
    mu, sigma = -1.0, 0.7
    fit = fit_response_model(LogNormal(mu, sigma).sample(N_FIT, 1, seed).ravel())
    assert fit.family == "lognormal"
    assert abs(fit.model.mu - mu) <= 5 * sigma / math.sqrt(N_FIT)
    assert abs(fit.model.sigma - sigma) <= 5 * sigma / math.sqrt(2 * N_FIT)
    assert parse_model(fit.spec) == fit.model and "np." not in fit.spec


def test_fit_input_checks(tmp_path):
    with pytest.raises(ValidationError, match="at least 3"):
        fit_response_model([1.0, 2.0])
    with pytest.raises(ValidationError, match="all equal"):
        fit_response_model([1.0] * 5)
    with pytest.raises(ValidationError, match="finite"):
        fit_response_model([1.0, -2.0, 3.0])
    fit = fit_response_model([0.0, 1.0, 2.0, 0.5, 0.1])     # a zero: no Pareto, no log-normal
    assert fit.aic["pareto"] == math.inf and fit.family in ("exponential", "shifted-exponential")


def test_schedule_from_times_file(tmp_path, capsys):
    times = tmp_path / "times.txt"
    x = ShiftedExponential(0.1, 5.0).sample(2000, 1, 0).ravel()
    times.write_text("# measured\n" + "\n".join(f"{v:.9f}" for v in x))
    args = ["sgd", "schedule", "--workers", "5", "--lr", "0.001", "--smoothness", "2",
            "--strong-convexity", "1", "--noise-var", "10", "--batch", "10", "--initial-gap", "100"]
    assert main(args + ["--from-times", str(times), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    fit = fit_response_model(read_times(times))
    assert d["model"] == fit.spec and len(d["switch_times"]) == 4
    assert d["switch_times"] == bound_schedule(5, 0.001, 2, 1, 10, 10, 100,
                                               model=fit.model).switch_times.tolist()
    x = read_times(times)
    (tmp_path / "rec.json").write_text(json.dumps({"response_times_s": [x[:1000].tolist(),
                                                                        x[1000:].tolist()]}))
    assert main(args + ["--from-times", str(tmp_path / "rec.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == fit.spec
    for content, msg in ((b"\xff\xfe1 2 3", "not UTF-8"), (b"1 2 abc", "'abc' is not a number"),
                         (b"{\"x\": 1}", "neither")):
        (tmp_path / "bad").write_bytes(content)
        assert main(args + ["--from-times", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert main(args + ["--from-times", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- the batched kernel against the scalar functions ----------------------------------------
@given(st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_expected_order_statistics_equals_scalar(seed):
    """Random grids of (n, k, parameters) for every family: the parallel Numba kernel and
    the models' scalar order_stat_mean agree to 1e-12 relative (inf where infinite)."""
    rng = np.random.default_rng(seed)
    size = 6
    n = rng.integers(1, 300, size)
    k = np.array([rng.integers(1, m + 1) for m in n])
    cases = {
        "exponential": (rng.uniform(0.01, 100, size), None, lambda a, b: Exponential(a)),
        "shifted-exponential": (rng.uniform(0, 10, size), rng.uniform(0.01, 100, size),
                                lambda a, b: ShiftedExponential(a, b)),
        "pareto": (rng.uniform(0.01, 10, size), rng.uniform(0.05, 5, size),
                   lambda a, b: Pareto(a, b)),
        "lognormal": (rng.uniform(-5, 5, size), rng.uniform(0.05, 3, size),
                      lambda a, b: LogNormal(a, b)),
    }
    for family, (a, b, make) in cases.items():
        got = expected_order_statistics(family, n, k, a, b)
        for i in range(size):
            want = make(a[i], None if b is None else b[i]).order_stat_mean(int(k[i]), int(n[i]))
            if math.isinf(want):
                assert math.isinf(got[i])
            else:
                assert got[i] == pytest.approx(want, rel=1e-12, abs=0), (family, n[i], k[i])


def test_expected_order_statistics_against_monte_carlo_and_checks():
    x = np.sort(LogNormal(0.3, 1.2).sample(200_000, 7, seed=2), axis=1)
    got = expected_order_statistics("lognormal", 7, np.arange(1, 8), 0.3, 1.2)
    assert np.all(np.abs(got - x.mean(0)) <= 5 * x.std(0) / math.sqrt(len(x)))
    assert expected_order_statistics("exponential", [[5], [6]], [1, 2, 3], 2.0).shape == (2, 3)
    for args, msg in ((("gamma", 5, 1, 1.0), "family"), (("pareto", 5, 6, 1.0, 2.0), "'k'"),
                      (("pareto", 5, 1, 1.0), "two parameters"),
                      (("exponential", 5, 1, -1.0), "'rate'"),
                      (("exponential", 5.5, 1, 1.0), "integers"),
                      (("lognormal", 5, 1, np.nan, 1.0), "finite")):
        with pytest.raises(ValidationError, match=msg):
            expected_order_statistics(*args)


# --- issue 14: valid heavy tails run; only ks with infinite mean are refused ----------------
def test_pareto_shape_below_one_runs_where_the_mean_is_finite(capsys):
    m = Pareto(1.0, 0.9)
    assert m.order_stat_mean(10, 20) == pytest.approx(2.1670034, rel=1e-7)   # MC 2.1672 ± 0.0009
    x = np.sort(m.sample(40_000, 20, seed=3), axis=1)[:, 9]
    assert abs(x.mean() - m.order_stat_mean(10, 20)) <= 5 * x.std() / math.sqrt(x.size)
    assert math.isinf(m.order_stat_mean(20, 20)) and m.largest_finite_k(20) == 19
    assert main(["sgd", "run", "--workers", "20", "--policy", "fixed:10", "--model",
                 "pareto:1.0:0.9", "--horizon", "200", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["k"]) == {10} and all(math.isfinite(e) for e in d["error"])
    for policy, fix in (("fixed:20", "choose k <= 19"), ("pflug:2", "--k-max) to 19"),
                        ("dbw", "--k-max) to 19"), ("sync", "choose k <= 19")):
        assert main(["sgd", "run", "--workers", "20", "--policy", policy, "--model",
                     "pareto:1.0:0.9", "--horizon", "50"]) == 2
        err = capsys.readouterr().err
        assert "k = 20" in err and "shape (n - k + 1) > 1" in err and fix in err
        assert err.count("\n") == 1
    assert main(["sgd", "run", "--workers", "20", "--policy", "pflug:2", "--k-max", "19",
                 "--model", "pareto:1.0:0.9", "--horizon", "50"]) == 0
    # the bound schedule never switches to a k with infinite mean: it stops at k = 19
    sch = bound_schedule(20, 0.001, 2, 1, 10, 10, 100, model=m)
    assert sch.k_values[-1] == 19 and len(sch.switch_times) == 18
    capsys.readouterr()


def test_schedule_without_noise_floor_keeps_k(capsys):
    """sigma^2 = 0: the bound of k never gets slower than that of k + 1 (both decay to 0),
    so k stays at 1 and there is no switch (issue 14: math domain error)."""
    assert main(["sgd", "schedule", "--workers", "5", "--lr", "0.001", "--smoothness", "2",
                 "--strong-convexity", "1", "--noise-var", "0", "--batch", "10",
                 "--initial-gap", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"switch_times": [], "switch_errors": [],
                                                   "k_values": [1]}
    r = run(synthetic_regression(num_samples=200, dim=5), 10, "bound", horizon=50)
    assert r.schedule.switch_times.size > 0    # real data has noise; the run still works


def test_schedule_extreme_step_and_gap():
    """lr = 1e-300: the contraction 1 - eta c is 1 - 1e-300; log1p keeps it, the switch
    times are finite (~1.4e302) and ordered; a subnormal initial gap switches at once with
    non-negative errors (issue 16: null switch times, negative errors)."""
    s = bound_schedule(5, 1e-300, 2, 1, 10, 10, 100)
    assert np.all(np.isfinite(s.switch_times)) and np.all(np.diff(s.switch_times) > 0)
    mu1 = 0.2
    # a_k = 1e-300 / k; k = 2 pays off once e - a_1 = (a_1 - a_2) mu_1 / (mu_2 - mu_1)
    excess = 0.5e-300 * mu1 / 0.25
    assert s.switch_times[0] == pytest.approx(mu1 / 1e-300 * math.log(100 / excess), rel=1e-9)
    s = bound_schedule(5, 0.001, 2, 1, 10, 10, 5e-324)
    assert np.all(s.switch_times == 0) and np.all(s.switch_errors >= 0)
    with pytest.raises(ValidationError, match="beyond float64"):
        bound_schedule(5, 1e-306, 2, 1e-3, 10, 10, 1e300)
    with pytest.raises(ValidationError, match="underflows"):
        bound_schedule(5, 1e-200, 2, 1e-200, 10, 10, 100)


# --- issue 16: overflow, run length, divergence ---------------------------------------------
def test_run_refuses_absurd_lengths_and_overflow(capsys, monkeypatch):
    for argv, msg in ((["--model", "lognormal:1000:1"], "beyond float64"),
                      (["--horizon", "1e300"], "--max-iterations"),
                      (["--policy", "async", "--horizon", "1e300"], "--max-iterations")):
        assert main(["sgd", "run", "--workers", "10"] + argv) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
    # a long async run draws its response times in chunks (was: "pre-drawn times ran out"
    # for --horizon 84000): with chunks of 1 000 rows a 3 000-unit run needs several
    monkeypatch.setattr(sys.modules["distalloc.sgd.run"], "MAX_CHUNK_VALUES", 1000 * 50)
    r = run(synthetic_regression(num_samples=200, dim=5), 50, "async", horizon=3000)
    assert 2990 < r.time[-1] <= 3000 and r.iterations > 50 * 3000 * 0.95


def test_divergence_is_an_error_or_a_flag(capsys):
    """fixed:10 at lr 0.01 on the synthetic problem (lr x L ~ 31) diverges: an error by
    default, the record with ``diverged`` and a one-line warning with --allow-divergence."""
    argv = ["sgd", "run", "--policy", "fixed:10", "--lr", "0.01", "--horizon", "500"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "diverged" in err and "lr x L" in err and err.count("\n") == 1
    assert main(argv + ["--allow-divergence", "--json"]) == 0
    cap = capsys.readouterr()
    d = json.loads(cap.out)
    assert d["diverged"] is True and d["error"][-1] is None
    assert cap.err.startswith("distalloc: warning:") and cap.err.count("\n") == 1
    with pytest.raises(DivergenceError):
        run("synthetic", 50, "async", lr=0.01, horizon=100)
    r = run("synthetic", 50, "fixed:10", horizon=100)
    assert r.extra["diverged"] is False


def test_user_arrays_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    p = from_arrays(X, X @ np.arange(4.0) + 0.1 * rng.standard_normal(120))
    r = run(p, 6, "fixed:3", horizon=300, lr=0.05)
    assert r.error[-1] < 1e-3 * r.error[0]
    q = from_arrays(X, (X[:, 0] > 0).astype(float), loss="logistic")
    assert run(q, 6, "pflug:1:1:3:10", horizon=300, lr=0.5).error[-1] < 0.5 * q.value(np.zeros(4))
    for bad, msg in (((X, np.ones(5)), "'X' must be"), ((X * np.inf, np.ones(120)), "finite"),
                     ((X, np.ones(120) * 2), None)):
        if msg:
            with pytest.raises(ValidationError, match=msg):
                from_arrays(*bad)
    with pytest.raises(ValidationError, match="0 and 1"):
        from_arrays(X, np.ones(120) * 2, loss="logistic")


def test_default_iteration_limit_refuses_the_fuzz_reproducers(capsys):
    """Fuzz finding (10^4 budget): `--horizon 1e8` ran for minutes (137 M gradients in
    171 s) under the former default of 1e8 iterations; the default is 1e7 (about ten minutes
    of one core at n = 50), the same in the CLI and the API."""
    from distalloc.cli import build_parser, main
    from distalloc.sgd import run
    from distalloc.sgd.run import MAX_ITERATIONS
    assert build_parser().parse_args(["sgd", "run"]).max_iterations == MAX_ITERATIONS == 10**7
    for argv in (["--policy", "dbw:2", "--seed", "2", "--lr", "0.0005", "--model",
                  "pareto:1:1.5", "--horizon", "1e8"],
                 ["--workers", "10", "--model", "exp:1", "--lr", "0.0001", "--horizon", "1e8"]):
        assert main(["sgd", "run", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "more than max_iterations = 1e+07" in err
    with pytest.raises(ValidationError, match="raise --max-iterations"):
        run("synthetic", 10, "fixed:1", horizon=1e8)
