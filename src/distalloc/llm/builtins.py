"""Built-in scenarios (SPEC 1.3): ``clustered``, ``topology:<name>``,
``synthetic:<servers>[:<blocks>]`` (and the chain paper's ``chains-sim``/``chains-testbed``
in :mod:`distalloc.llm.paper_scenarios`), and :func:`resolve_scenario`, which takes a file
path or a built-in name.

Built-ins are made from arrays, never one dictionary per server, and pass the same
vectorised checks as files (:func:`distalloc.llm.scenario._validated_scenario`): a
10^5-server swarm builds in tens of milliseconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distalloc._validation import (ValidationError, as_generator, check_count, check_real,
                                   describe)
from distalloc.llm.devices import (A100, BLOOM_BLOCK_GB, BLOOM_BLOCKS, BLOOM_D_MODEL,
                                   DTYPE_BYTES, GIB, MIG_1G, PREFILL_RTT_BASE_MS,
                                   PREFILL_RTT_SLOPE_MS, TOKEN_RTT_OVERHEAD_MS, reserve_gb)
from distalloc.llm.limits import BYTES_PER_REQUEST, MAX_BLOCKS, check_memory
from distalloc.llm.scenario import (Scenario, _BYTES_PER_PAIR, _BYTES_PER_SERVER, _count,
                                    _validated_scenario, load_scenario)
from distalloc.llm.topology import read_topology

__all__ = ["clustered", "topology_scenario", "synthetic_scenario", "builtin_scenario",
           "resolve_scenario", "DEFAULT_NUM_REQUESTS"]

# ------------------------------------------------------------------------------------------
# Built-in scenarios: built from arrays (no per-server dictionaries), validated by the same
# vectorised checks as files
# ------------------------------------------------------------------------------------------
DEFAULT_NUM_REQUESTS = 20


def _devices(is_a100: np.ndarray, input_tokens: int) -> dict[str, np.ndarray]:
    """Per-server columns of A100 (where ``is_a100``) and MIG 1g.10gb servers."""
    def col(get):
        return np.where(is_a100, get(A100), get(MIG_1G))
    n = is_a100.shape[0]
    return {"memory_gb": col(lambda d: d.memory_gib * GIB),
            "decode_ms": col(lambda d: d.decode_ms),
            "prefill_ms": col(lambda d: d.prefill_ms(input_tokens)),
            "reserve_gb": np.full(n, reserve_gb()),
            "forward_rps": col(lambda d: d.forward_rps),
            "network_rps": col(lambda d: d.network_rps)}


def _bloom_builtin(name: str, server_names: list[str], is_a100: np.ndarray,
                   raw_rtt_ms: np.ndarray, client_names: list[str], input_tokens: Any,
                   output_tokens: Any, requests: np.ndarray, online: dict | None = None,
                   num_blocks: int = BLOOM_BLOCKS) -> Scenario:
    """A BLOOM-176B scenario of A100 and MIG servers with the paper's network constants
    (SPEC 1.3): per-token RTT = raw + 100 ms, per-input RTT = raw + 0.7049 l_in + 67 ms."""
    l_in = _count(input_tokens, "input_tokens", None)
    _count(output_tokens, "output_tokens", None)
    return _validated_scenario(
        name=name, model_name="bloom-176b", num_blocks=num_blocks, block_gb=BLOOM_BLOCK_GB,
        cache_gb=None, d_model=BLOOM_D_MODEL, dtype_bytes=DTYPE_BYTES,
        server_names=server_names, **_devices(is_a100, l_in), client_names=client_names,
        rtt_ms=raw_rtt_ms + TOKEN_RTT_OVERHEAD_MS,
        prefill_rtt_ms=raw_rtt_ms + PREFILL_RTT_SLOPE_MS * l_in + PREFILL_RTT_BASE_MS,
        input_tokens=l_in, output_tokens=output_tokens, requests=requests,
        online=online or {})


def _request_pattern(num_requests: Any, num_clients: int, cycle: int | None = None,
                     max_memory_gb: float | None = None) -> np.ndarray:
    """Requests i = 0..n-1 from client i mod ``cycle`` (default: all clients)."""
    n = _count(num_requests, "num_requests", None)
    check_memory(n * BYTES_PER_REQUEST, f"a request set of {n} requests", max_memory_gb)
    return np.arange(n, dtype=np.int64) % (cycle or num_clients)


def clustered(input_tokens: int = 20, output_tokens: int = 128,
              num_requests: int = DEFAULT_NUM_REQUESTS) -> Scenario:
    """The paper's smaller real deployment (SPEC 1.3).

    Cluster0 holds client c0, Cluster1 two A100 servers and client c1, Cluster2 seven
    MIG 1g.10gb servers and client c2; raw RTT 5 ms inside a cluster, 100 ms between.
    Offline requests alternate between c0 and c1 (the paper's two client locations); the
    online workload is 100 Poisson arrivals at 0.5 requests/s from c0 and c1.
    """
    cluster_of_server = np.array([1, 1] + [2] * 7)
    raw = np.where(np.arange(3)[:, None] == cluster_of_server[None, :], 5.0, 100.0)
    return _bloom_builtin(
        "clustered", [f"a100-{i}" for i in range(2)] + [f"mig-{i}" for i in range(7)],
        cluster_of_server == 1, raw, ["cluster0", "cluster1", "cluster2"], input_tokens,
        output_tokens, _request_pattern(num_requests, 3, cycle=2),
        online={"rate_per_s": 0.5, "num_requests": 100, "client_weights": [1, 1, 0]})


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
    C = round(0.4 * n) if num_servers is None else check_count(
        num_servers, "servers", low=1, high=n - 1)
    frac = check_real(a100_fraction, "a100_fraction", low=0, high=1)
    rng = as_generator(seed)
    nodes = rng.choice(n, size=C + 1, replace=False)
    server_nodes, client_node = nodes[:C], nodes[C]
    n_a100 = max(1, round(frac * C))
    is_a100 = np.arange(C) < n_a100
    names = [f"{'a100' if i < n_a100 else 'mig'}-{topo.node_labels[v]}"
             for i, v in enumerate(server_nodes)]
    raw = 2.0 * topo.delay_ms[client_node, server_nodes][None, :]
    return _bloom_builtin(f"topology:{topo.name}", names, is_a100, raw,
                          [f"proxy-{topo.node_labels[client_node]}"], input_tokens,
                          output_tokens, _request_pattern(num_requests, 1))


def synthetic_scenario(num_servers: int, num_blocks: int = 96, num_clients: int = 4,
                       num_requests: int = 100, seed: Any = 0,
                       a100_fraction: float = 0.2, input_tokens: int = 20,
                       output_tokens: int = 128, max_memory_gb: float | None = None) -> Scenario:
    """A synthetic swarm for scale tests: servers and clients at uniform random points of
    a 4000 km square (raw RTT = 1 ms + 0.01 ms/km of round trip), 20% A100, BLOOM-sized
    blocks, ``num_blocks`` blocks.

    Raises
    ------
    ValidationError
        bad sizes, or a swarm whose construction would need more than ``max_memory_gb``
        (default :func:`distalloc.llm.limits.default_max_memory_gb`).

    Notes
    -----
    O(servers x clients), vectorised: 10^5 servers build in tens of milliseconds.
    """
    S = _count(num_servers, "servers", None)
    L = _count(num_blocks, "num_blocks", None, high=MAX_BLOCKS)
    Cn = _count(num_clients, "num_clients", None)
    frac = check_real(a100_fraction, "a100_fraction", low=0, high=1)
    check_memory(S * (_BYTES_PER_SERVER + _BYTES_PER_PAIR * Cn),
                 f"a synthetic swarm of {S} servers and {Cn} clients", max_memory_gb)
    requests = _request_pattern(num_requests, Cn, max_memory_gb=max_memory_gb)
    rng = as_generator(seed)
    pos_s = rng.uniform(0, 4000, size=(S, 2))
    pos_c = rng.uniform(0, 4000, size=(Cn, 2))
    raw = 1.0 + 0.01 * 2 * np.linalg.norm(pos_c[:, None, :] - pos_s[None, :, :], axis=2)
    is_a100 = rng.random(S) < frac
    return _bloom_builtin(f"synthetic:{S}", [f"s{j}" for j in range(S)], is_a100, raw,
                          [f"c{c}" for c in range(Cn)], input_tokens, output_tokens,
                          requests, num_blocks=L)


def builtin_scenario(spec: str, *, num_servers: int | None = None, seed: Any = 0,
                     input_tokens: int | None = None,
                     output_tokens: int | None = None,
                     max_memory_gb: float | None = None) -> Scenario:
    """A built-in scenario by name: ``clustered``, ``topology:<name or path>``,
    ``synthetic:<servers>[:<blocks>]``, and the chain-composition paper's
    ``chains-sim[:J[:eta[:communication]]]`` and ``chains-testbed[:communication]``
    (:mod:`distalloc.llm.paper_scenarios`); ``input_tokens``/``output_tokens`` set the static
    lengths (and so the prefill profile and the cache size)."""
    if not isinstance(spec, str):
        raise ValidationError(f"The 'spec' parameter must be a built-in scenario name (a "
                              f"string). Got {describe(spec)} instead.")
    kind, _, arg = spec.partition(":")
    lengths = {}
    if input_tokens is not None:
        lengths["input_tokens"] = _count(input_tokens, "input_tokens", None)
    if output_tokens is not None:
        lengths["output_tokens"] = _count(output_tokens, "output_tokens", None)
    if kind == "clustered" and not arg:
        if num_servers is not None:
            raise ValidationError("The 'servers' option does not apply to the clustered scenario.")
        return clustered(**lengths)
    if kind == "topology" and arg:
        return topology_scenario(arg, num_servers=num_servers, seed=seed, **lengths)
    if kind == "synthetic" and arg:
        parts = arg.split(":")
        if len(parts) > 2 or not all(p.isascii() and p.isdigit() for p in parts):
            raise ValidationError(f"Scenario '{describe(spec)[1:-1]}': expected "
                                  "synthetic:<servers>[:<blocks>] with decimal integers.")
        nums = [int(p) for p in parts]
        return synthetic_scenario(num_servers if num_servers is not None else nums[0],
                                  *(nums[1:]), seed=seed, max_memory_gb=max_memory_gb,
                                  **lengths)
    if kind in ("chains-sim", "chains-testbed"):   # the chain-composition paper (SPEC 1.10)
        from distalloc.llm.paper_scenarios import paper_scenario
        return paper_scenario(spec, num_servers=num_servers, seed=seed, **lengths)
    raise ValidationError(f"Unknown scenario '{describe(spec)[1:-1]}' (built-ins: clustered, "
                          "topology:<name>, synthetic:<servers>[:<blocks>], chains-sim[:J[:eta]], "
                          "chains-testbed; or a path to a .json/.toml file).")


def resolve_scenario(spec: str, *, num_servers: int | None = None, seed: Any = 0,
                     input_tokens: int | None = None,
                     output_tokens: int | None = None,
                     max_memory_gb: float | None = None) -> Scenario:
    """A path to a scenario file, or a built-in name."""
    if not isinstance(spec, (str, Path)):
        raise ValidationError(f"The 'scenario' parameter must be a scenario file path or a built-in "
                              f"name (a string). Got {describe(spec)} instead.")
    if not str(spec).strip():   # Path('') is the current folder: say what is wrong
        raise ValidationError("The 'scenario' argument is empty; give a .json/.toml file or a "
                              "built-in name (clustered, topology:<name>, synthetic:<servers>).")
    path = Path(spec)
    if path.is_dir():
        raise ValidationError(f"Scenario '{describe(spec)[1:-1]}' is a folder; give a "
                              ".json/.toml file or a built-in name.")
    if path.suffix.lower() in (".json", ".toml") or path.is_file():
        for name, value in (("servers", num_servers), ("input_tokens", input_tokens),
                            ("output_tokens", output_tokens)):
            if value is not None:
                raise ValidationError(f"The '{name}' option applies only to built-in scenarios.")
        return load_scenario(path)
    return builtin_scenario(spec, num_servers=num_servers, seed=seed,
                            input_tokens=input_tokens, output_tokens=output_tokens,
                            max_memory_gb=max_memory_gb)
