"""Trace readers (issue 14): numeric timestamps are seconds, zero outputs are skipped and
counted, one format per public trace (azure, burstgpt, mooncake), equal timestamps plan
the largest feasible |R|, and no error quotes a file's content."""
import json
import math

import pytest

from distalloc import ValidationError
from distalloc.cli import main
from distalloc.llm import clustered
from distalloc.llm.simulation import choose_planned_requests, simulate
from distalloc.llm.workload import TRACE_FORMATS, trace_workload
from test_llm_hardening import assert_one_line_error


# ------------------------------------------------------------------------------------------
# 4. Trace readers
# ------------------------------------------------------------------------------------------
def test_numeric_timestamps_are_seconds_never_years(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n40,10,6\n113,10,7\n")
    wl = trace_workload(clustered(), p)
    assert wl.arrival_s.tolist() == [0.0, 40.0, 113.0]
    assert wl.output_tokens.tolist() == [5, 6, 7] and wl.skipped_zero_output == 0
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,1,5\n"
                 "2023-11-16T18:17:43.9799600Z,1,5\n")
    with pytest.raises(ValidationError, match="with and without a time zone"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:17:03+01:00,1,5\n"
                 "2023-11-16T17:17:43.5Z,1,5\n")
    assert trace_workload(clustered(), p).arrival_s.tolist() == [0.0, 40.5]
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,5\n2023-11-16 18:17:03,1,5\n")
    with pytest.raises(ValidationError, match="mixes numbers"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n10,1,5\n3,1,5\n")
    with pytest.raises(ValidationError, match="not in order"):
        trace_workload(clustered(), p)


def test_azure_trace_arrivals_unchanged(data_dir):
    """The shipped Azure trace: first gaps as in the file, to the nanosecond."""
    wl = trace_workload(clustered(), data_dir / "traces" / "azure_llm_inference_code_2023.csv",
                        num_requests=3)
    assert wl.arrival_s.tolist() == [0.0, 0.052, 0.0981890]


FORMAT_FILES = {
    "azure": ("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n0,472,18\n40,1087,0\n"
                       "113,417,276\n"),
    "burstgpt": ("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                          "5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,"
                          "Conversation log\n118,GPT-4,417,276,693,Conversation log\n"),
    "mooncake": ("m.jsonl", '{"timestamp": 0, "input_length": 472, "output_length": 18, '
                            '"hash_ids": [0, 1]}\n{"timestamp": 40000, "input_length": 1087, '
                            '"output_length": 0, "hash_ids": [2]}\n\n{"timestamp": 113000, '
                            '"input_length": 417, "output_length": 276, "hash_ids": [0]}\n'),
    "mooncake-csv": ("m.csv", "timestamp,input_length,output_length\n0,472,18\n40000,1087,0\n"
                              "113000,417,276\n"),
}


@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_trace_formats(tmp_path, fmt, capsys):
    """One small file per format: the same three requests (one with no output, skipped and
    counted); arrivals in seconds (mooncake's milliseconds converted); outputs capped at
    the scenario's 128 tokens; detected from the header or named with --trace-format."""
    name, text = FORMAT_FILES[fmt]
    p = tmp_path / name
    p.write_text(text)
    sc = clustered()
    detected = trace_workload(sc, p)
    named = trace_workload(sc, p, trace_format=fmt.split("-")[0])
    for wl in (detected, named):
        assert wl.arrival_s.tolist() == [0.0, 113.0]
        assert wl.output_tokens.tolist() == [18, 128]
        assert wl.skipped_zero_output == 1
    assert main(["llm", "simulate", "clustered", "--trace", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["num_requests"] == 2 and d["skipped_zero_output"] == 1 and d["dropped"] == 0
    assert main(["llm", "simulate", "clustered", "--trace", str(p)]) == 0
    out = capsys.readouterr().out
    assert "1 trace rows generated no token and were not replayed" in out
    assert "realised 0.00885 req/s" in out


def test_trace_format_option_checks_the_columns(tmp_path, capsys):
    p = tmp_path / "b.csv"
    p.write_text(FORMAT_FILES["burstgpt"][1])
    msg = assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(p),
                                "--trace-format", "azure",
                                needle="must have columns TIMESTAMP, ContextTokens, "
                                       "GeneratedTokens (azure format)")
    assert "Found columns Timestamp, Model, Request tokens" in msg
    assert TRACE_FORMATS["mooncake"].seconds_per_unit == 1e-3


def test_trace_errors_quote_no_content(tmp_path):
    """A scenario naming /etc/passwd-like files as its trace: the message names what was
    expected, never the file's lines."""
    p = tmp_path / "passwd"
    p.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:secret\n")
    with pytest.raises(ValidationError) as err:
        trace_workload(clustered(), p)
    assert "root" not in str(err.value) and "secret" not in str(err.value)
    assert "is not a header of such a trace" in str(err.value)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,2\nsecret-value,1,2\n")
    with pytest.raises(ValidationError) as err:
        trace_workload(clustered(), p)
    assert "secret" not in str(err.value) and "line 3: 'TIMESTAMP'" in str(err.value)
    p.write_text('{"timestamp": 0, "input_length": 1, "output_length": "secret"}\n')
    with pytest.raises(ValidationError) as err:
        trace_workload(clustered(), p)
    assert "secret" not in str(err.value) and "'output_length'" in str(err.value)


def test_token_counts_beyond_int64(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,99999999999999999999999\n")
    with pytest.raises(ValidationError, match=r"line 2: 'GeneratedTokens' must be at most 2\^63 - 1"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,9223372036854775807\n")
    assert trace_workload(clustered(), p).output_tokens.tolist() == [128]  # capped


def test_zero_output_rows_are_skipped_consistently(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,0\n1,1,0\n")
    with pytest.raises(ValidationError, match=r"no request with output tokens \(2 rows"):
        trace_workload(clustered(), p)
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,0\n1,1,3\n2,1,0\n3,1,4\n")
    wl = trace_workload(clustered(), p, num_requests=2)
    assert wl.arrival_s.tolist() == [0.0, 2.0] and wl.skipped_zero_output == 2


@pytest.mark.parametrize("rows", [["5,10,5"], ["5,10,5", "5,10,7"]])
def test_one_row_or_equal_timestamps_plan_the_largest_feasible_R(tmp_path, rows):
    """Every request at one instant: the realised rate is infinite and |R| is the SPEC
    formula's limit, R_max (it used to raise OverflowError)."""
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    sc = clustered()
    res = simulate(sc, "cg-bprr", trace=str(p), seed=0)
    from distalloc.llm.simulation import max_planned_requests
    assert res.planned_requests == max_planned_requests(sc) == choose_planned_requests(sc, math.inf)
    assert res.dropped == 0 and res.workload.rate_per_s == math.inf


def test_time_scale_overflow(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,5\n40,1,5\n")
    assert_one_line_error(capsys, "llm", "simulate", "clustered", "--trace", str(p),
                          "--time-scale", "1e308", needle="at most 1e+12 s are supported")
