"""The ``distalloc`` command line (SPEC 4.2 contract).

``--json`` prints one JSON object on stdout and nothing else there; otherwise a
human-readable table.  Exit status 0 on success, 2 on bad input with a one-line message on
stderr (no traceback).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
from typing import Any, Sequence

from distalloc._validation import ValidationError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401
        raise ValidationError(f"{self.prog}: {message}")


def _json_default(obj: Any) -> Any:
    import numpy as np
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Non-finite floats become null so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _print_json(obj: dict) -> None:
    print(json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default)))))


# ------------------------------------------------------------------------------------------
# llm
# ------------------------------------------------------------------------------------------
def _scenario(args) -> Any:
    from distalloc.llm.scenario import resolve_scenario
    return resolve_scenario(args.scenario, num_servers=getattr(args, "servers", None),
                            seed=getattr(args, "scenario_seed", None) or 0,
                            input_tokens=getattr(args, "input_tokens", None),
                            output_tokens=getattr(args, "output_tokens", None))


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(f"The '{name}' option must be comma-separated numbers. "
                              f"Got {text!r} instead.") from None


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
    from distalloc.llm.placement import plan
    sc = _scenario(args)
    methods = [args.method] if args.method else (["cg-bprr"] if args.json else ["cg-bprr", "petals"])
    plans = [plan(sc, m, seed=args.seed, num_requests=args.num_requests,
                  time_limit_s=args.time_limit) for m in methods]
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests)
    if args.json:
        _print_json(plans[0].to_dict())
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
        _print_json(sc.to_dict())
    else:
        print(sc.to_json(indent=1))
    return 0


def _online_kwargs(args, scenario) -> dict:
    """Workload options shared by simulate and compare; Poisson defaults 0.5 req/s and
    100 requests when neither the command line nor the scenario file gives them."""
    kw: dict[str, Any] = dict(planned_requests=args.planned_requests, noise=args.noise,
                              allocation_delay_s=args.allocation_delay)
    if args.client_weights is not None:
        kw["client_weights"] = _floats(args.client_weights, "client-weights")
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
        _print_json(d)
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
    import numpy as np
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
        _print_json({"scenario": sc.name, "seeds": args.seeds,
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
# sgd
# ------------------------------------------------------------------------------------------
def _cmd_sgd_schedule(args) -> int:
    from distalloc.sgd import bound_schedule, parse_model
    sch = bound_schedule(args.workers, args.lr, args.smoothness, args.strong_convexity,
                         args.noise_var, args.batch, args.initial_gap,
                         model=parse_model(args.model) if args.model else None, rate=args.rate,
                         step=args.step)
    if args.json:
        _print_json({"switch_times": sch.switch_times.tolist(),
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
        _print_json(res.to_dict())
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
            print("  k steps (time: k): " + ", ".join(f"{res.time[i]:.4g}: {res.k[i]}"
                                                       for i in steps[:12]))
    if args.plot:
        from distalloc.plots import sgd_error
        sgd_error([res], args.plot, title=f"{args.problem}, n = {args.workers}")
    return 0


# ------------------------------------------------------------------------------------------
# queue
# ------------------------------------------------------------------------------------------
def _fork_join(args):
    from distalloc.queueing import ForkJoin
    speeds = _floats(args.speeds, "speeds")
    powers = _floats(args.powers, "powers") if args.powers else None
    probs = _floats(args.probs, "probs") if args.probs else None
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
        _print_json(d)
    else:
        _print_metrics(d)
    return 0


def _cmd_queue_tradeoff(args) -> int:
    from distalloc.queueing import tradeoff
    system = _fork_join(args)
    t = tradeoff(system, args.points, method=args.method)
    if args.json:
        _print_json(t.to_dict())
    else:
        print(f"{'p(fast)':>8} {'E[N]':>10} {'E[T]':>10} {'energy/job':>12}")
        for p, n_, t_, e in zip(t.switch_prob, t.mean_jobs, t.mean_response, t.energy_per_job):
            print(f"{p:8.3f} {n_:10.4g} {t_:10.4g} {e:12.5g}")
    if args.plot:
        from distalloc.plots import tradeoff_curve
        tradeoff_curve(t, args.plot, title=f"({system.servers},{system.needed}) fork-join, "
                       f"rate {system.rate:g}")
    return 0


def _cmd_queue_optimize(args) -> int:
    from distalloc.queueing import optimize
    system = _fork_join(args)
    o = optimize(system, max_jobs=args.max_jobs, max_response=args.max_response,
                 max_energy=args.max_energy)
    if args.json:
        _print_json(o.to_dict())
    else:
        _print_metrics(o.to_dict())
    return 0



# ------------------------------------------------------------------------------------------
# sweep and demo
# ------------------------------------------------------------------------------------------
def _cmd_sweep(args) -> int:
    from pathlib import Path

    from distalloc.sweep import load_sweep, run_sweep
    config = load_sweep(args.config)
    out = args.out or f"{Path(args.config).stem}.csv"
    if args.n_jobs is not None and args.n_jobs < 1:
        raise ValidationError(f"The 'n-jobs' option must be >= 1. Got {args.n_jobs} instead.")
    summary = run_sweep(config, out, n_jobs=args.n_jobs, scheduler=args.scheduler,
                        chunk_size=args.chunk_size, progress=False if args.quiet else None)
    msg = (f"{config.target}: {summary['tasks']} tasks, {summary['skipped']} already in {out}, "
           f"{summary['written']} written in {summary['wall_s']:.2f} s")
    if args.json:
        _print_json({"out": str(out), **summary})
    elif not args.quiet:
        print(msg)
    return 0


def _cmd_demo(args) -> int:
    from pathlib import Path

    from distalloc.llm import clustered
    from distalloc.llm.simulation import simulate
    from distalloc.plots import sgd_error, token_time_cdf, tradeoff_curve
    from distalloc.queueing import ForkJoin, optimize, tradeoff
    from distalloc.sgd import run, synthetic_regression
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
                   str(out / "llm_token_cdf.png"), title="clustered, 0.5 req/s")
    print("== 2. Fastest-k SGD: adaptive against fixed k (synthetic regression, n = 50) ==")
    prob = synthetic_regression()
    res = [run(prob, 50, p, seed=0, **kw) for p, kw in
           (("fixed:10", {}), ("fixed:40", {}), ("bound", {}), ("pflug:10:10:10:200", {"k_max": 40}))]
    target = res[1].error.min()
    for r in res:
        t = r.time_to_error(target)
        print(f"  {r.policy:>20}: lowest error {r.error.min():.3g}, reaches fixed k = 40's "
              f"lowest at t = " + ("never" if not np.isfinite(t) else f"{t:,.0f}"))
    sgd_error(res, str(out / "sgd_error.png"), title="synthetic regression, n = 50")
    print("== 3. (10,5) fork-join, two speeds: latency against energy ==")
    system = ForkJoin(10, 5, 2.0, [1.0, 3.0], [1.0, 6.0], [0.5, 0.5], idle_power=0.1)
    t = tradeoff(system, 11)
    for p, n_, e in zip(t.switch_prob, t.mean_jobs, t.energy_per_job):
        if np.isfinite(n_):
            print(f"  p(fast) {p:.1f}: E[N] {n_:6.3f}, energy per job {e:6.3f}")
    best = optimize(system, max_jobs=2.0)
    print(f"  minimum energy with E[N] <= 2: p(fast) = {best.probs[1]:.3f}, energy per job "
          f"{best.metrics.energy_per_job:.3f}")
    tradeoff_curve(t, str(out / "forkjoin_tradeoff.png"), title="(10,5) fork-join, rate 2")
    print(f"plots written to {out}/: llm_token_cdf.png, sgd_error.png, forkjoin_tradeoff.png")
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="distalloc", description="Resource allocation for distributed computing "
                "on heterogeneous, straggling servers.")
    sub = p.add_subparsers(dest="family", required=True, parser_class=_Parser)

    llm = sub.add_parser("llm", help="pipeline-parallel LLM inference (PETALS setting)")
    llm_sub = llm.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from distalloc.llm.placement import METHODS
    pl = llm_sub.add_parser("plan", help="offline block placement and routing")
    pl.add_argument("scenario", help="path to a .json/.toml scenario or a built-in name "
                    "(clustered, topology:GtsCe, synthetic:1000)")
    pl.add_argument("--method", choices=list(METHODS), default=None,
                    help="placement method (default: cg-bprr and petals side by side; "
                    "cg-bprr with --json)")
    pl.add_argument("--num-requests", type=int, default=None, metavar="R",
                    help="size of the request set |R| (clients repeat cyclically)")
    pl.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                    help="MILP time limit in seconds (default 60)")
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
    sgd = sub.add_parser("sgd", help="fastest-k distributed SGD with adaptive k")
    sgd_sub = sgd.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sc = sgd_sub.add_parser("schedule", help="bound-optimal switching times (SPEC 2.2)")
    sc.add_argument("--workers", type=int, required=True, metavar="n")
    sc.add_argument("--lr", type=float, required=True, metavar="η")
    sc.add_argument("--smoothness", type=float, required=True, metavar="L")
    sc.add_argument("--strong-convexity", type=float, required=True, metavar="c")
    sc.add_argument("--noise-var", type=float, required=True, metavar="σ²")
    sc.add_argument("--batch", type=int, required=True, metavar="s")
    sc.add_argument("--initial-gap", type=float, required=True, metavar="e0")
    sc.add_argument("--rate", type=float, default=1.0, metavar="λ",
                    help="exponential response-time rate (default 1)")
    sc.add_argument("--model", default=None, metavar="SPEC",
                    help="response times instead of Exp(rate): exp:RATE, shifted-exp:SHIFT:RATE, "
                    "pareto:SCALE:SHAPE, lognormal:MU:SIGMA")
    sc.add_argument("--step", type=int, default=1)
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=_cmd_sgd_schedule)
    sr = sgd_sub.add_parser("run", help="simulate fastest-k SGD")
    sr.add_argument("--problem", choices=["synthetic", "diabetes", "digits"], default="synthetic")
    sr.add_argument("--workers", type=int, default=50, metavar="n")
    sr.add_argument("--policy", default="pflug", metavar="P",
                    help="fixed:K, sync, bound[:STEP], pflug[:K0:STEP:THRESH:BURNIN], dbw[:K0], "
                         "async")
    sr.add_argument("--horizon", type=float, default=None, metavar="T")
    sr.add_argument("--lr", type=float, default=None, metavar="η")
    sr.add_argument("--model", default=None, metavar="SPEC")
    sr.add_argument("--k-max", type=int, default=None, metavar="K",
                    help="largest k for pflug and dbw (default n)")
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--plot", default=None, metavar="FILE")
    sr.add_argument("--json", action="store_true")
    sr.set_defaults(func=_cmd_sgd_run)

    queue = sub.add_parser("queue", help="(n,k) fork-join queues with speed levels")
    q_sub = queue.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def system_options(q):
        q.add_argument("--servers", type=int, required=True, metavar="n")
        q.add_argument("--needed", type=int, required=True, metavar="k")
        q.add_argument("--rate", type=float, required=True, metavar="λ")
        q.add_argument("--speeds", default="1", metavar="µ1,µ2", help="service rates (default 1)")
        q.add_argument("--powers", default=None, metavar="P1,P2", help="busy powers (default 1 each)")
        q.add_argument("--probs", default=None, metavar="p1,p2",
                       help="speed-level probabilities (default uniform)")
        q.add_argument("--idle-power", type=float, default=0.0, metavar="P0")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    for name, helptext in (("approx", "closed-form approximation"),
                           ("exact", "truncated Markov chain (small systems)"),
                           ("simulate", "compiled simulation with confidence intervals")):
        q = q_sub.add_parser(name, help=helptext)
        system_options(q)
        if name == "exact":
            q.add_argument("--max-jobs", type=int, default=None, metavar="N",
                           help="truncation level (default: doubled until the tail is small)")
            q.add_argument("--tail-tol", type=float, default=1e-8)
        if name == "simulate":
            q.add_argument("--jobs", type=int, default=1_000_000, metavar="N")
            q.add_argument("--replications", type=int, default=1, metavar="R")
            q.add_argument("--seed", type=int, default=0)
        q.set_defaults(func=_cmd_queue)
    q = q_sub.add_parser("tradeoff", help="E[N]-energy curve over the fast-level probability")
    system_options(q)
    q.add_argument("--points", type=int, default=21)
    q.add_argument("--method", choices=["approx", "exact", "simulate"], default="approx")
    q.add_argument("--plot", default=None, metavar="FILE")
    q.set_defaults(func=_cmd_queue_tradeoff)
    q = q_sub.add_parser("optimize", help="minimum-energy speed mix under a latency bound")
    system_options(q)
    q.add_argument("--max-jobs", type=float, default=None, metavar="N")
    q.add_argument("--max-response", type=float, default=None, metavar="T")
    q.add_argument("--max-energy", type=float, default=None, metavar="E",
                   help="instead: minimise E[N] subject to energy per job <= E")
    q.set_defaults(func=_cmd_queue_optimize)
    sw = sub.add_parser("sweep", help="run a parameter sweep (SPEC 4.1)")
    sw.add_argument("config", help="sweep TOML file")
    sw.add_argument("--n-jobs", type=int, default=None, metavar="N",
                    help="local worker processes (default: all cores)")
    sw.add_argument("--scheduler", default=None, metavar="ADDR",
                    help="Dask scheduler address (default $DASK_SCHEDULER_ADDRESS)")
    sw.add_argument("--out", default=None, metavar="FILE",
                    help="results .csv or .parquet (default CONFIG-stem.csv); rerun to resume")
    sw.add_argument("--chunk-size", type=int, default=None, metavar="C")
    sw.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    sw.add_argument("--json", action="store_true")
    sw.set_defaults(func=_cmd_sweep)

    demo = sub.add_parser("demo", help="a short tour: one example of each model family")
    demo.add_argument("--out", default="distalloc-demo", metavar="DIR",
                      help="folder for the plots (default distalloc-demo)")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ValidationError as exc:
        print(f"distalloc: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # pragma: no cover
        print("distalloc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
