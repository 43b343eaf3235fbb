"""The per-element scenario construction that distalloc used before the vectorised path
(kept as the reference for ``bench/bench_scenario.py`` and the equality test in
``tests/test_llm_hardening.py``): built-ins go through one dictionary per server and
``scenario_from_dict`` checks every number with ``check_number``, one call per value.

It builds the library's own :class:`distalloc.llm.scenario.Scenario`, so results compare
field by field.  Do not use it for anything else: it lacks the overflow bounds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from distalloc._validation import (ValidationError, as_generator, check_keys, check_matrix,
                                   check_number)
from distalloc.llm.scenario import (A100, BLOOM_BLOCK_GB, BLOOM_BLOCKS, BLOOM_D_MODEL,
                                    DTYPE_BYTES, GIB, MIG_1G, PREFILL_RTT_BASE_MS,
                                    PREFILL_RTT_SLOPE_MS, TOKEN_RTT_OVERHEAD_MS, DeviceProfile,
                                    Scenario, reserve_gb)
from distalloc.llm.topology import read_topology


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
