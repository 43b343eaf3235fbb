"""The only door to the compiled kernels: a missing extension is a clear error, never a
silent fallback to slow code."""
from __future__ import annotations

try:
    from distalloc._kernels import chain_kernels, llm_kernels, queue_kernels, sgd_kernels
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "distalloc's compiled kernels are missing (distalloc._kernels). "
        "Build them with `pip install .` (or `pip install -e .`) from the project root; "
        "this needs gcc, Cython and numpy."
    ) from exc

__all__ = ["chain_kernels", "llm_kernels", "queue_kernels", "sgd_kernels", "sgd_order_stats"]


def __getattr__(name):
    # Numba modules load on first use: importing numba costs ~0.5 s that commands which do
    # not need it should not pay.
    if name == "sgd_order_stats":
        from distalloc._kernels import sgd_order_stats
        return sgd_order_stats
    raise AttributeError(name)
