"""A fresh user's faults in the sgd and queue commands (issues 14/16), each kind with its
right behaviour: options that would have no effect are refused (one line naming the option
and its value, exit 2), impossible constants are refused everywhere, messages are one
short line that says where a value came from."""
import importlib.metadata
import inspect

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc._validation import check_number, describe
from distalloc.cli import main
from distalloc.sgd import bound_schedule, fit_response_model

SCHEDULE = ["sgd", "schedule", "--workers", "5", "--lr", "0.001", "--smoothness", "2",
            "--strong-convexity", "1", "--noise-var", "10", "--batch", "10",
            "--initial-gap", "100"]
QUEUE = ["--servers", "4", "--needed", "2", "--rate", "1", "--speeds", "1,3"]


def _error(capsys, argv):
    assert main(argv) == 2, argv
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("distalloc: error: "), err
    assert "Traceback" not in err
    return err


# ---- 1. options that would be ignored are refused ------------------------------------------
@pytest.mark.parametrize("argv, shown", [
    (SCHEDULE + ["--rate", "2", "--model", "exp:3"], "'--rate 2.0'"),
    (["sgd", "run", "--time-unit-s", "0.1"], "'--time-unit-s 0.1'"),
    (["sgd", "run", "--straggler", "exp:1"], "'--straggler exp:1'"),
    (["sgd", "run", "--target-error", "0.5"], "'--target-error 0.5'"),
    (["sgd", "run", "--calibration-rounds", "3"], "'--calibration-rounds 3'"),
    (["sgd", "run", "--policy", "fixed:2", "--k-max", "3"], "'--k-max 3'"),
    (["sgd", "run", "--policy", "sync", "--k-max", "3"], "'--k-max 3'"),
    (["sgd", "run", "--policy", "bound", "--k-max", "3"], "'--k-max 3'"),
    (["sgd", "run", "--policy", "async", "--k-max", "3"], "'--k-max 3'"),
    # with --cluster: refused before any cluster starts (this test starts none)
    (["sgd", "run", "--cluster", "local:2", "--time-unit-s", "0.5"], "'--time-unit-s 0.5'"),
    (["sgd", "run", "--cluster", "local:2", "--policy", "fixed:2", "--model", "exp:1"],
     "'--model exp:1'"),
    (["sgd", "run", "--cluster", "local:2", "--policy", "pflug", "--calibration-rounds", "3"],
     "'--calibration-rounds 3'"),
    (["sgd", "run", "--cluster", "local:2", "--policy", "bound", "--model", "exp:1",
      "--calibration-rounds", "3"], "'--calibration-rounds 3'"),
    (["queue", "optimize"] + QUEUE + ["--max-jobs", "2", "--probs", "0.1,0.9"],
     "'--probs 0.1,0.9'"),
    (["queue", "tradeoff"] + QUEUE + ["--probs", "0.5,0.5"], "'--probs 0.5,0.5'"),
    (["queue", "tradeoff"] + QUEUE + ["--jobs", "1000"], "'--jobs 1000'"),
    (["queue", "tradeoff"] + QUEUE + ["--method", "exact", "--jobs", "1000"], "'--jobs 1000'"),
])
def test_an_option_without_effect_is_refused(capsys, tmp_path, argv, shown):
    err = _error(capsys, argv)
    assert f"Option {shown}" in err, err


def test_schedule_rate_with_from_times_is_refused(capsys, tmp_path):
    f = tmp_path / "times.txt"
    f.write_text("1 2 3 4 5 6 7 8 1.5 2.5\n")
    assert "Option '--rate 2.0'" in _error(capsys, SCHEDULE + ["--rate", "2", "--from-times",
                                                               str(f)])


def test_the_same_options_where_they_apply_take_effect(capsys):
    """--rate without --model scales the schedule (Exp(2): E[X_(k)] halves, so do the switch
    times); --jobs with --method simulate is accepted."""
    import json
    times = []
    for rate in (["--rate", "1"], ["--rate", "2"]):
        assert main(SCHEDULE + rate + ["--json"]) == 0
        times.append(np.array(json.loads(capsys.readouterr().out)["switch_times"]))
    assert times[0].size and np.allclose(times[1], times[0] / 2, rtol=1e-12)
    assert main(SCHEDULE + ["--json"]) == 0                     # default rate 1
    assert np.allclose(json.loads(capsys.readouterr().out)["switch_times"], times[0])
    assert main(["queue", "tradeoff"] + QUEUE + ["--method", "simulate", "--jobs", "2000",
                                                 "--points", "2", "--json"]) == 0


# ---- 2. impossible constants --------------------------------------------------------------
def test_strong_convexity_above_smoothness_is_refused_by_the_api():
    with pytest.raises(ValidationError, match=r"^The 'strong_convexity' parameter must be a "
                       r"float in \(0, smoothness = 2\].*Got 3\.0 instead\.$"):
        bound_schedule(5, 0.001, 2, 3, 10, 10, 100)
    s = bound_schedule(5, 0.001, 2, 2, 10, 10, 100)       # c = L: a quadratic with H = L I
    assert s.switch_times.size


def test_strong_convexity_above_smoothness_is_refused_by_the_cli(capsys):
    argv = [a if a != "1" else "3" for a in SCHEDULE]     # --strong-convexity 3 > L = 2
    assert "'strong_convexity'" in _error(capsys, argv)


# ---- 3. messages --------------------------------------------------------------------------
def test_the_default_policy_is_named_when_it_does_not_fit(capsys):
    err = _error(capsys, ["sgd", "run", "--workers", "1"])
    assert "'--workers 1'" in err and "default policy" in err and "pflug:10:10:10:200" in err
    from distalloc.sgd import run
    with pytest.raises(ValidationError, match="default K0"):
        run(workers=1)
    with pytest.raises(ValidationError, match=r"pflug k0.*Got 3 instead\.$"):   # given: no
        run(workers=1, policy="pflug:3")                                      # 'default'


def test_fit_names_the_position_of_a_bad_time(capsys, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("1\n2\n-3\n4\n")
    err = _error(capsys, ["sgd", "fit", str(f)])
    assert "'times[2]' must be finite and >= 0. Got -3.0 instead." in err
    with pytest.raises(ValidationError, match=r"'times\[1\]'.*Got nan instead"):
        fit_response_model(np.array([1.0, np.nan, 2.0]))


def test_messages_are_one_short_line_whatever_the_value():
    from distalloc.sgd import run
    with pytest.raises(ValidationError) as e:
        run((np.ones((50, 3)), np.ones(50)), 2, "fixed:1")
    text = str(e.value)
    assert "\n" not in text and len(text) < 300 and "from_arrays" in text
    with pytest.raises(ValidationError) as e:
        check_number(np.arange(1000.0).reshape(100, 10), "x")
    assert "\n" not in str(e.value) and len(str(e.value)) < 200
    with pytest.raises(ValidationError, match=r"Got -3\.0 instead"):      # not np.float64(...)
        check_number(np.float64(-3.0), "x", low=0)
    err = ValidationError("first line\n  second line " + "x" * 5000)
    assert "\n" not in str(err) and len(str(err)) <= 1000
    assert describe("a\nb") == "'a\\nb'" and len(describe("y" * 10 ** 6)) <= 40


def test_tradeoff_labels_unstable_rows(capsys):
    assert main(["queue", "tradeoff", "--servers", "10", "--needed", "5", "--rate", "2",
                 "--speeds", "1,3", "--points", "3"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[-1] == "status"
    assert rows[1].split()[0] == "0.000" and rows[1].split()[-1] == "unstable"
    assert all(r.split()[-1] == "stable" for r in rows[2:]) and len(rows) == 4
    assert "nan" not in " ".join(rows)


def test_one_memory_default_for_every_family(monkeypatch, capsys):
    from distalloc._resources import default_max_memory_gb
    from distalloc.llm.limits import default_max_memory_gb as llm_default
    from distalloc.queueing import ForkJoin, exact
    import sys
    exact_module = sys.modules["distalloc.queueing.exact"]   # the name is also the function
    assert llm_default is default_max_memory_gb
    assert inspect.signature(exact).parameters["max_memory_gb"].default is None
    monkeypatch.setattr(exact_module, "default_max_memory_gb", lambda: 1e-9)
    with pytest.raises(ValidationError, match="over the limit of 1e-09 GB"):
        exact(ForkJoin(4, 2, 1.0))
    monkeypatch.undo()
    assert exact(ForkJoin(4, 2, 1.6)).mean_jobs == pytest.approx(3.457, abs=1e-3)
    assert main(["queue", "exact", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"at most 8; here {default_max_memory_gb():.3g}" in help_text


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == \
        f"distalloc {importlib.metadata.version('distalloc')}"


def test_tradeoff_unstable_at_every_mix_is_one_line_error(capsys, tmp_path):
    """Fuzz finding (10^4 budget): every point unstable made --plot raise matplotlib's
    'cannot be log-scaled' (internal error); with or without --plot it is one line, exit 2,
    nothing printed and no plot written."""
    from distalloc.cli import main
    plot = tmp_path / "t.png"
    for extra in ([], ["--json"], ["--plot", str(plot)]):
        code = main(["queue", "tradeoff", "--servers", "4", "--needed", "2", "--rate", "2.37",
                     "--speeds", "0.1,0.9278", "--points", "2", *extra])
        out, err = capsys.readouterr()
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "unstable at every fast-level probability" in err
    assert not plot.exists()
