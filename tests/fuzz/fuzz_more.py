"""Fuzz entries for the SGD and queueing entry points beyond the first table: KController,
fit_response_model, expected_order_statistics, compiled_policy, approximate_grid,
compiled_speed_rule (with simulate), ``sgd fit`` and ``sgd schedule --from-times`` (``queue exact``/``simulate`` with their
resource limits are in fuzz_cli.py).

Not here: ``distalloc.sgd.train`` (it starts a Dask cluster, seconds per case; its inputs
are validated by the same helpers as ``run``, fuzzed above, and tests/test_sgd_cluster*.py
cover it) and the LLM entries (tests/fuzz/ has a module of their own)."""
from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from fuzz_api import api_entry
from fuzz_checks import _finite, check_queue_dict, json_check
from fuzz_cli import check_sgd_schedule, cli_entry, flags
from fuzz_runner import EntryPoint
from fuzz_values import (SECRET, Opt, api_arg, args_dict, cli_number, corrupt, small_floats,
                         weird_value)


# ------------------------------------------------------------------------------------------
# compiled callbacks, built once per worker (a cfunc compiles in ~0.2 s)
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _callback(kind: str):
    import numba
    if kind == "policy":
        @numba.cfunc("int64(int64, float64, int64, int64, float64, int64)")
        def grow(iteration, time, last_k, workers, gradient_dot, counter):
            return 1 + iteration % (workers + 3) - 1     # leaves 1..k_max now and then
        return grow
    if kind == "policy_wrong":
        @numba.cfunc("float64(int64, float64, int64, int64, float64, int64)")
        def wrong(iteration, time, last_k, workers, gradient_dot, counter):
            return 1.0
        return wrong
    if kind == "rule":
        @numba.cfunc("int64(int64, int64, float64)")
        def rush(core, queue_length, u):
            return 1 if queue_length >= 2 else 0
        return rush
    if kind == "rule_bad_level":
        @numba.cfunc("int64(int64, int64, float64)")
        def bad(core, queue_length, u):
            return 7 if u < 0.01 else 0
        return bad
    if kind == "rule_wrong":
        @numba.cfunc("int64(int64, float64)")
        def wrong2(core, u):
            return 0
        return wrong2
    if kind == "python":
        def plain(*args):
            return 1
        return plain
    return {"int": 3, "none": None, "str": "fixed:2", "list": [1, 2]}[kind]


CALLBACK_KINDS = ["python", "int", "none", "str", "list"]


def _times_file() -> st.SearchStrategy:
    """Measured response times: numbers separated by whitespace/commas, JSON of a run, or
    something that is not."""
    good = st.lists(small_floats(0.01, 10.0), min_size=3, max_size=60)
    odd = st.lists(st.one_of(small_floats(0.0, 10.0),
                             st.sampled_from([0.0, -1.0, math.nan, math.inf, 1e308, 5e-324])),
                   min_size=0, max_size=8)
    numbers = st.one_of(good, good, good, odd)
    return st.one_of(
        numbers.map(lambda xs: "\n".join(repr(x) for x in xs).encode()),
        numbers.map(lambda xs: " ".join(repr(x) for x in xs).encode()),
        numbers.map(lambda xs: ", ".join(repr(x) for x in xs).encode()),
        numbers.map(lambda xs: json.dumps({"response_times_s": xs}).encode()),
        numbers.map(lambda xs: json.dumps(xs).encode()),
        st.sampled_from([b"", b"x y z", b"{}", b"[[]]", f"{SECRET}\n1\n2\n".encode(),
                         b"1 2 3 4 5\xff\xfe", b"1e999 2 3", b"99999999999999999999 1 2"]),
    ).flatmap(lambda data: st.one_of(st.just(data), st.just(data), st.just(data), corrupt(data)))


def more_entries() -> list[EntryPoint]:
    entries = []

    # sgd.KController -----------------------------------------------------------------------
    @st.composite
    def controller_case(draw):
        n = draw(st.integers(1, 40))
        policy = draw(st.one_of(
            st.sampled_from(["sync", "pflug", "pflug:1:5:2:3", "dbw", "bound", "async",
                             "callback", "callback_wrong"]),
            st.integers(1, n).map(lambda k: f"fixed:{k}"),
            st.integers(2, max(2, n)).map(lambda k: f"dbw:{k}")))
        obs = draw(st.lists(st.lists(small_floats(0.0, 5.0), min_size=1, max_size=n),
                            min_size=0, max_size=12))
        return draw(args_dict({
            "policy": api_arg(st.just(policy)), "workers": api_arg(st.just(n)),
            "k_max": api_arg(st.one_of(st.none(), st.integers(1, n))),
            "observations": st.just(obs),
            "dot": Opt(st.one_of(small_floats(-1.0, 1.0), st.just(math.nan)), weird_value),
            "sq_norm": Opt(small_floats(0.0, 10.0), weird_value)}))

    def call_controller(c):
        from distalloc.sgd import (KController, bound_schedule, compiled_policy,
                                   expected_order_statistics)
        policy, n = c["policy"], c["workers"]
        kw = {"k_max": c["k_max"]}
        if policy == "callback":
            policy = compiled_policy(_callback("policy"))
        elif policy == "callback_wrong":
            policy = compiled_policy(_callback("policy_wrong"))
        elif isinstance(policy, str) and policy.startswith("dbw") and isinstance(n, int) \
                and 1 <= n <= 40:
            kw.update(order_stat_means=expected_order_statistics(
                "exponential", n, np.arange(1, n + 1), 1.0), lr=1e-3, smoothness=2.0)
        elif policy == "bound" and isinstance(n, int) and 1 <= n <= 40:
            kw["schedule"] = bound_schedule(n, 1e-3, 2.0, 1.0, 10.0, 10, 100.0)
        ctl = KController(policy, n, **kw)
        ks, clock = [ctl.k], [ctl.time]
        for times in c["observations"]:
            ks.append(ctl.observe(times, c["dot"], worker_variance=1.0,
                                  gradient_sq_norm=c["sq_norm"]))
            clock.append(ctl.time)
        return ctl, ks, clock

    def check_controller(c, r):
        ctl, ks, clock = r
        top = ctl.workers if ctl.kind in ("fixed", "bound") else ctl.k_max   # k_max caps
        p = [f"k = {k} outside [1, {top}]" for k in ks if not 1 <= k <= top][:1]  # adaptive k
        if any(not _finite(t) for t in clock) or any(b < a for a, b in zip(clock, clock[1:])):
            p.append(f"clock not finite and nondecreasing: {clock[:6]}")
        return p
    entries.append(api_entry("distalloc.sgd.KController (observe)", controller_case(),
                             call_controller, check_controller, weight=2))

    # sgd.fit_response_model --------------------------------------------------------------
    entries.append(api_entry(
        "distalloc.sgd.fit_response_model",
        st.builds(lambda t: {"times": t}, st.one_of(
            st.lists(small_floats(0.0, 100.0), min_size=0, max_size=80),
            st.lists(st.one_of(small_floats(0.0, 5.0), st.sampled_from(
                [0.0, -1.0, math.nan, math.inf, 1e308, 1e-300, 2**70])), max_size=20),
            weird_value)),
        lambda c: __import__("distalloc.sgd", fromlist=["x"]).fit_response_model(c["times"]),
        lambda c, f: [] if f.spec and math.isfinite(f.aic[f.family]) else [f"fit {f.to_dict()}"],
        weight=2))

    # sgd.expected_order_statistics -------------------------------------------------------
    ints = st.one_of(st.integers(1, 40), st.lists(st.integers(1, 40), min_size=1, max_size=4))
    entries.append(api_entry(
        "distalloc.sgd.expected_order_statistics",
        args_dict({
            "family": api_arg(st.sampled_from(["exponential", "shifted-exponential", "pareto",
                                               "lognormal"])),
            "n": api_arg(ints), "k": api_arg(ints),
            "a": api_arg(st.one_of(small_floats(0.1, 5.0),
                                   st.lists(small_floats(0.1, 5.0), min_size=1, max_size=4))),
            "b": api_arg(st.one_of(st.none(), small_floats(0.1, 5.0)))}),
        lambda c: __import__("distalloc.sgd", fromlist=["x"]).expected_order_statistics(
            c["family"], c["n"], c["k"], c["a"], c["b"]),
        lambda c, r: [] if not np.any(np.isnan(r)) and np.all(r >= 0) else [f"E[X_(k)] {r}"],
        weight=2))

    # sgd.compiled_policy (callbacks of every wrong kind) ---------------------------------
    entries.append(api_entry(
        "distalloc.sgd.compiled_policy",
        st.fixed_dictionaries({"f": st.sampled_from(["policy", "policy_wrong", "rule",
                                                     *CALLBACK_KINDS]),
                               "name": st.one_of(st.none(), st.just("mine"))}),
        lambda c: __import__("distalloc.sgd", fromlist=["x"]).compiled_policy(
            _callback(c["f"]), name=c["name"]),
        lambda c, p: [] if p.address and str(p).startswith("compiled:") else [f"policy {p}"],
        weight=0.5))

    # queueing.approximate_grid -----------------------------------------------------------
    @st.composite
    def grid_case(draw):
        s = draw(st.integers(1, 3))
        N = draw(st.integers(1, 6))
        speeds = sorted(draw(st.lists(small_floats(0.1, 5.0), min_size=s, max_size=s, unique=True)))
        raw = draw(st.lists(st.lists(small_floats(0.0, 1.0), min_size=s, max_size=s),
                            min_size=N, max_size=N))
        probs = [[x / sum(r) for x in r] if sum(r) > 0 else [1.0 / s] * s for r in raw]
        return draw(args_dict({
            "servers": api_arg(st.integers(1, 8)), "needed": api_arg(st.integers(1, 8)),
            "speeds": api_arg(st.just(speeds)),
            "powers": api_arg(st.one_of(st.none(), st.lists(small_floats(0.0, 5.0), min_size=s,
                                                            max_size=s))),
            "rates": api_arg(st.lists(small_floats(0.01, 8.0), min_size=N, max_size=N)),
            "probs": api_arg(st.one_of(st.none(), st.just(probs), st.just(probs[0]))),
            "idle_power": api_arg(small_floats(0.0, 1.0))}))

    def call_grid(c):
        from distalloc.queueing import approximate_grid
        rates = np.asarray(c["rates"]) if isinstance(c["rates"], list) else c["rates"]
        return approximate_grid(c["servers"], c["needed"], c["speeds"], c["powers"], rates,
                                c["probs"], c["idle_power"], max_seconds=5.0)

    def check_grid(c, g):
        p = []
        for j, lam in enumerate(c["rates"]):
            d = {k: float(v[j]) for k, v in g.items()}
            if math.isnan(d["mean_jobs"]):
                continue                      # refused point (unstable)
            p += check_queue_dict(d, c["servers"], lam, c["powers"] if c["powers"] is not None else [1.0], c["idle_power"],
                                  "approx")
        return p
    entries.append(api_entry("distalloc.queueing.approximate_grid", grid_case(), call_grid,
                             check_grid, weight=2))

    # queueing.compiled_speed_rule + simulate ---------------------------------------------
    def call_rule(c):
        from distalloc.queueing import ForkJoin, compiled_speed_rule, simulate
        rule = compiled_speed_rule(_callback(c["rule"]))
        return simulate(ForkJoin(c["servers"], c["needed"], c["rate"], speeds=[1.0, 3.0],
                                 powers=[1.0, 4.0]),
                        c["jobs"], seed=0, speed_rule=rule, max_seconds=5.0)
    entries.append(api_entry(
        "distalloc.queueing.compiled_speed_rule + simulate",
        args_dict({"rule": Opt(st.sampled_from(["rule", "rule", "rule_bad_level"]),
                               st.sampled_from(["rule_wrong", "policy", *CALLBACK_KINDS])),
                   "servers": st.integers(2, 5), "needed": st.integers(1, 2),
                   "rate": small_floats(0.05, 2.0),
                   "jobs": api_arg(st.integers(100, 5000))}),
        call_rule,
        lambda c, m: check_queue_dict(m.to_dict(), c["servers"], c["rate"], [1.0, 4.0], 0.0,
                                      "simulate"),
        weight=1))

    # CLI: sgd fit, sgd schedule --from-times -------------------------------------------------
    @st.composite
    def sgd_fit_case(draw):
        argv = ["sgd", "fit", "t.txt" if draw(st.integers(0, 7)) else
                draw(st.sampled_from(["missing.txt", "dir"]))]
        if draw(st.booleans()):
            argv.append("--json")
        return {"argv": argv, "files": {"t.txt": draw(_times_file()), "dir": None}}

    @json_check
    def check_sgd_fit(case, d):
        return [] if d.get("spec") and _finite(d["aic"][d["family"]]) else [f"fit {d}"]
    entries.append(cli_entry("sgd fit", sgd_fit_case(), check_sgd_fit, weight=1))

    @st.composite
    def schedule_from_times_case(draw):
        req = {"--workers": cli_number(st.integers(1, 60)),
               "--lr": cli_number(st.sampled_from([1e-4, 1e-3, 0.01])),
               "--smoothness": cli_number(small_floats(0.1, 10.0)),
               "--strong-convexity": cli_number(small_floats(0.01, 5.0)),
               "--noise-var": cli_number(small_floats(0.0, 100.0)),
               "--batch": cli_number(st.integers(1, 100)),
               "--initial-gap": cli_number(small_floats(0.01, 1e4))}
        spec = {"--step": cli_number(st.integers(1, 5)), "--json": None}
        argv = ["sgd", "schedule", *draw(flags(spec, req)), "--from-times",
                "t.txt" if draw(st.integers(0, 7)) else draw(st.sampled_from(["missing.txt", "dir"]))]
        if draw(st.integers(0, 9)) == 0:
            argv += ["--model", "exp:1"]                # both: refused in one line
        return {"argv": argv, "files": {"t.txt": draw(_times_file()), "dir": None}}
    entries.append(cli_entry("sgd schedule --from-times", schedule_from_times_case(),
                             check_sgd_schedule, weight=1))

    return entries
