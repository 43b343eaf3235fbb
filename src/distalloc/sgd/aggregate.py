"""Batched fastest-k aggregation (SPEC 2.1)."""
from __future__ import annotations

import numpy as np

from distalloc._compiled import sgd_kernels
from distalloc._validation import ValidationError

__all__ = ["fastest_k_average"]


def fastest_k_average(times: np.ndarray, grads: np.ndarray, k) -> tuple[np.ndarray, np.ndarray]:
    """For each iteration b, average the partial gradients of the k[b] workers with the
    smallest response times (ties broken by the smaller worker index).

    Parameters
    ----------
    times : (B, n) array
    grads : (B, n, d) array
    k : int or (B,) ints in [1, n]

    Returns
    -------
    (averages (B, d), chosen worker indices (B, max k), -1 padded)
    """
    times = np.ascontiguousarray(times, dtype=np.float64)
    grads = np.ascontiguousarray(grads, dtype=np.float64)
    if times.ndim != 2 or grads.ndim != 3 or grads.shape[:2] != times.shape:
        raise ValidationError(f"'times' must be (B, n) and 'grads' (B, n, d). Got "
                              f"{times.shape} and {grads.shape} instead.")
    if not np.all(np.isfinite(times)):
        raise ValidationError("'times' must be finite.")
    B, n = times.shape
    kk = np.broadcast_to(np.asarray(k, dtype=np.int64), (B,)).copy()
    if kk.min() < 1 or kk.max() > n:
        raise ValidationError(f"'k' must be in [1, {n}]. Got {kk.min()}..{kk.max()} instead.")
    out = np.empty((B, grads.shape[2]))
    chosen = np.full((B, int(kk.max())), -1, dtype=np.int64)
    sgd_kernels.fastest_k_average(times, grads, kk, out, chosen)
    return out, chosen
