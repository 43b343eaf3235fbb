"""Profiled devices and network constants of the paper's deployments (SPEC 1.3): BLOOM-176B
blocks on A100 80GB and MIG 1g.10gb, PETALS's runtime reserve, the RTT overheads."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceProfile", "A100", "MIG_1G", "GIB", "BLOOM_BLOCKS", "BLOOM_BLOCK_GB",
           "BLOOM_D_MODEL", "DTYPE_BYTES", "TOKEN_RTT_OVERHEAD_MS", "PREFILL_RTT_SLOPE_MS",
           "PREFILL_RTT_BASE_MS", "reserve_gb"]

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
