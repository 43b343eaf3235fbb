"""Batched fastest-k aggregation (SPEC 2.1)."""
from __future__ import annotations

from numbers import Integral

import numpy as np

from distalloc._compiled import sgd_kernels
from distalloc._validation import ValidationError, as_float_array, as_int_array

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
    times = as_float_array(times, "times", ndim=2)
    grads = as_float_array(grads, "grads", ndim=3, allow_inf=True)
    if grads.shape[:2] != times.shape:
        raise ValidationError(f"'times' must be (B, n) and 'grads' (B, n, d). Got "
                              f"{times.shape} and {grads.shape} instead.")
    B, n = times.shape
    if B == 0 or n == 0:
        raise ValidationError(f"'times' must have at least one iteration and one worker. Got "
                              f"shape {times.shape} instead.")
    if isinstance(k, (Integral, np.integer)) and not isinstance(k, (bool, np.bool_)):
        k = [k]
    kk = as_int_array(k, "k", ndim=1, low=1, high=n)
    try:
        kk = np.broadcast_to(kk, (B,)).copy()
    except ValueError:
        raise ValidationError(f"'k' must be one int or {B} ints (one per iteration). Got shape "
                              f"{kk.shape} instead.") from None
    out = np.empty((B, grads.shape[2]))
    chosen = np.full((B, int(kk.max())), -1, dtype=np.int64)
    sgd_kernels.fastest_k_average(times, grads, kk, out, chosen)
    return out, chosen
