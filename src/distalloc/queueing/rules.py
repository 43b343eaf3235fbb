"""User speed rules for the fork-join simulator, compiled with Numba (SPEC 5.2).

A speed rule chooses the level of each (core, job) task from the state instead of fixed
probabilities.  It is a C function, called by the compiled simulator through a function
pointer with no Python in the loop (the way ``scipy.LowLevelCallable`` takes a
``numba.cfunc``)::

    int64 level = rule(int64 core, int64 queue_length, float64 u)

``core``: 0..n-1.  ``queue_length``: tasks at that core (in service or waiting, purged ones
gone) when the job arrives, not counting the job's own task.  ``u``: a uniform draw in
[0, 1) for this (core, job), the same stream the built-in fixed-probability rule uses (so
``level = first l with u < p_0 + ... + p_l`` reproduces it exactly).  Return a level
0..s-1; anything else stops the simulation with an error naming the first offending call.
The rule must be pure C code (``nopython``): it runs without the GIL and must not raise.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from distalloc._validation import ValidationError

__all__ = ["SpeedRule", "compiled_speed_rule", "SPEED_RULE_SIGNATURE"]

#: the Numba signature string of a speed rule
SPEED_RULE_SIGNATURE = "int64(int64, int64, float64)"
_EXPECTED = ("a numba.cfunc (or scipy.LowLevelCallable) with the C signature "
             "int64 rule(int64 core, int64 queue_length, float64 u), e.g. "
             "@numba.cfunc(\"int64(int64, int64, float64)\")")
_LONG = "long" if ctypes.sizeof(ctypes.c_long) == 8 else "long long"
_C_SIGNATURES = {f"{t} ({t}, {t}, double)" for t in ("int64_t", "long long", _LONG)}


@dataclass(frozen=True)
class SpeedRule:
    """A checked speed rule: the C function's address, its name, and the object that owns
    the compiled code (kept alive as long as the rule is)."""

    address: int
    name: str
    owner: Any = field(repr=False, compare=False)


def _capsule_pointer(capsule: Any) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, get_name(capsule)))


def compiled_speed_rule(f: Any) -> SpeedRule:
    """Check and wrap a compiled speed rule for :func:`simulate` (``speed_rule=``).

    Parameters
    ----------
    f : numba.cfunc or scipy.LowLevelCallable
        with the C signature ``int64 rule(int64 core, int64 queue_length, float64 u)``
        (Numba: ``@numba.cfunc("int64(int64, int64, float64)")``).

    Returns
    -------
    SpeedRule

    Raises
    ------
    ValidationError
        anything else: a plain Python function, a cfunc or LowLevelCallable with another
        signature, or one carrying user data; the message names the expected signature.

    Examples
    --------
    >>> import numba
    >>> from distalloc.queueing import compiled_speed_rule
    >>> @numba.cfunc("int64(int64, int64, float64)")
    ... def rush(core, queue_length, u):
    ...     return 1 if queue_length >= 3 else 0
    >>> compiled_speed_rule(rush).name
    'rush'
    """
    if isinstance(f, SpeedRule):
        return f
    name = getattr(f, "__name__", type(f).__name__)
    try:
        from numba.core.ccallback import CFunc
    except ImportError:  # pragma: no cover - numba is a required dependency
        CFunc = ()
    if CFunc and isinstance(f, CFunc):
        from numba.core import types
        sig = f._sig
        if sig.return_type != types.int64 or tuple(sig.args) != (types.int64, types.int64,
                                                                 types.float64):
            raise ValidationError(f"compiled_speed_rule() needs {_EXPECTED}. Got a cfunc with "
                                  f"signature {sig.return_type}{tuple(sig.args)} instead.")
        return SpeedRule(int(f.address), getattr(f, "__name__", None) or f.native_name, f)
    try:
        from scipy import LowLevelCallable
    except ImportError:  # pragma: no cover
        LowLevelCallable = ()
    if LowLevelCallable and isinstance(f, LowLevelCallable):
        if f.user_data is not None:
            raise ValidationError(f"compiled_speed_rule() needs {_EXPECTED}, without user "
                                  f"data. Got a LowLevelCallable with user data instead.")
        if f.signature not in _C_SIGNATURES:
            raise ValidationError(f"compiled_speed_rule() needs {_EXPECTED}. Got a "
                                  f"LowLevelCallable with signature {f.signature!r} instead.")
        return SpeedRule(_capsule_pointer(tuple.__getitem__(f, 0)), "LowLevelCallable",
                         f)
    if callable(f):
        what = f"a plain Python function {name!r}"
    else:
        what = f"an object of type {type(f).__name__}: {str(f)[:40]}"
    raise ValidationError(f"compiled_speed_rule() needs {_EXPECTED}. Got {what} instead.")
