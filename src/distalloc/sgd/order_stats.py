"""Order-statistic means over parameter grids (SPEC 5.3): the batched Numba kernel behind a
validating API."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from distalloc._validation import ValidationError
from distalloc.sgd.models import MAX_WORKERS

__all__ = ["expected_order_statistics", "MAX_ELEMENTS", "MAX_WORK"]

#: Most elements of one call's broadcast shape (80 MB of output).
MAX_ELEMENTS = 10**7
#: Most kernel steps of one call (sum over elements of k, plus ~2 000 per log-normal element
#: for its quadrature): about a second per 10^9 on one core.
MAX_WORK = 5 * 10**9

_PARAMS = {"exponential": ("rate", None), "shifted-exponential": ("shift", "rate"),
           "pareto": ("scale", "shape"), "lognormal": ("mu", "sigma")}


def _array(value: Any, name: str, dtype) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception:
        raise ValidationError(f"'{name}' must be a number or an array of numbers.") from None
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype == bool:
        raise ValidationError(f"'{name}' must be a number or an array of numbers. Got dtype "
                              f"{arr.dtype} instead.")
    if dtype is np.int64:
        if arr.dtype.kind == "f":
            raise ValidationError(f"'{name}' must hold integers. Got dtype {arr.dtype} instead.")
        if arr.size and (arr.max() > MAX_WORKERS or arr.min() < -MAX_WORKERS):
            raise ValidationError(f"'{name}' must be at most {MAX_WORKERS} (the most workers "
                                  f"of the SGD family). Got {arr.max()} instead.")
    elif arr.size and not np.all(np.isfinite(arr)):
        raise ValidationError(f"'{name}' must be finite. Got {arr[~np.isfinite(arr)].flat[0]!r}.")
    return arr.astype(dtype)


def expected_order_statistics(family: str, n: Any, k: Any, a: Any, b: Any = None) -> np.ndarray:
    """E[X_(k)] of n i.i.d. response times for arrays of (n, k, parameters), broadcast.

    Parameters
    ----------
    family : {'exponential', 'shifted-exponential', 'pareto', 'lognormal'}
    n, k : int arrays, 1 <= k <= n
    a, b : float arrays
        the family's parameters as in :mod:`distalloc.sgd.models`: exponential (rate),
        shifted-exponential (shift, rate), pareto (scale, shape), lognormal (mu, sigma).

    Returns
    -------
    ndarray of float, the broadcast shape; inf where the mean is infinite (Pareto:
    shape (n - k + 1) <= 1) or beyond float64.

    Notes
    -----
    A ``numba.njit(parallel=True, cache=True)`` kernel (kernels/sgd_order_stats.py) over
    the elements; it equals the models' scalar ``order_stat_mean`` to 1e-12 relative
    (tested with hypothesis).  Closed forms for the exponential families (O(k)) and
    Pareto (O(k) product); the log-normal by quadrature in z = (log x - mu) / sigma,
    ~500 evaluations per element.  The first call in a fresh environment compiles the
    kernel (a few seconds; cached on disk afterwards).

    Examples
    --------
    >>> expected_order_statistics("pareto", 20, [1, 10, 20], 1.0, 0.9).round(4).tolist()
    [1.0588, 2.167, inf]
    """
    if not isinstance(family, str) or family not in _PARAMS:
        raise ValidationError(f"The 'family' parameter must be one of {', '.join(_PARAMS)}. "
                              f"Got {family!r} instead.")
    first, second = _PARAMS[family]
    if second is None and b is not None:
        raise ValidationError(f"The {family} family has one parameter ({first}); got b too.")
    if second is not None and b is None:
        raise ValidationError(f"The {family} family needs two parameters ({first}, {second}).")
    arrays = [_array(n, "n", np.int64), _array(k, "k", np.int64), _array(a, first, np.float64),
              _array(0.0 if b is None else b, second or "b", np.float64)]
    try:
        shape = np.broadcast_shapes(*(x.shape for x in arrays))
    except ValueError:
        raise ValidationError("'n', 'k' and the parameters must broadcast to one shape. Got "
                              f"shapes {[x.shape for x in arrays]} instead.") from None
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ValidationError(f"'n', 'k' and the parameters broadcast to {size:.3g} elements "
                              f"(shape {shape}), more than {MAX_ELEMENTS:.3g}; split the grid.")
    nn, kk, aa, bb = np.broadcast_arrays(*arrays)
    if nn.size and nn.min() < 1:
        raise ValidationError(f"'n' must be >= 1. Got {nn.min()} instead.")
    if kk.size and (kk.min() < 1 or np.any(kk > nn)):
        raise ValidationError("'k' must be in [1, n] element-wise.")
    positive = {"exponential": [(aa, "rate")], "shifted-exponential": [(bb, "rate")],
                "pareto": [(aa, "scale"), (bb, "shape")], "lognormal": [(bb, "sigma")]}[family]
    for arr, name in positive:
        if arr.size and arr.min() <= 0:
            raise ValidationError(f"'{name}' must be > 0. Got {arr.min()} instead.")
    if family == "shifted-exponential" and aa.size and aa.min() < 0:
        raise ValidationError(f"'shift' must be >= 0. Got {aa.min()} instead.")
    if family == "lognormal" and bb.size and bb.max() > 20:
        raise ValidationError(f"'sigma' must be <= 20 (quadrature range). Got {bb.max()} instead.")
    work = float(np.sum(kk, dtype=np.float64)) + (2000.0 * size if family == "lognormal" else 0.0)
    if work > MAX_WORK:
        raise ValidationError(f"These {size} elements cost about {work:.3g} kernel steps (sum of "
                              f"k{' + 2000 per element' if family == 'lognormal' else ''}), more "
                              f"than {MAX_WORK:.3g}; split the grid.")
    from distalloc._compiled import sgd_order_stats
    flat = [np.ascontiguousarray(x).ravel() for x in (nn, kk, aa, bb)]
    out = np.empty(flat[0].size)
    with np.errstate(over="ignore", under="ignore"):
        sgd_order_stats.order_stat_means(sgd_order_stats.FAMILIES[family], *flat, out)
    return out.reshape(nn.shape)
