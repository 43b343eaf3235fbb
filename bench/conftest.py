"""Benchmarks: pytest-benchmark suites grouped by kernel / solver / end-to-end.

Each benchmark asserts the work it did (same answer as the baseline, feasibility, gap) so
that a behaviour regression cannot pass as a speed-up, and records ratios against a
baseline run in the same session in ``extra_info`` (ratios are stable on a noisy machine,
absolute times are not).  Timing targets (a ratio, a growth slope) are asserted only when
benchmarking is on (``if not benchmark.disabled``): CI runs every benchmark once with
``--benchmark-disable`` on a shared machine, where it checks the work, not the clock.  Run ``python bench/report.py`` on the JSON to get the README
table.
"""
import os
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


def pytest_configure(config):
    """``--benchmark-json=DIR/FILE.json``: pytest-benchmark writes the file only at the end
    of the run, so a missing folder used to lose every result after minutes of work.
    Create the folder now, and fail at once (not at the end) if it cannot be written."""
    path = getattr(config.option, "benchmark_json", None)
    if not path:
        return
    import pytest
    folder = Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise pytest.UsageError(f"--benchmark-json={path}: cannot write to {folder}: "
                                f"{exc.strerror or exc}") from None
