"""Faults the fuzz suite finds that are known and not fixed yet (issues 14, 16).

Empty: every fault listed here before was fixed by kind and has a regular test
(tests/test_bounded_inputs.py and the families' own tests).  Add an entry only for a fault
that truly cannot be fixed at once, with the reason in ``reproducer``.

Each entry matches fault signatures (a regular expression over the fault's text) of one
entry point.  A matching fault is counted and reported as *known* instead of failing the
run, so that this suite stays green while the owners fix them; remove an entry when its
fault is fixed (the summary lists which known faults were still hit).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Known:
    entry: str          # regex over the entry point's name
    fault: str          # regex over the fault's text
    owner: str
    reproducer: str


KNOWN: list[Known] = []


def known(entry: str, text: str) -> Known | None:
    for k in KNOWN:
        if re.search(k.entry, entry) and re.search(k.fault, text, re.S):
            return k
    return None
