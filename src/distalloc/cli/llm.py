"""``distalloc llm``: plan, simulate, compare, scenario (SPEC 4.2, 1.10)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from distalloc._validation import ValidationError
from distalloc.cli._common import Parser, floats, print_json

__all__ = ["add_parser"]


def _scenario(args) -> Any:
    from distalloc.llm.scenario import resolve_scenario
    return resolve_scenario(args.scenario, num_servers=getattr(args, "servers", None),
                            seed=getattr(args, "scenario_seed", None) or 0,
                            input_tokens=getattr(args, "input_tokens", None),
                            output_tokens=getattr(args, "output_tokens", None))


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _plan_table(plans: Sequence[Any], scenario: Any) -> str:
    lines = [f"scenario {scenario.name}: {scenario.num_servers} servers, "
             f"{scenario.num_clients} clients, L = {scenario.num_blocks} blocks, "
             f"|R| = {scenario.num_requests} requests"]
    head = f"{'':>22}" + "".join(f"{p.method:>22}" for p in plans)
    lines.append(head)
    for label, get in [
        ("status", lambda p: p.status),
        ("mean per-token ms", lambda p: _fmt_ms(p.mean_token_ms)),
        ("bound ms", lambda p: _fmt_ms(p.bound_ms)),
        ("gap", lambda p: "-" if p.gap is None else f"{p.gap:.2%}"),
        ("servers used", lambda p: str(len(p.placement.to_list())) if p.placement is not None else "-"),
        ("solve ms", lambda p: f"{p.solve_s * 1e3:.2f}"),
    ]:
        lines.append(f"{label:>22}" + "".join(f"{get(p):>22}" for p in plans))
    lines.append("")
    lines.append("placement (blocks per server) and the route of client 0:")
    width = max(len(n) for n in scenario.server_names)
    lines.append(f"{'server':>{width}}" + "".join(f"{p.method:>22}" for p in plans))
    for j, name in enumerate(scenario.server_names):
        cells = []
        for p in plans:
            if p.placement is None or p.placement.num_blocks[j] == 0:
                cells.append("-")
            else:
                a, m = int(p.placement.first_block[j]), int(p.placement.num_blocks[j])
                cells.append(f"[{a}, {a + m})")
        lines.append(f"{name:>{width}}" + "".join(f"{c:>22}" for c in cells))
    for p in plans:
        route = p.routes[0] if p.routes else None
        lines.append(f"{p.method}: " + (" -> ".join(scenario.server_names[j] for j in route)
                                         if route else f"no plan ({p.reason})"))
    return "\n".join(lines)


def _cmd_llm_plan(args) -> int:
    from distalloc.llm.methods import plan
    sc = _scenario(args)
    methods = [args.method] if args.method else (["cg-bprr"] if args.json else ["cg-bprr", "petals"])
    plans = [plan(sc, m, seed=args.seed, num_requests=args.num_requests,
                  time_limit_s=args.time_limit, formulation=args.formulation,
                  solver=args.solver, threads=args.threads) for m in methods]
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests)
    if args.json:
        print_json(plans[0].to_dict())
    else:
        print(_plan_table(plans, sc))
    if args.plot:
        from distalloc.plots import placement_map
        placement_map(sc, plans, args.plot)
    return 0


def _cmd_llm_scenario(args) -> int:
    sc = _scenario(args)
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests)
    if args.json:
        print_json(sc.to_dict())
    else:
        print(sc.to_json(indent=1))
    return 0


def _online_kwargs(args, scenario) -> dict:
    """Workload options shared by simulate and compare; Poisson defaults 0.5 req/s and
    100 requests when neither the command line nor the scenario file gives them."""
    kw: dict[str, Any] = dict(planned_requests=args.planned_requests, noise=args.noise,
                              allocation_delay_s=args.allocation_delay)
    if args.client_weights is not None:
        kw["client_weights"] = floats(args.client_weights, "client-weights")
    if args.trace is not None or "trace" in scenario.online:
        kw.update(trace=args.trace, time_scale=args.time_scale, num_requests=args.num_requests)
    else:
        kw["rate_per_s"] = (args.rate if args.rate is not None
                            else scenario.online.get("rate_per_s", 0.5))
        kw["num_requests"] = (args.num_requests if args.num_requests is not None
                              else scenario.online.get("num_requests", 100))
    return kw


def _cmd_llm_simulate(args) -> int:
    from distalloc.llm.simulation import simulate
    sc = _scenario(args)
    res = simulate(sc, args.method, seed=args.seed, **_online_kwargs(args, sc))
    d = res.to_dict()
    if args.json:
        d.pop("join_order", None)
        print_json(d)
    else:
        print(f"scenario {sc.name}: {sc.num_servers} servers, {res.workload.num_requests} "
              f"requests ({res.workload.source}, {res.workload.rate_per_s:.3g} req/s), "
              f"method {res.method}" + (f", planned |R| = {res.planned_requests}"
                                        if res.planned_requests else ""))
        for key in ("mean_token_s", "p50_token_s", "p95_token_s", "mean_ttft_s", "mean_wait_s",
                    "mean_retries", "dropped", "allocation_delay_s", "events", "wall_s"):
            v = d[key]
            print(f"{key:>20}  {v:.4g}" if isinstance(v, float) else f"{key:>20}  {v}")
    return 0


def _cmd_llm_compare(args) -> int:
    from distalloc.llm.simulation import ONLINE_METHODS, simulate
    sc = _scenario(args)
    methods = [m.strip() for m in args.methods.split(",")]
    for m in methods:
        if m not in ONLINE_METHODS:
            raise ValidationError(f"The 'methods' option must name methods among "
                                  f"{', '.join(ONLINE_METHODS)}. Got {m!r} instead.")
    if args.seeds < 1:
        raise ValidationError(f"The 'seeds' option must be >= 1. Got {args.seeds} instead.")
    kw = _online_kwargs(args, sc)
    runs = {m: [simulate(sc, m, seed=s, **kw) for s in range(args.seeds)] for m in methods}
    keys = ("mean_token_s", "p95_token_s", "mean_ttft_s", "mean_wait_s", "mean_retries")
    table = {m: {k: [r.to_dict()[k] for r in rs] for k in keys} for m, rs in runs.items()}
    if args.json:
        print_json({"scenario": sc.name, "seeds": args.seeds,
                     "methods": {m: {**{k: float(np.mean(v)) for k, v in t.items()},
                                     **{f"{k}_std": float(np.std(v)) for k, v in t.items()},
                                     "per_seed_mean_token_s": t["mean_token_s"],
                                     "planned_requests": [r.planned_requests for r in runs[m]],
                                     "dropped": int(sum(r.dropped for r in runs[m]))}
                                 for m, t in table.items()}})
    else:
        wl = runs[methods[0]][0].workload
        print(f"scenario {sc.name}: {wl.num_requests} requests ({wl.source}, "
              f"{wl.rate_per_s:.3g} req/s), {args.seeds} seeds (same arrivals for every "
              f"method within a seed); mean +- std over seeds, seconds")
        print(f"{'':>20}" + "".join(f"{m:>24}" for m in methods))
        for k in keys:
            print(f"{k:>20}" + "".join(
                f"{np.mean(table[m][k]):>14.4g} +- {np.std(table[m][k]):<6.2g}" for m in methods))
        if "petals" in methods:
            base = np.mean(table["petals"]["mean_token_s"])
            for m in methods:
                if m != "petals":
                    cut = 1 - np.mean(table[m]["mean_token_s"]) / base
                    print(f"{m}: mean per-token time {cut:+.0%} against petals "
                          f"({'cut' if cut > 0 else 'increase'})")
    if args.plot:
        from distalloc.plots import token_time_cdf
        token_time_cdf({m: np.concatenate([r.token_s[r.served] for r in rs])
                        for m, rs in runs.items()}, args.plot, title=sc.name)
    return 0




# ------------------------------------------------------------------------------------------


def _add_online_options(p) -> None:
    p.add_argument("scenario", help="path to a .json/.toml scenario or a built-in name")
    p.add_argument("--rate", type=float, default=None, metavar="λ",
                   help="Poisson arrival rate, requests/s (default: the scenario's, else 0.5)")
    p.add_argument("--num-requests", type=int, default=None, metavar="N",
                   help="number of requests (default: the scenario's, else 100)")
    p.add_argument("--client-weights", default=None, metavar="W0,W1,...",
                   help="relative arrival rate of each client (default uniform)")
    p.add_argument("--trace", default=None, metavar="CSV",
                   help="replay a TIMESTAMP,ContextTokens,GeneratedTokens trace")
    p.add_argument("--time-scale", type=float, default=None, metavar="X",
                   help="multiply the trace's inter-arrival gaps by X")
    p.add_argument("--planned-requests", type=int, default=None, metavar="R",
                   help="CG-BP's planned concurrent sessions |R| (default: SPEC 1.7 fixed point)")
    p.add_argument("--allocation-delay", default="0", metavar="S",
                   help="per-request set-up delay in seconds, one number or per method, "
                   "e.g. petals=250,cg-bprr=60 (default 0)")
    p.add_argument("--noise", type=float, default=0.0, metavar="σ",
                   help="log-normal noise on service times (default 0)")
    p.add_argument("--input-tokens", type=int, default=None, metavar="N",
                   help="static prompt length of a built-in scenario")
    p.add_argument("--output-tokens", type=int, default=None, metavar="N",
                   help="static output length of a built-in scenario")
    p.add_argument("--servers", type=int, default=None, metavar="C")
    p.add_argument("--scenario-seed", type=int, default=0, metavar="N")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(sub) -> None:
    llm = sub.add_parser("llm", help="pipeline-parallel LLM inference (PETALS setting)")
    llm_sub = llm.add_subparsers(dest="command", required=True, parser_class=Parser)

    from distalloc.llm.methods import METHODS
    pl = llm_sub.add_parser("plan", help="offline block placement and routing")
    pl.add_argument("scenario", help="path to a .json/.toml scenario or a built-in name "
                    "(clustered, topology:GtsCe, synthetic:1000)")
    pl.add_argument("--method", choices=list(METHODS), default=None,
                    help="placement method (default: cg-bprr and petals side by side; "
                    "cg-bprr with --json)")
    pl.add_argument("--num-requests", type=int, default=None, metavar="R",
                    help="size of the request set |R| (clients repeat cyclically)")
    pl.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                    help="MILP time limit in seconds (default 60); at the limit the best "
                    "plan known is returned with the bound and the gap")
    pl.add_argument("--solver", choices=["highs", "cp-sat"], default="highs",
                    help="MILP solver: HiGHS, or OR-Tools CP-SAT (pip install "
                    "'distalloc[cpsat]') (default highs)")
    pl.add_argument("--formulation", choices=["aggregated", "per-request"],
                    default="aggregated", help="MILP formulation: integer flows per client "
                    "and link, or one binary per request and link (default aggregated)")
    pl.add_argument("--threads", type=int, default=1, metavar="N",
                    help="MILP solver threads (default 1)")
    pl.add_argument("--seed", type=int, default=0, help="PETALS join order seed (default 0)")
    pl.add_argument("--servers", type=int, default=None, metavar="C",
                    help="number of servers of a topology/synthetic scenario")
    pl.add_argument("--scenario-seed", type=int, default=0, metavar="N",
                    help="seed of the built-in scenario's random choices (default 0)")
    pl.add_argument("--plot", default=None, metavar="FILE", help="write a placement map PNG")
    pl.add_argument("--json", action="store_true", help="print one JSON object")
    pl.set_defaults(func=_cmd_llm_plan)

    from distalloc.llm.simulation import ONLINE_METHODS
    sim = llm_sub.add_parser("simulate", help="discrete-event simulation of online serving")
    _add_online_options(sim)
    sim.add_argument("--method", choices=list(ONLINE_METHODS), default="cg-bprr")
    sim.add_argument("--seed", type=int, default=0,
                     help="arrivals, noise and PETALS's join order (default 0)")
    sim.set_defaults(func=_cmd_llm_simulate)

    cmp_ = llm_sub.add_parser("compare", help="methods side by side on the same arrivals")
    _add_online_options(cmp_)
    cmp_.add_argument("--methods", default="cg-bprr,petals", metavar="M1,M2,...",
                      help=f"methods among {', '.join(ONLINE_METHODS)} (default cg-bprr,petals)")
    cmp_.add_argument("--seeds", type=int, default=5, metavar="K",
                      help="seeds 0..K-1, each with its own arrivals and join order (default 5)")
    cmp_.add_argument("--plot", default=None, metavar="FILE", help="per-token time CDF PNG")
    cmp_.set_defaults(func=_cmd_llm_compare)

    scn = llm_sub.add_parser("scenario", help="print a scenario as canonical JSON")
    scn.add_argument("scenario")
    scn.add_argument("--servers", type=int, default=None, metavar="C")
    scn.add_argument("--seed", dest="scenario_seed", type=int, default=0, metavar="N",
                     help="seed of the built-in scenario's random choices (default 0)")
    scn.add_argument("--num-requests", type=int, default=None, metavar="R")
    scn.add_argument("--input-tokens", type=int, default=None, metavar="N")
    scn.add_argument("--output-tokens", type=int, default=None, metavar="N")
    scn.add_argument("--json", action="store_true")
    scn.set_defaults(func=_cmd_llm_scenario)
