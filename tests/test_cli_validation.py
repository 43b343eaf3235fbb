"""The shared validation rules (distalloc._validation) as users meet them: nothing is
coerced (SPEC 1.2) and integers must fit the kernels' 64-bit index type."""
import json

import numpy as np
import pytest

from conftest import random_scenario_dict
from distalloc import ValidationError
from distalloc._validation import check_number
from distalloc.cli import main


@pytest.mark.parametrize("value", [6.0, np.float64(2.0), 1e3, True, np.bool_(True), "3", None])
def test_integer_fields_take_ints_only(value):
    with pytest.raises(ValidationError, match=r"^The 'n' parameter must be an int in \[1, inf\)\. "
                                              r"Got .* instead\.$"):
        check_number(value, "n", low=1, integer=True)


@pytest.mark.parametrize("value", [6, np.int64(6), np.uint8(6)])
def test_integer_fields_accept_numpy_ints(value):
    out = check_number(value, "n", low=1, integer=True)
    assert out == 6 and type(out) is int


@pytest.mark.parametrize("value", [2 ** 63, 10 ** 20, -(2 ** 63) - 1])
def test_integers_beyond_int64_are_refused(value):
    with pytest.raises(ValidationError, match=r"\(64 bits\)\. Got -?\d+ instead\.$"):
        check_number(value, "n", integer=True)
    assert check_number(2 ** 63 - 1, "n", integer=True) == 2 ** 63 - 1


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("distalloc: error: "), err
    return err


def test_integral_float_in_a_scenario_file_is_refused(tmp_path, capsys):
    d = random_scenario_dict(np.random.default_rng(0))
    d["model"]["num_blocks"] = float(d["model"]["num_blocks"])
    p = tmp_path / "s.json"
    p.write_text(json.dumps(d))
    assert main(["llm", "plan", str(p), "--json"]) == 2
    assert "'num_blocks' parameter of model must be an int" in _one_line_error(capsys)


def test_integral_float_seeds_in_a_sweep_file_is_refused(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text("[sweep]\ntarget = 'queue.approx'\nseeds = 2.0\n[fixed]\nservers = 2\n"
                 "needed = 1\n[grid]\nrate = [0.5]\n")
    assert main(["sweep", str(p), "--out", str(tmp_path / "o.csv")]) == 2
    assert "'seeds' parameter of sweep must be an int" in _one_line_error(capsys)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("bounds", [{"high": ""}, {"low": "x"}, {"high": float("nan")},
                                    {"high": None, "low": [1]}])
def test_a_bound_that_is_bad_input_is_a_validation_error(bounds):
    """order_stat_mean(k, n='') used to end in 'Unknown format code g' (fuzz suite)."""
    with pytest.raises(ValidationError, match="The 'k' parameter must be an int"):
        check_number(3, "k", integer=True, **bounds)


@pytest.mark.parametrize("argv", [
    ["llm", "compare", "clustered", "--seed", "1000"],       # would have been --seeds 1000
    ["queue", "approx", "--servers", "4", "--needed", "2", "--rate", "1", "--max-sec", "5"],
    ["sgd", "run", "--work", "10"],
])
def test_abbreviated_options_are_unknown_not_matched(capsys, argv):
    """Fuzz finding (10^4 budget): argparse matched `--seed` to `--seeds`, so `llm compare
    --seed 1000` silently ran a thousand seeds.  Options are spelled in full."""
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "unrecognized arguments" in err and argv[-2] in err
