"""Scenarios: the model, the servers, the clients, the network and the workload (SPEC 1.2).

A :class:`Scenario` is validated once, when it is built; everything downstream (kernels
included) trusts it.  Scenarios come from JSON/TOML files (:func:`load_scenario`) or from
the built-ins (:func:`builtin_scenario`): ``clustered``, ``topology:<name>`` and
``synthetic:<servers>[:<blocks>]``.  :meth:`Scenario.to_dict` gives the canonical JSON
that :func:`scenario_from_dict` reads back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from distalloc._validation import (ValidationError, as_generator, check_keys, check_matrix,
                                   check_number)
from distalloc.llm.topology import read_topology

__all__ = ["Scenario", "DeviceProfile", "A100", "MIG_1G", "load_scenario", "scenario_from_dict",
           "builtin_scenario", "clustered", "topology_scenario", "synthetic_scenario",
           "resolve_scenario", "GIB"]

GIB = 1.073741824  # GB per GiB

# ------------------------------------------------------------------------------------------
# Device profiles (SPEC 1.3): BLOOM-176B, NF4 weights
# ------------------------------------------------------------------------------------------
BLOOM_BLOCKS = 70
BLOOM_BLOCK_GB = 1.32
BLOOM_D_MODEL = 14336
DTYPE_BYTES = 2


@dataclass(frozen=True)
class DeviceProfile:
    """Profiled constants of one GPU type for BLOOM-176B blocks.

    ``prefill_ms(l_in) = prefill_slope_ms * l_in + prefill_base_ms``; ``forward_rps`` and
    ``network_rps`` are the throughputs PETALS announces for its placement rule.
    """

    name: str
    memory_gib: float
    decode_ms: float
    prefill_slope_ms: float
    prefill_base_ms: float
    forward_rps: float
    network_rps: float

    def prefill_ms(self, input_tokens: int) -> float:
        return self.prefill_slope_ms * input_tokens + self.prefill_base_ms


A100 = DeviceProfile("a100", 79.13, 3.2197, 0.0743, 32.99, 20829.0, 3020.0)
MIG_1G = DeviceProfile("mig1g", 8.2, 16.2488, 0.1041, 206.3547, 2758.0, 3138.0)

#: network constants of the paper's deployment (SPEC 1.3)
TOKEN_RTT_OVERHEAD_MS = 100.0
PREFILL_RTT_SLOPE_MS = 0.7049
PREFILL_RTT_BASE_MS = 67.0


def reserve_gb(d_model: int = BLOOM_D_MODEL) -> float:
    """PETALS's runtime reserve: 2 GiB scaled by d_model / 14336, in GB."""
    return 2.0 * GIB * d_model / 14336


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
        if forward is None:
            forward = A100.forward_rps * A100.decode_ms / self.decode_ms
        network = self.network_rps
        if network is None:
            network = np.full(self.num_servers, A100.network_rps)
        return forward, network

    def with_requests(self, num_requests: int) -> "Scenario":
        """The same scenario with ``num_requests`` requests; clients repeat the current
        request pattern cyclically."""
        n = check_number(num_requests, "num_requests", low=1, integer=True)
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
_WORKLOAD_REQUIRED = {"input_tokens", "output_tokens", "requests"}
_WORKLOAD_OPTIONAL = {"rate_per_s", "num_requests", "client_weights", "trace", "time_scale"}
_TOP_REQUIRED = {"model", "servers", "clients", "rtt_ms", "workload"}
_TOP_OPTIONAL = {"prefill_rtt_ms"}


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"The 'name' parameter of {where} must be a non-empty string. Got {value!r} instead.")
    return value


def _list(value: Any, where: str, *, nonempty: bool = True) -> list:
    if not isinstance(value, list):
        raise ValidationError(f"'{where}' must be a list. Got {type(value).__name__} instead.")
    if nonempty and not value:
        raise ValidationError(f"'{where}' must not be empty. Got [] instead.")
    return value


def scenario_from_dict(data: Any, name: str = "scenario") -> Scenario:
    """Build a validated :class:`Scenario` from a canonical dictionary (SPEC 1.2).

    Raises
    ------
    ValidationError
        for unknown or missing keys, wrong shapes, negative/NaN/inf values, a server that
        cannot hold one block, an empty request set; the message names the field.
    """
    check_keys(data, "scenario", _TOP_REQUIRED, _TOP_OPTIONAL)
    model = check_keys(data["model"], "model", _MODEL_REQUIRED, _MODEL_OPTIONAL)
    model_name = _name(model["name"], "model")
    L = check_number(model["num_blocks"], "num_blocks", "model", low=1, integer=True)
    block_gb = check_number(model["block_gb"], "block_gb", "model", low=0, low_open=True)
    d_model = dtype_bytes = None
    if "d_model" in model:
        d_model = check_number(model["d_model"], "d_model", "model", low=1, integer=True)
    if "dtype_bytes" in model:
        dtype_bytes = check_number(model["dtype_bytes"], "dtype_bytes", "model", low=1, integer=True)

    workload = check_keys(data["workload"], "workload", _WORKLOAD_REQUIRED, _WORKLOAD_OPTIONAL)
    l_in = check_number(workload["input_tokens"], "input_tokens", "workload", low=1, integer=True)
    l_out = check_number(workload["output_tokens"], "output_tokens", "workload", low=1, integer=True)

    if "cache_gb" in model:
        cache_gb = check_number(model["cache_gb"], "cache_gb", "model", low=0, low_open=True)
    elif d_model is not None:
        cache_gb = 2.0 * d_model * (l_in + l_out) * (dtype_bytes or DTYPE_BYTES) / 1e9
    else:
        raise ValidationError("Missing key 'cache_gb' in 'model' (or give 'd_model' to derive it).")

    servers = _list(data["servers"], "servers")
    S = len(servers)
    names, mem, dec, pre, res, fwd, net = [], [], [], [], [], [], []
    n_fwd = n_net = 0
    for j, s in enumerate(servers):
        where = f"servers[{j}]"
        check_keys(s, where, _SERVER_REQUIRED, _SERVER_OPTIONAL)
        names.append(_name(s["name"], where))
        mem.append(check_number(s["memory_gb"], "memory_gb", where, low=0, low_open=True))
        dec.append(check_number(s["decode_ms"], "decode_ms", where, low=0))
        pre.append(check_number(s["prefill_ms"], "prefill_ms", where, low=0))
        res.append(check_number(s.get("reserve_gb", 0.0), "reserve_gb", where, low=0))
        if "forward_rps" in s:
            n_fwd += 1
            fwd.append(check_number(s["forward_rps"], "forward_rps", where, low=0, low_open=True))
        if "network_rps" in s:
            n_net += 1
            net.append(check_number(s["network_rps"], "network_rps", where, low=0, low_open=True))
        if mem[-1] - res[-1] < block_gb:
            raise ValidationError(
                f"The 'memory_gb' parameter of {where} must leave room for one block "
                f"(memory_gb - reserve_gb >= block_gb = {block_gb:g}). Got {mem[-1]:g} "
                f"with reserve_gb {res[-1]:g} instead.")
    for key, count in (("forward_rps", n_fwd), ("network_rps", n_net)):
        if 0 < count < S:
            raise ValidationError(f"'{key}' must be given for every server or for none "
                                  f"(given for {count} of {S}).")
    if len(set(names)) != S:
        dup = next(n for n in names if names.count(n) > 1)
        raise ValidationError(f"Server names must be unique. Got '{dup}' twice.")

    clients = _list(data["clients"], "clients")
    client_names = []
    for c, cl in enumerate(clients):
        check_keys(cl, f"clients[{c}]", {"name"})
        client_names.append(_name(cl["name"], f"clients[{c}]"))
    C = len(clients)
    rtt = check_matrix(data["rtt_ms"], "rtt_ms", (C, S))
    prefill_rtt = (check_matrix(data["prefill_rtt_ms"], "prefill_rtt_ms", (C, S))
                   if "prefill_rtt_ms" in data else rtt.copy())

    reqs = _list(workload["requests"], "workload.requests")
    requests = np.array([check_number(r, f"requests[{i}]", "workload", low=0, high=C - 1, integer=True)
                         for i, r in enumerate(reqs)], dtype=np.int64)
    online = _online_workload(workload, C)

    return Scenario(
        model_name=model_name, num_blocks=L, block_gb=block_gb, cache_gb=cache_gb,
        server_names=names, memory_gb=np.array(mem), decode_ms=np.array(dec),
        prefill_ms=np.array(pre), reserve_gb=np.array(res), client_names=client_names,
        rtt_ms=rtt, prefill_rtt_ms=prefill_rtt, input_tokens=l_in, output_tokens=l_out,
        requests=requests, forward_rps=np.array(fwd) if n_fwd else None,
        network_rps=np.array(net) if n_net else None, d_model=d_model,
        dtype_bytes=dtype_bytes, online=online, name=name)


def _online_workload(workload: dict, num_clients: int) -> dict:
    """Validate the online keys of the workload (used by the simulator) and keep them."""
    out: dict[str, Any] = {}
    if "rate_per_s" in workload:
        out["rate_per_s"] = check_number(workload["rate_per_s"], "rate_per_s", "workload",
                                         low=0, low_open=True)
    if "num_requests" in workload:
        out["num_requests"] = check_number(workload["num_requests"], "num_requests", "workload",
                                           low=1, integer=True)
    if "time_scale" in workload:
        out["time_scale"] = check_number(workload["time_scale"], "time_scale", "workload",
                                         low=0, low_open=True)
    if "client_weights" in workload:
        w = _list(workload["client_weights"], "workload.client_weights")
        if len(w) != num_clients:
            raise ValidationError(f"'workload.client_weights' must have {num_clients} entries "
                                  f"(one per client). Got {len(w)} instead.")
        w = [check_number(x, f"client_weights[{i}]", "workload", low=0) for i, x in enumerate(w)]
        if sum(w) <= 0:
            raise ValidationError(f"'workload.client_weights' must have a positive sum. Got {w} instead.")
        out["client_weights"] = w
    if "trace" in workload:
        if not isinstance(workload["trace"], str) or not workload["trace"]:
            raise ValidationError(f"The 'trace' parameter of workload must be a path. "
                                  f"Got {workload['trace']!r} instead.")
        out["trace"] = workload["trace"]
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file: TOML if it ends in ``.toml``, JSON otherwise.

    Raises
    ------
    ValidationError
        missing file, unparsable file, or any validation failure of
        :func:`scenario_from_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"Scenario file '{path}' does not exist.")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        msg = str(exc).splitlines()[0]
        raise ValidationError(f"Scenario file '{path}' is not valid "
                              f"{'TOML' if path.suffix.lower() == '.toml' else 'JSON'}: {msg}") from None
    return scenario_from_dict(data, name=path.stem)


# ------------------------------------------------------------------------------------------
# Built-in scenarios
# ------------------------------------------------------------------------------------------
def _bloom_model(input_tokens: int, output_tokens: int) -> dict:
    return {"name": "bloom-176b", "num_blocks": BLOOM_BLOCKS, "block_gb": BLOOM_BLOCK_GB,
            "d_model": BLOOM_D_MODEL, "dtype_bytes": DTYPE_BYTES}


def _server_entry(name: str, dev: DeviceProfile, input_tokens: int) -> dict:
    return {"name": name, "memory_gb": dev.memory_gib * GIB, "decode_ms": dev.decode_ms,
            "prefill_ms": dev.prefill_ms(input_tokens), "reserve_gb": reserve_gb(),
            "forward_rps": dev.forward_rps, "network_rps": dev.network_rps}


def _rtt_matrices(raw_rtt_ms: np.ndarray, input_tokens: int) -> tuple[list, list]:
    token = raw_rtt_ms + TOKEN_RTT_OVERHEAD_MS
    prefill = raw_rtt_ms + PREFILL_RTT_SLOPE_MS * input_tokens + PREFILL_RTT_BASE_MS
    return token.tolist(), prefill.tolist()


DEFAULT_NUM_REQUESTS = 20


def clustered(input_tokens: int = 20, output_tokens: int = 128,
              num_requests: int = DEFAULT_NUM_REQUESTS) -> Scenario:
    """The paper's smaller real deployment (SPEC 1.3).

    Cluster0 holds client c0, Cluster1 two A100 servers and client c1, Cluster2 seven
    MIG 1g.10gb servers and client c2; raw RTT 5 ms inside a cluster, 100 ms between.
    Offline requests alternate between c0 and c1 (the paper's two client locations); the
    online workload is 100 Poisson arrivals at 0.5 requests/s from c0 and c1.
    """
    cluster_of_server = [1, 1] + [2] * 7
    servers = ([_server_entry(f"a100-{i}", A100, input_tokens) for i in range(2)]
               + [_server_entry(f"mig-{i}", MIG_1G, input_tokens) for i in range(7)])
    raw = np.array([[5.0 if c == s else 100.0 for s in cluster_of_server] for c in range(3)])
    rtt, prefill = _rtt_matrices(raw, input_tokens)
    data = {"model": _bloom_model(input_tokens, output_tokens), "servers": servers,
            "clients": [{"name": "cluster0"}, {"name": "cluster1"}, {"name": "cluster2"}],
            "rtt_ms": rtt, "prefill_rtt_ms": prefill,
            "workload": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                         "requests": [i % 2 for i in range(num_requests)],
                         "rate_per_s": 0.5, "num_requests": 100, "client_weights": [1, 1, 0]}}
    return scenario_from_dict(data, name="clustered")


def topology_scenario(topology: str, num_servers: int | None = None, seed: Any = 0,
                      a100_fraction: float = 0.2, input_tokens: int = 20,
                      output_tokens: int = 128,
                      num_requests: int = DEFAULT_NUM_REQUESTS) -> Scenario:
    """The paper's scattered scenarios on an Internet Topology Zoo backbone (SPEC 1.3).

    ``num_servers`` nodes (default round(0.4 x nodes)) are drawn at random as servers, a
    fraction ``a100_fraction`` of them (rounded, at least one) A100 and the rest MIG; one
    proxy client sits at a random other node.  Raw RTT = 2 x shortest-path one-way delay.
    """
    topo = read_topology(topology)
    n = topo.num_nodes
    C = round(0.4 * n) if num_servers is None else check_number(
        num_servers, "servers", low=1, high=n - 1, integer=True)
    frac = check_number(a100_fraction, "a100_fraction", low=0, high=1)
    rng = as_generator(seed)
    nodes = rng.choice(n, size=C + 1, replace=False)
    server_nodes, client_node = nodes[:C], nodes[C]
    n_a100 = max(1, round(frac * C))
    servers = [_server_entry(f"{'a100' if i < n_a100 else 'mig'}-{topo.node_labels[v]}",
                             A100 if i < n_a100 else MIG_1G, input_tokens)
               for i, v in enumerate(server_nodes)]
    raw = 2.0 * topo.delay_ms[client_node, server_nodes][None, :]
    rtt, prefill = _rtt_matrices(raw, input_tokens)
    data = {"model": _bloom_model(input_tokens, output_tokens), "servers": servers,
            "clients": [{"name": f"proxy-{topo.node_labels[client_node]}"}],
            "rtt_ms": rtt, "prefill_rtt_ms": prefill,
            "workload": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                         "requests": [0] * num_requests}}
    return scenario_from_dict(data, name=f"topology:{topo.name}")


def synthetic_scenario(num_servers: int, num_blocks: int = 96, num_clients: int = 4,
                       num_requests: int = 100, seed: Any = 0,
                       a100_fraction: float = 0.2, input_tokens: int = 20,
                       output_tokens: int = 128) -> Scenario:
    """A synthetic swarm for scale tests: servers and clients at uniform random points of
    a 4000 km square (raw RTT = 1 ms + 0.01 ms/km of round trip), 20% A100, BLOOM-sized
    blocks, ``num_blocks`` blocks."""
    S = check_number(num_servers, "servers", low=1, integer=True)
    L = check_number(num_blocks, "num_blocks", low=1, integer=True)
    Cn = check_number(num_clients, "num_clients", low=1, integer=True)
    rng = as_generator(seed)
    pos_s = rng.uniform(0, 4000, size=(S, 2))
    pos_c = rng.uniform(0, 4000, size=(Cn, 2))
    raw = 1.0 + 0.01 * 2 * np.linalg.norm(pos_c[:, None, :] - pos_s[None, :, :], axis=2)
    is_a100 = rng.random(S) < a100_fraction
    l_in, l_out = input_tokens, output_tokens
    rtt, prefill = _rtt_matrices(raw, l_in)
    servers = [_server_entry(f"s{j}", A100 if is_a100[j] else MIG_1G, l_in) for j in range(S)]
    model = _bloom_model(l_in, l_out)
    model["num_blocks"] = L
    data = {"model": model, "servers": servers,
            "clients": [{"name": f"c{c}"} for c in range(Cn)],
            "rtt_ms": rtt, "prefill_rtt_ms": prefill,
            "workload": {"input_tokens": l_in, "output_tokens": l_out,
                         "requests": [i % Cn for i in range(num_requests)]}}
    return scenario_from_dict(data, name=f"synthetic:{S}")


def builtin_scenario(spec: str, *, num_servers: int | None = None, seed: Any = 0,
                     input_tokens: int | None = None,
                     output_tokens: int | None = None) -> Scenario:
    """A built-in scenario by name: ``clustered``, ``topology:<name or path>``,
    ``synthetic:<servers>[:<blocks>]``, and the chain-composition paper's
    ``chains-sim[:J[:eta[:communication]]]`` and ``chains-testbed[:communication]``
    (:mod:`distalloc.llm.paper_scenarios`); ``input_tokens``/``output_tokens`` set the static
    lengths (and so the prefill profile and the cache size)."""
    kind, _, arg = spec.partition(":")
    lengths = {}
    if input_tokens is not None:
        lengths["input_tokens"] = check_number(input_tokens, "input_tokens", low=1, integer=True)
    if output_tokens is not None:
        lengths["output_tokens"] = check_number(output_tokens, "output_tokens", low=1, integer=True)
    if kind == "clustered" and not arg:
        if num_servers is not None:
            raise ValidationError("The 'servers' option does not apply to the clustered scenario.")
        return clustered(**lengths)
    if kind == "topology" and arg:
        return topology_scenario(arg, num_servers=num_servers, seed=seed, **lengths)
    if kind == "synthetic" and arg:
        parts = arg.split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ValidationError(f"Scenario '{spec}': expected synthetic:<servers>[:<blocks>].") from None
        if len(nums) > 2:
            raise ValidationError(f"Scenario '{spec}': expected synthetic:<servers>[:<blocks>].")
        return synthetic_scenario(num_servers if num_servers is not None else nums[0],
                                  *(nums[1:]), seed=seed, **lengths)
    if kind in ("chains-sim", "chains-testbed"):   # the chain-composition paper (SPEC 1.10)
        from distalloc.llm.paper_scenarios import paper_scenario
        return paper_scenario(spec, num_servers=num_servers, seed=seed, **lengths)
    raise ValidationError(f"Unknown scenario '{spec}' (built-ins: clustered, topology:<name>, "
                          "synthetic:<servers>[:<blocks>], chains-sim[:J[:eta]], "
                          "chains-testbed; or a path to a .json/.toml file).")


def resolve_scenario(spec: str, *, num_servers: int | None = None, seed: Any = 0,
                     input_tokens: int | None = None,
                     output_tokens: int | None = None) -> Scenario:
    """A path to a scenario file, or a built-in name."""
    path = Path(spec)
    if path.suffix.lower() in (".json", ".toml") or path.is_file():
        for name, value in (("servers", num_servers), ("input_tokens", input_tokens),
                            ("output_tokens", output_tokens)):
            if value is not None:
                raise ValidationError(f"The '{name}' option applies only to built-in scenarios.")
        return load_scenario(path)
    return builtin_scenario(spec, num_servers=num_servers, seed=seed,
                            input_tokens=input_tokens, output_tokens=output_tokens)
