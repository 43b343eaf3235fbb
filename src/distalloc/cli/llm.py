"""``distalloc llm``: plan, simulate, compare, scenario, calibrate (SPEC 4.2, 1.10, 1.11).

``calibrate`` is built by :mod:`distalloc.cli.llm_calibrate` and registered here."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from distalloc._validation import ValidationError
from distalloc.cli._common import Parser, floats, guarded, print_json

__all__ = ["add_parser"]


def _scenario(args) -> Any:
    from distalloc.llm.builtins import resolve_scenario
    sc = resolve_scenario(args.scenario, num_servers=getattr(args, "servers", None),
                          seed=getattr(args, "scenario_seed", None) or 0,
                          input_tokens=getattr(args, "input_tokens", None),
                          output_tokens=getattr(args, "output_tokens", None),
                          max_memory_gb=getattr(args, "max_memory_gb", None))
    if getattr(args, "profile", None):
        from distalloc.llm.calibrate import apply_profile, load_profile
        sc = apply_profile(sc, load_profile(args.profile))
    return sc


def _rate_text(workload) -> str:
    """The realised arrival rate of a workload, as measured from its arrivals."""
    rate = workload.rate_per_s
    if not math.isfinite(rate):
        return "all arriving at once"
    return f"realised {rate:.3g} req/s"


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


def _read_placement(path: str | None) -> Any:
    """The JSON list of {server, first_block, num_blocks} of --placement FILE."""
    if path is None:
        return None
    import json

    from distalloc._validation import read_text
    text = read_text(path, "Placement file")  # missing, folder, unreadable, not UTF-8
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = (f" at line {exc.lineno}, column {exc.colno}"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise ValidationError(f"Placement file '{path}' is not valid JSON{where}.") from None


def _chain_options(args) -> dict:
    """--reservation/--rate/--target-load/--placement of the chain methods (SPEC 1.10)."""
    opts = {"reservation": getattr(args, "reservation", None),
            "target_load": getattr(args, "target_load", None),
            "placement": _read_placement(getattr(args, "placement", None))}
    return {k: v for k, v in opts.items() if v is not None}


def _chains_table(plan: Any, scenario: Any) -> str:
    d = plan.to_dict()
    lines = [f"{plan.method}: reservation c = {d.get('reservation')}, design rate "
             f"{d.get('design_rate_per_s', 0):.4g} req/s, target load {d.get('target_load', 0):g}, "
             f"{len(d['chains'])} chains, {d.get('job_slots')} job slots, service rate "
             f"{d['service_rate_per_s']:.4g} jobs/s",
             f"Theorem 4 mean response: {_fmt_s(d['bound_lower_s'])} <= T <= "
             f"{_fmt_s(d['bound_upper_s'])} s"]
    if d.get("search"):
        s = d["search"]
        groupings = (f" over {s['groupings']} client groupings" if s.get("groupings", 1) > 1
                     else "")
        lines.append(f"search over c: {s['evaluated']} values{groupings} in "
                     f"{s['search_s'] * 1e3:.1f} ms (stopped: {s['stop']})")
    labels = d.get("client_groups") or []
    if len({g for g in labels if g is not None}) > 1:      # chains composed per client group
        names = [", ".join(n for n, g in zip(scenario.client_names, labels) if g == k)
                 for k in range(max(g for g in labels if g is not None) + 1)]
        lines.append("client groups: " + " | ".join(f"{k}: {n}" for k, n in enumerate(names)))
        groups = [("shared" if g is None else f"group {g}") for g in d["chain_groups"]]
    else:
        groups = [""] * len(d["chains"])
    lines.append(f"{'chain':>6} {'capacity':>9} {'service_s':>10}  servers (blocks)")
    for q, ch in enumerate(d["chains"][:20]):
        hops = " -> ".join(scenario.server_names[j] for j in ch["servers"])
        lines.append(f"{q:>6} {ch['capacity']:>9} {ch['service_s']:>10.3f}  {hops}"
                     + (f"  [{groups[q]}]" if groups[q] else ""))
    if len(d["chains"]) > 20:
        lines.append(f"   ... {len(d['chains']) - 20} more chains")
    return "\n".join(lines)


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _cmd_llm_plan(args) -> int:
    from distalloc.llm.chains import CHAIN_METHODS
    from distalloc.llm.methods import plan
    sc = _scenario(args)
    methods = [args.method] if args.method else (["cg-bprr"] if args.json else ["cg-bprr", "petals"])
    opts = _chain_options(args)
    if args.rate is not None:
        opts["rate_per_s"] = args.rate
    if opts and not set(methods) <= set(CHAIN_METHODS):
        raise ValidationError(f"Option '--{sorted(opts)[0].replace('_per_s', '').replace('_', '-')}' "
                              f"applies only to --method {' or '.join(CHAIN_METHODS)}.")
    milp_opts = {"time-limit": args.time_limit, "solver": args.solver,
                 "formulation": args.formulation, "threads": args.threads}
    given = [k for k, v in milp_opts.items() if v is not None]
    if given and methods != ["milp"]:
        raise ValidationError(f"Option '--{given[0]}' applies only to --method milp "
                              f"(got {args.method or 'the default cg-bprr,petals'}).")
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests, max_memory_gb=args.max_memory_gb)
    milp_kw = {k: v for k, v in (("time_limit_s", args.time_limit), ("solver", args.solver),
                                 ("formulation", args.formulation), ("threads", args.threads))
               if v is not None}
    plans = [plan(sc, m, seed=args.seed, max_memory_gb=args.max_memory_gb,
                  **(milp_kw if m == "milp" else {}),
                  **(opts if m in CHAIN_METHODS else {}))
             for m in methods]
    if args.json:
        print_json(plans[0].to_dict())
    else:
        print(_plan_table(plans, sc))
        for p in plans:
            if p.method in CHAIN_METHODS and p.feasible:
                print()
                print(_chains_table(p, sc))
    if args.plot:
        if any(p.method in CHAIN_METHODS for p in plans):
            from distalloc.plots import chain_map
            chain_map(sc, plans, args.plot)
        else:
            from distalloc.plots import placement_map
            placement_map(sc, plans, args.plot,
                          title=f"{sc.name}: {sc.num_servers} servers, L = {sc.num_blocks} "
                          f"blocks, |R| = {sc.num_requests} requests, PETALS join order seed "
                          f"{args.seed}")
    return 0


def _cmd_llm_scenario(args) -> int:
    sc = _scenario(args)
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests, max_memory_gb=args.max_memory_gb)
    if args.json:
        print_json(sc.to_dict())
    else:
        print(sc.to_json(indent=1))
    return 0


def _online_kwargs(args, scenario, chain_methods: bool = False) -> dict:
    """Workload options shared by simulate and compare; Poisson defaults 0.5 req/s and
    100 requests when neither the command line nor the scenario file gives them.  With a
    trace, --rate is only the chain methods' design rate (``chain_methods``: some method
    run takes it); otherwise it would be ignored, so it is refused."""
    kw: dict[str, Any] = dict(planned_requests=args.planned_requests, noise=args.noise,
                              allocation_delay_s=args.allocation_delay, service=args.service,
                              max_memory_gb=args.max_memory_gb)
    if args.churn is not None:
        kw["churn"] = args.churn
    if args.client_weights is not None:
        kw["client_weights"] = floats(args.client_weights, "client-weights")
    if args.trace is not None or "trace" in scenario.online:
        if args.rate is not None and not chain_methods:
            from distalloc.llm.chains import CHAIN_METHODS
            raise ValidationError(f"Option '--rate' ({args.rate:g}) does not apply to a trace "
                                  "workload (the trace gives the arrivals); with a trace it is "
                                  f"only the design rate of --method {' or '.join(CHAIN_METHODS)}.")
        kw.update(trace=args.trace, time_scale=args.time_scale, num_requests=args.num_requests,
                  trace_format=args.trace_format)
    elif args.trace_format is not None or args.time_scale is not None:
        raise ValidationError("The 'trace-format' and 'time-scale' options apply only to a "
                              "trace workload (give --trace).")
    else:
        kw["rate_per_s"] = (args.rate if args.rate is not None
                            else scenario.online.get("rate_per_s", 0.5))
        kw["num_requests"] = (args.num_requests if args.num_requests is not None
                              else scenario.online.get("num_requests", 100))
    return kw


def _cmd_llm_simulate(args) -> int:
    from distalloc.llm.chains import CHAIN_METHODS
    from distalloc.llm.simulation import simulate
    sc = _scenario(args)
    kw = _online_kwargs(args, sc, chain_methods=args.method in CHAIN_METHODS)
    opts = _chain_options(args)
    if args.method in CHAIN_METHODS:
        kw.update(opts)
        if "trace" in kw and args.rate is not None:
            kw["design_rate_per_s"] = args.rate
    elif opts:
        raise ValidationError(f"Option '--{sorted(opts)[0].replace('_', '-')}' applies only "
                              f"to --method {' or '.join(CHAIN_METHODS)}.")
    if args.plot and args.method != "chains":
        raise ValidationError("The 'plot' option of llm simulate draws the response time "
                              "against the reservation c: it needs --method chains.")
    res = simulate(sc, args.method, seed=args.seed, **kw)
    d = res.to_dict()
    if res.workload.source.startswith("trace:"):
        d["skipped_zero_output"] = res.workload.skipped_zero_output
    if args.plot:
        _response_plot(args, sc, res)
    if args.json:
        d.pop("join_order", None)
        print_json(d)
    else:
        wl = res.workload
        print(f"scenario {sc.name}: {sc.num_servers} servers, {wl.num_requests} "
              f"requests ({wl.source}, {_rate_text(wl)}), "
              f"method {res.method}" + (f", planned |R| = {res.planned_requests}"
                                        if res.planned_requests else ""))
        if "reservation" in d:
            print(f"chains: reservation c = {d['reservation']}, {d['num_chains']} chains, "
                  f"{d['job_slots']} job slots, service rate {d['service_rate_per_s']:.4g} "
                  f"jobs/s, Theorem 4 at {d['design_rate_per_s']:.4g} req/s: "
                  f"{_fmt_s(d['bound_lower_s'])} <= T <= {_fmt_s(d['bound_upper_s'])} s")
        keys = ["mean_response_s", "p95_response_s", "mean_token_s", "p50_token_s",
                "p95_token_s", "mean_ttft_s", "mean_wait_s", "mean_retries", "dropped",
                "allocation_delay_s", "events", "wall_s"]
        if getattr(res, "churn", None) is not None:
            keys += ["interrupted", "lost_token_s", "lost_tokens", "availability", "failures"]
        for key in keys:
            v = d[key]
            print(f"{key:>20}  {v:.4g}" if isinstance(v, float) else f"{key:>20}  {v}")
        if res.dropped:
            print(f"note: {res.dropped} of {wl.num_requests} requests were never served; "
                  "the metrics above are over the served ones")
        if wl.skipped_zero_output:
            print(f"note: {wl.skipped_zero_output} trace rows generated no token and were "
                  "not replayed")
    return 0


def _response_plot(args, scenario, res) -> None:
    """--plot of llm simulate --method chains: Theorem 4's bounds and the simulated mean
    response time against the reservation c, on this run's arrivals and work draws."""
    from distalloc.llm.jffc import response_curve
    from distalloc.plots import response_vs_reservation
    wl = res.workload
    factor = np.ones(wl.num_requests)
    if args.service == "exponential":
        factor = np.random.default_rng(args.seed).exponential(1.0, wl.num_requests)
    counts = np.bincount(wl.client, minlength=scenario.num_clients)
    rate = res.extra["design_rate_per_s"]
    curve = response_curve(scenario, wl, factor, rate,
                           args.target_load if args.target_load is not None else 0.7,
                           client_weights=counts / counts.sum())
    response_vs_reservation(curve, args.plot, title=f"{scenario.name}: λ = {rate:.3g} req/s, "
                            f"{args.service} service")


def _cmd_llm_compare(args) -> int:
    from distalloc.llm.simulation import ONLINE_METHODS, simulate
    sc = _scenario(args)
    spec = args.methods
    if spec is None:
        spec = "cg-bprr,petals,chains"
    methods = [m.strip() for m in spec.split(",")]
    for m in methods:
        if m not in ONLINE_METHODS:
            raise ValidationError(f"The 'methods' option must name methods among "
                                  f"{', '.join(ONLINE_METHODS)}. Got {m!r} instead.")
    if args.seeds < 1:
        raise ValidationError(f"The 'seeds' option must be >= 1. Got {args.seeds} instead.")
    from distalloc.llm.chains import CHAIN_METHODS
    kw = _online_kwargs(args, sc, chain_methods=bool(set(methods) & set(CHAIN_METHODS)))
    opts = _chain_options(args)
    if "trace" in kw and args.rate is not None:
        opts["design_rate_per_s"] = args.rate
    # every run's per-request arrays are kept for the table and the plot: check the total
    from distalloc.llm.limits import check_memory
    from distalloc.llm.simulation import BYTES_PER_SIMULATED_REQUEST
    n_hint = kw.get("num_requests") or 1
    check_memory(args.seeds * len(methods) * n_hint * BYTES_PER_SIMULATED_REQUEST,
                 f"comparing {len(methods)} methods over {args.seeds} seeds of {n_hint} "
                 "requests", args.max_memory_gb)
    runs = {m: [simulate(sc, m, seed=s, **kw, **(opts if m in CHAIN_METHODS else {}))
                for s in range(args.seeds)] for m in methods}
    keys = ("mean_token_s", "p95_token_s", "mean_response_s", "p95_response_s", "mean_ttft_s",
            "mean_wait_s", "mean_retries")
    if args.churn is not None:
        keys += ("interrupted", "lost_token_s", "availability")
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
              f"{_rate_text(wl)} in seed 0), {args.seeds} seeds (same arrivals for every "
              f"method within a seed); mean +- std over seeds, seconds")
        print(f"{'':>20}" + "".join(f"{m:>24}" for m in methods))
        for k in keys:
            print(f"{k:>20}" + "".join(
                f"{np.mean(table[m][k]):>14.4g} +- {np.std(table[m][k]):<6.2g}" for m in methods))
        if "petals" in methods:
            base = np.mean(table["petals"]["mean_token_s"])
            base_r = np.mean(table["petals"]["mean_response_s"])
            for m in methods:
                if m != "petals":
                    cut = 1 - np.mean(table[m]["mean_token_s"]) / base
                    cut_r = 1 - np.mean(table[m]["mean_response_s"]) / base_r
                    print(f"{m}: mean per-token time {abs(cut):.0%} "
                          f"{'lower' if cut >= 0 else 'higher'} than petals, mean response "
                          f"time {abs(cut_r):.0%} {'lower' if cut_r >= 0 else 'higher'}")
    if args.plot:
        from distalloc.plots import token_time_cdf
        wl = runs[methods[0]][0].workload
        rate = kw.get("rate_per_s")
        token_time_cdf({m: np.concatenate([r.token_s[r.served] for r in rs])
                        for m, rs in runs.items()}, args.plot,
                       title=f"{sc.name}: {wl.num_requests} requests ({wl.source}"
                       + (f" at {rate:g} req/s" if rate is not None else "")
                       + f", {_rate_text(wl)} in seed 0),\n{args.seeds} seeds, allocation "
                       f"delay {args.allocation_delay} s, noise {args.noise:g}")
    return 0


# ------------------------------------------------------------------------------------------


def _add_profile_option(p) -> None:
    p.add_argument("--profile", default=None, metavar="PROFILE.json",
                   help="constants from 'distalloc llm calibrate --out' (servers matched by "
                   "name; the scenario's RTTs read as raw round trips)")


def _add_chain_options(p, rate: bool) -> None:
    """Options of the chain methods (SPEC 1.10)."""
    p.add_argument("--reservation", default=None, metavar="C|auto",
                   help="chains: jobs each GBP-CR chain reserves cache for, or 'auto' "
                   "(default): the Theorem-4 lower-bound search over c")
    if rate:
        p.add_argument("--rate", type=float, default=None, metavar="λ",
                       help="chains: arrival rate the chains are built for (default: the "
                       "scenario's rate_per_s, else 0.5 req/s)")
    p.add_argument("--target-load", type=float, default=None, metavar="ρ̄",
                   help="chains: GBP-CR adds chains until their rate reaches λ/(ρ̄c) "
                   "(default 0.7)")
    p.add_argument("--placement", default=None, metavar="FILE",
                   help="chains: run GCA on this placement (JSON list of {server, "
                   "first_block, num_blocks}) instead of GBP-CR")


def _add_online_options(p) -> None:
    p.add_argument("scenario", help="path to a .json/.toml scenario or a built-in name")
    p.add_argument("--rate", type=float, default=None, metavar="λ",
                   help="Poisson arrival rate, requests/s (default: the scenario's, else 0.5)")
    p.add_argument("--num-requests", type=int, default=None, metavar="N",
                   help="number of requests (default: the scenario's, else 100)")
    p.add_argument("--client-weights", default=None, metavar="W0,W1,...",
                   help="relative arrival rate of each client (default uniform)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="replay a trace: CSV (azure: TIMESTAMP,ContextTokens,GeneratedTokens; "
                   "burstgpt: Timestamp,Request tokens,Response tokens) or mooncake JSON lines "
                   "(timestamp,input_length,output_length); numeric timestamps are seconds "
                   "(mooncake: milliseconds); rows with 0 output tokens are skipped and counted")
    p.add_argument("--trace-format", choices=["azure", "burstgpt", "mooncake"], default=None,
                   help="columns of the trace (default: detected from its header)")
    p.add_argument("--time-scale", type=float, default=None, metavar="X",
                   help="multiply the trace's inter-arrival gaps by X (default 1)")
    p.add_argument("--planned-requests", type=int, default=None, metavar="R",
                   help="CG-BP's planned concurrent sessions |R| (default: the fixed point "
                   "|R| = λT + sqrt(λT) of the expected sessions in service)")
    p.add_argument("--allocation-delay", default="0", metavar="S",
                   help="per-request set-up delay in seconds, one number or per method, "
                   "e.g. petals=250,cg-bprr=60 (default 0)")
    p.add_argument("--noise", type=float, default=0.0, metavar="σ",
                   help="log-normal noise on service times (default 0)")
    p.add_argument("--service", choices=["model", "exponential"], default="model",
                   help="service times from the performance model, or that times an Exp(1) "
                   "work draw (the chain paper's analysis model); default model")
    _add_chain_options(p, rate=False)
    p.add_argument("--churn", default=None, metavar="MTBF_S[:MTTR_S]",
                   help="servers fail after Exp(MTBF) s and come back after Exp(MTTR) s "
                   "(default MTBF/10), re-joining by the method's rule; interrupted sessions "
                   "are re-routed; 0 or 'none' means no churn (default: no churn)")
    p.add_argument("--input-tokens", type=int, default=None, metavar="N",
                   help="static prompt length of a built-in scenario")
    p.add_argument("--output-tokens", type=int, default=None, metavar="N",
                   help="static output length of a built-in scenario")
    p.add_argument("--servers", type=int, default=None, metavar="C",
                   help="number of servers of a topology/synthetic scenario")
    p.add_argument("--scenario-seed", type=int, default=0, metavar="N",
                   help="seed of the built-in scenario's random choices (default 0)")
    _add_profile_option(p)
    _add_memory_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_memory_option(p) -> None:
    from distalloc.llm.limits import default_max_memory_gb
    p.add_argument("--max-memory-gb", type=float, default=None, metavar="GB",
                   help="refuse, before starting, work whose memory estimate exceeds GB "
                   f"(default: half the machine's memory, at most 8; here {default_max_memory_gb():.3g})")


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
    pl.add_argument("--time-limit", type=float, default=None, metavar="S",
                    help="--method milp: time limit in seconds, model building included "
                    "(default 60); at the limit the best "
                    "plan known is returned with the bound and the gap")
    pl.add_argument("--solver", choices=["highs", "cp-sat"], default=None,
                    help="--method milp: solver: HiGHS, or OR-Tools CP-SAT (pip install "
                    "'distalloc[cpsat]') (default highs)")
    pl.add_argument("--formulation", choices=["aggregated", "per-request", "window"],
                    default=None, help="--method milp: formulation: integer flows per client "
                    "and link, one binary per request and link, or one window per server "
                    "and flows over block boundaries (default aggregated)")
    pl.add_argument("--threads", type=int, default=None, metavar="N",
                    help="--method milp: solver threads, at most the machine's CPUs (default 1)")
    pl.add_argument("--seed", type=int, default=0, help="PETALS join order seed (default 0)")
    pl.add_argument("--servers", type=int, default=None, metavar="C",
                    help="number of servers of a topology/synthetic scenario")
    pl.add_argument("--scenario-seed", type=int, default=0, metavar="N",
                    help="seed of the built-in scenario's random choices (default 0)")
    pl.add_argument("--plot", default=None, metavar="FILE",
                    help="write a placement map PNG (with the chains for chain methods)")
    _add_profile_option(pl)
    _add_memory_option(pl)
    pl.add_argument("--json", action="store_true", help="print one JSON object")
    _add_chain_options(pl, rate=True)
    pl.set_defaults(func=guarded(_cmd_llm_plan))

    from distalloc.llm.simulation import ONLINE_METHODS
    sim = llm_sub.add_parser("simulate", help="discrete-event simulation of online serving")
    _add_online_options(sim)
    sim.add_argument("--method", choices=list(ONLINE_METHODS), default="cg-bprr",
                     help="placement and routing method")
    sim.add_argument("--seed", type=int, default=0,
                     help="arrivals, noise and PETALS's join order (default 0)")
    sim.add_argument("--plot", default=None, metavar="FILE",
                     help="--method chains: PNG of the mean response time against the "
                     "reservation c (Theorem 4's bounds and simulated)")
    sim.set_defaults(func=guarded(_cmd_llm_simulate))

    cmp_ = llm_sub.add_parser("compare", help="methods side by side on the same arrivals")
    _add_online_options(cmp_)
    cmp_.add_argument("--methods", default=None, metavar="M1,M2,...",
                      help=f"methods among {', '.join(ONLINE_METHODS)} "
                      "(default cg-bprr,petals,chains)")
    cmp_.add_argument("--seeds", type=int, default=5, metavar="K",
                      help="seeds 0..K-1, each with its own arrivals and join order (default 5)")
    cmp_.add_argument("--plot", default=None, metavar="FILE", help="per-token time CDF PNG")
    cmp_.set_defaults(func=guarded(_cmd_llm_compare))

    scn = llm_sub.add_parser(
        "scenario", help="print a scenario as canonical JSON",
        description="Print a scenario as canonical JSON. Built-ins: clustered, "
        "topology:<Abvt|Bellcanada|GtsCe|AttMpls|path>, synthetic:<servers>[:<blocks>], and "
        "the chain-composition paper's settings chains-sim[:J[:eta[:communication]]] "
        "(BLOOM-176B, J = 20 RIPE Atlas servers, eta = 0.2 high-perf, 0.2 req/s) and "
        "chains-testbed[:communication] (LLaMA-2-7B on 9 MIG slices, Azure code trace); "
        "communication is relay (default), once, matlab or petals.")
    scn.add_argument("scenario", help="built-in name or path (see above)")
    scn.add_argument("--servers", type=int, default=None, metavar="C",
                     help="number of servers of a topology/synthetic scenario")
    scn.add_argument("--scenario-seed", "--seed", dest="scenario_seed", type=int, default=0,
                     metavar="N", help="seed of the built-in scenario's random choices (the "
                     "same option as plan's and simulate's --scenario-seed; --seed is its old "
                     "name) (default 0)")
    scn.add_argument("--num-requests", type=int, default=None, metavar="R",
                     help="size of the request set |R| (clients repeat cyclically)")
    scn.add_argument("--input-tokens", type=int, default=None, metavar="N",
                     help="static prompt length of a built-in scenario")
    scn.add_argument("--output-tokens", type=int, default=None, metavar="N",
                     help="static output length of a built-in scenario")
    _add_memory_option(scn)
    scn.add_argument("--json", action="store_true", help="print one JSON object (compact)")
    scn.set_defaults(func=guarded(_cmd_llm_scenario))

    from distalloc.cli import llm_calibrate
    llm_calibrate.add_parser(llm_sub)
