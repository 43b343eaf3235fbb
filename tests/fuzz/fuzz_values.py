"""Hypothesis strategies for the fuzz suite: extreme and malformed values, numbers as a user
types them on a command line, mutated scenario dicts, and the files the CLI reads (scenario
JSON/TOML, traces, sweep TOML), each as bytes so that broken encodings can be generated."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

# ------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------
EXTREME_NUMBERS = [0, -1, 1, 2, 0.5, -0.5, 6.0, 1e-300, 5e-324, 1e308, -1e308, 1.7976931348623157e308,
                   2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 20,
                   1e20, 1e8, float("nan"), float("inf"), float("-inf")]

extreme_number = st.one_of(
    st.sampled_from(EXTREME_NUMBERS),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
)
weird_value = st.one_of(
    extreme_number,
    st.none(), st.booleans(), st.just(""), st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.just({}), st.just([[]]),
)

CLI_WEIRD = ["nan", "inf", "-inf", "-1", "0", "-0", "1e308", "-1e308", "5e-324", "1e20", "1e8",
             "99999999999999999999", "9223372036854775808", "9223372036854775807", "abc", "",
             "1,2", " 3", "0x10", "1_000", "1e300", "2.5e-320", "3.0"]


@dataclass(frozen=True)
class Opt:
    """An argument or option value: ``typical`` (valid) unless the case picks it as one of
    its few weird values (see :func:`args_dict` and the entries' ``flags``), so that about
    half the cases are valid and reach the computation, and the others are wrong in one or
    two places at a time."""

    typical: st.SearchStrategy
    weird: st.SearchStrategy = None

    def draw(self, draw, weird: bool):
        return draw(self.weird if weird and self.weird is not None else self.typical)


def weird_count(draw) -> int:
    """How many weird values a case carries: none in about two thirds of the cases."""
    x = draw(st.integers(0, 99))
    return 0 if x >= 35 else 1 if x >= 10 else 2


def cli_number(typical: st.SearchStrategy, weird_share: int = 0) -> Opt:
    """A number as typed on the command line: typical, or weird text."""
    return Opt(typical.map(_text), st.sampled_from(CLI_WEIRD))


def _text(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return repr(x)
    return str(x)


def small_floats(lo: float, hi: float) -> st.SearchStrategy:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


def number_list(typical: st.SearchStrategy, min_size=1, max_size=3) -> Opt:
    """"1,3" lists for --speeds and friends."""
    return Opt(
        st.lists(typical, min_size=min_size, max_size=max_size).map(
            lambda xs: ",".join(_text(x) for x in xs)),
        st.sampled_from(["", ",", "1,,2", "1,x", "nan,1", "1e308,1e308", "-1,2", "0,0",
                         ",".join(["1"] * 200)]),
    )


@st.composite
def args_dict(draw, spec: dict) -> dict:
    """Keyword arguments: every :class:`Opt` typical except at most two weird ones; plain
    strategies are drawn as they are."""
    optional = [n for n, v in spec.items() if isinstance(v, Opt)]
    k = weird_count(draw)
    weird = set(draw(st.lists(st.sampled_from(optional), max_size=k, unique=True))) \
        if optional and k else set()
    return {n: (v.draw(draw, n in weird) if isinstance(v, Opt) else draw(v))
            for n, v in spec.items()}


def api_arg(typical: st.SearchStrategy) -> Opt:
    return Opt(typical, weird_value)


# ------------------------------------------------------------------------------------------
# scenario dicts (SPEC 1.2)
# ------------------------------------------------------------------------------------------
@st.composite
def scenario_dict(draw, max_servers=4, max_blocks=6, max_clients=2) -> dict:
    """A small valid scenario (as tests/conftest.random_scenario_dict), sometimes with an
    online workload section."""
    from conftest import random_scenario_dict
    seed = draw(st.integers(0, 2 ** 32 - 1))
    d = random_scenario_dict(np.random.default_rng(seed), max_servers=max_servers,
                             max_blocks=max_blocks, max_clients=max_clients,
                             binding=draw(st.booleans()))
    if draw(st.booleans()):
        d["prefill_rtt_ms"] = [[float(x) * 1.5 for x in row] for row in d["rtt_ms"]]
    if draw(st.integers(0, 3)) == 0:
        d["workload"]["rate_per_s"] = draw(small_floats(0.01, 5.0))
        d["workload"]["num_requests"] = draw(st.integers(1, 50))
    return d


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


@st.composite
def mutated(draw, base: dict, max_mutations: int = 3) -> dict:
    """``base`` with 0..max_mutations edits: a value replaced by a weird one, a key removed,
    an unknown key added, a list emptied or doubled."""
    d = json.loads(json.dumps(base))
    x = draw(st.integers(0, 99))
    count = 0 if x >= 40 or max_mutations < 1 else 1 + x % max_mutations
    for _ in range(count):
        paths = [p for p in _paths(d) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(d, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "list"]))
        if op == "replace":
            parent[key] = draw(weird_value)
        elif op == "delete":
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "memory", "num_block", "rtt"]))] = 1
        elif op == "list" and isinstance(parent[key], list):
            parent[key] = draw(st.sampled_from([[], parent[key] * 2, parent[key][:1]]))
    return d


# ------------------------------------------------------------------------------------------
# files (bytes)
# ------------------------------------------------------------------------------------------
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return '""'     # None has no TOML form


def toml_document(d: dict) -> str:
    """A TOML text for nested dicts: scalars and lists first, tables after (one level of
    [table] and [[array of tables]])."""
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            lines.append(f"{json.dumps(str(k))} = {toml_value(v)}")
    for k, v in tables:
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(str(k))}]")
            lines += [f"{json.dumps(str(a))} = {toml_value(b)}" for a, b in v.items()]
        else:
            for item in v:
                lines.append(f"[[{json.dumps(str(k))}]]")
                lines += [f"{json.dumps(str(a))} = {toml_value(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


@st.composite
def corrupt(draw, data: bytes) -> bytes:
    """Mostly unchanged; sometimes truncated, emptied, or with bytes that are not UTF-8."""
    op = draw(st.integers(0, 19))
    if op == 0 and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if op == 1:
        return b""
    if op == 2:
        i = draw(st.integers(0, len(data)))
        return data[:i] + b"\xff\xfe\xc3(" + data[i:]
    return data


@st.composite
def scenario_file(draw, base=None) -> tuple[str, bytes]:
    """(file name, bytes) of a scenario in JSON or TOML, maybe mutated and corrupted."""
    d = draw(mutated(base if base is not None else draw(scenario_dict())))
    if draw(st.booleans()):
        name, text = "scenario.json", json.dumps(d)
    else:
        name, text = "scenario.toml", toml_document(d)
    return name, draw(corrupt(text.encode()))


@st.composite
def trace_file(draw) -> bytes:
    """A TIMESTAMP, ContextTokens, GeneratedTokens trace (SPEC 1.9) or something like one."""
    header = draw(st.sampled_from([
        "TIMESTAMP,ContextTokens,GeneratedTokens", "TIMESTAMP,ContextTokens,GeneratedTokens",
        "Timestamp,Request tokens,Response tokens", "timestamp,input_length,output_length",
        "TIMESTAMP,ContextTokens", "a,b,c", ""]))
    n = draw(st.integers(0, 30))
    style = draw(st.sampled_from(["datetime", "datetime", "seconds", "ms", "mixed"]))
    t = 0.0
    rows = []
    for i in range(n):
        t += draw(st.sampled_from([0.0, 0.01, 0.5, 2.0, 40.0]))
        if style == "datetime":
            stamp = f"2023-11-16 18:{int(t // 60) % 60:02d}:{t % 60:010.7f}"
        elif style == "seconds":
            stamp = _text(t)
        elif style == "ms":
            stamp = str(int(t * 1000))
        else:
            stamp = draw(st.sampled_from(["2023-11-16 18:17:03", "x", "", "1e308", "-5", "nan"]))
        ctx = draw(st.one_of(st.integers(0, 5000), st.sampled_from([-1, 2 ** 63, 2 ** 70, "x", "",
                                                                    "1.5"])))
        gen = draw(st.one_of(st.integers(0, 300), st.sampled_from([-1, 0, 2 ** 63, "x", ""])))
        rows.append(f"{stamp},{ctx},{gen}")
    text = "\n".join([header] + rows) + ("\n" if draw(st.booleans()) else "")
    return draw(corrupt(text.encode()))


#: The first line of files that are not what they claim to be (a trace, a scenario): error
#: messages may quote column names, truncated, but never the whole line (issue 16).
SECRET = "SECRET-FIRST-LINE-" + "0123456789" * 6 + "-END"
