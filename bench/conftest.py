"""Benchmarks: pytest-benchmark suites grouped by kernel / solver / end-to-end.

Each benchmark asserts the work it did (same answer as the baseline, feasibility, gap) so
that a behaviour regression cannot pass as a speed-up, and records ratios against a
baseline run in the same session in ``extra_info`` (ratios are stable on a noisy machine,
absolute times are not).  Timing targets (a ratio, a growth slope) are asserted only when
benchmarking is on (``if not benchmark.disabled``): CI runs every benchmark once with
``--benchmark-disable`` on a shared machine, where it checks the work, not the clock.  Run ``python bench/report.py`` on the JSON to get the README
table.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def best_time(fn, repeat=3, min_total_s=0.2):
    """Smallest wall time of ``fn()`` over ``repeat`` runs (more if they are very short)."""
    times = []
    t_start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - t_start < min_total_s and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
