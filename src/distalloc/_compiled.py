"""The only door to the compiled kernels: a missing extension is a clear error, never a
silent fallback to slow code.

Cython extensions are imported at once.  Numba modules (kernels/*.py) are imported on first
use (``_compiled.queue_grid``, ``_compiled.sgd_order_stats``), so commands that do not need
them do not pay for importing Numba.  Before the first one is imported, Numba's threading
layer is set to ``forksafe`` (unless NUMBA_THREADING_LAYER says otherwise): sweeps fork
worker processes, and GNU OpenMP, Numba's default on Linux, kills a child forked after a
parallel kernel ran.
"""
from __future__ import annotations

import importlib
import os

try:
    from distalloc._kernels import (chain_kernels, llm_kernels, queue_kernels, sgd_kernels,
                                    swarm_kernels)
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "distalloc's compiled kernels are missing (distalloc._kernels). "
        "Build them with `pip install .` (or `pip install -e .`) from the project root; "
        "this needs gcc, Cython and numpy."
    ) from exc

__all__ = ["chain_kernels", "llm_kernels", "queue_kernels", "sgd_kernels", "sgd_order_stats",
           "swarm_kernels"]
# (+ queue_grid: Numba modules load on first use)

_NUMBA_MODULES = {"queue_grid", "sgd_order_stats"}


def __getattr__(name: str):
    # Numba modules load on first use: importing numba costs ~0.5 s that commands which do
    # not need it should not pay.
    if name in _NUMBA_MODULES:
        try:
            import numba
            if not os.environ.get("NUMBA_THREADING_LAYER"):
                numba.config.THREADING_LAYER = "forksafe"
            module = importlib.import_module(f"distalloc._kernels.{name}")
        except ImportError as exc:  # pragma: no cover - numba is a required dependency
            raise ImportError(f"distalloc's Numba kernel {name} cannot be imported ({exc}); "
                              "install numba (pip install numba).") from exc
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
