"""Resource limits shared by every family (LLM, queueing, ...): one default, one place."""
from __future__ import annotations

import os

__all__ = ["MEMORY_CAP_GB", "default_max_memory_gb"]

#: the default memory limit never exceeds this many GB, whatever the machine
MEMORY_CAP_GB = 8.0


def default_max_memory_gb() -> float:
    """The default limit on the memory one computation may be estimated to need, in GB:
    half the machine's physical memory, at most :data:`MEMORY_CAP_GB` (the cap when the
    physical memory cannot be read).  Every ``max_memory_gb`` / ``--max-memory-gb`` of
    every family defaults to it."""
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return MEMORY_CAP_GB
    return min(MEMORY_CAP_GB, 0.5 * phys)
