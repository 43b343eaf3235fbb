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


#: longest message a ValidationError keeps (a safety net: values are described by
#: :func:`describe`, which already cuts them to a few dozen characters)
MAX_MESSAGE_CHARS = 1000


class ValidationError(ValueError):
    """Bad user input: a one-line message naming the field, the constraint and the value.

    The message is made one line whatever it was built from (runs of whitespace, newlines
    included, become one space) and cut to :data:`MAX_MESSAGE_CHARS` characters, so that no
    array or text repr can spread an error over many lines."""

    def __init__(self, message: Any = "", *args: Any) -> None:
        text = " ".join(str(message).split())
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(text, *args)


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
           f"{_interval(low, high, low_open, high_open)}. Got {describe(value)} instead.")
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
                                  f"[{lo}, {hi}] (64 bits). Got {describe(value)} instead.")
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


# ------------------------------------------------------------------------------------------
# Hardening helpers (issues 14/16, added by the LLM hardening pass; kept apart from the
# helpers above so that changes to those do not collide): numbers of any size, arrays
# checked before a kernel sees them, files read with one-line errors.
# ------------------------------------------------------------------------------------------
def describe(value: Any, limit: int = 40) -> str:
    """``repr(value)`` for a message: one line, at most ``limit`` characters (huge integers
    are described by their number of digits, numpy scalars as the Python number they hold
    (``-3.0``, not ``np.float64(-3.0)``), arrays by their shape and dtype, long texts are
    cut with '...')."""
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_, np.void)):
        value = value.item()
    if isinstance(value, Integral) and not isinstance(value, bool) and abs(int(value)) >= 10 ** 30:
        return f"an integer of {len(str(abs(int(value))))} digits"
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    try:
        text = " ".join(repr(value).split())
    except Exception:                       # a repr that fails is no reason for a traceback
        text = f"a {type(value).__name__}"
    if len(text) > limit and isinstance(value, (list, tuple, dict, set, frozenset)):
        kinds = sorted({type(x).__name__ for x in value})
        return (f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
                + (f" ({', '.join(kinds)})" if len(kinds) <= 3 else ""))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def range_error(name: str, owner: str | None, kind: str, interval: str, value: Any,
                why: str = "") -> ValidationError:
    """The uniform message of :func:`check_number`, for checks made elsewhere (vectorised
    checks, bounds that depend on other fields): ``why`` explains a bound, e.g.
    ``" (at most 1e15 ms / (num_blocks x output_tokens))"``."""
    return ValidationError(f"The '{name}' parameter{_where(owner)} must be {kind} in "
                           f"{interval}{why}. Got {describe(value)} instead.")


def check_real(value: Any, name: str, owner: str | None = None, **kw: Any) -> float:
    """:func:`check_number` for a float field that also turns an integer too large for a
    float (``10**400`` read from JSON) into the same one-line error instead of an
    OverflowError."""
    if isinstance(value, Integral) and not isinstance(value, bool) and abs(int(value)) > 2 ** 1023:
        raise range_error(name, owner, "a float",
                          _interval(kw.get("low"), kw.get("high"), kw.get("low_open", False),
                                    kw.get("high_open", False)), value)
    return check_number(value, name, owner, **kw)


def check_count(value: Any, name: str, owner: str | None = None, *, low: int = 0,
                high: int | None = None) -> int:
    """:func:`check_number` for an integer field (``integer=True``) whose message describes
    an out-of-range huge integer by its number of digits instead of printing it, and
    writes a power-of-two bound as ``2^k``."""
    if (isinstance(value, Integral) and not isinstance(value, bool)
            and (value < low or (high is not None and value > high))):
        hi = "inf" if high is None else (f"2^{high.bit_length() - 1}" if high > 1024
                                          and high & (high - 1) == 0 else str(high))
        raise range_error(name, owner, "an int", f"[{low}, {hi}{']' if high is not None else ')'}",
                          value)
    return check_number(value, name, owner, low=low, high=high, integer=True)


def as_int_array(value: Any, name: str, *, ndim: int = 1, shape: tuple | None = None,
                 low: int | None = None, high: int | None = None) -> np.ndarray:
    """A C-contiguous int64 array of integers (no bools, no floats, nothing coerced) with
    ``ndim`` dimensions (and ``shape`` if given; ``None`` entries match any length) and
    entries in [low, high]."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise ValidationError(f"'{name}' must be an array of integers. Got {describe(value)} "
                              "instead (ragged or not numeric).") from None
    if arr.dtype == object and arr.size:
        if not all(isinstance(x, (Integral, np.integer)) and not isinstance(x, (bool, np.bool_))
                   for x in arr.ravel()):
            raise ValidationError(f"'{name}' must be an array of integers. Got "
                                  f"{describe(value)} instead.")
        if any(not -2 ** 63 <= int(x) < 2 ** 63 for x in arr.ravel()):
            bad = next(x for x in arr.ravel() if not -2 ** 63 <= int(x) < 2 ** 63)
            raise ValidationError(f"'{name}' must hold integers that fit in int64. Got "
                                  f"{describe(bad)} instead.")
        arr = arr.astype(np.int64)
    elif arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"'{name}' must be an array of integers. Got dtype {arr.dtype} "
                              "instead.")
    elif arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 2 ** 63:
        raise ValidationError(f"'{name}' must hold integers that fit in int64. Got "
                              f"{int(arr.max())} instead.")
    _check_shape(arr, name, ndim, shape)     # before ascontiguousarray (scalar -> (1,))
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and low is not None and int(arr.min()) < low:
        raise ValidationError(f"'{name}' must have entries >= {low}. Got {int(arr.min())} "
                              f"at index {_first(arr < low)} instead.")
    if arr.size and high is not None and int(arr.max()) > high:
        raise ValidationError(f"'{name}' must have entries <= {high}. Got {int(arr.max())} "
                              f"at index {_first(arr > high)} instead.")
    return arr


def as_float_array(value: Any, name: str, *, ndim: int = 1, shape: tuple | None = None,
                   low: float | None = None, allow_inf: bool = False) -> np.ndarray:
    """A C-contiguous float64 array of real numbers (no bools, no strings) with ``ndim``
    dimensions (and ``shape``); NaN is always rejected, +-inf unless ``allow_inf``."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise ValidationError(f"'{name}' must be an array of numbers. Got {describe(value)} "
                              "instead (ragged or not numeric).") from None
    if arr.size and (arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.number)
                                                   or arr.dtype == object)):
        raise ValidationError(f"'{name}' must be an array of numbers. Got dtype {arr.dtype} "
                              "instead.")
    if arr.dtype == object and arr.size:
        if not all(isinstance(x, (Real, np.number)) and not isinstance(x, (bool, np.bool_))
                   for x in arr.ravel()):
            raise ValidationError(f"'{name}' must be an array of numbers. Got "
                                  f"{describe(value)} instead.")
    # the shape before ascontiguousarray, which turns a scalar into shape (1,) (issue 16:
    # nothing is coerced)
    _check_shape(arr, name, ndim, shape)
    try:
        arr = np.ascontiguousarray(arr, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):
        raise ValidationError(f"'{name}' must hold numbers that fit in a float. Got "
                              f"{describe(value)} instead.") from None
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        i = _first(bad)
        raise ValidationError(f"'{name}' must have {'non-NaN' if allow_inf else 'finite'} "
                              f"entries. Got {float(arr.ravel()[i])!r} at index {i} instead.")
    if arr.size and low is not None and float(arr.min()) < low:
        raise ValidationError(f"'{name}' must have entries >= {low:g}. Got "
                              f"{float(arr.min())!r} at index {_first(arr < low)} instead.")
    return arr


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def _check_shape(arr: np.ndarray, name: str, ndim: int, shape: tuple | None) -> None:
    if arr.ndim != ndim or (shape is not None and any(
            want is not None and got != want for got, want in zip(arr.shape, shape))):
        want = ("(" + ", ".join("any" if s is None else str(s) for s in shape)
                + ("," if len(shape) == 1 else "") + ")"
                if shape is not None else f"{ndim}-D")
        raise ValidationError(f"'{name}' must have shape {want}. Got shape {arr.shape} instead.")


def check_readable_file(path: Any, what: str):
    """``Path(path)`` if it names a readable regular file; a one-line error otherwise
    (missing, a folder, no permission).  ``what`` is e.g. "Scenario file"."""
    import os
    from pathlib import Path
    try:
        p = Path(path)
    except TypeError:
        raise ValidationError(f"{what} must be a path. Got {describe(path)} instead.") from None
    if not p.exists():
        raise ValidationError(f"{what} '{p}' does not exist.")
    if not p.is_file():
        raise ValidationError(f"{what} '{p}' is not a regular file.")
    if not os.access(p, os.R_OK):
        raise ValidationError(f"{what} '{p}' cannot be read (permission denied).")
    return p


def file_error(path: Any, what: str, exc: BaseException) -> ValidationError:
    """One line for an error met while reading a file, quoting none of its content:
    undecodable bytes give their offset, OS errors their reason."""
    if isinstance(exc, UnicodeDecodeError):
        return ValidationError(f"{what} '{path}' is not UTF-8 text (undecodable byte at offset "
                               f"{exc.start}).")
    if isinstance(exc, OSError):
        return ValidationError(f"{what} '{path}' cannot be read ({exc.strerror or type(exc).__name__}).")
    return ValidationError(f"{what} '{path}' cannot be read ({type(exc).__name__}).")


def read_text(path: Any, what: str) -> str:
    """The whole text of a UTF-8 file, or a one-line error (missing, folder, permission,
    not UTF-8); the message never quotes the file's content."""
    p = check_readable_file(path, what)
    try:
        return p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise file_error(p, what, exc) from None


def check_choice(value: Any, name: str, choices: Any, owner: str | None = None) -> str:
    """A string among ``choices`` (a dict's keys, a tuple...); anything else, including
    values that cannot even be compared with a string (lists, dicts, NaN), is the one-line
    "must be one of" error."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValidationError(f"The '{name}' parameter{_where(owner)} must be one of "
                          f"{', '.join(choices)}. Got {describe(value)} instead.")
