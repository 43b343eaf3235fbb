"""``distalloc queue``: approx, exact, simulate, tradeoff, optimize (SPEC 4.2, 3.x).

Every command decides stability first (distalloc.queueing.stability) and refuses an
unstable system with one line; work whose estimated time or memory is out of range is
refused before it starts, naming the estimate and the option that allows it.  Warnings
raised while computing are held back: dropped if the command fails (only its one-line
error is printed), otherwise printed to stderr after the result, never on stdout.
"""
from __future__ import annotations

import contextlib
import sys
import warnings

import numpy as np

from distalloc._resources import default_max_memory_gb
from distalloc._validation import ValidationError
from distalloc.cli._common import Parser, floats, print_json, refuse_options

__all__ = ["add_parser"]

#: jobs per point of ``queue tradeoff --method simulate`` without --jobs
TRADEOFF_JOBS = 200_000


@contextlib.contextmanager
def _held_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message).splitlines()[0] if str(w.message) else w.category.__name__
        print(f"distalloc: warning: {text}", file=sys.stderr)


def _fork_join(args):
    from distalloc.queueing import ForkJoin
    speeds = floats(args.speeds, "speeds")
    powers = floats(args.powers, "powers") if args.powers else None
    probs = floats(args.probs, "probs") if args.probs else None
    return ForkJoin(args.servers, args.needed, args.rate, speeds, powers, probs,
                    idle_power=args.idle_power)


def _print_metrics(d: dict) -> None:
    for key, v in d.items():
        if isinstance(v, float):
            print(f"{key:>24}  {v:.6g}")
        elif isinstance(v, list):
            print(f"{key:>24}  " + ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x)
                                             for x in v))
        else:
            print(f"{key:>24}  {v}")


def _cmd_queue(args) -> int:
    from distalloc.queueing import approximate, exact, simulate
    with _held_warnings():
        system = _fork_join(args)
        if args.command == "approx":
            m = approximate(system, max_seconds=args.max_seconds)
        elif args.command == "exact":
            m = exact(system, max_jobs=args.max_jobs, tail_tol=args.tail_tol,
                      max_memory_gb=args.max_memory_gb, max_seconds=args.max_seconds)
        else:
            m = simulate(system, args.jobs, seed=args.seed, replications=args.replications,
                         transient=args.transient, max_seconds=args.max_seconds)
        d = m.to_dict()
        if args.json:
            print_json(d)
        else:
            if d.get("steady_state") is False:
                print("# not a steady state: " + ("rate >= saturation throughput, a transient "
                                                  "study" if not d.get("stable") else
                                                  "the batch means trend upwards"))
            _print_metrics(d)
    return 0


def _cmd_queue_tradeoff(args) -> int:
    from distalloc.queueing import tradeoff
    refuse_options(args, ["probs"], "has no effect on queue tradeoff, which sweeps the "
                   "probability of the fast level from 0 to 1 (--points)")
    if args.method != "simulate":
        refuse_options(args, ["jobs"], f"applies only with --method simulate (not "
                       f"{args.method})")
    with _held_warnings():
        system = _fork_join(args)
        kw = ({"num_jobs": TRADEOFF_JOBS if args.jobs is None else args.jobs}
              if args.method == "simulate" else {})
        t = tradeoff(system, args.points, method=args.method, max_seconds=args.max_seconds,
                     **kw)
        if not np.isfinite(np.asarray(t.mean_jobs, dtype=float)).any():
            raise ValidationError(
                f"The system is unstable at every fast-level probability: rate "
                f"{system.rate:g} >= the saturation throughput of every mix from 0 to 1 "
                f"(speeds {args.speeds}); lower --rate or add servers.")
        if args.json:
            print_json(t.to_dict())
        else:
            print(f"{'p(fast)':>8} {'E[N]':>10} {'E[T]':>10} {'energy/job':>12}  status")
            for p, n_, t_, e in zip(t.switch_prob, t.mean_jobs, t.mean_response,
                                    t.energy_per_job):
                if n_ != n_:            # NaN: no steady state at this mix
                    print(f"{p:8.3f} {'-':>10} {'-':>10} {'-':>12}  unstable")
                else:
                    print(f"{p:8.3f} {n_:10.4g} {t_:10.4g} {e:12.5g}  stable")
        if args.plot:
            from distalloc.plots import tradeoff_curve
            tradeoff_curve(t, args.plot, title=f"({system.servers},{system.needed}) "
                           f"fork-join, rate {system.rate:g}, speeds {args.speeds}, powers "
                           f"{args.powers or '1 each'}, idle power {system.idle_power:g} "
                           f"({args.method})")
    return 0


def _cmd_queue_optimize(args) -> int:
    from distalloc.queueing import optimize
    refuse_options(args, ["probs"], "has no effect on queue optimize, which chooses the "
                   "probabilities of the speed levels itself")
    with _held_warnings():
        system = _fork_join(args)
        o = optimize(system, max_jobs=args.max_jobs, max_response=args.max_response,
                     max_energy=args.max_energy, max_seconds=args.max_seconds)
        if args.json:
            print_json(o.to_dict())
        else:
            _print_metrics(o.to_dict())
    return 0


# ------------------------------------------------------------------------------------------


def add_parser(sub) -> None:
    queue = sub.add_parser("queue", help="(n,k) fork-join queues with speed levels")
    q_sub = queue.add_subparsers(dest="command", required=True, parser_class=Parser)

    def system_options(q):
        q.add_argument("--servers", type=int, required=True, metavar="n",
                       help="cores n (each job forks one task per core), 1..10^6")
        q.add_argument("--needed", type=int, required=True, metavar="k",
                       help="tasks a job needs (the other n - k are cancelled)")
        q.add_argument("--rate", type=float, required=True, metavar="λ",
                       help="job arrival rate (Poisson), jobs per unit time")
        q.add_argument("--speeds", default="1", metavar="µ1,µ2",
                       help="service rate of each speed level (default: 1)")
        q.add_argument("--powers", default=None, metavar="P1,P2",
                       help="busy power of each level (default: 1 each)")
        q.add_argument("--probs", default=None, metavar="p1,p2",
                       help="probability of each level per (core, job) (default: uniform)")
        q.add_argument("--idle-power", type=float, default=0.0, metavar="P0",
                       help="power of an idle core (default: 0)")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    def max_seconds(q, default):
        q.add_argument("--max-seconds", type=float, default=default, metavar="S",
                       help=f"refuse work estimated to take longer (default: {default:g})")

    for name, helptext in (("approx", "closed-form approximation"),
                           ("exact", "truncated Markov chain (small systems)"),
                           ("simulate", "compiled simulation with confidence intervals")):
        q = q_sub.add_parser(name, help=helptext)
        system_options(q)
        if name in ("approx", "exact"):
            max_seconds(q, 60.0)
        if name == "exact":
            q.add_argument("--max-jobs", type=int, default=None, metavar="N",
                           help="truncation level (default: from the load, grown until the "
                                "tail mass is below --tail-tol)")
            q.add_argument("--tail-tol", type=float, default=1e-8, metavar="ε",
                           help="largest stationary mass at the truncation (default: 1e-8)")
            q.add_argument("--max-memory-gb", type=float, default=None, metavar="GB",
                           help="refuse chains estimated to need more memory (default: half "
                                f"the machine's memory, at most 8; here "
                                f"{default_max_memory_gb():.3g})")
        if name == "simulate":
            q.add_argument("--jobs", type=int, default=1_000_000, metavar="N",
                           help="jobs per replication, 10%% warm-up (default: 10^6)")
            q.add_argument("--replications", type=int, default=1, metavar="R",
                           help="independent replications; 1: batch means (default: 1)")
            q.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
            q.add_argument("--transient", action="store_true",
                           help="run an unstable system anyway (a transient study; the "
                                "output says steady_state: false)")
            max_seconds(q, 3600.0)
        q.set_defaults(func=_cmd_queue)
    q = q_sub.add_parser("tradeoff", help="E[N]-energy curve over the fast-level probability")
    system_options(q)
    q.add_argument("--points", type=int, default=21,
                   help="values of p(fast) from 0 to 1 (default: 21)")
    q.add_argument("--method", choices=["approx", "exact", "simulate"], default="approx",
                   help="how each point is computed (default: approx)")
    q.add_argument("--jobs", type=int, default=None, metavar="N",
                   help=f"jobs per point with --method simulate (default: {TRADEOFF_JOBS})")
    q.add_argument("--plot", default=None, metavar="FILE", help="save the curve as a PNG")
    max_seconds(q, 600.0)
    q.set_defaults(func=_cmd_queue_tradeoff)
    q = q_sub.add_parser("optimize", help="minimum-energy speed mix under a latency bound")
    system_options(q)
    q.add_argument("--max-jobs", type=float, default=None, metavar="N",
                   help="minimise energy per job subject to E[N] <= N")
    q.add_argument("--max-response", type=float, default=None, metavar="T",
                   help="minimise energy per job subject to E[T] <= T")
    q.add_argument("--max-energy", type=float, default=None, metavar="E",
                   help="instead: minimise E[N] subject to energy per job <= E")
    q.add_argument("--max-seconds", type=float, default=60.0, metavar="S",
                   help="stop the search and refuse once it has taken longer (default: 60)")
    q.set_defaults(func=_cmd_queue_optimize)
