"""One way to reject bad input, used everywhere at the API boundary.

Every failure reads the same way, e.g.::

    The 'memory_gb' parameter of servers[3] must be a float in (0, inf). Got -3 instead.

so that messages are uniform, name the field and the value, and fit on one line.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["ValidationError", "check_number", "check_keys", "check_matrix", "as_generator"]


class ValidationError(ValueError):
    """Bad user input: a one-line message naming the field, the constraint and the value."""


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _where(owner: str | None) -> str:
    return f" of {owner}" if owner else ""


def _bound(x) -> str:
    return f"{x:g}" if isinstance(x, (Real, np.number)) and not isinstance(x, bool) else repr(x)


def _interval(low, high, low_open, high_open) -> str:
    lo = "-inf" if low is None else _bound(low)
    hi = "inf" if high is None else _bound(high)
    return f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"


def check_number(value: Any, name: str, owner: str | None = None, *, low=None, high=None,
                 low_open: bool = False, high_open: bool = False,
                 integer: bool = False) -> float | int:
    """Return ``value`` as float (or int) if it is a finite number in the interval.

    With ``integer=True`` only ints (Python or numpy) are accepted, never an integral float
    such as ``6.0``, and they must fit in 64 bits (the kernels' index type).

    Raises
    ------
    ValidationError
        naming ``name`` (and ``owner``), the interval and the value received.
    """
    kind = "an int" if integer else "a float"
    msg = (f"The '{name}' parameter{_where(owner)} must be {kind} in "
           f"{_interval(low, high, low_open, high_open)}. Got {value!r} instead.")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)):
        raise ValidationError(msg)
    if integer:
        # nothing is coerced (SPEC 1.2): 6.0 is not an int, even though it is integral
        if not isinstance(value, (Integral, np.integer)):
            raise ValidationError(msg)
        value = int(value)
        if not _INT64_MIN <= value <= _INT64_MAX:
            lo = "-2^63" if low is None else _bound(low)
            hi = "2^63 - 1" if high is None else _bound(high)
            raise ValidationError(f"The '{name}' parameter{_where(owner)} must be an int in "
                                  f"[{lo}, {hi}] (64 bits). Got {value!r} instead.")
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValidationError(msg)
    for bound in (low, high):     # a bound that is itself bad input (e.g. an unchecked n)
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (Real, np.number))
                                  or bound != bound):
            raise ValidationError(msg)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValidationError(msg)
    if high is not None and (value > high or (high_open and value == high)):
        raise ValidationError(msg)
    return value


def check_keys(mapping: Any, where: str, required: set[str], optional: set[str] = frozenset()) -> dict:
    """Reject a non-mapping, unknown keys and missing keys, naming them."""
    if not isinstance(mapping, dict):
        raise ValidationError(f"'{where}' must be a table/object. Got {type(mapping).__name__} instead.")
    unknown = sorted(set(mapping) - required - set(optional))
    if unknown:
        allowed = ", ".join(sorted(required | set(optional)))
        raise ValidationError(f"Unknown key '{unknown[0]}' in '{where}' (allowed: {allowed}).")
    missing = sorted(required - set(mapping))
    if missing:
        raise ValidationError(f"Missing key '{missing[0]}' in '{where}'.")
    return mapping


def check_matrix(value: Any, name: str, shape: tuple[int, int], *, low: float = 0.0) -> np.ndarray:
    """A finite float matrix of exactly ``shape`` with entries >= ``low``."""
    rows, cols = shape
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != rows:
        got = len(value) if isinstance(value, (list, tuple, np.ndarray)) else type(value).__name__
        raise ValidationError(f"'{name}' must be a {rows} x {cols} matrix (clients x servers). "
                              f"Got {got} rows instead.")
    out = np.empty(shape, dtype=np.float64)
    for i, row in enumerate(value):
        if not isinstance(row, (list, tuple, np.ndarray)) or len(row) != cols:
            got = len(row) if isinstance(row, (list, tuple, np.ndarray)) else type(row).__name__
            raise ValidationError(f"'{name}[{i}]' must have {cols} entries (one per server). "
                                  f"Got {got} instead.")
        for j, x in enumerate(row):
            out[i, j] = check_number(x, f"{name}[{i}][{j}]", low=low)
    return out


def as_generator(seed: Any) -> np.random.Generator:
    """Turn ``seed`` (None, int or Generator) into a Generator, once, at the boundary."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(check_number(seed, "seed", low=0, integer=True))
