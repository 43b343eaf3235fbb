"""``distalloc sgd``: schedule, run (SPEC 4.2, 2.x)."""
from __future__ import annotations


import numpy as np

from distalloc.cli._common import Parser, print_json

__all__ = ["add_parser"]


def _cmd_sgd_schedule(args) -> int:
    from distalloc.sgd import bound_schedule, parse_model
    sch = bound_schedule(args.workers, args.lr, args.smoothness, args.strong_convexity,
                         args.noise_var, args.batch, args.initial_gap,
                         model=parse_model(args.model) if args.model else None, rate=args.rate,
                         step=args.step)
    if args.json:
        print_json({"switch_times": sch.switch_times.tolist(),
                     "switch_errors": sch.switch_errors.tolist(),
                     "k_values": sch.k_values.tolist()})
    else:
        print(f"{'switch':>6} {'k -> k+step':>12} {'time':>14} {'bound error':>14}")
        for i, (t, e) in enumerate(zip(sch.switch_times, sch.switch_errors)):
            print(f"{i + 1:>6} {f'{sch.k_values[i]} -> {sch.k_values[i + 1]}':>12} {t:14.6g} {e:14.6g}")
    return 0


def _cmd_sgd_run(args) -> int:
    from distalloc.sgd import parse_model, run
    res = run(args.problem, args.workers, args.policy, horizon=args.horizon, lr=args.lr,
              model=parse_model(args.model) if args.model else None, seed=args.seed,
              k_max=args.k_max)
    if args.json:
        print_json(res.to_dict())
    else:
        print(f"problem {args.problem}, n = {args.workers}, policy {res.policy}: "
              f"{res.iterations} iterations in {res.extra['horizon']:g} time units "
              f"({res.wall_s:.3f} s)")
        print(f"  final error F(w) - F* = {res.error[-1]:.4g} (lowest {res.error.min():.4g})")
        print(f"  uplink gradients {res.uplink_gradients}, downlink models {res.downlink_models}")
        if res.schedule is not None:
            print("  switch times: " + ", ".join(f"{t:.4g}" for t in res.schedule.switch_times[:12])
                  + (" ..." if res.schedule.switch_times.size > 12 else ""))
        steps = np.flatnonzero(np.diff(res.k)) + 1
        if steps.size:
            shown = ", ".join(f"{res.time[i]:.4g}: {res.k[i]}" for i in steps[:12])
            if steps.size > 12:
                last = steps[-1]
                shown += (f", ... ({steps.size} changes in all, the last at "
                          f"{res.time[last]:.4g}: {res.k[last]})")
            print(f"  k changes (time: k): {shown}")
        print(f"  k at the end: {res.k[-1]}")
    if args.plot:
        from distalloc.plots import sgd_error
        cap = args.k_max if args.k_max is not None else args.workers
        label = (res.policy if res.policy.startswith(("fixed", "sync", "async"))
                 else f"{res.policy}, k ≤ {cap}")
        sgd_error([res], args.plot, labels=[label],
                  title=f"{args.problem}, n = {args.workers}, response times "
                  f"{args.model or 'exp:1'}, horizon {res.extra['horizon']:g}, "
                  f"step size {res.extra['lr']:g}, seed {args.seed}")
    return 0


def add_parser(sub) -> None:
    sgd = sub.add_parser("sgd", help="fastest-k distributed SGD with adaptive k")
    sgd_sub = sgd.add_subparsers(dest="command", required=True, parser_class=Parser)
    sc = sgd_sub.add_parser("schedule", help="bound-optimal times to switch from k to k+1 "
                            "(the error bound of fastest-k SGD)")
    sc.add_argument("--workers", type=int, required=True, metavar="n", help="workers n")
    sc.add_argument("--lr", type=float, required=True, metavar="η", help="step size η")
    sc.add_argument("--smoothness", type=float, required=True, metavar="L",
                    help="smoothness constant L of the loss")
    sc.add_argument("--strong-convexity", type=float, required=True, metavar="c",
                    help="strong-convexity constant c of the loss")
    sc.add_argument("--noise-var", type=float, required=True, metavar="σ²",
                    help="variance σ² of one sample's gradient")
    sc.add_argument("--batch", type=int, required=True, metavar="s",
                    help="samples per worker per iteration")
    sc.add_argument("--initial-gap", type=float, required=True, metavar="e0",
                    help="initial error F(w0) - F*")
    sc.add_argument("--rate", type=float, default=1.0, metavar="λ",
                    help="exponential response-time rate (default 1)")
    sc.add_argument("--model", default=None, metavar="MODEL",
                    help="response times instead of Exp(rate): exp:RATE, shifted-exp:SHIFT:RATE, "
                    "pareto:SCALE:SHAPE, lognormal:MU:SIGMA")
    sc.add_argument("--step", type=int, default=1, metavar="S",
                    help="k grows by S at each switch")
    sc.add_argument("--json", action="store_true", help="print one JSON object")
    sc.set_defaults(func=_cmd_sgd_schedule)
    sr = sgd_sub.add_parser("run", help="simulate fastest-k SGD")
    sr.add_argument("--problem", choices=["synthetic", "diabetes", "digits"], default="synthetic",
                    help="synthetic regression, or scikit-learn's bundled data sets")
    sr.add_argument("--workers", type=int, default=50, metavar="n", help="workers n")
    sr.add_argument("--policy", default="pflug", metavar="P",
                    help="fixed:K, sync, bound[:STEP], pflug[:K0:STEP:THRESH:BURNIN], dbw[:K0], "
                         "async")
    sr.add_argument("--horizon", type=float, default=None, metavar="T",
                    help="simulated time to run, in the response-time model's units "
                    "(default: the problem's, 6000 for synthetic)")
    sr.add_argument("--lr", type=float, default=None, metavar="η",
                    help="step size (default: the problem's; divided by n for async)")
    sr.add_argument("--model", default=None, metavar="MODEL",
                    help="workers' response times: exp:RATE, shifted-exp:SHIFT:RATE, "
                    "pareto:SCALE:SHAPE, lognormal:MU:SIGMA (default exp:1)")
    sr.add_argument("--k-max", type=int, default=None, metavar="K",
                    help="largest k for pflug and dbw (default n)")
    sr.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
    sr.add_argument("--plot", default=None, metavar="FILE",
                    help="write error and k against time as an image (.png, .pdf, .svg)")
    sr.add_argument("--json", action="store_true", help="print one JSON object")
    sr.set_defaults(func=_cmd_sgd_run)
