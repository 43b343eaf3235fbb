"""``distalloc sweep`` (SPEC 4.1) and ``distalloc demo`` (the quick start's main job)."""
from __future__ import annotations

import sys

import numpy as np

from distalloc._validation import ValidationError
from distalloc.cli._common import check_writable_folder, print_json

__all__ = ["add_parser"]


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from distalloc.sweep import load_sweep, run_sweep
    config = load_sweep(args.config)
    out = args.out or f"{Path(args.config).stem}.csv"
    summary = run_sweep(config, out, n_jobs=args.n_jobs, scheduler=args.scheduler,
                        chunk_size=args.chunk_size, progress=False if args.quiet else None,
                        fail_fast=args.fail_fast, retry_failed=args.retry_failed,
                        oversubscribe=args.oversubscribe, max_tasks=args.max_tasks)
    msg = (f"{config.target}: {summary['tasks']} tasks, {summary['skipped']} already in {out}, "
           f"{summary['written']} written")
    if summary["failed"]:
        msg += f" ({summary['failed']} failed: see the status column)"
    if summary["retried"]:
        msg += f", {summary['retried']} failed rows retried"
    msg += f" in {summary['wall_s']:.2f} s"
    if args.json:
        print_json({"out": str(out), **summary})
    elif not args.quiet:
        print(msg)
    if summary["crashed"]:
        print(f"distalloc: error: {summary['crashed']} task(s) of {config.target} were not "
              f"computed: their worker process died (status column of {out}); rerun with "
              "--retry-failed to try them again.", file=sys.stderr)
        return 1
    return 0


def _cmd_demo(args) -> int:
    from pathlib import Path

    from distalloc.llm import clustered
    from distalloc.llm.simulation import simulate
    from distalloc.plots import sgd_error, token_time_cdf, tradeoff_curve
    from distalloc.queueing import ForkJoin, optimize, tradeoff
    from distalloc.sgd import run, synthetic_regression
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValidationError(f"The 'out' option of demo must be a folder; {str(out)!r} exists "
                              "and is a file.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"Cannot create the folder {str(out)!r} for the demo's plots: "
                              f"{exc.strerror or exc}.") from None
    check_writable_folder(out, "the demo's plots")
    print("== 1. LLM serving: CG-BP + WS-RR against PETALS (clustered, 5 seeds, 100 requests, "
          "0.5 req/s, allocation delay 0) ==")
    sc = clustered()
    runs = {m: [simulate(sc, m, seed=s, rate_per_s=0.5, num_requests=100,
                         client_weights=[1, 1, 0]) for s in range(5)]
            for m in ("cg-bprr", "petals")}
    for m, rs in runs.items():
        tok = np.array([r.to_dict()["mean_token_s"] for r in rs])
        ttft = np.array([r.to_dict()["mean_ttft_s"] for r in rs])
        print(f"  {m:>8}: mean per-token time {tok.mean():.3f} s (+- {tok.std():.3f}), "
              f"time to first token {ttft.mean():.1f} s")
    token_time_cdf({m: np.concatenate([r.token_s for r in rs]) for m, rs in runs.items()},
                   str(out / "llm_token_cdf.png"), title="clustered: Poisson at 0.5 req/s from "
                   "Cluster0 and Cluster1, 100 requests,\n5 seeds, allocation delay 0")
    print("== 2. Fastest-k SGD: adaptive against fixed k (synthetic regression, n = 50) ==")
    prob = synthetic_regression()
    res = [run(prob, 50, p, seed=0, **kw) for p, kw in
           (("fixed:10", {}), ("fixed:40", {}), ("bound", {}), ("pflug:10:10:10:200", {"k_max": 40}))]
    target = res[1].error.min()
    for r in res:
        t = r.time_to_error(target)
        print(f"  {r.policy:>20}: lowest error {r.error.min():.3g}, reaches fixed k = 40's "
              f"lowest at t = " + ("never" if not np.isfinite(t) else f"{t:,.0f}"))
    sgd_error(res, str(out / "sgd_error.png"),
              labels=["fixed:10", "fixed:40", "bound, k ≤ 50", "pflug:10:10:10:200, k ≤ 40"],
              title="synthetic regression, n = 50, response times exp:1, seed 0")
    print("== 3. (10,5) fork-join, two speeds: latency against energy ==")
    system = ForkJoin(10, 5, 2.0, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5], idle_power=0.1)
    t = tradeoff(system, 11)
    for p, n_, e in zip(t.switch_prob, t.mean_jobs, t.energy_per_job):
        if np.isfinite(n_):
            print(f"  p(fast) {p:.1f}: E[N] {n_:6.3f}, energy per job {e:6.3f}")
    best = optimize(system, max_jobs=2.0)
    print(f"  minimum energy with E[N] <= 2: p(fast) = {best.probs[1]:.3f}, energy per job "
          f"{best.metrics.energy_per_job:.3f}")
    tradeoff_curve(t, str(out / "forkjoin_tradeoff.png"),
                   title="(10,5) fork-join, rate 2, speeds 1,3, powers 1,6, idle power 0.1")
    print(f"plots written to {out}/: llm_token_cdf.png, sgd_error.png, forkjoin_tradeoff.png")
    return 0


SWEEP_EPILOG = """\
A sweep file is code: its target (a built-in such as queue.approx, or package.module:function)
is imported and called with the file's values. Run only sweep files you trust.

A failing grid point (invalid for the target, an unstable system, a solver error) writes its row
with empty metrics and its one-line error in the 'status' column ('ok' otherwise), and the sweep
goes on. A rerun skips rows already written (failed ones too, unless --retry-failed); their key
is every parameter, the seed, the target and the sha256 of input files. An output holding another
sweep's rows (another target) is refused and left as it is. Input files (an llm target's
scenario) are read relative to the sweep file's folder. Exit status: 0 done; 2 bad input
(nothing computed) or --fail-fast stopped; 1 tasks lost to dead workers."""


def add_parser(sub) -> None:
    import argparse

    from distalloc.sweep import DEFAULT_MAX_TASKS
    sw = sub.add_parser("sweep", help="run a parameter sweep over a grid x seeds",
                        description="Run (or resume) a parameter sweep described by a TOML "
                        "file: [sweep] target and seeds, [fixed] parameters, [grid] lists.",
                        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sw.add_argument("config", help="sweep TOML file")
    sw.add_argument("--n-jobs", type=int, default=None, metavar="N",
                    help="local worker processes (default: all usable cores)")
    sw.add_argument("--oversubscribe", action="store_true",
                    help="allow --n-jobs above the number of cores")
    sw.add_argument("--scheduler", default=None, metavar="ADDR",
                    help="Dask scheduler address, e.g. tcp://host:8786 (default: "
                    "$DASK_SCHEDULER_ADDRESS, else local processes)")
    sw.add_argument("--out", default=None, metavar="FILE",
                    help="results, .csv or .parquet (default: CONFIG's name with .csv, in the "
                    "current folder); rerun to resume")
    sw.add_argument("--chunk-size", type=int, default=None, metavar="C",
                    help="tasks per chunk (default: about 4 chunks per worker, at most 256)")
    sw.add_argument("--fail-fast", action="store_true",
                    help="stop at the first failing task (exit 2) instead of recording it")
    sw.add_argument("--retry-failed", action="store_true",
                    help="compute again the rows whose status is an error")
    sw.add_argument("--max-tasks", type=int, default=DEFAULT_MAX_TASKS, metavar="N",
                    help="refuse sweeps with more tasks than this (default %(default)s)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    sw.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    sw.set_defaults(func=_cmd_sweep)

    demo = sub.add_parser("demo", help="a short tour: one example of each model family")
    demo.add_argument("--out", default="distalloc-demo", metavar="DIR",
                      help="folder for the plots, created if missing (default distalloc-demo)")
    demo.set_defaults(func=_cmd_demo)
