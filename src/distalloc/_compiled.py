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

__all__ = ["chain_kernels", "llm_kernels", "queue_kernels", "sgd_kernels"]
