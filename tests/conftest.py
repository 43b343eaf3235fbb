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
