import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def random_scenario_dict(rng: np.random.Generator, *, max_servers=4, max_blocks=6,
                         max_requests=3, max_clients=2, binding=True) -> dict:
    """A tiny random scenario; with ``binding`` memory is often the active constraint."""
    S = int(rng.integers(1, max_servers + 1))
    L = int(rng.integers(1, max_blocks + 1))
    R = int(rng.integers(1, max_requests + 1))
    C = int(rng.integers(1, max_clients + 1))
    block_gb = 1.0
    cache_gb = float(rng.choice([0.125, 0.25, 0.5])) if binding else 0.01
    servers = []
    for j in range(S):
        cap = int(rng.integers(1, L + 2))  # blocks it could hold without cache
        servers.append({"name": f"s{j}", "memory_gb": cap * block_gb + float(rng.choice([0.0, 0.25, 0.5, 1.0])),
                        "decode_ms": float(rng.integers(1, 10)) / 2, "prefill_ms": float(rng.integers(1, 20))})
    rtt = rng.integers(0, 40, size=(C, S)).astype(float).tolist()
    return {"model": {"name": "tiny", "num_blocks": L, "block_gb": block_gb, "cache_gb": cache_gb},
            "servers": servers, "clients": [{"name": f"c{c}"} for c in range(C)],
            "rtt_ms": rtt,
            "workload": {"input_tokens": 8, "output_tokens": int(rng.integers(1, 20)),
                         "requests": rng.integers(0, C, size=R).tolist()}}


def two_chain_scenario():
    """Two whole-model servers: fast (2 job slots, 4 s per job), slow (1 slot, 8 s)."""
    from distalloc.llm import scenario_from_dict
    return scenario_from_dict({
        "model": {"name": "m", "num_blocks": 2, "block_gb": 1.0, "cache_gb": 0.5},
        "servers": [{"name": "fast", "memory_gb": 4.25, "decode_ms": 500.0, "prefill_ms": 1000.0},
                    {"name": "slow", "memory_gb": 3.25, "decode_ms": 1000.0,
                     "prefill_ms": 2000.0}],
        "clients": [{"name": "c"}], "rtt_ms": [[0.0, 0.0]],
        "workload": {"input_tokens": 1, "output_tokens": 3, "requests": [0],
                     "rate_per_s": 0.1}})


@pytest.fixture
def data_dir():
    if not (DATA / "topologies").is_dir():
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (long oracle comparisons, README "
                          "console-slow examples)")
    parser.addoption("--fuzz-budget", type=int, default=0, metavar="N",
                     help="tests/fuzz: N random cases per entry point (default: the CI "
                          "budget, derandomised)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
