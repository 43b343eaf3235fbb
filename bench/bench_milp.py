"""The exact MILP: aggregated, per-request and window formulations, HiGHS against CP-SAT, on
one small AboveNet cell of the README table (bench/milp_table.py makes the whole table).
Each configuration must prove the same optimum; the CPU-time ratios against the first
release's model (per-request, no valid inequalities, scipy with a cutoff row) are recorded."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import milp_table  # noqa: E402

pytest.importorskip("ortools")


def test_milp_configurations_on_abovenet(benchmark):
    S, R, seed = 5, 3, 0
    rows = {c: milp_table.solve_one(S, R, seed, *c.split(":"), time_limit=120, threads=1)
            for c in milp_table.CONFIGS}
    assert all(r["status"] == "optimal" for r in rows.values()), rows
    ref = rows["first-release:highs"]
    for c, r in rows.items():
        assert r["mean_token_ms"] == pytest.approx(ref["mean_token_ms"], rel=1e-6), c
    assert ref["cg_bprr_ms"] >= ref["mean_token_ms"] - 1e-9
    benchmark.pedantic(milp_table.solve_one, args=(S, R, seed, "aggregated", "highs", 120, 1),
                       rounds=1, iterations=1)
    benchmark.extra_info.update({f"{c}_cpu_s": r["cpu_s"] for c, r in rows.items()})
    benchmark.extra_info.update({f"{c}_speedup_vs_first_release": ref["cpu_s"] / max(r["cpu_s"], 1e-3)
                                 for c, r in rows.items()})
    print("\n" + ", ".join(f"{c}: {r['cpu_s']:.2f} s CPU" for c, r in rows.items()))
