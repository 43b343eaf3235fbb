"""Scenario loading, validation and the built-in scenarios (SPEC 1.2, 1.3)."""
import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc.llm import clustered, load_scenario, scenario_from_dict, topology_scenario
from distalloc.llm.placement import conservative_block_counts, petals_block_counts
from distalloc.llm.scenario import GIB, builtin_scenario
from distalloc.llm.topology import read_topology

BASE = {
    "model": {"name": "bloom-176b", "num_blocks": 70, "block_gb": 1.32, "cache_gb": 0.00849},
    "servers": [{"name": "a100-0", "memory_gb": 79.13, "decode_ms": 3.22, "prefill_ms": 34.5}],
    "clients": [{"name": "c0"}],
    "rtt_ms": [[100.0]],
    "prefill_rtt_ms": [[181.1]],
    "workload": {"input_tokens": 20, "output_tokens": 128, "requests": [0, 0, 0]},
}


def mutate(path, value):
    d = copy.deepcopy(BASE)
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


def test_spec_example_loads():
    sc = scenario_from_dict(BASE)
    assert sc.num_blocks == 70 and sc.num_servers == 1 and sc.num_requests == 3
    assert sc.prefill_rtt_ms[0, 0] == 181.1


@pytest.mark.parametrize("path, value, needle", [
    (("model", "colour"), "red", "Unknown key 'colour' in 'model'"),
    (("servers", 0, "gpu"), "x", "Unknown key 'gpu' in 'servers[0]'"),
    (("extra",), 1, "Unknown key 'extra' in 'scenario'"),
    (("model", "block_gb"), KeyError, "Missing key 'block_gb' in 'model'"),
    (("servers", 0, "decode_ms"), KeyError, "Missing key 'decode_ms' in 'servers[0]'"),
    (("workload",), KeyError, "Missing key 'workload'"),
    (("servers", 0, "memory_gb"), -3, "'memory_gb' parameter of servers[0]"),
    (("servers", 0, "decode_ms"), float("nan"), "'decode_ms' parameter of servers[0]"),
    (("servers", 0, "prefill_ms"), float("inf"), "'prefill_ms' parameter of servers[0]"),
    (("servers", 0, "memory_gb"), 1.0, "leave room for one block"),
    (("servers", 0, "memory_gb"), "80", "'memory_gb' parameter of servers[0]"),
    (("servers", 0, "memory_gb"), True, "'memory_gb' parameter of servers[0]"),
    (("model", "num_blocks"), 2.5, "'num_blocks' parameter of model"),
    (("model", "num_blocks"), 0, "'num_blocks' parameter of model"),
    (("rtt_ms",), [[1.0], [2.0]], "'rtt_ms' must be a 1 x 1 matrix"),
    (("rtt_ms",), [[1.0, 2.0]], "'rtt_ms[0]' must have 1 entries"),
    (("rtt_ms",), [[-1.0]], "'rtt_ms[0][0]'"),
    (("prefill_rtt_ms",), [[float("nan")]], "'prefill_rtt_ms[0][0]'"),
    (("workload", "requests"), [], "'workload.requests' must not be empty"),
    (("workload", "requests"), [0, 1], "'requests[1]' parameter of workload"),
    (("workload", "rate_per_s"), -1, "'rate_per_s' parameter of workload"),
    (("servers",), [], "'servers' must not be empty"),
    (("clients", 0, "name"), "", "'name' parameter of clients[0]"),
])
def test_bad_input_is_one_clear_line(path, value, needle):
    with pytest.raises(ValidationError) as err:
        scenario_from_dict(mutate(path, value))
    msg = str(err.value)
    assert needle in msg
    assert "\n" not in msg


def test_error_names_the_value():
    with pytest.raises(ValidationError, match=r"Got -3 instead"):
        scenario_from_dict(mutate(("servers", 0, "memory_gb"), -3))


def test_cache_derived_from_d_model():
    d = mutate(("model", "cache_gb"), KeyError)
    d["model"]["d_model"] = 14336
    sc = scenario_from_dict(d)
    assert sc.cache_gb == pytest.approx(2 * 14336 * 148 * 2 / 1e9)
    d["model"].pop("d_model")
    with pytest.raises(ValidationError, match="cache_gb"):
        scenario_from_dict(d)


def test_json_and_toml_files(tmp_path):
    import tomli_w as tomllib_ok
    sc = clustered()
    pj = tmp_path / "s.json"
    pj.write_text(sc.to_json())
    pt = tmp_path / "s.toml"
    pt.write_text(tomllib_ok.dumps(sc.to_dict()))
    for p in (pj, pt):
        back = load_scenario(p)
        assert back.to_dict() == sc.to_dict()


def test_malformed_files(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_scenario(p)
    p = tmp_path / "bad.toml"
    p.write_text("model = [")
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_scenario(p)
    with pytest.raises(ValidationError, match="does not exist"):
        load_scenario(tmp_path / "missing.json")


def test_round_trip_is_canonical():
    sc = clustered()
    d = sc.to_dict()
    assert scenario_from_dict(json.loads(json.dumps(d))).to_dict() == d


def test_profiles_reproduce_the_papers_block_counts():
    """SPEC 1.3: PETALS's rule gives 53 blocks per A100 and 4 per MIG; CG-BPRR's rule gives
    41 and 3 at |R| = 80."""
    sc = clustered()
    assert sc.memory_gb[0] == pytest.approx(79.13 * GIB)
    assert sc.reserve_gb[0] == pytest.approx(2 * GIB)
    assert petals_block_counts(sc)[[0, 2]].tolist() == [53, 4]
    assert conservative_block_counts(sc, 80)[[0, 2]].tolist() == [41, 3]


def test_clustered_network_constants():
    sc = clustered()
    # client 0 (Cluster0) to an A100 (Cluster1): raw 100 + 100 overhead
    assert sc.rtt_ms[0, 0] == 200.0
    assert sc.rtt_ms[1, 0] == 105.0          # Cluster1 client is local to the A100s
    assert sc.prefill_rtt_ms[0, 0] == pytest.approx(100 + 0.7049 * 20 + 67)
    assert sc.prefill_ms[0] == pytest.approx(0.0743 * 20 + 32.99)
    assert sc.prefill_ms[2] == pytest.approx(0.1041 * 20 + 206.3547)


def test_topology_scenarios(data_dir):
    for name, nodes in [("Abvt", 23), ("Bellcanada", 48), ("GtsCe", 149), ("AttMpls", 25)]:
        sc = topology_scenario(name, seed=1)
        assert sc.num_servers == round(0.4 * nodes)
        n_a100 = sum(n.startswith("a100") for n in sc.server_names)
        assert n_a100 == max(1, round(0.2 * sc.num_servers))
        assert sc.num_clients == 1
        assert np.all(sc.rtt_ms >= 100.0)
    a = topology_scenario("GtsCe", seed=3).to_dict()
    assert a == topology_scenario("gts-ce", seed=3).to_dict()
    assert a != topology_scenario("GtsCe", seed=4).to_dict()


def test_topology_rtt_is_twice_shortest_path(data_dir):
    topo = read_topology("Abvt")
    # symmetric links: shortest one-way delay is symmetric, diagonal zero
    assert np.allclose(topo.delay_ms, topo.delay_ms.T)
    assert np.all(np.diag(topo.delay_ms) == 0)
    # edge_0 0 -> 2 has 1457 us; a shortest path is never longer than a direct link
    assert topo.delay_ms[0, 2] <= 1.457 + 1e-9


GOOD_GRAPH = """NODES 3
label x y
0_A 0 0
1_B 1 1
2_C 2 2

EDGES 4
label src dest weight bw delay
edge_0 0 1 1 100 1000
edge_1 1 0 1 100 1000
edge_2 1 2 1 100 500
edge_3 2 1 1 100 500
"""


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.replace("NODES 3", "NODES 4"), "NODES count"),
    (lambda s: s.replace("EDGES 4", "EDGES 5"), "EDGES count 5"),
    (lambda s: s.replace("edge_3 2 1", "edge_3 2 7"), "unknown node id 7"),
    (lambda s: s.replace("100 500\nedge_3", "100 -5\nedge_3"), "delay -5"),
    (lambda s: s.replace("edge_2 1 2 1 100 500\nedge_3 2 1 1 100 500\n", "edge_2 1 0 1 100 5\nedge_3 0 1 1 100 5\n"), "disconnected"),
])
def test_malformed_topology(tmp_path, edit, needle):
    p = tmp_path / "g.graph"
    p.write_text(GOOD_GRAPH)
    assert read_topology(str(p)).delay_ms[0, 2] == pytest.approx(1.5)
    p.write_text(edit(GOOD_GRAPH))
    with pytest.raises(ValidationError, match=needle):
        read_topology(str(p))


def test_unknown_builtin():
    with pytest.raises(ValidationError, match="Unknown scenario"):
        builtin_scenario("nowhere")


def test_cli_scenario_json_round_trip(tmp_path):
    out = subprocess.run([sys.executable, "-m", "distalloc.cli", "llm", "scenario", "clustered",
                          "--json"], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d == clustered().to_dict()
    p = tmp_path / "c.json"
    p.write_text(out.stdout)
    assert load_scenario(p).to_dict() == d


def test_cli_bad_file_exit_2(tmp_path):
    p = tmp_path / "bad.json"
    d = mutate(("servers", 0, "memory_gb"), float("nan"))
    p.write_text(json.dumps(d))
    out = subprocess.run([sys.executable, "-m", "distalloc.cli", "llm", "plan", str(p)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "memory_gb" in lines[0] and "nan" in lines[0]
    assert "Traceback" not in out.stderr
    assert math.isnan(d["servers"][0]["memory_gb"])
