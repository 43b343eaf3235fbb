"""Time to proven optimum of the exact MILP on AboveNet (issue 15), per formulation and
solver, and CG-BPRR's gap to every proven optimum.

    python bench/milp_table.py --out bench-results/milp_table.jsonl          # run (resumable)
    python bench/milp_table.py --out bench-results/milp_table.jsonl --table  # markdown
    python bench/milp_table.py --out ... --root-lp --servers 6,7 --requests 5,6  # LP bounds
    python bench/milp_table.py --out bench/milp_window_compare.jsonl --every-instance \
        --servers 6,7 --requests 5,6 --configs aggregated:highs,aggregated:cp-sat,window:highs
    python bench/milp_table.py --out bench/milp_window_compare.jsonl --per-instance ...

Cells: ``topology:Abvt --servers S --num-requests R`` for S in --servers, R in --requests,
scenario seeds 0..--seeds-1, each (formulation, solver) in --configs, --time-limit seconds
per solve, --threads solver threads.  One JSON row per solve is appended to --out as soon as
it ends (wall and process CPU seconds, status, objective, bound, gap, CG-BPRR's value), so
an interrupted run resumes where it stopped.  Cells beyond a failure are skipped per
configuration: once (S, R) has a seed that is not proven, every (S', R') with S' >= S and
R' >= R is skipped (larger instances of the same family are not easier).
A full run (6 configurations, 35 cells x 3 seeds, 60 s) takes at most 10.5 h of one core and in
practice about an hour (README), so run it on a quiet machine; ``--threads 1`` keeps the
configurations comparable.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

CONFIGS = ["aggregated:highs", "aggregated:cp-sat", "per-request:highs", "per-request:cp-sat",
           "first-release:highs", "window:highs"]
# first-release: the model and solver path before issue 15 (per-request, no valid
# inequalities, scipy.optimize.milp with the heuristic as a cutoff row), the "before" column.
# window:cp-sat is not a column: CP-SAT on the window model's 7 000-12 000 columns ends at
# gaps of 40% where window:highs proves (6 x 5), and does not prove 4 x 2 within 120 s


def _ints(text: str) -> list[int]:
    if "-" in text and "," not in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split(",")]


def load_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:   # a row cut by an interruption: redo that solve
                pass
    return rows


def solve_one(S: int, R: int, seed: int, formulation: str, solver: str, time_limit: float,
              threads: int) -> dict:
    from distalloc.llm import cg_bprr, solve_milp
    from distalloc.llm.scenario import topology_scenario
    sc = topology_scenario("Abvt", num_servers=S, seed=seed, num_requests=R)
    cg = cg_bprr(sc)
    import distalloc.llm.milp_solvers as ms
    legacy = formulation == "first-release"
    have = ms.have_highspy
    if legacy:
        ms.have_highspy = lambda: False
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        p = solve_milp(sc, formulation="per-request" if legacy else formulation, solver=solver,
                       time_limit_s=time_limit, threads=threads, seed=seed, cuts=not legacy)
    finally:
        ms.have_highspy = have
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"servers": S, "requests": R, "seed": seed, "formulation": formulation,
            "solver": solver, "threads": threads, "time_limit_s": time_limit,
            "status": p.status, "mean_token_ms": p.mean_token_ms, "bound_ms": p.bound_ms,
            "gap": p.gap, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "num_variables": p.extra.get("num_variables"), "source": p.extra.get("source"),
            "cg_bprr_ms": cg.mean_token_ms if cg.feasible else None,
            "load_avg_1min": os.getloadavg()[0]}


def root_lp_ms(sc, formulation: str) -> float:
    """The LP relaxation's optimum of a formulation (mean per-token ms): the bound the
    branch and bound starts from, before any cut or branching of the solver."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import vstack
    from distalloc.llm.milp_model import build_model
    m = build_model(sc, "per-request" if formulation == "first-release" else formulation,
                    cuts=formulation != "first-release")
    Am, mem_ub = m.memory_matrix()
    A = vstack([m.A, Am]).tocsr()
    lo = np.concatenate([m.row_lb, np.full(len(mem_ub), -np.inf)])
    hi = np.concatenate([m.row_ub, mem_ub])
    eq, fl, fh = lo == hi, np.isfinite(lo) & (lo != hi), np.isfinite(hi) & (lo != hi)
    res = linprog(m.cost, A_ub=vstack([A[fh], -A[fl]]), b_ub=np.concatenate([hi[fh], -lo[fl]]),
                  A_eq=A[eq], b_eq=hi[eq], bounds=list(zip(m.lb, m.ub)), method="highs")
    return float(res.fun) / sc.num_requests


def root_lp_table(args) -> str:
    """Root LP bound per instance and formulation, with the best plan known (the optimum
    where a row of --out proves it) and each bound's gap to it."""
    from distalloc.llm import cg_bprr
    from distalloc.llm.scenario import topology_scenario
    rows = [r for path in args.out.split(",") for r in load_rows(Path(path))]
    formulations = list(dict.fromkeys(c.split(":")[0] for c in args.configs))
    lines = ["| S | R | seed | best known ms | " + " | ".join(f"{f} root LP (gap)" for f in formulations)
             + " |", "|---" * (4 + len(formulations)) + "|"]
    for S in args.servers:
        for R in args.requests:
            for seed in range(args.seeds):
                sc = topology_scenario("Abvt", num_servers=S, seed=seed, num_requests=R)
                mine = [r for r in rows if (r["servers"], r["requests"], r["seed"]) == (S, R, seed)]
                proven = [r["mean_token_ms"] for r in mine if r["status"] == "optimal"]
                cg = cg_bprr(sc)
                best = min(proven) if proven else min(
                    [r["mean_token_ms"] for r in mine if r["mean_token_ms"] is not None]
                    + ([cg.mean_token_ms] if cg.feasible else []), default=math.nan)
                tag = "" if proven else " (not proven)"
                cells = [f"{v:.1f} ({(best - v) / best:.1%})" for v in
                         (root_lp_ms(sc, f) for f in formulations)]
                lines.append(f"| {S} | {R} | {seed} | {best:.2f}{tag} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = load_rows(out)
    done = {(r["formulation"], r["solver"], r["servers"], r["requests"], r["seed"]): r
            for r in rows}
    if args.every_instance:
        run_every_instance(args, out, done)
        return
    failed: dict[str, list[tuple[int, int]]] = {c: [] for c in args.configs}
    for S in args.servers:            # cell-major: a partial run has every configuration
        for R in args.requests:
            for config in args.configs:
                formulation, solver = config.split(":")
                if any(S >= s0 and R >= r0 for s0, r0 in failed[config]):
                    continue
                proven = True
                for seed in range(args.seeds):
                    key = (formulation, solver, S, R, seed)
                    row = done.get(key)
                    if row is None:
                        row = solve_one(S, R, seed, formulation, solver, args.time_limit,
                                        args.threads)
                        with out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(f"{config} S={S} R={R} seed={seed}: {row['status']} "
                              f"gap {row['gap']:.3g} wall {row['wall_s']:.1f} s "
                              f"cpu {row['cpu_s']:.1f} s", flush=True)
                    proven &= row["status"] == "optimal"
                    if not proven:   # the cell has failed: its other seeds add nothing
                        break
                if not proven:
                    failed[config].append((S, R))


def run_every_instance(args, out: Path, done: dict) -> None:
    """Instance-major, no skipping: every configuration on every instance, in an order
    rotated from one instance to the next (so a change of the machine's load over the run
    falls on every configuration alike), each row with its formulation's root LP bound."""
    from distalloc.llm.scenario import topology_scenario
    k = 0
    for S in args.servers:
        for R in args.requests:
            for seed in range(args.seeds):
                sc = topology_scenario("Abvt", num_servers=S, seed=seed, num_requests=R)
                order = args.configs[k % len(args.configs):] + args.configs[:k % len(args.configs)]
                k += 1
                for config in order:
                    formulation, solver = config.split(":")
                    if (formulation, solver, S, R, seed) in done:
                        continue
                    row = solve_one(S, R, seed, formulation, solver, args.time_limit, args.threads)
                    row["root_lp_ms"] = root_lp_ms(sc, formulation)
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{config} S={S} R={R} seed={seed}: {row['status']} "
                          f"gap {row['gap']:.3g} wall {row['wall_s']:.1f} s "
                          f"cpu {row['cpu_s']:.1f} s", flush=True)


def per_instance_table(args) -> str:
    """One line per instance: per configuration the root LP bound, then the CPU seconds to
    the proof or the final gap (with its CPU seconds), and the load average seen."""
    rows = [r for path in args.out.split(",") for r in load_rows(Path(path))]
    by = {(r["formulation"] + ":" + r["solver"], r["servers"], r["requests"], r["seed"]): r
          for r in rows}
    lines = ["| S x R | seed | best ms | " + " | ".join(args.configs) + " |",
             "|---" * (3 + len(args.configs)) + "|"]
    for S in args.servers:
        for R in args.requests:
            for seed in range(args.seeds):
                mine = [by.get((c, S, R, seed)) for c in args.configs]
                if not any(mine):
                    continue
                best = min(r["mean_token_ms"] for r in mine if r and r["mean_token_ms"])
                cells = []
                for r in mine:
                    if r is None:
                        cells.append("—")
                        continue
                    lp = f"LP {r['root_lp_ms']:.1f}, " if r.get("root_lp_ms") else ""
                    done_txt = (f"proven {r['cpu_s']:.1f} s" if r["status"] == "optimal"
                                else f"gap {r['gap']:.1%} ({r['cpu_s']:.0f} s)")
                    cells.append(lp + done_txt)
                lines.append(f"| {S} x {R} | {seed} | {best:.2f} | " + " | ".join(cells) + " |")
    loads = [r["load_avg_1min"] for r in rows if r.get("load_avg_1min") is not None]
    if loads:
        lines.append(f"\n(1-minute load average during the solves: {min(loads):.1f}-{max(loads):.1f})")
    return "\n".join(lines)


def _cell(rs: list[dict], seeds: int, budget: float) -> str:
    if any(r["status"] != "optimal" for r in rs):
        return f"gap {max(r['gap'] or 0 for r in rs):.1%}"
    if len(rs) < seeds:
        return "—"
    cpu = max(r["cpu_s"] for r in rs)
    return f"{cpu:.1f}" + ("*" if cpu > budget else "")


def table(args) -> str:
    rows = [r for path in args.out.split(",") for r in load_rows(Path(path))]
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["formulation"], r["solver"], r["servers"], r["requests"]), []).append(r)
    lines = []
    if args.compact:   # one table, one cell per (S, R) with every configuration
        lines.append("configurations per cell: " + " / ".join(args.configs) + "\n")
        lines.append("| S \\ R | " + " | ".join(str(R) for R in args.requests) + " |")
        lines.append("|---" * (len(args.requests) + 1) + "|")
        for S in args.servers:
            lines.append(f"| {S} | " + " | ".join(
                " / ".join(_cell(cells.get((*c.split(":"), S, R), []), args.seeds,
                                 args.cpu_budget) for c in args.configs)
                for R in args.requests) + " |")
    for config in ([] if args.compact else args.configs):
        formulation, solver = config.split(":")
        lines.append(f"\n{formulation} / {solver}: CPU seconds of the slowest of {args.seeds} "
                     f"seeds if all are proven (* more than {args.cpu_budget:g} s), else the "
                     "final gap of the first seed not proven; — skipped (beyond a failure)\n")
        lines.append("| S \\ R | " + " | ".join(str(R) for R in args.requests) + " |")
        lines.append("|---" * (len(args.requests) + 1) + "|")
        for S in args.servers:
            cells_txt = []
            for R in args.requests:
                cells_txt.append(_cell(cells.get((formulation, solver, S, R), []), args.seeds,
                                       args.cpu_budget))
            lines.append(f"| {S} | " + " | ".join(cells_txt) + " |")
        proven = [(S, R) for S in args.servers for R in args.requests
                  if len(cells.get((formulation, solver, S, R), [])) >= args.seeds
                  and all(r["status"] == "optimal" for r in cells[(formulation, solver, S, R)])]
        proven = [(S, R) for S, R in proven
                  if max(r["cpu_s"] for r in cells[(formulation, solver, S, R)]) <= args.cpu_budget]
        if proven:
            S, R = max(proven, key=lambda sr: (sr[0] * sr[1], sr))
            lines.append(f"\nlargest S x R proven within {args.cpu_budget:g} CPU s "
                         f"(every seed): {S} x {R}")
    # CG-BPRR against every proven optimum (any configuration)
    opt: dict[tuple, tuple[float, float | None]] = {}
    for r in rows:
        if r["status"] == "optimal":
            key = (r["servers"], r["requests"], r["seed"])
            best = min(opt.get(key, (math.inf, None))[0], r["mean_token_ms"])
            opt[key] = (best, r["cg_bprr_ms"])
    gaps = [cg / v - 1 for v, cg in opt.values() if cg is not None]
    infeasible = sum(cg is None for _, cg in opt.values())
    if gaps:
        lines.append(f"\nCG-BPRR against the proven optimum on {len(gaps)} instances: mean gap "
                     f"{sum(gaps) / len(gaps):.2%}, worst {max(gaps):.2%}, optimal on "
                     f"{sum(g < 1e-9 for g in gaps)}"
                     + (f"; infeasible on {infeasible}" if infeasible else ""))
    # agreement of configurations wherever both prove
    worst = 0.0
    by_instance: dict[tuple, list[float]] = {}
    for r in rows:
        if r["status"] == "optimal":
            by_instance.setdefault((r["servers"], r["requests"], r["seed"]), []).append(r["mean_token_ms"])
    for v in by_instance.values():
        worst = max(worst, (max(v) - min(v)) / min(v))
    lines.append(f"\nlargest relative difference between configurations that prove the same "
                 f"instance: {worst:.1e} ({sum(len(v) > 1 for v in by_instance.values())} "
                 "instances proven by two or more)")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--out", default="bench-results/milp_table.jsonl",
                    help="JSON-lines file of the rows (--table: several, comma-separated)")
    ap.add_argument("--servers", type=_ints, default=_ints("4-8"))
    ap.add_argument("--requests", type=_ints, default=_ints("2-8"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", type=lambda s: s.split(","), default=CONFIGS)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpu-budget", type=float, default=60.0,
                    help="table: mark proven cells that took more CPU seconds than this")
    ap.add_argument("--table", action="store_true", help="print the markdown table and exit")
    ap.add_argument("--compact", action="store_true",
                    help="table: one table, every configuration in each cell")
    ap.add_argument("--every-instance", action="store_true",
                    help="run: every configuration on every instance (no skipping), "
                    "interleaved, with each formulation's root LP bound in the rows")
    ap.add_argument("--per-instance", action="store_true",
                    help="print one line per instance (root LP, proof or gap) and exit")
    ap.add_argument("--root-lp", action="store_true",
                    help="print each formulation's root LP bound per instance against the "
                    "best plan known in --out, and exit")
    args = ap.parse_args(argv)
    if args.per_instance:
        print(per_instance_table(args))
    elif args.root_lp:
        print(root_lp_table(args))
    elif args.table:
        print(table(args))
    else:
        run(args)
        print(table(args))


if __name__ == "__main__":
    main()
