"""A user's chain dispatch rule, compiled with Numba (SPEC 5.2): the LLM engine's callback.

Under the ``jffc`` policy (:class:`~distalloc.llm.Swarm` with ``method='chains'`` or
``'jffc-whole'``, and :func:`~distalloc.llm.simulate` with those methods) an arriving job
goes to one of the chains with a free slot.  The built-in rule (Join the Fastest Free
Chain) takes the first free chain of the client's ranking (its client group's chains first,
then the others, each fastest first).  A dispatch score replaces that choice::

    float64 score(float64 chain_service_s, float64 wait_s, int64 free_slots, int64 client)

called once per candidate, from the compiled engine through a C function pointer (no Python,
no GIL).  The job takes the candidate of **lowest** score; equal scores (and NaN, which
counts as +inf) go to the client's built-in ranking, so a score returning
``chain_service_s`` (or any constant) is exactly the built-in rule.

* Candidates: the chains with a free slot (JFFC only: the other policies route on the
  routing DAG, not among chains).  When no chain has a free slot the job waits in the
  central FCFS queue, and a finishing job's slot goes to the queue's head as JFFC says (no
  choice is left); when chains are added (a server joins) the head jobs take the new slots
  by the same score.
* ``chain_service_s``: the chain's service time for a job of ``client`` (SPEC 1.1 request
  time at the length the chains are ranked for, seconds; the client's own RTTs included).
* ``wait_s``: the wait for the chain, 0.0 for every candidate (they have a free slot).
* ``free_slots``: the chain's free slots (>= 1), of its reserved c_k.
* ``client``: the client's index.
"""
from __future__ import annotations

from typing import Any

from distalloc._callbacks import CompiledCallback, compiled_callback

__all__ = ["compiled_dispatch", "DISPATCH_SIGNATURE", "DISPATCH_C_SIGNATURE"]

#: the Numba signature of a dispatch score
DISPATCH_SIGNATURE = "float64(float64, float64, int64, int64)"
DISPATCH_C_SIGNATURE = ("double score(double chain_service_s, double wait_s, int64 free_slots, "
                        "int64 client)")


def compiled_dispatch(f: Any) -> CompiledCallback:
    """Check and wrap a compiled chain dispatch score for ``Swarm(..., dispatch=)`` and
    ``simulate(..., dispatch=)`` (policy ``jffc``; see the module docstring).

    Parameters
    ----------
    f : numba.cfunc or scipy.LowLevelCallable
        with the C signature ``double score(double chain_service_s, double wait_s,
        int64 free_slots, int64 client)``, i.e.
        ``@numba.cfunc("float64(float64, float64, int64, int64)")``; pure nopython code
        (it runs without the GIL and must not raise).

    Returns
    -------
    CompiledCallback
        the function's address and name; keeps the compiled code alive.

    Raises
    ------
    ValidationError
        a plain Python function, a cfunc or LowLevelCallable of another signature, or one
        with user data (one line naming the expected signature).

    Examples
    --------
    >>> import numba
    >>> from distalloc.llm import compiled_dispatch
    >>> @numba.cfunc("float64(float64, float64, int64, int64)")
    ... def fastest(chain_service_s, wait_s, free_slots, client):
    ...     return chain_service_s
    >>> compiled_dispatch(fastest).name
    'fastest'
    """
    return compiled_callback(f, numba_signature=DISPATCH_SIGNATURE,
                             c_signature=DISPATCH_C_SIGNATURE, what="compiled dispatch score")
