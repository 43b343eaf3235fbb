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

from dataclasses import dataclass, field
from typing import Any

from distalloc._callbacks import compiled_callback

__all__ = ["SpeedRule", "compiled_speed_rule", "SPEED_RULE_SIGNATURE"]

#: the Numba signature string of a speed rule
SPEED_RULE_SIGNATURE = "int64(int64, int64, float64)"
_C_SIGNATURE = "int64 rule(int64 core, int64 queue_length, float64 u)"


@dataclass(frozen=True)
class SpeedRule:
    """A checked speed rule: the C function's address, its name, and the object that owns
    the compiled code (kept alive as long as the rule is)."""

    address: int
    name: str
    owner: Any = field(repr=False, compare=False)


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
        signature, or one carrying user data; the message names the expected signature
        (the check every family's callbacks share, :mod:`distalloc._callbacks`).

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
    cb = compiled_callback(f, numba_signature=SPEED_RULE_SIGNATURE, c_signature=_C_SIGNATURE,
                           what="speed rule")
    return SpeedRule(cb.address, cb.name, cb.owner)
