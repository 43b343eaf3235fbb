"""Users' compiled callbacks (SPEC 5.2): the one check every family uses before a kernel
calls a user's function through a C function pointer.

A callback is a ``numba.cfunc`` (or a ``scipy.LowLevelCallable`` without user data) whose C
signature is exactly the one the kernel calls; anything else (a plain Python function, a
cfunc of another signature) is refused with one line naming the expected signature.  The
wrapper keeps the object that owns the compiled code, so the pointer stays valid as long as
the wrapper lives.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from distalloc._validation import ValidationError

__all__ = ["CompiledCallback", "compiled_callback"]

_LONG = "long" if ctypes.sizeof(ctypes.c_long) == 8 else "long long"
#: C spellings scipy.LowLevelCallable may report for each Numba type
_C_NAMES = {"float64": ("double",), "int64": ("int64_t", "long long", _LONG),
            "int32": ("int32_t", "int"), "float32": ("float",)}


@dataclass(frozen=True)
class CompiledCallback:
    """A checked callback: the C function's address, its name, the Numba signature it
    has, and the object owning the compiled code (kept alive with the wrapper)."""

    address: int
    name: str
    signature: str
    owner: Any = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"compiled:{self.name}"


def _capsule_pointer(capsule: Any) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get(capsule, get_name(capsule)))


def _c_signatures(numba_signature: str) -> set[str]:
    """Every spelling ``scipy.LowLevelCallable.signature`` may give the signature."""
    ret, _, args = numba_signature.partition("(")
    names = [a.strip() for a in args.rstrip(")").split(",") if a.strip()]
    out = {""}
    for a in names:
        out = {(o + ", " if o else "") + c for o in out for c in _C_NAMES[a]}
    return {f"{r} ({o})" for r in _C_NAMES[ret.strip()] for o in out}


def compiled_callback(f: Any, *, numba_signature: str, c_signature: str,
                      what: str) -> CompiledCallback:
    """Check ``f`` and wrap it.

    Parameters
    ----------
    f : numba.core.ccallback.CFunc or scipy.LowLevelCallable
    numba_signature : str
        e.g. ``"float64(float64, float64, int64, int64)"``.
    c_signature : str
        the documented C signature with argument names, for the message.
    what : str
        what the callback is, for the message ("compiled dispatch score").

    Raises
    ------
    ValidationError
        ``f`` is not a cfunc/LowLevelCallable of exactly that signature, or carries user
        data: one line, "A {what} must be a numba.cfunc("...") (or a scipy.LowLevelCallable
        of that C signature), i.e. the C signature .... Got ... instead."
    """
    if isinstance(f, CompiledCallback):
        if f.signature != numba_signature:
            raise ValidationError(f"A {what} must have the signature {numba_signature}. "
                                  f"Got a compiled callback of signature {f.signature} instead.")
        return f
    expected = (f"a numba.cfunc(\"{numba_signature}\") (or a scipy.LowLevelCallable of that "
                f"C signature), i.e. the C signature {c_signature}")
    try:
        from numba.core.ccallback import CFunc
        from numba.core import sigutils
    except ImportError:  # pragma: no cover - numba is a required dependency
        CFunc = ()
    if CFunc and isinstance(f, CFunc):
        want = sigutils._parse_signature_string(numba_signature)
        sig = f._sig
        if tuple(sig.args) != tuple(want.args) or sig.return_type != want.return_type:
            got = f"{sig.return_type}({', '.join(map(str, sig.args))})"
            raise ValidationError(f"A {what} must be {expected}. Got a cfunc with signature "
                                  f"{got} instead.")
        return CompiledCallback(int(f.address), getattr(f._pyfunc, "__name__", "callback"),
                                numba_signature, f)
    try:
        from scipy import LowLevelCallable
    except ImportError:  # pragma: no cover
        LowLevelCallable = ()
    if LowLevelCallable and isinstance(f, LowLevelCallable):
        if f.user_data is not None:
            raise ValidationError(f"A {what} must be {expected}, without user data. Got a "
                                  f"LowLevelCallable with user data instead.")
        if f.signature not in _c_signatures(numba_signature):
            raise ValidationError(f"A {what} must be {expected}. Got a LowLevelCallable with "
                                  f"signature {f.signature!r} instead.")
        return CompiledCallback(_capsule_pointer(tuple.__getitem__(f, 0)), "LowLevelCallable",
                                numba_signature, f)
    if callable(f):
        got = f"the plain Python function {getattr(f, '__name__', '?')!r}"
    else:
        got = f"{type(f).__name__} {f!r}"[:80]
    raise ValidationError(f"A {what} must be {expected}. Got {got} instead.")
