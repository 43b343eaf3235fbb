"""Built-in scenarios of the chain-composition paper (2604.14993 §4; notes §6): its
model-driven simulation (``chains-sim``, BLOOM-176B on RIPE Atlas RTTs) and its PETALS
testbed (``chains-testbed``, LLaMA-2-7B on 9 MIG slices, the Azure code trace).

Device constants (notes §6.1): per-block computation tau^p_j = t_o + t^I_j l_in +
t^O_j (l_out - 1) with t_o = 1 ms, t^I_j = F / f_j, t^O_j = s_m / b_j; high-perf
(≈ MIG 3g.40gb) 40 GB, f = 120 TFLOPS, b = 1.02 GB/ms; low-perf (≈ 2g.20gb) 20 GB, 80 TFLOPS,
0.51 GB/ms.  In scenario terms ``prefill_ms = t_o + t^I l_in`` and ``decode_ms = t^O``, so
the performance model's request time is the paper's T_k.  Memory and cache sizes are
used in the paper's units as given (s_c = 0.11 with M = 40/20 reproduces its m_j = 19/9 at
c = 7; notes §7.11); no runtime reserve.

Network: the nodes are the RIPE Atlas anchors of ``ripe_atlas_rtt_eu_2024.csv``; the RTT
between two anchors is 0.3 (median_i + median_j) + 0.01 ms/km x great-circle distance, the
authors' construction from that file ([C] ``construct_rtt_from_ripe_atlas``).  One anchor
drawn at random is the orchestrator (the only client), J others the servers, a random
fraction η of them high-perf (the paper; notes §7.12).

``communication`` is the reading of "RTT + 18 ms" as a per-job time tau^c_j (notes §7.2):

* ``'relay'`` (default): every forward pass, prefill included, relays through the
  orchestrator: ``rtt_ms = prefill_rtt_ms = RTT + 18``, so tau^c_j = l_out (RTT + 18).
* ``'once'``: RTT + 18 per job: ``prefill_rtt_ms = RTT + 18``, ``rtt_ms = 0``.
* ``'matlab'``: the authors' MATLAB, ``prefill_rtt_ms = RTT + 50``, ``rtt_ms = RTT``.
* ``'petals'``: SPEC 1.3's profiled PETALS overheads, ``rtt_ms = RTT + 100`` and
  ``prefill_rtt_ms = RTT + 0.7049 l_in + 67``.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from typing import Any

import numpy as np

from distalloc._validation import ValidationError, as_generator, check_number
from distalloc.llm.scenario import Scenario, scenario_from_dict
from distalloc.llm.topology import find_data_dir

__all__ = ["chains_sim_scenario", "chains_testbed_scenario", "ripe_anchor_rtt_ms",
           "COMMUNICATION_READINGS", "PAPER_SCENARIOS"]

COMMUNICATION_READINGS = ("relay", "once", "matlab", "petals")
PAPER_SCENARIOS = ("chains-sim", "chains-testbed")

T_OVERHEAD_MS = 1.0          # t_o, per block
PETALS_HOP_MS = 18.0         # (de)serialisation overhead added to the RTT
HIGH = {"kind": "hi", "memory_gb": 40.0, "tflops": 120.0, "gb_per_ms": 1.02}
LOW = {"kind": "lo", "memory_gb": 20.0, "tflops": 80.0, "gb_per_ms": 0.51}

#: BLOOM-176B (notes §6.1): L, s_m, s_c, F (GFLOP per block per token), d_model
BLOOM = {"name": "bloom-176b", "num_blocks": 70, "block_gb": 1.32, "cache_gb": 0.11,
         "gflop_per_token": 5.0, "d_model": 14336}
#: LLaMA-2-7B (notes §6.2): s_m, s_c from the authors' code; F = 2 x parameters per block
#: (4 d^2 attention + 3 d d_ff MLP, d = 4096, d_ff = 11008) = 0.405 GFLOP — our reading
LLAMA = {"name": "llama-2-7b", "num_blocks": 32, "block_gb": 0.4375, "cache_gb": 0.0336,
         "gflop_per_token": 2 * (4 * 4096 ** 2 + 3 * 4096 * 11008) / 1e9, "d_model": 4096}


def _ripe_path():
    base = find_data_dir()
    path = None if base is None else base / "traces" / "ripe_atlas_rtt_eu_2024.csv"
    if path is None or not path.is_file():
        raise ValidationError("The RIPE Atlas RTT file (shared/data/traces/"
                              "ripe_atlas_rtt_eu_2024.csv) was not found (set "
                              "DISTALLOC_DATA_DIR to shared/data).")
    return path


@lru_cache(maxsize=2)
def _anchors(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows: dict[str, list] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            a = rows.setdefault(row["anchor_id"], [[], float(row["latitude"]),
                                                   float(row["longitude"])])
            for i in range(1, 5):
                v = row[f"latency_m{i}"]
                if v and float(v) > 0:
                    a[0].append(float(v))
    keys = sorted(rows, key=int)
    med = np.array([np.median(rows[k][0]) if rows[k][0] else 30.0 for k in keys])
    lat = np.radians([rows[k][1] for k in keys])
    lon = np.radians([rows[k][2] for k in keys])
    return med, lat, lon


def ripe_anchor_rtt_ms(nodes: np.ndarray) -> np.ndarray:
    """RTT (ms) between the given RIPE anchors (indices in anchor-id order)."""
    med, lat, lon = _anchors(str(_ripe_path()))
    nodes = np.asarray(nodes)
    la, lo = lat[nodes], lon[nodes]
    h = (np.sin((la[:, None] - la[None, :]) / 2) ** 2
         + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin((lo[:, None] - lo[None, :]) / 2) ** 2)
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
    rtt = 0.3 * (med[nodes][:, None] + med[nodes][None, :]) + 0.01 * km
    np.fill_diagonal(rtt, 0.0)
    return rtt


def _comm(raw: np.ndarray, communication: str, input_tokens: int) -> tuple[list, list]:
    if communication == "relay":
        tok = pre = raw + PETALS_HOP_MS
    elif communication == "once":
        tok, pre = np.zeros_like(raw), raw + PETALS_HOP_MS
    elif communication == "matlab":
        tok, pre = raw, raw + 50.0
    elif communication == "petals":
        tok, pre = raw + 100.0, raw + 0.7049 * input_tokens + 67.0
    else:
        raise ValidationError(f"The 'communication' parameter must be one of "
                              f"{', '.join(COMMUNICATION_READINGS)}. Got {communication!r} instead.")
    return [tok.tolist()], [pre.tolist()]


def _servers(model: dict, kinds: list[dict], names: list[str], input_tokens: int) -> list[dict]:
    out = []
    for name, dev in zip(names, kinds):
        prefill = T_OVERHEAD_MS + model["gflop_per_token"] / dev["tflops"] * input_tokens
        out.append({"name": name, "memory_gb": dev["memory_gb"],
                    "decode_ms": model["block_gb"] / dev["gb_per_ms"], "prefill_ms": prefill})
    return out


def _model(model: dict) -> dict:
    return {"name": model["name"], "num_blocks": model["num_blocks"],
            "block_gb": model["block_gb"], "cache_gb": model["cache_gb"],
            "d_model": model["d_model"], "dtype_bytes": 2}


def chains_sim_scenario(num_servers: int = 20, high_fraction: float = 0.2, seed: Any = 0,
                        communication: str = "relay", rate_per_s: float = 0.2,
                        num_requests: int = 2000, input_tokens: int = 2000,
                        output_tokens: int = 20) -> Scenario:
    """The paper's model-driven simulation (§4.1): BLOOM-176B (L = 70, s_m = 1.32,
    s_c = 0.11), J = ``num_servers`` RIPE anchors around a random orchestrator, a fraction
    η = ``high_fraction`` (rounded) of them high-perf, l_in = 2000, l_out = 20, Poisson
    λ = 0.2 req/s (paper defaults)."""
    J = check_number(num_servers, "servers", low=1, high=318, integer=True)
    eta = check_number(high_fraction, "high_fraction", low=0, high=1)
    rng = as_generator(seed)
    med, _, _ = _anchors(str(_ripe_path()))
    nodes = rng.choice(med.size, size=J + 1, replace=False)
    raw = ripe_anchor_rtt_ms(nodes)[0, 1:]
    n_high = int(round(eta * J))
    high = np.zeros(J, dtype=bool)
    high[rng.choice(J, size=n_high, replace=False)] = True
    kinds = [HIGH if h else LOW for h in high]
    names = [f"{'hi' if h else 'lo'}-{int(v)}" for h, v in zip(high, nodes[1:])]
    tok, pre = _comm(raw, communication, input_tokens)
    data = {"model": _model(BLOOM), "servers": _servers(BLOOM, kinds, names, input_tokens),
            "clients": [{"name": f"orchestrator-{int(nodes[0])}"}],
            "rtt_ms": tok, "prefill_rtt_ms": pre,
            "workload": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                         "requests": [0] * 20, "rate_per_s": rate_per_s,
                         "num_requests": num_requests}}
    return scenario_from_dict(data, name=f"chains-sim:{J}:{eta:g}")


def chains_testbed_scenario(seed: Any = 0, communication: str = "relay",
                            input_tokens: int = 2048, output_tokens: int = 1024,
                            trace: bool = True, num_requests: int = 1000) -> Scenario:
    """The paper's PETALS testbed (§4.2): LLaMA-2-7B (L = 32, s_m = 0.4375, s_c = 0.0336)
    on 3 MIG 3g.40gb (high-perf) and 6 MIG 2g.20gb (low-perf) slices at 9 RIPE anchors
    around a random orchestrator, serving the first ``num_requests`` requests of the Azure
    code trace (``trace=False``: Poisson at its mean rate 2.57 req/s).

    ``output_tokens`` is the static cap of trace lengths (1024: no request of the first
    1 000 is cut); the chain methods compose and rank chains at the workload's mean output
    length.  Compute constants are our reading (notes §6.2 gives only sizes): the device
    constants of §6.1 with F = 0.405 GFLOP per block per token.
    """
    rng = as_generator(seed)
    med, _, _ = _anchors(str(_ripe_path()))
    nodes = rng.choice(med.size, size=10, replace=False)
    raw = ripe_anchor_rtt_ms(nodes)[0, 1:]
    kinds = [HIGH] * 3 + [LOW] * 6
    names = [f"3g40-{i}" for i in range(3)] + [f"2g20-{i}" for i in range(6)]
    tok, pre = _comm(raw, communication, input_tokens)
    workload: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                "requests": [0] * 20, "num_requests": num_requests}
    if trace:
        base = find_data_dir()
        path = None if base is None else base / "traces" / "azure_llm_inference_code_2023.csv"
        if path is None or not path.is_file():
            raise ValidationError("The Azure trace (shared/data/traces/azure_llm_inference_"
                                  "code_2023.csv) was not found (set DISTALLOC_DATA_DIR).")
        workload["trace"] = str(path)
    else:
        workload["rate_per_s"] = 2.57
    data = {"model": _model(LLAMA), "servers": _servers(LLAMA, kinds, names, input_tokens),
            "clients": [{"name": f"orchestrator-{int(nodes[0])}"}],
            "rtt_ms": tok, "prefill_rtt_ms": pre, "workload": workload}
    return scenario_from_dict(data, name="chains-testbed")


def paper_scenario(spec: str, *, num_servers: int | None = None, seed: Any = 0,
                   **lengths: int) -> Scenario:
    """``chains-sim[:J[:η[:communication]]]`` or ``chains-testbed[:communication]``;
    ``lengths``: ``input_tokens``/``output_tokens`` overrides."""
    kind, _, arg = spec.partition(":")
    parts = [p for p in arg.split(":") if p] if arg else []
    bad = ValidationError(f"Scenario '{spec}': expected chains-sim[:J[:eta[:communication]]] "
                          f"or chains-testbed[:communication].")
    if kind == "chains-sim" and len(parts) <= 3:
        try:
            J = int(parts[0]) if len(parts) > 0 else (num_servers or 20)
            eta = float(parts[1]) if len(parts) > 1 else 0.2
        except ValueError:
            raise bad from None
        comm = parts[2] if len(parts) > 2 else "relay"
        return chains_sim_scenario(J, eta, seed=seed, communication=comm, **lengths)
    if kind == "chains-testbed" and len(parts) <= 1 and num_servers is None:
        return chains_testbed_scenario(seed=seed, communication=parts[0] if parts else "relay",
                                       **lengths)
    raise bad
