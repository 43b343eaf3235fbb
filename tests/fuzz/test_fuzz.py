"""The fuzz suite (issue 16 "Tests"): generated flags, files and arguments for every CLI
subcommand and public entry point.  Each case must end in exit 0 with finite, physically
possible metrics, or exit 2 with exactly one stderr line (API: a return value that passes
the same checks, or a ValidationError with a one-line message) — never a traceback, a
signal or a hang.  Cases run in a forked worker with a per-case time limit
(fuzz_runner.py), so a segfault is reported as a finding.

Budget: CI runs ``FUZZ_CI_BUDGET`` x each entry point's weight cases (a few thousand in
total, about a minute, derandomised: the same cases every run); ``pytest --fuzz-budget N``
runs N cases per entry point with fresh random cases (``DISTALLOC_FUZZ_TIMEOUT_S`` overrides
the per-case limit).  ``DISTALLOC_FUZZ_LOG=path`` appends
every fault (with its reproducer) to a JSON-lines file and keeps going instead of stopping
at the first one.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from fuzz_entries import BY_NAME, ENTRY_POINTS
from fuzz_known import known
from fuzz_runner import FuzzWorker, tidy

FUZZ_CI_BUDGET = 25
FUZZ_CI_TIMEOUT_S = 6.0
STATS: dict[str, Counter] = defaultdict(Counter)
KNOWN_HIT: dict[str, Counter] = defaultdict(Counter)


class _Summary:
    """Prints the figures (cases, clean errors, faults per entry point) at the end."""

    def pytest_terminal_summary(self, terminalreporter):
        lines = summary_lines()
        if lines:
            terminalreporter.section("fuzz")
            for line in lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def worker(request):
    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    os.environ.setdefault("DISTALLOC_DATA_DIR", str(data))
    if not request.config.pluginmanager.has_plugin("distalloc-fuzz-summary"):
        request.config.pluginmanager.register(_Summary(), "distalloc-fuzz-summary")
    w = FuzzWorker(BY_NAME)
    yield w
    w.close()


def _budget(config, entry) -> tuple[int, bool, float]:
    """(cases, derandomise, per-case time limit)."""
    n = config.getoption("--fuzz-budget")
    if n:
        return n, False, float(os.environ.get("DISTALLOC_FUZZ_TIMEOUT_S", entry.timeout_s))
    return max(1, round(FUZZ_CI_BUDGET * entry.weight)), True, min(entry.timeout_s,
                                                                    FUZZ_CI_TIMEOUT_S)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[e.name for e in ENTRY_POINTS])
def test_fuzz(entry, worker, request):
    examples, derandomize, timeout_s = _budget(request.config, entry)
    log = os.environ.get("DISTALLOC_FUZZ_LOG")

    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[p for p in Phase if not (log and p is Phase.shrink)])
    @given(case=entry.strategy)
    def one(case):
        outcome = worker.run(entry.name, case, timeout_s)
        STATS[entry.name]["cases"] += 1
        STATS[entry.name]["ms"] += round(outcome.seconds * 1e3)
        if outcome.category != "hang":
            STATS[entry.name]["max_ms"] = max(STATS[entry.name]["max_ms"],
                                              round(outcome.seconds * 1e3))
        STATS[entry.name][outcome.category] += 1
        if not outcome.is_fault:
            return
        text = "; ".join(outcome.problems)
        k = known(entry.name, text)
        if k is not None:
            STATS[entry.name]["known"] += 1
            KNOWN_HIT[entry.name][k.reproducer] += 1
            return
        STATS[entry.name]["new"] += 1
        if log:
            with open(log, "a") as fh:
                fh.write(json.dumps({"entry": entry.name, "category": outcome.category,
                                     "signature": outcome.signature, "problems": outcome.problems,
                                     "reproducer": tidy(case), "detail": outcome.detail}) + "\n")
            return
        raise AssertionError(f"{entry.name}: {outcome.category}: {text}\nreproducer:\n"
                             f"{tidy(case)}\n{outcome.detail}")

    one()


def summary_lines() -> list[str]:
    if not STATS:
        return []
    lines = [f"{'entry point':<52} {'cases':>6} {'ok':>6} {'clean':>6} {'known':>6} {'new':>5} "
             f"{'ms/case':>8} {'max ms':>7}"]
    total = Counter()
    for name, c in STATS.items():
        total.update({k: v for k, v in c.items() if k != "max_ms"})
        lines.append(f"{name:<52} {c['cases']:>6} {c['ok']:>6} {c['clean']:>6} {c['known']:>6} "
                     f"{c['new']:>5} {c['ms'] / max(1, c['cases']):>8.1f} {c['max_ms']:>7}")
    lines.append(f"{'total':<52} {total['cases']:>6} {total['ok']:>6} {total['clean']:>6} "
                 f"{total['known']:>6} {total['new']:>5}")
    for name, hits in KNOWN_HIT.items():
        for rep, n in hits.items():
            lines.append(f"known fault hit {n}x in {name}: {rep}")
    return lines


def test_swarm_occupancy_check_catches_an_overlap_and_allows_a_handover():
    """The Swarm check counts cache per instant: a WS-RR booking that starts when another
    session ends is fine; two sessions holding the last unit at once are over-booked."""
    from fuzz_llm_online import occupancy_problems
    d = {"placement": [{"server": 0, "first_block": 0, "num_blocks": 2}],
         "sessions": [{"servers": [0], "start_s": 0.0, "finish_s": None},
                      {"servers": [0], "start_s": 1.0, "finish_s": 2.0},
                      {"servers": [0], "start_s": 2.0, "finish_s": 3.0}]}
    assert occupancy_problems(d, [4], "x") == []          # 2 + 2 units at any instant
    d["sessions"][2]["start_s"] = 1.5                       # overlaps the second
    assert "holds 6 cache units at once" in occupancy_problems(d, [4], "x")[0]
