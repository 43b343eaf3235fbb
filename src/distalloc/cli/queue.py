"""``distalloc queue``: approx, exact, simulate, tradeoff, optimize (SPEC 4.2, 3.x)."""
from __future__ import annotations



from distalloc.cli._common import Parser, floats, print_json

__all__ = ["add_parser"]


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
    system = _fork_join(args)
    if args.command == "approx":
        m = approximate(system)
    elif args.command == "exact":
        m = exact(system, max_jobs=args.max_jobs, tail_tol=args.tail_tol)
    else:
        m = simulate(system, args.jobs, seed=args.seed, replications=args.replications)
    d = m.to_dict()
    if args.json:
        print_json(d)
    else:
        _print_metrics(d)
    return 0


def _cmd_queue_tradeoff(args) -> int:
    from distalloc.queueing import tradeoff
    system = _fork_join(args)
    t = tradeoff(system, args.points, method=args.method)
    if args.json:
        print_json(t.to_dict())
    else:
        print(f"{'p(fast)':>8} {'E[N]':>10} {'E[T]':>10} {'energy/job':>12}")
        for p, n_, t_, e in zip(t.switch_prob, t.mean_jobs, t.mean_response, t.energy_per_job):
            print(f"{p:8.3f} {n_:10.4g} {t_:10.4g} {e:12.5g}")
    if args.plot:
        from distalloc.plots import tradeoff_curve
        tradeoff_curve(t, args.plot, title=f"({system.servers},{system.needed}) fork-join, "
                       f"rate {system.rate:g}, speeds {args.speeds}, powers "
                       f"{args.powers or '1 each'}, idle power {system.idle_power:g} "
                       f"({args.method})")
    return 0


def _cmd_queue_optimize(args) -> int:
    from distalloc.queueing import optimize
    system = _fork_join(args)
    o = optimize(system, max_jobs=args.max_jobs, max_response=args.max_response,
                 max_energy=args.max_energy)
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
                       help="cores n: every job forks into n tasks, one per core")
        q.add_argument("--needed", type=int, required=True, metavar="k",
                       help="a job is done when k of its n tasks finish (the rest are cancelled)")
        q.add_argument("--rate", type=float, required=True, metavar="λ",
                       help="Poisson job arrival rate (jobs per time unit)")
        q.add_argument("--speeds", default="1", metavar="µ1,µ2",
                       help="service rate of each speed level (default 1)")
        q.add_argument("--powers", default=None, metavar="P1,P2",
                       help="busy power of each speed level (default 1 each)")
        q.add_argument("--probs", default=None, metavar="p1,p2",
                       help="probability that a core serves a task at each level, summing to 1 "
                       "(default uniform)")
        q.add_argument("--idle-power", type=float, default=0.0, metavar="P0",
                       help="power drawn by an idle core")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    for name, helptext in (("approx", "closed-form approximation"),
                           ("exact", "truncated Markov chain (small systems)"),
                           ("simulate", "compiled simulation with confidence intervals")):
        q = q_sub.add_parser(name, help=helptext)
        system_options(q)
        if name == "exact":
            q.add_argument("--max-jobs", type=int, default=None, metavar="N",
                           help="truncation level (default: doubled until the tail is small)")
            q.add_argument("--tail-tol", type=float, default=1e-8, metavar="ε",
                           help="largest probability mass allowed beyond the truncation")
        if name == "simulate":
            q.add_argument("--jobs", type=int, default=1_000_000, metavar="N",
                           help="jobs simulated per replication")
            q.add_argument("--replications", type=int, default=1, metavar="R",
                           help="independent replications (1: batch means give the "
                           "confidence intervals)")
            q.add_argument("--seed", type=int, default=0, metavar="N",
                           help="random seed")
        q.set_defaults(func=_cmd_queue)
    q = q_sub.add_parser("tradeoff", help="E[N]-energy curve over the fast-level probability")
    system_options(q)
    q.add_argument("--points", type=int, default=21, metavar="N",
                   help="points on the curve, evenly spaced in the fast level's probability")
    q.add_argument("--method", choices=["approx", "exact", "simulate"], default="approx",
                   help="how each point is computed")
    q.add_argument("--plot", default=None, metavar="FILE",
                   help="write the E[N]-energy curve as an image (.png, .pdf, .svg)")
    q.set_defaults(func=_cmd_queue_tradeoff)
    q = q_sub.add_parser("optimize", help="minimum-energy speed mix under a latency bound")
    system_options(q)
    q.add_argument("--max-jobs", type=float, default=None, metavar="N",
                   help="minimise energy per job subject to E[N] <= N")
    q.add_argument("--max-response", type=float, default=None, metavar="T",
                   help="minimise energy per job subject to E[T] <= T")
    q.add_argument("--max-energy", type=float, default=None, metavar="E",
                   help="instead: minimise E[N] subject to energy per job <= E")
    q.set_defaults(func=_cmd_queue_optimize)
