"""Fuzz strategies and checks for the public Python entry points (distalloc.llm, sgd,
queueing, sweep).  Each entry is an ``api_entry(name, strategy, call, check)``: the strategy
draws plain data, ``call(case)`` builds the objects and calls the function in the worker,
``check(case, result)`` judges a returned value; a raised exception must be a
ValidationError with a one-line message."""
from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import strategies as st

from fuzz_checks import check_plan_dict, check_queue_dict, check_simulate_dict
from fuzz_cli import (MODELS, POLICIES, check_sgd_run, check_sgd_schedule, check_tradeoff,
                      sweep_toml)
from fuzz_runner import EntryPoint
from fuzz_values import (Opt, api_arg, args_dict, extreme_number, mutated, scenario_dict,
                         scenario_file, small_floats, trace_file, weird_value)

# ------------------------------------------------------------------------------------------
# Python API
# ------------------------------------------------------------------------------------------
def api_draw(draw, opt: Opt):
    """An argument drawn on its own: weird one time in eight."""
    return opt.draw(draw, draw(st.integers(0, 7)) == 0)


def api_entry(name: str, strategy, call, check, weight=1.0, timeout_s=30.0):
    def run(case, workdir):
        return ("api", call(case))
    return EntryPoint(f"api: {name}", strategy, run, check, weight, timeout_s)


@st.composite
def mutated_scenario(draw, max_mutations=3) -> dict:
    return draw(mutated(draw(scenario_dict()), max_mutations=max_mutations))


@st.composite
def scenario_spec(draw, allow_big=False) -> tuple:
    """How the worker builds a Scenario: ("dict", d) | ("builtin", name, servers)."""
    if draw(st.integers(0, 3)):
        return ("dict", draw(mutated(draw(scenario_dict()), max_mutations=draw(st.integers(0, 1)))))
    return ("builtin", draw(st.sampled_from(["clustered", "topology:Abvt"]
                                            + (["topology:GtsCe"] if allow_big else []))), None)


def build_scenario(spec):
    from distalloc.llm import resolve_scenario, scenario_from_dict
    if spec[0] == "dict":
        return scenario_from_dict(spec[1])
    return resolve_scenario(spec[1], num_servers=spec[2])


def api_entries() -> list[EntryPoint]:
    entries = []

    # llm -----------------------------------------------------------------------------------
    entries.append(api_entry(
        "distalloc.llm.scenario_from_dict",
        st.builds(lambda d: {"data": d}, st.one_of(mutated_scenario(), mutated_scenario(),
                                                   weird_value)),
        lambda c: __import__("distalloc.llm", fromlist=["x"]).scenario_from_dict(c["data"]),
        lambda c, sc: [] if sc.num_servers >= 1 else ["no servers"], weight=3))

    @st.composite
    def load_case(draw):
        name, data = draw(scenario_file())
        return {"path": name, "files": {name: data}}
    entries.append(api_entry(
        "distalloc.llm.load_scenario", load_case(),
        lambda c: __import__("distalloc.llm", fromlist=["x"]).load_scenario(c["path"]),
        lambda c, sc: [], weight=2))

    entries.append(api_entry(
        "distalloc.llm.resolve_scenario",
        args_dict({
            "spec": st.one_of(st.sampled_from(["clustered", "topology:Abvt", "topology:GtsCe",
                                               "synthetic:20", "synthetic:20:8", "synthetic:",
                                               "topology:x", "x"]), weird_value),
            "num_servers": api_arg(st.one_of(st.none(), st.integers(1, 40))),
            "seed": api_arg(st.integers(0, 10)),
            "input_tokens": api_arg(st.one_of(st.none(), st.integers(1, 200))),
            "output_tokens": api_arg(st.one_of(st.none(), st.integers(1, 300)))}),
        lambda c: __import__("distalloc.llm", fromlist=["x"]).resolve_scenario(
            c["spec"], num_servers=c["num_servers"], seed=c["seed"],
            input_tokens=c["input_tokens"], output_tokens=c["output_tokens"]),
        lambda c, sc: [], weight=1))

    def call_plan(c):
        from distalloc.llm import plan
        return plan(build_scenario(c["scenario"]), c["method"], seed=c["seed"],
                    num_requests=c["num_requests"], time_limit_s=c["time_limit_s"])
    from distalloc.llm.methods import METHODS
    entries.append(api_entry(
        "distalloc.llm.plan",
        args_dict({
            "scenario": scenario_spec(),
            "method": api_arg(st.sampled_from(list(METHODS))),
            "seed": api_arg(st.integers(0, 5)),
            "num_requests": api_arg(st.one_of(st.none(), st.integers(1, 60))),
            "time_limit_s": st.one_of(small_floats(0.2, 2.0), st.sampled_from([0, -1, math.nan]))}),
        call_plan, lambda c, p: check_plan_dict(p.to_dict()), weight=2))

    def call_simulate(c):
        from distalloc.llm import simulate
        kw = dict(c["kw"])
        return simulate(build_scenario(c["scenario"]), c["method"], **kw)
    from distalloc.llm.simulation import ONLINE_METHODS

    @st.composite
    def simulate_case(draw):
        files = {}
        kw = draw(args_dict({
            "rate_per_s": api_arg(st.one_of(st.none(), small_floats(0.01, 5.0))),
            "num_requests": api_arg(st.one_of(st.none(), st.integers(1, 200))),
            "client_weights": api_arg(st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1,
                                                                    max_size=3))),
            "planned_requests": api_arg(st.one_of(st.none(), st.integers(1, 100))),
            "allocation_delay_s": api_arg(st.sampled_from([0.0, 5.0, "petals=250,cg-bprr=60",
                                                           {"petals": 1.0}])),
            "noise": api_arg(small_floats(0.0, 1.0)),
            "seed": api_arg(st.integers(0, 5))}))
        kw = {k: v for k, v in kw.items() if draw(st.integers(0, 2))}
        if draw(st.integers(0, 5)) == 0:
            files["t.csv"] = draw(trace_file())
            kw["trace"] = "t.csv"
            kw["time_scale"] = api_draw(draw, api_arg(st.one_of(st.none(), small_floats(0.1, 5.0))))
        return {"scenario": draw(scenario_spec()),
                "method": api_draw(draw, api_arg(st.sampled_from([m for m in ONLINE_METHODS if m != "milp"]))),
                "kw": kw, "files": files}
    entries.append(api_entry(
        "distalloc.llm.simulate", simulate_case(), call_simulate,
        lambda c, r: check_simulate_dict(r.to_dict()), weight=2))

    def call_evaluate(c):
        from distalloc.llm import Placement, evaluate_routes
        sc = build_scenario(c["scenario"])
        return evaluate_routes(sc, Placement.from_arrays(c["first"], c["num"]), c["routes"],
                               c["clients"])
    small_ints = st.lists(st.one_of(st.integers(-2, 8), st.sampled_from([2 ** 40, -(2 ** 40)])),
                          max_size=5)
    entries.append(api_entry(
        "distalloc.llm.evaluate_routes",
        args_dict({
            "scenario": scenario_spec(), "first": api_arg(small_ints), "num": api_arg(small_ints),
            "routes": api_arg(st.lists(small_ints, max_size=4)), "clients": api_arg(small_ints)}),
        call_evaluate,
        lambda c, m: [] if np.all((m.status != 0) | (np.isfinite(m.token_ms) & (m.token_ms >= 0)))
        else ["a valid route with a non-finite or negative time"], weight=2))

    def call_routes(c):
        from distalloc.llm import Placement, shortest_routes
        return shortest_routes(Placement.from_arrays(c["first"], c["num"]), c["L"], c["alpha"],
                               c["beta"])
    floats_list = st.lists(st.one_of(small_floats(0.0, 100.0),
                                     st.sampled_from([math.nan, math.inf, -1.0, 1e308])), max_size=5)
    entries.append(api_entry(
        "distalloc.llm.shortest_routes",
        args_dict({
            "first": api_arg(small_ints), "num": api_arg(small_ints),
            "L": api_arg(st.integers(1, 8)),
            "alpha": api_arg(st.one_of(floats_list, st.lists(floats_list, max_size=3))),
            "beta": api_arg(floats_list)}),
        call_routes, lambda c, r: [], weight=3))

    entries.append(api_entry(
        "distalloc.llm.synthetic_scenario",
        args_dict({
            "num_servers": api_arg(st.integers(1, 300)), "num_blocks": api_arg(st.integers(1, 100)),
            "num_clients": api_arg(st.integers(1, 8)), "num_requests": api_arg(st.integers(1, 200)),
            "seed": api_arg(st.integers(0, 5)), "a100_fraction": api_arg(small_floats(0.0, 1.0))}),
        lambda c: __import__("distalloc.llm", fromlist=["x"]).synthetic_scenario(**c),
        lambda c, sc: [], weight=1))

    def call_cg(c):
        from distalloc.llm import cg_bp_placement
        return cg_bp_placement(build_scenario(c["scenario"]), c["num_requests"])
    entries.append(api_entry(
        "distalloc.llm.cg_bp_placement",
        args_dict({"scenario": scenario_spec(),
                               "num_requests": api_arg(st.one_of(st.none(), st.integers(1, 100)))}),
        call_cg, lambda c, r: [], weight=1))

    # sgd -----------------------------------------------------------------------------------
    def call_sgd_run(c):
        from distalloc.sgd import parse_model, run
        kw = dict(c["kw"])
        if isinstance(kw.get("model"), str):
            kw["model"] = parse_model(kw["model"])
        # a long but legitimate run must be refused within the case's time (see fuzz_cli)
        return run(c["problem"], c["workers"], c["policy"], max_iterations=200_000, **kw)

    def check_sgd_result(c, r):
        return check_sgd_run({"argv": ["--json"]}, ("cli", 0, json.dumps(r.to_dict()), ""))
    entries.append(api_entry(
        "distalloc.sgd.run",
        args_dict({
            "problem": api_arg(st.sampled_from(["synthetic", "synthetic", "diabetes"])),
            "workers": api_arg(st.integers(1, 60)), "policy": POLICIES,
            "kw": args_dict({
                "horizon": Opt(small_floats(1.0, 100.0), extreme_number),
                "lr": api_arg(st.one_of(st.none(), st.sampled_from([1e-4, 1e-3, 0.01]))),
                "model": Opt(st.one_of(st.none(), MODELS.typical), MODELS.weird),
                "seed": api_arg(st.integers(0, 5)),
                "k_max": api_arg(st.one_of(st.none(), st.integers(1, 60)))})}),
        call_sgd_run, check_sgd_result, weight=0.5))

    def call_schedule(c):
        from distalloc.sgd import bound_schedule
        return bound_schedule(c["workers"], c["lr"], c["smoothness"], c["strong_convexity"],
                              c["noise_var"], c["batch"], c["initial_gap"], rate=c["rate"],
                              step=c["step"])
    entries.append(api_entry(
        "distalloc.sgd.bound_schedule",
        args_dict({
            "workers": api_arg(st.integers(1, 60)),
            "lr": api_arg(st.sampled_from([1e-4, 1e-3, 0.01])),
            "smoothness": api_arg(small_floats(0.1, 10.0)),
            "strong_convexity": api_arg(small_floats(0.01, 5.0)),
            "noise_var": api_arg(small_floats(0.0, 100.0)), "batch": api_arg(st.integers(1, 100)),
            "initial_gap": api_arg(small_floats(0.01, 1e4)),
            "rate": api_arg(small_floats(0.1, 10.0)), "step": api_arg(st.integers(1, 5))}),
        call_schedule,
        lambda c, s: check_sgd_schedule({"argv": ["--json"]}, ("cli", 0, json.dumps(
            {"switch_times": s.switch_times.tolist(), "switch_errors": s.switch_errors.tolist()}),
            "")), weight=3))

    def call_model(c):
        from distalloc.sgd import parse_model
        m = parse_model(c["spec"])
        return m.order_stat_mean(c["k"], c["n"]), m.sample(c["rows"], c["n"], np.random.default_rng(0))

    def check_model(c, r):
        mean, sample = r
        # inf is the right answer where the mean is infinite (Pareto: shape (n-k+1) <= 1)
        # or beyond float64; never NaN or negative
        p = [] if isinstance(mean, float) and mean >= 0 else [f"E[X_(k)] = {mean!r}"]
        if not np.all(np.isfinite(sample)) or np.any(sample < 0):
            p.append("a sampled response time that is not finite and >= 0")
        return p
    entries.append(api_entry(
        "distalloc.sgd.parse_model (order_stat_mean, sample)",
        args_dict({"spec": MODELS, "k": api_arg(st.integers(1, 30)),
                               "n": api_arg(st.integers(1, 30)), "rows": api_arg(st.integers(1, 50))}),
        call_model, check_model, weight=3))

    def call_fastest(c):
        from distalloc.sgd import fastest_k_average
        return fastest_k_average(c["times"], c["grads"], c["k"])
    @st.composite
    def fastest_case(draw):
        B, n, d = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
        times = np.array(draw(st.lists(small_floats(0.0, 10.0), min_size=B * n,
                                       max_size=B * n))).reshape(B, n)
        grads = np.array(draw(st.lists(small_floats(-5.0, 5.0), min_size=B * n * d,
                                       max_size=B * n * d))).reshape(B, n, d)
        return draw(args_dict({"times": api_arg(st.just(times)), "grads": api_arg(st.just(grads)),
                               "k": api_arg(st.integers(1, n))}))

    def check_fastest(c, r):
        avg, chosen = r
        t, g, k = c["times"], c["grads"], c["k"]
        # k: one int, or one int per iteration (a length-1 sequence broadcasts)
        ks = np.broadcast_to(np.asarray(k, dtype=np.int64).reshape(-1), (t.shape[0],))
        want = np.stack([g[b, np.argsort(t[b], kind="stable")[:ks[b]]].mean(axis=0)
                         for b in range(t.shape[0])])
        return [] if np.allclose(avg, want) else [f"average {avg} != {want}"]
    entries.append(api_entry("distalloc.sgd.fastest_k_average", fastest_case(),
                             call_fastest, check_fastest, weight=2))

    entries.append(api_entry(
        "distalloc.sgd.synthetic_regression",
        args_dict({"num_samples": api_arg(st.integers(2, 400)),
                               "dim": api_arg(st.integers(1, 30)), "seed": api_arg(st.integers(0, 5))}),
        lambda c: __import__("distalloc.sgd", fromlist=["x"]).synthetic_regression(**c),
        lambda c, p: [] if np.isfinite(p.f_star) else ["F* not finite"], weight=1))

    # queueing ------------------------------------------------------------------------------
    system = args_dict({
        "servers": api_arg(st.integers(1, 6)), "needed": api_arg(st.integers(1, 6)),
        "rate": api_arg(small_floats(0.01, 8.0)),
        "speeds": api_arg(st.lists(small_floats(0.1, 5.0), min_size=1, max_size=3)),
        "powers": api_arg(st.one_of(st.none(), st.lists(small_floats(0.0, 8.0), min_size=1,
                                                     max_size=3))),
        "probs": api_arg(st.one_of(st.none(), st.sampled_from([[1.0], [0.5, 0.5], [0.2, 0.8],
                                                           [0.3, 0.3, 0.4], [1.0, 0.0]]))),
        "idle_power": api_arg(small_floats(0.0, 2.0))})

    def fork_join(s):
        from distalloc.queueing import ForkJoin
        return ForkJoin(**s)

    def queue_metrics_check(method):
        def check(c, m):
            s = c["system"]
            return check_queue_dict(m.to_dict(), s["servers"], s["rate"], s["powers"] if s["powers"] is not None else [1.0],
                                    s["idle_power"], method)
        return check

    entries.append(api_entry(
        "distalloc.queueing.approximate", args_dict({"system": system}),
        lambda c: __import__("distalloc.queueing", fromlist=["x"]).approximate(fork_join(c["system"])),
        queue_metrics_check("approx"), weight=4))
    entries.append(api_entry(
        "distalloc.queueing.exact",
        args_dict({"system": system,
                               "max_jobs": api_arg(st.one_of(st.none(), st.integers(1, 64))),
                               "tail_tol": api_arg(st.sampled_from([1e-8, 1e-6, 1e-3]))}),
        lambda c: __import__("distalloc.queueing", fromlist=["x"]).exact(
            fork_join(c["system"]), max_jobs=c["max_jobs"], tail_tol=c["tail_tol"],
            max_seconds=4.0),
        queue_metrics_check("exact"), weight=0.5))
    entries.append(api_entry(
        "distalloc.queueing.simulate",
        args_dict({"system": system, "num_jobs": api_arg(st.integers(10, 20000)),
                               "seed": api_arg(st.integers(0, 5)),
                               "replications": api_arg(st.integers(1, 3)),
                               "batches": api_arg(st.integers(2, 40))}),
        lambda c: __import__("distalloc.queueing", fromlist=["x"]).simulate(
            fork_join(c["system"]), c["num_jobs"], seed=c["seed"],
            replications=c["replications"], batches=c["batches"]),
        queue_metrics_check("simulate"), weight=2))
    entries.append(api_entry(
        "distalloc.queueing.tradeoff",
        args_dict({"system": system, "num_points": api_arg(st.integers(2, 20)),
                               "method": api_arg(st.sampled_from(["approx", "approx", "simulate"]))}),
        lambda c: __import__("distalloc.queueing", fromlist=["x"]).tradeoff(
            fork_join(c["system"]), c["num_points"], c["method"],
            **({"num_jobs": 2000} if c["method"] == "simulate" else {})),
        lambda c, t: check_tradeoff({"argv": ["--json"]}, ("cli", 0, json.dumps(t.to_dict()), "")),
        weight=1))
    entries.append(api_entry(
        "distalloc.queueing.optimize",
        args_dict({"system": system,
                               "max_jobs": api_arg(st.one_of(st.none(), small_floats(0.1, 10.0))),
                               "max_response": api_arg(st.one_of(st.none(), small_floats(0.1, 10.0))),
                               "max_energy": api_arg(st.one_of(st.none(), small_floats(0.1, 20.0)))}),
        lambda c: __import__("distalloc.queueing", fromlist=["x"]).optimize(
            fork_join(c["system"]), max_jobs=c["max_jobs"], max_response=c["max_response"],
            max_energy=c["max_energy"], max_seconds=4.0),       # as the CLI cases (limited)
        lambda c, o: [] if abs(float(np.sum(o.probs)) - 1) < 1e-6 else [f"probs {o.probs}"],
        weight=1))

    # sweep ---------------------------------------------------------------------------------
    def call_sweep(c):
        import tomllib

        from distalloc.sweep import load_sweep, run_sweep
        try:
            data = tomllib.loads(c["files"]["s.toml"].decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = c["fallback"]
        cfg = load_sweep(data)
        return run_sweep(cfg, c["out"], n_jobs=c["n_jobs"], chunk_size=c["chunk_size"],
                         progress=False, fail_fast=c["fail_fast"])

    @st.composite
    def sweep_api_case(draw):
        return {"files": {"s.toml": draw(sweep_toml())}, "fallback": draw(weird_value),
                "out": draw(st.sampled_from(["o.csv", "o.parquet", "o.txt", ""])),
                "n_jobs": api_draw(draw, api_arg(st.sampled_from([1, 2]))),
                "chunk_size": api_draw(draw, api_arg(st.one_of(st.none(), st.integers(1, 4)))),
                "fail_fast": draw(st.booleans())}
    entries.append(api_entry(
        "distalloc.sweep.load_sweep + run_sweep", sweep_api_case(), call_sweep,
        lambda c, s: [] if s["written"] + s["skipped"] == s["tasks"] else [f"summary {s}"],
        weight=1))
    return entries
