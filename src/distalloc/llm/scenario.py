"""Scenarios: the model, the servers, the clients, the network and the workload (SPEC 1.2).

A :class:`Scenario` is validated once, when it is built; everything downstream (kernels
included) trusts it.  Scenarios come from JSON/TOML files (:func:`load_scenario`) or from
the built-ins of :mod:`distalloc.llm.builtins` (``clustered``, ``topology:<name>``,
``synthetic:<servers>[:<blocks>]``; also importable from here).  Device profiles live in
:mod:`distalloc.llm.devices`.  :meth:`Scenario.to_dict` gives the canonical JSON that
:func:`scenario_from_dict` reads back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from distalloc._validation import (ValidationError, check_choice, check_count, check_keys,
                                   check_real, describe, range_error, read_text)
from distalloc.llm import devices as _devices_module
from distalloc.llm.devices import A100, DTYPE_BYTES
from distalloc.llm.limits import (BYTES_PER_REQUEST, MAX_BLOCKS, MAX_COUNT, MAX_RPS, MAX_SPAN_S,
                                  TIME_LIMIT_MS, check_memory, time_bound_ms)

__all__ = ["Scenario", "load_scenario", "scenario_from_dict", "revalidated", "TRACE_FORMAT_NAMES"]

# ------------------------------------------------------------------------------------------
# The scenario object
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated LLM-serving scenario (SPEC 1.1-1.2).  Units: GB and ms.

    Attributes are numpy arrays indexed by server (``memory_gb``, ``decode_ms``, ...) or
    by (client, server) (``rtt_ms``, ``prefill_rtt_ms``); ``requests`` holds the client
    index of each request of the offline request set R.
    """

    model_name: str
    num_blocks: int
    block_gb: float
    cache_gb: float
    server_names: list[str]
    memory_gb: np.ndarray
    decode_ms: np.ndarray
    prefill_ms: np.ndarray
    reserve_gb: np.ndarray
    client_names: list[str]
    rtt_ms: np.ndarray
    prefill_rtt_ms: np.ndarray
    input_tokens: int
    output_tokens: int
    requests: np.ndarray
    forward_rps: np.ndarray | None = None
    network_rps: np.ndarray | None = None
    d_model: int | None = None
    dtype_bytes: int | None = None
    online: dict = field(default_factory=dict)
    name: str = "scenario"

    # -- derived quantities ---------------------------------------------------------------
    @property
    def num_servers(self) -> int:
        return len(self.server_names)

    @property
    def num_clients(self) -> int:
        return len(self.client_names)

    @property
    def num_requests(self) -> int:
        return int(self.requests.shape[0])

    @cached_property
    def usable_memory_gb(self) -> np.ndarray:
        """M_j of SPEC 1.1: ``memory_gb - reserve_gb``."""
        return self.memory_gb - self.reserve_gb

    @cached_property
    def max_rtt_ms(self) -> np.ndarray:
        """t*_j = max_c rtt_ms[c, j], the worst client's per-token RTT to each server."""
        return self.rtt_ms.max(axis=0)

    @property
    def petals_cache_gb(self) -> float:
        """PETALS's fixed cache budget per block: 2 * d_model * 4096 tokens * 2 bytes.

        Without ``d_model`` it is derived from ``cache_gb`` (a cache that is linear in the
        session's tokens, 2-byte entries): ``cache_gb * 4096 / (input + output tokens)``."""
        if self.d_model is not None:
            return 2.0 * self.d_model * 4096 * 2 / 1e9
        per_token = self.cache_gb / (self.input_tokens + self.output_tokens)
        return per_token * 4096 * 2 / (self.dtype_bytes or 2)

    def server_throughput(self, num_blocks: np.ndarray) -> np.ndarray:
        """PETALS's announced throughput min(forward_rps / ((1 + m) / 2), network_rps)."""
        forward, network = self.throughput_profile()
        m = np.asarray(num_blocks, dtype=np.float64)
        return np.minimum(forward / ((1.0 + m) / 2.0), network)

    def throughput_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """(forward_rps, network_rps) per server.  Defaults when absent from the file:
        forward_rps scaled from the A100 profile by decode time, network_rps = A100's."""
        forward = self.forward_rps
        if forward is None:  # a server with decode_ms = 0 has no forward-pass limit
            with np.errstate(divide="ignore"):
                forward = A100.forward_rps * A100.decode_ms / self.decode_ms
        network = self.network_rps
        if network is None:
            network = np.full(self.num_servers, A100.network_rps)
        return forward, network

    def with_requests(self, num_requests: int, max_memory_gb: float | None = None) -> "Scenario":
        """The same scenario with ``num_requests`` requests; clients repeat the current
        request pattern cyclically.

        Raises
        ------
        ValidationError
            ``num_requests`` not an integer in [1, 2^53], or a request set whose plan would
            need more than ``max_memory_gb`` (see :mod:`distalloc.llm.limits`)."""
        n = check_count(num_requests, "num_requests", low=1, high=MAX_COUNT)
        check_memory(n * BYTES_PER_REQUEST, f"a request set of {n} requests", max_memory_gb)
        reqs = self.requests[np.arange(n) % self.num_requests].copy()
        return replace(self, requests=reqs)

    # -- canonical JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Canonical scenario dictionary (SPEC 1.2): ``scenario_from_dict`` reads it back."""
        model: dict[str, Any] = {"name": self.model_name, "num_blocks": self.num_blocks,
                                 "block_gb": self.block_gb, "cache_gb": self.cache_gb}
        if self.d_model is not None:
            model["d_model"] = self.d_model
        if self.dtype_bytes is not None:
            model["dtype_bytes"] = self.dtype_bytes
        servers = []
        for j, name in enumerate(self.server_names):
            s = {"name": name, "memory_gb": float(self.memory_gb[j]),
                 "decode_ms": float(self.decode_ms[j]), "prefill_ms": float(self.prefill_ms[j])}
            if self.reserve_gb[j] != 0:
                s["reserve_gb"] = float(self.reserve_gb[j])
            if self.forward_rps is not None:
                s["forward_rps"] = float(self.forward_rps[j])
            if self.network_rps is not None:
                s["network_rps"] = float(self.network_rps[j])
            servers.append(s)
        workload: dict[str, Any] = {"input_tokens": self.input_tokens,
                                    "output_tokens": self.output_tokens,
                                    "requests": [int(c) for c in self.requests]}
        workload.update(self.online)
        return {
            "model": model,
            "servers": servers,
            "clients": [{"name": c} for c in self.client_names],
            "rtt_ms": self.rtt_ms.tolist(),
            "prefill_rtt_ms": self.prefill_rtt_ms.tolist(),
            "workload": workload,
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# ------------------------------------------------------------------------------------------
# Parsing and validation
# ------------------------------------------------------------------------------------------
_MODEL_REQUIRED = {"name", "num_blocks", "block_gb"}
_MODEL_OPTIONAL = {"cache_gb", "d_model", "dtype_bytes"}
_SERVER_REQUIRED = {"name", "memory_gb", "decode_ms", "prefill_ms"}
_SERVER_OPTIONAL = {"reserve_gb", "forward_rps", "network_rps"}
_SERVER_KEYS = frozenset(_SERVER_REQUIRED | _SERVER_OPTIONAL)
_WORKLOAD_REQUIRED = {"input_tokens", "output_tokens", "requests"}
_WORKLOAD_OPTIONAL = {"rate_per_s", "num_requests", "client_weights", "trace", "time_scale",
                      "trace_format"}
_TOP_REQUIRED = {"model", "servers", "clients", "rtt_ms", "workload"}
_TOP_OPTIONAL = {"prefill_rtt_ms"}

#: bytes of memory per server and per (client, server) pair while a scenario is built
_BYTES_PER_SERVER = 400
_BYTES_PER_PAIR = 48


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"The 'name' parameter of {where} must be a non-empty string. "
                              f"Got {describe(value)} instead.")
    return value


def _names(values: list, where: str) -> list[str]:
    """Names, all non-empty strings (checked in one pass; the first bad one is named)."""
    if not all(type(v) is str and v for v in values):
        for i, v in enumerate(values):
            _name(v, where.format(i))
    return values


def _list(value: Any, where: str, *, nonempty: bool = True) -> list:
    if not isinstance(value, list):
        raise ValidationError(f"'{where}' must be a list. Got {type(value).__name__} instead.")
    if nonempty and not value:
        raise ValidationError(f"'{where}' must not be empty. Got [] instead.")
    return value


def _count(value: Any, name: str, owner: str | None, low: int = 1, high: int = MAX_COUNT) -> int:
    """An integer count in [low, high] (high defaults to 2^53, see distalloc.llm.limits)."""
    return check_count(value, name, owner, low=low, high=high)


def _interval(low: float, high: float | None, low_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else format(high, '.4g')}{')' if high is None else ']'}"


def _times_column(values: Any, label, t_max: float, why: str, num_blocks: int,
                  output_tokens: int) -> np.ndarray:
    """A column of times (ms) bounded by ``t_max`` = TIME_LIMIT_MS / (L x output_tokens).
    A time over the bound that a smaller ``output_tokens`` would allow blames
    ``output_tokens`` (the field a user raises, e.g. ``--output-tokens``), naming the time;
    one that no output length allows blames the time."""
    col = _real_column(values, label, why=why)
    over = np.flatnonzero(col > t_max)
    if over.size:
        i = int(over[0])
        most = int((TIME_LIMIT_MS / float(num_blocks)) // col[i])
        name, owner = label(i)
        where = f"'{name}' of {owner}" if owner else f"'{name}'"
        if most >= 1:
            raise ValidationError(
                f"The 'output_tokens' parameter of workload must be at most {most} with "
                f"{where} = {col[i]:.4g} ms (num_blocks x output_tokens x the time must stay "
                f"at most {TIME_LIMIT_MS:g} ms, so that request times stay finite). "
                f"Got {output_tokens} instead.")
        _real_column(values, label, high=t_max, why=why)   # raises, naming the time
    return col


def _real_column(values: Any, label, *, low: float = 0.0, high: float | None = None,
                 low_open: bool = False, why: str = "") -> np.ndarray:
    """A float64 array of the real numbers ``values`` (a list read from a file, or an array
    built here), all finite and in the interval; the first bad entry raises the uniform
    one-line message.  ``label(i)`` gives (name, owner) of entry i.  One vectorised pass;
    the per-entry path runs only to name a bad entry."""
    interval = _interval(low, high, low_open)
    raw = None
    if isinstance(values, np.ndarray):
        arr = np.asarray(values, dtype=np.float64).ravel()
    else:
        raw = values
        arr = None
        if set(map(type, values)) <= {int, float}:
            try:
                arr = np.array(values, dtype=np.float64)
            except OverflowError:  # an int beyond the float range
                arr = None
        if arr is None:
            for i, v in enumerate(values):
                if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.number))
                        or (isinstance(v, Integral) and abs(int(v)) > 2 ** 1023)):
                    name, owner = label(i)
                    raise range_error(name, owner, "a float", interval, v, why)
            arr = np.array([float(v) for v in values], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (arr < low)
        if low_open:
            bad |= arr == low
        if high is not None:
            bad |= arr > high
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name, owner = label(i)
        raise range_error(name, owner, "a float", interval,
                          raw[i] if raw is not None else float(arr[i]), why)
    return arr


def _matrix(value: Any, name: str, shape: tuple[int, int]) -> list | np.ndarray:
    """Check the clients x servers structure of a matrix read from a file; entries are
    checked by :func:`_real_column`."""
    rows, cols = shape
    if isinstance(value, np.ndarray):
        if value.shape != shape:
            raise ValidationError(f"'{name}' must be a {rows} x {cols} matrix (clients x "
                                  f"servers). Got shape {value.shape} instead.")
        return value
    if not isinstance(value, (list, tuple)) or len(value) != rows:
        got = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise ValidationError(f"'{name}' must be a {rows} x {cols} matrix (clients x servers). "
                              f"Got {got} rows instead.")
    for i, row in enumerate(value):
        if not isinstance(row, (list, tuple)) or len(row) != cols:
            got = len(row) if isinstance(row, (list, tuple)) else type(row).__name__
            raise ValidationError(f"'{name}[{i}]' must have {cols} entries (one per server). "
                                  f"Got {got} instead.")
    return [x for row in value for x in row]


def scenario_from_dict(data: Any, name: str = "scenario") -> Scenario:
    """Build a validated :class:`Scenario` from a canonical dictionary (SPEC 1.2).

    Raises
    ------
    ValidationError
        for unknown or missing keys, wrong shapes, negative/NaN/inf values, a server that
        cannot hold one block, an empty request set, or numbers beyond the bounds of
        :mod:`distalloc.llm.limits` (times whose sums could overflow, counts beyond 2^53,
        more than 2^20 blocks); the message names the field and the bound.

    Notes
    -----
    O(servers x clients + requests), vectorised: a 10^5-server file validates in tens of
    milliseconds.
    """
    check_keys(data, "scenario", _TOP_REQUIRED, _TOP_OPTIONAL)
    model = check_keys(data["model"], "model", _MODEL_REQUIRED, _MODEL_OPTIONAL)
    workload = check_keys(data["workload"], "workload", _WORKLOAD_REQUIRED, _WORKLOAD_OPTIONAL)
    servers = _list(data["servers"], "servers")
    for j, s in enumerate(servers):
        if type(s) is not dict or not (_SERVER_REQUIRED <= s.keys() <= _SERVER_KEYS):
            check_keys(s, f"servers[{j}]", _SERVER_REQUIRED, _SERVER_OPTIONAL)
    clients = _list(data["clients"], "clients")
    for c, cl in enumerate(clients):
        check_keys(cl, f"clients[{c}]", {"name"})
    S, C = len(servers), len(clients)
    reqs = _list(workload["requests"], "workload.requests")
    if set(map(type, reqs)) <= {int}:
        try:
            requests = np.array(reqs, dtype=np.int64)
        except OverflowError:
            requests = None
    else:
        requests = None
    if requests is None or (requests.size and (requests.min() < 0 or requests.max() >= C)):
        for i, r in enumerate(reqs):
            check_count(r, f"requests[{i}]", "workload", low=0, high=C - 1)
        requests = np.array(reqs, dtype=np.int64)
    fwd = [s.get("forward_rps") for s in servers]
    net = [s.get("network_rps") for s in servers]
    for key, col in (("forward_rps", fwd), ("network_rps", net)):
        count = S - col.count(None)
        if 0 < count < S:
            raise ValidationError(f"'{key}' must be given for every server or for none "
                                  f"(given for {count} of {S}).")
    return _validated_scenario(
        name=name, model_name=_name(model["name"], "model"), num_blocks=model["num_blocks"],
        block_gb=model["block_gb"], cache_gb=model.get("cache_gb"),
        d_model=model.get("d_model"), dtype_bytes=model.get("dtype_bytes"),
        server_names=_names([s["name"] for s in servers], "servers[{}]"),
        memory_gb=[s["memory_gb"] for s in servers],
        decode_ms=[s["decode_ms"] for s in servers],
        prefill_ms=[s["prefill_ms"] for s in servers],
        reserve_gb=[s.get("reserve_gb", 0.0) for s in servers],
        forward_rps=fwd if fwd and fwd[0] is not None else None,
        network_rps=net if net and net[0] is not None else None,
        client_names=_names([cl["name"] for cl in clients], "clients[{}]"),
        rtt_ms=_matrix(data["rtt_ms"], "rtt_ms", (C, S)),
        prefill_rtt_ms=(_matrix(data["prefill_rtt_ms"], "prefill_rtt_ms", (C, S))
                        if "prefill_rtt_ms" in data else None),
        input_tokens=workload["input_tokens"], output_tokens=workload["output_tokens"],
        requests=requests, online=workload)


def _validated_scenario(*, name: str, model_name: str, num_blocks: Any, block_gb: Any,
                        cache_gb: Any, d_model: Any, dtype_bytes: Any, server_names: list[str],
                        memory_gb, decode_ms, prefill_ms, reserve_gb, forward_rps, network_rps,
                        client_names: list[str], rtt_ms, prefill_rtt_ms, input_tokens: Any,
                        output_tokens: Any, requests: np.ndarray, online: dict) -> Scenario:
    """Every range check of a scenario, vectorised, shared by files and built-ins.  Server
    and matrix columns are lists (from a file: entries are type-checked) or arrays."""
    L = _count(num_blocks, "num_blocks", "model", high=MAX_BLOCKS)
    block = check_real(block_gb, "block_gb", "model", low=0, low_open=True)
    d_model = None if d_model is None else _count(d_model, "d_model", "model")
    dtype_bytes = None if dtype_bytes is None else _count(dtype_bytes, "dtype_bytes", "model")
    l_in = _count(input_tokens, "input_tokens", "workload")
    l_out = _count(output_tokens, "output_tokens", "workload")
    if cache_gb is not None:
        cache = check_real(cache_gb, "cache_gb", "model", low=0, low_open=True)
    elif d_model is not None:
        cache = 2.0 * d_model * (l_in + l_out) * (dtype_bytes or DTYPE_BYTES) / 1e9
    else:
        raise ValidationError("Missing key 'cache_gb' in 'model' (or give 'd_model' to derive it).")
    S, C = len(server_names), len(client_names)
    if len(set(server_names)) != S:
        seen: set[str] = set()
        dup = next(n for n in server_names if n in seen or seen.add(n))
        raise ValidationError(f"Server names must be unique. Got '{describe(dup)[1:-1]}' twice.")
    t_max = time_bound_ms(L, l_out)
    why = (f" (at most {TIME_LIMIT_MS:g} ms / (num_blocks x output_tokens), so that request "
           "times stay finite)")

    def server(field):
        return lambda j: (field, f"servers[{j}]")
    mem = _real_column(memory_gb, server("memory_gb"), low_open=True)
    dec = _times_column(decode_ms, server("decode_ms"), t_max, why, L, l_out)
    pre = _times_column(prefill_ms, server("prefill_ms"), t_max, why, L, l_out)
    res = _real_column(reserve_gb, server("reserve_gb"))
    fwd = None if forward_rps is None else _real_column(
        forward_rps, server("forward_rps"), high=MAX_RPS, low_open=True)
    net = None if network_rps is None else _real_column(
        network_rps, server("network_rps"), high=MAX_RPS, low_open=True)
    usable = mem - res
    short = usable < block
    if short.any():
        j = int(np.flatnonzero(short)[0])
        raise ValidationError(
            f"The 'memory_gb' parameter of servers[{j}] must leave room for one block "
            f"(memory_gb - reserve_gb >= block_gb = {block:g}). Got {mem[j]:g} "
            f"with reserve_gb {res[j]:g} instead.")
    most = MAX_COUNT * min(block, cache)
    huge = usable > most
    if huge.any():
        j = int(np.flatnonzero(huge)[0])
        raise ValidationError(
            f"The 'memory_gb' parameter of servers[{j}] must leave at most 2^53 x "
            f"min(block_gb, cache_gb) = {most:.4g} GB after reserve_gb (so that block and "
            f"cache counts stay exact integers). Got {mem[j]:g} instead.")

    def pair(key):
        return lambda i: (f"{key}[{i // S}][{i % S}]", None)
    rtt = _times_column(rtt_ms, pair("rtt_ms"), t_max, why, L, l_out).reshape(C, S)
    prefill_rtt = (rtt.copy() if prefill_rtt_ms is None else _times_column(
        prefill_rtt_ms, pair("prefill_rtt_ms"), t_max, why, L, l_out).reshape(C, S))
    return Scenario(
        model_name=model_name, num_blocks=L, block_gb=block, cache_gb=cache,
        server_names=server_names, memory_gb=mem, decode_ms=dec, prefill_ms=pre,
        reserve_gb=res, client_names=client_names, rtt_ms=rtt, prefill_rtt_ms=prefill_rtt,
        input_tokens=l_in, output_tokens=l_out, requests=requests, forward_rps=fwd,
        network_rps=net, d_model=d_model, dtype_bytes=dtype_bytes,
        online=_online_workload(online, C), name=name)


def revalidated(scenario: Scenario) -> Scenario:
    """Run every check of :func:`scenario_from_dict` again on a scenario whose arrays were
    changed after it was built (``dataclasses.replace``, a calibration profile): the
    result is a validated copy, or a :class:`ValidationError` naming the field.

    Notes
    -----
    Vectorised, O(servers x clients + requests); no dictionaries are built.
    """
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"'scenario' must be a Scenario. Got {type(scenario).__name__} instead.")
    online = dict(scenario.online)
    online.pop("requests", None)
    return _validated_scenario(
        name=scenario.name, model_name=scenario.model_name, num_blocks=scenario.num_blocks,
        block_gb=scenario.block_gb, cache_gb=scenario.cache_gb, d_model=scenario.d_model,
        dtype_bytes=scenario.dtype_bytes, server_names=list(scenario.server_names),
        memory_gb=np.asarray(scenario.memory_gb), decode_ms=np.asarray(scenario.decode_ms),
        prefill_ms=np.asarray(scenario.prefill_ms), reserve_gb=np.asarray(scenario.reserve_gb),
        forward_rps=scenario.forward_rps, network_rps=scenario.network_rps,
        client_names=list(scenario.client_names),
        rtt_ms=_matrix(np.asarray(scenario.rtt_ms), "rtt_ms",
                       (scenario.num_clients, scenario.num_servers)),
        prefill_rtt_ms=_matrix(np.asarray(scenario.prefill_rtt_ms), "prefill_rtt_ms",
                               (scenario.num_clients, scenario.num_servers)),
        input_tokens=scenario.input_tokens, output_tokens=scenario.output_tokens,
        requests=np.asarray(scenario.requests, dtype=np.int64), online=online)


#: trace formats a scenario file may name in ``workload.trace_format``
TRACE_FORMAT_NAMES = ("azure", "burstgpt", "mooncake")


def _online_workload(workload: dict, num_clients: int) -> dict:
    """Validate the online keys of the workload (used by the simulator) and keep them."""
    out: dict[str, Any] = {}
    if "rate_per_s" in workload:
        out["rate_per_s"] = check_real(workload["rate_per_s"], "rate_per_s", "workload",
                                       low=0, low_open=True)
    if "num_requests" in workload:
        out["num_requests"] = _count(workload["num_requests"], "num_requests", "workload")
    if "rate_per_s" in out and "num_requests" in out:
        span = out["num_requests"] / out["rate_per_s"]
        if span > MAX_SPAN_S:
            from distalloc.llm.limits import span_error
            raise span_error(out["num_requests"], out["rate_per_s"], "workload")
    if "time_scale" in workload:
        out["time_scale"] = check_real(workload["time_scale"], "time_scale", "workload",
                                       low=0, low_open=True)
    if "client_weights" in workload:
        w = _list(workload["client_weights"], "workload.client_weights")
        if len(w) != num_clients:
            raise ValidationError(f"'workload.client_weights' must have {num_clients} entries "
                                  f"(one per client). Got {len(w)} instead.")
        w = [check_real(x, f"client_weights[{i}]", "workload", low=0) for i, x in enumerate(w)]
        if max(w) <= 0:
            raise ValidationError(f"'workload.client_weights' must have a positive sum. "
                                  f"Got {describe(w)} instead.")
        out["client_weights"] = w
    if "trace" in workload:
        if not isinstance(workload["trace"], str) or not workload["trace"]:
            raise ValidationError(f"The 'trace' parameter of workload must be a path. "
                                  f"Got {describe(workload['trace'])} instead.")
        out["trace"] = workload["trace"]
    if "trace_format" in workload:
        check_choice(workload["trace_format"], "trace_format", TRACE_FORMAT_NAMES, "workload")
        out["trace_format"] = workload["trace_format"]
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file: TOML if it ends in ``.toml``, JSON otherwise.

    Raises
    ------
    ValidationError
        missing, unreadable or non-UTF-8 file, unparsable file, or any validation failure
        of :func:`scenario_from_dict`.  No message quotes the file's content.
    """
    path = Path(path)
    text = read_text(path, "Scenario file")
    is_toml = path.suffix.lower() == ".toml"
    try:
        if is_toml:
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, TOMLDecodeError
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno}, column {exc.colno}"
        elif "line" in str(exc):
            where = " (" + str(exc).splitlines()[0].rpartition("(")[2].rstrip(")") + ")"
        raise ValidationError(f"Scenario file '{path}' is not valid "
                              f"{'TOML' if is_toml else 'JSON'}{where}.") from None
    return scenario_from_dict(data, name=path.stem)


# The built-ins live in distalloc.llm.builtins and the device profiles in
# distalloc.llm.devices; both stay importable from here (lazily, so that builtins can import
# this module without an import circle).
_BUILTIN_NAMES = ("clustered", "topology_scenario", "synthetic_scenario", "builtin_scenario",
                  "resolve_scenario", "DEFAULT_NUM_REQUESTS")


def __getattr__(name: str) -> Any:
    if name in _BUILTIN_NAMES:
        from distalloc.llm import builtins
        return getattr(builtins, name)
    if name in _devices_module.__all__:
        return getattr(_devices_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_scenario(scenario: Any, function: str) -> "Scenario":
    """``scenario`` if it is a :class:`Scenario`; else the one-line error naming the
    parameter, the function and what was given (never an AttributeError inside)."""
    if not isinstance(scenario, Scenario):
        raise ValidationError(f"The 'scenario' parameter of {function}() must be a Scenario "
                              f"(distalloc.llm.load_scenario, resolve_scenario or a built-in). "
                              f"Got {type(scenario).__name__} instead.")
    return scenario

