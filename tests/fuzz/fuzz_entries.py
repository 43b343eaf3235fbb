"""The fuzz table: every CLI subcommand and public entry point, with a strategy for its
arguments (files included) and a check of what a successful run may return.

Adding an entry point: append an :class:`EntryPoint` to ``ENTRY_POINTS`` (CLI: a
``cli_entry("llm calibrate", strategy, check)`` with a strategy that draws
``{"argv": [...], "files": {...}}``; API: ``api_entry("distalloc.x.f", strategy, call,
check)`` whose strategy draws plain data and ``call(case)`` builds the objects and calls the
function in the worker).  The runner judges every outcome the same way (fuzz_runner.py).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from fuzz_runner import EntryPoint, run_cli
from fuzz_values import (SECRET, Opt, api_arg, args_dict, cli_number, corrupt, extreme_number,
                         mutated,
                         number_list, scenario_dict, scenario_file, small_floats, toml_value,
                         trace_file, weird_count, weird_value)

# ------------------------------------------------------------------------------------------
# checks of results
# ------------------------------------------------------------------------------------------
TOL = 1e-9


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def need_finite(d: dict, keys, low=0.0, where="") -> list[str]:
    out = []
    for k in keys:
        v = d.get(k)
        if not _finite(v):
            out.append(f"{where}{k} = {v!r} (a successful run must give a finite number)")
        elif low is not None and v < low - TOL * max(1.0, abs(low)):
            out.append(f"{where}{k} = {v!r} < {low}")
    return out


def _json(result) -> dict | None:
    _, code, stdout, _ = result
    try:
        return json.loads(stdout)
    except ValueError:
        return None


def _args(case):
    from distalloc.cli import build_parser
    return build_parser().parse_args(case["argv"])


def check_plan_dict(d: dict, num_blocks: int | None = None, num_servers: int | None = None) -> list[str]:
    p = []
    if d.get("status") not in ("optimal", "feasible", "time_limit", "infeasible"):
        p.append(f"status {d.get('status')!r}")
    if d.get("feasible"):
        p += need_finite(d, ["mean_token_ms"], low=0.0)
        if d.get("bound_ms") is not None and d.get("method") == "cg-bprr" and _finite(d["mean_token_ms"]):
            if d["bound_ms"] < d["mean_token_ms"] * (1 - 1e-9):
                p.append(f"cg-bprr bound_ms {d['bound_ms']} below its own mean {d['mean_token_ms']}")
        if d.get("gap") is not None and not (_finite(d["gap"]) and d["gap"] >= -1e-9):
            p.append(f"gap {d['gap']!r}")
        for e in d.get("placement") or []:
            a, m = e["first_block"], e["num_blocks"]
            if m < 1 or a < 0 or (num_blocks is not None and a + m > num_blocks):
                p.append(f"placement entry {e} outside the model's blocks")
            if num_servers is not None and not 0 <= e["server"] < num_servers:
                p.append(f"placement entry {e} names a server out of range")
        if not d.get("routes") and d.get("num_requests"):
            p.append("feasible with no routes")
    return p


def check_simulate_dict(d: dict) -> list[str]:
    p = need_finite(d, ["mean_token_s", "mean_ttft_s", "mean_wait_s", "p50_token_s",
                        "p95_token_s"], low=0.0)
    if not p and d["p50_token_s"] > d["p95_token_s"] * (1 + 1e-9):
        p.append(f"p50 {d['p50_token_s']} > p95 {d['p95_token_s']}")
    if not isinstance(d.get("num_requests"), int) or d["num_requests"] < 1:
        p.append(f"num_requests {d.get('num_requests')!r}")
    return p


def check_queue_dict(d: dict, servers: int, rate: float, powers, idle: float, method: str) -> list[str]:
    p = need_finite(d, ["mean_jobs", "mean_response", "energy_per_job", "mean_power"], low=0.0)
    if p:
        return p
    top = servers * max([*powers, idle]) if powers is not None else servers * max(1.0, idle)
    slack = 1e-6 + (5 * (d.get("mean_power_ci") or 0.0) if method == "simulate" else 0.0)
    if d["mean_power"] > top * (1 + slack) + 1e-9:
        p.append(f"mean_power {d['mean_power']:.6g} above what {servers} cores can draw ({top:g})")
    if method in ("approx", "exact"):
        if abs(d["mean_jobs"] - rate * d["mean_response"]) > 1e-6 * max(1.0, d["mean_jobs"]):
            p.append(f"Little's law broken: E[N] {d['mean_jobs']} vs λE[T] "
                     f"{rate * d['mean_response']}")
    cf = d.get("completion_fraction")
    if cf is not None and (any(not _finite(x) or x < -1e-9 for x in cf) or abs(sum(cf) - 1) > 1e-6):
        p.append(f"completion_fraction {cf}")
    return p


def _powers(args):
    from distalloc.cli._common import floats
    return floats(args.powers, "powers") if args.powers else None


# ------------------------------------------------------------------------------------------
# command lines
# ------------------------------------------------------------------------------------------
@st.composite
def flags(draw, spec: dict, required: dict | None = None) -> list[str]:
    """Some of ``spec``'s options (None: a switch) and all ``required`` ones (now and then
    one is left out: argparse must say so in one line).  Values are typical except at most
    two weird ones (:class:`Opt`)."""
    required = required or {}
    chosen = [n for n in required if draw(st.integers(0, 30)) > 0]
    chosen += draw(st.lists(st.sampled_from(sorted(spec)), unique=True,
                            max_size=min(5, len(spec))))
    values = {**spec, **required}
    can_be_weird = [n for n in chosen if isinstance(values[n], Opt) and values[n].weird is not None]
    k = weird_count(draw)
    weird = set(draw(st.lists(st.sampled_from(can_be_weird), max_size=k, unique=True))) \
        if can_be_weird and k else set()
    argv: list[str] = []
    for name in chosen:
        v = values[name]
        if v is None:
            argv.append(name)
        elif isinstance(v, Opt):
            argv += [name, v.draw(draw, name in weird)]
        else:
            argv += [name, draw(v)]
    extra = draw(st.integers(0, 60))
    if extra == 0:
        argv.append("--no-such-option")
    elif extra == 1 and argv:
        argv.pop()                  # an option without its value
    return argv


@st.composite
def llm_scenario_arg(draw, allow_big: bool = True) -> tuple[list[str], dict]:
    """The SCENARIO argument (a built-in or a generated file) and the files it needs."""
    kind = draw(st.sampled_from(["file", "file", "file", "builtin", "builtin", "odd"]))
    if kind == "file":
        name, data = draw(scenario_file())
        return [name], {name: data}
    if kind == "builtin":
        spec = draw(st.sampled_from(
            ["clustered", "clustered", "topology:Abvt", "topology:Bellcanada"]
            + (["topology:GtsCe", "synthetic:40", "synthetic:200:24"] if allow_big else [])))
        return [spec], {}
    spec = draw(st.sampled_from(["missing.json", "dir.json", "topology:Nowhere", "synthetic:x",
                                 "synthetic:0", "synthetic:99999999999999999999", "nope",
                                 "s.yaml", "", "synthetic:3:0", "topology:", "secret.json"]))
    files = {"dir.json": None} if spec == "dir.json" else {}
    if spec == "secret.json":
        files["secret.json"] = f"{SECRET}\nnot json\n".encode()
    return [spec], files


def _uses_topology(argv):
    return any(a.startswith(("topology:", "synthetic:")) for a in argv)


SERVERS = cli_number(st.integers(1, 30))


def _llm_common(method_choices):
    return {
        "--num-requests": cli_number(st.integers(1, 150)),
        "--seed": cli_number(st.integers(0, 5)),
        "--scenario-seed": cli_number(st.integers(0, 5)),
        "--json": None,
        "--method": Opt(st.sampled_from(method_choices), st.just("magic")),
    }


@st.composite
def llm_plan_case(draw) -> dict:
    from distalloc.llm.methods import METHODS
    scen, files = draw(llm_scenario_arg())
    spec = {**_llm_common([m for m in METHODS if m != "milp"]),
            "--time-limit": cli_number(small_floats(0.2, 2.0)),
            "--plot": Opt(st.sampled_from(["map.png", "map.pdf"]),
                          st.sampled_from(["map.xyz", "missing/m.png", "."]))}
    spec = _for_scenario(spec, scen)
    argv = ["llm", "plan", *scen, *draw(flags(spec))]
    if draw(st.integers(0, 5)) == 0 and scen[0].endswith((".json", ".toml")):
        # the exact MILP, on the small generated scenarios, with a time limit
        argv += ["--method", "milp", "--time-limit",
                 draw(st.sampled_from(["0.5", "1", "2", "0", "-1", "nan", "inf"]))]
    return {"argv": argv, "files": files}


def check_llm_plan(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    return ["stdout is not JSON"] if d is None else check_plan_dict(d)


def _trace_option(draw) -> tuple[list[str], dict]:
    k = draw(st.integers(0, 6))
    if k == 0:
        return ["--trace", "trace.csv"], {"trace.csv": draw(trace_file())}
    if k == 1:
        return ["--trace", draw(st.sampled_from(["missing.csv", "secret.csv", "dir"]))], {
            "secret.csv": f"{SECRET},x\n1,2,3\n".encode(), "dir": None}
    return [], {}


def _online_spec(extra_methods=True):
    from distalloc.llm.simulation import ONLINE_METHODS
    methods = [m for m in ONLINE_METHODS if m != "milp"]
    return {
        **_llm_common(methods),
        "--rate": cli_number(small_floats(0.01, 5.0)),
        "--client-weights": number_list(st.integers(0, 3), 1, 4),
        "--time-scale": cli_number(small_floats(0.05, 10.0)),
        "--planned-requests": cli_number(st.integers(1, 200)),
        "--allocation-delay": st.sampled_from(["0", "5", "0.5", "petals=250,cg-bprr=60",
                                               "petals=soon", "-1", "nan", "1e308",
                                               "cg-bprr=1", "x=1", "1e20"]),
        "--noise": cli_number(small_floats(0.0, 1.0)),
    }


BUILTIN_ONLY = {"--input-tokens": cli_number(st.integers(1, 300)),
                "--output-tokens": cli_number(st.integers(1, 300))}


def _for_scenario(spec: dict, scen: list[str]) -> dict:
    """Options that only apply to some scenarios are offered only for those."""
    spec = dict(spec)
    if _uses_topology(scen):
        spec["--servers"] = SERVERS
    if not scen[0].endswith((".json", ".toml")):
        spec.update(BUILTIN_ONLY)
    return spec


@st.composite
def llm_simulate_case(draw) -> dict:
    scen, files = draw(llm_scenario_arg(allow_big=False))
    spec = _for_scenario(_online_spec(), scen)
    trace, tfiles = _trace_option(draw)
    return {"argv": ["llm", "simulate", *scen, *trace, *draw(flags(spec))],
            "files": {**files, **tfiles}}


def check_llm_simulate(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    return ["stdout is not JSON"] if d is None else check_simulate_dict(d)


@st.composite
def llm_compare_case(draw) -> dict:
    from distalloc.llm.simulation import ONLINE_METHODS
    scen, files = draw(llm_scenario_arg(allow_big=False))
    spec = _online_spec()
    del spec["--method"]
    spec["--methods"] = st.one_of(
        st.lists(st.sampled_from([m for m in ONLINE_METHODS if m != "milp"]), min_size=1,
                 max_size=3, unique=True).map(",".join),
        st.sampled_from(["", "cg-bprr,", "nope", "petals,petals"]))
    spec["--seeds"] = cli_number(st.integers(1, 3))
    spec["--plot"] = Opt(st.sampled_from(["c.png", "c.svg"]),
                         st.sampled_from(["c.txt", "nodir/c.png", "."]))
    spec = _for_scenario(spec, scen)
    trace, tfiles = _trace_option(draw)
    return {"argv": ["llm", "compare", *scen, *trace, *draw(flags(spec))],
            "files": {**files, **tfiles}}


def check_llm_compare(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    p = []
    for m, v in d.get("methods", {}).items():
        p += need_finite(v, ["mean_token_s", "p95_token_s", "mean_ttft_s", "mean_wait_s"],
                         low=0.0, where=f"{m}: ")
    return p


@st.composite
def llm_scenario_case(draw) -> dict:
    scen, files = draw(llm_scenario_arg())
    spec = _for_scenario({"--scenario-seed": cli_number(st.integers(0, 5)),
                          "--seed": cli_number(st.integers(0, 5)), "--json": None,
                          "--num-requests": cli_number(st.integers(1, 200))}, scen)
    return {"argv": ["llm", "scenario", *scen, *draw(flags(spec))], "files": files}


def check_llm_scenario(case, result) -> list[str]:
    """What is printed must load back as the same scenario."""
    from distalloc.llm import scenario_from_dict
    _, _, stdout, _ = result
    try:
        d = json.loads(stdout)
    except ValueError:
        return ["the printed scenario is not JSON"]
    try:
        again = scenario_from_dict(d).to_dict()
    except Exception as exc:  # noqa: BLE001
        return [f"the printed scenario does not load back: {type(exc).__name__}: {exc}"]
    return [] if again == d else ["the printed scenario changes when loaded back"]


# --- sgd ---------------------------------------------------------------------------------
MODELS = Opt(
    st.sampled_from(["exp:1", "exp:2.5", "shifted-exp:0.5:1", "pareto:1:2.5", "pareto:1:1.5",
                     "lognormal:0:1", "lognormal:0:0.5", "exp:0.2"]),
    st.one_of(
        st.sampled_from(["pareto:1:0.9", "lognormal:1000:1", "lognormal:0:0", "exp:0", "exp:-1",
                         "exp:nan", "exp", "weibull:1", "", "pareto:1e308:3", "shifted-exp:-1:1",
                         "lognormal:0:50", "pareto:1:1"]),
        st.tuples(st.sampled_from(["exp", "pareto", "lognormal", "shifted-exp"]),
                  st.lists(st.sampled_from(["1", "0.5", "2", "3", "nan", "-1", "1e308"]),
                           min_size=1, max_size=2)).map(lambda t: ":".join([t[0], *t[1]]))))


@st.composite
def sgd_schedule_case(draw) -> dict:
    req = {"--workers": cli_number(st.integers(1, 60)),
           "--lr": cli_number(st.sampled_from([1e-4, 1e-3, 0.01, 0.05])),
           "--smoothness": cli_number(small_floats(0.1, 10.0)),
           "--strong-convexity": cli_number(small_floats(0.01, 5.0)),
           "--noise-var": cli_number(small_floats(0.0, 100.0)),
           "--batch": cli_number(st.integers(1, 100)),
           "--initial-gap": cli_number(small_floats(0.01, 1e4))}
    spec = {"--rate": cli_number(small_floats(0.1, 10.0)), "--model": MODELS,
            "--step": cli_number(st.integers(1, 5)), "--json": None}
    return {"argv": ["sgd", "schedule", *draw(flags(spec, req))]}


def check_sgd_schedule(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    p = []
    t, e = d.get("switch_times", []), d.get("switch_errors", [])
    if any(not _finite(x) or x < 0 for x in t + e):
        p.append(f"switch times/errors not finite and >= 0: {t[:5]} {e[:5]}")
    elif any(b < a - 1e-9 * max(1, abs(a)) for a, b in zip(t, t[1:])):
        p.append(f"switch times decrease: {t[:8]}")
    return p


POLICIES = Opt(
    st.one_of(st.sampled_from(["pflug", "sync", "bound", "bound:2", "dbw", "async",
                               "pflug:1:5:10:200"]),
              st.integers(1, 60).map(lambda k: f"fixed:{k}"),
              st.integers(2, 60).map(lambda k: f"dbw:{k}")),
    st.sampled_from(["fixed:0", "fixed:x", "magic", "fixed:99999999999999999999", "dbw:1", "",
                     "pflug:-1", "bound:0", "fixed:", "pflug:1:2:3:4:5"]))


@st.composite
def sgd_run_case(draw) -> dict:
    # (no 'digits': loading it takes 3 s, its own tests cover it)
    spec = {"--problem": Opt(st.sampled_from(["synthetic", "diabetes"]), st.just("x")),
            "--workers": cli_number(st.integers(10, 60)), "--policy": POLICIES,
            "--lr": cli_number(st.sampled_from([1e-4, 5e-4, 1e-3, 0.01, 0.1])),
            "--model": MODELS, "--k-max": cli_number(st.integers(1, 10)),
            "--seed": cli_number(st.integers(0, 5)), "--json": None,
            "--plot": st.sampled_from(["s.png", "s.bmp", "no/s.png"])}
    argv = ["sgd", "run", *draw(flags(spec))]
    # a horizon is always given (the default 6000 is fine but slow for a fuzz budget)
    argv += ["--horizon", cli_number(small_floats(1.0, 100.0)).draw(
        draw, draw(st.integers(0, 8)) == 0)]
    return {"argv": argv}


def check_sgd_run(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        _, _, stdout, _ = result
        return ["nan in the output"] if " nan" in stdout.lower() else []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    p = []
    t, e, k = d.get("time", []), d.get("error", []), d.get("k", [])
    if not t or any(not _finite(x) for x in t) or any(b < a for a, b in zip(t, t[1:])):
        p.append("time not finite and nondecreasing")
    if any(not _finite(x) or x < -1e-9 for x in e):
        bad = next(x for x in e if not _finite(x) or x < -1e-9)
        p.append(f"error {bad!r} (diverged or negative) with exit 0")
    if any((not isinstance(x, int)) or x < 1 for x in k):
        p.append("k below 1")
    return p


# --- queue -------------------------------------------------------------------------------
def _queue_required(max_servers=12):
    return {"--servers": cli_number(st.integers(1, max_servers)),
            "--needed": cli_number(st.integers(1, max_servers)),
            "--rate": cli_number(small_floats(0.01, 10.0))}


LEVEL_PROBS = {1: ["1"], 2: ["0.5,0.5", "0.2,0.8", "1,0", "0,1", "0.9,0.1"],
               3: ["0.2,0.3,0.5", "0.6,0.2,0.2", "0,0.5,0.5"]}
QUEUE_SPEC = {
    "--idle-power": cli_number(small_floats(0.0, 2.0)),
    "--json": None,
}


@st.composite
def speed_levels(draw) -> list[str]:
    """--speeds, --powers, --probs of one to three levels that agree in length (valid),
    or, now and then, one of them broken."""
    L = draw(st.integers(1, 3))
    speeds = sorted(draw(st.lists(small_floats(0.1, 5.0), min_size=L, max_size=L, unique=True)))
    argv = ["--speeds", ",".join(f"{x:.4g}" for x in speeds)]
    if draw(st.booleans()):
        argv += ["--powers", ",".join(f"{x:.4g}" for x in
                                      draw(st.lists(small_floats(0.0, 10.0), min_size=L, max_size=L)))]
    if draw(st.booleans()) or L > 1:
        argv += ["--probs", draw(st.sampled_from(LEVEL_PROBS[L]))]
    if draw(st.integers(0, 5)) == 0:
        i = draw(st.integers(0, len(argv) // 2 - 1))
        argv[2 * i + 1] = draw(st.sampled_from(
            ["", "1,x", "nan,1", "-1,2", "0,0", "0.5,0.6", "-0.5,1.5", "1e308,1e308",
             ",".join(["1"] * 200), "1,2,3,4"]))
    return argv


def queue_case(command, extra, max_servers=12):
    @st.composite
    def case(draw):
        n = draw(st.integers(1, max_servers))
        req = {"--servers": Opt(st.just(str(n)), st.sampled_from(["0", "-1", "1e3", "x",
                                                                  "99999999999999999999"])),
               "--needed": Opt(st.integers(1, n).map(str), st.sampled_from([str(n + 1), "0"])),
               "--rate": cli_number(small_floats(0.01, 1.2 * n))}
        return {"argv": ["queue", command, *draw(flags({**QUEUE_SPEC, **extra}, req)),
                         *draw(speed_levels())]}
    return case()


def check_queue(case, result) -> list[str]:
    args = _args(case)
    _, _, stdout, _ = result
    if "--json" not in case["argv"]:
        return ["nan in the output"] if re.search(r"\bnan\b", stdout) else []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    return check_queue_dict(d, args.servers, args.rate, _powers(args), args.idle_power,
                            d.get("method", args.command))


def check_tradeoff(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    p = []
    for a, b, c in zip(d["mean_jobs"], d["energy_per_job"], d["switch_prob"]):
        if a is not None and (a < 0 or b is None or b < 0):
            p.append(f"E[N] {a}, energy {b}")
        if c is None or not 0 <= c <= 1:
            p.append(f"switch probability {c}")
    return p


def check_optimize(case, result) -> list[str]:
    if "--json" not in case["argv"]:
        return []
    d = _json(result)
    if d is None:
        return ["stdout is not JSON"]
    args = _args(case)
    probs = d.get("probs", [])
    p = []
    if any(not _finite(x) or x < -1e-9 or x > 1 + 1e-9 for x in probs) or abs(sum(probs) - 1) > 1e-6:
        p.append(f"probs {probs}")
    if d.get("feasible"):
        p += check_queue_dict(d, args.servers, args.rate, _powers(args), args.idle_power, "approx")
        if args.max_jobs is not None and _finite(d.get("mean_jobs")) and \
                d["mean_jobs"] > args.max_jobs * (1 + 1e-4) + 1e-9:
            p.append(f"feasible but E[N] {d['mean_jobs']} > --max-jobs {args.max_jobs}")
    return p


# --- sweep and demo ----------------------------------------------------------------------
SWEEP_TARGETS = {
    "queue.approx": ({"servers": st.integers(1, 8), "needed": st.integers(1, 8),
                      "rate": small_floats(0.05, 5.0), "speeds": st.just([1.0, 3.0]),
                      "probs": st.sampled_from([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]]),
                      "idle_power": small_floats(0.0, 1.0)}, ["servers", "needed"]),
    "queue.simulate": ({"servers": st.integers(1, 6), "needed": st.integers(1, 6),
                        "rate": small_floats(0.05, 3.0), "jobs": st.integers(10, 2000)},
                       ["servers", "needed", "jobs"]),
    "queue.exact": ({"servers": st.integers(1, 4), "needed": st.integers(1, 4),
                     "rate": small_floats(0.05, 2.0)}, ["servers", "needed"]),
    "llm.plan": ({"scenario": st.sampled_from(["clustered", "topology:Abvt"]),
                  "method": st.sampled_from(["cg-bprr", "petals"]),
                  "num_requests": st.integers(1, 60)}, ["scenario"]),
    "sgd.run": ({"workers": st.integers(2, 30), "policy": st.sampled_from(["fixed:2", "pflug"]),
                 "horizon": small_floats(1.0, 50.0)}, ["horizon"]),
    "sweep_helpers:fail_on": ({"x": st.integers(0, 5), "bad": st.integers(0, 5)}, ["bad"]),
}


@st.composite
def sweep_toml(draw) -> bytes:
    """A sweep file: valid, except for at most two weird places (a value, a grid list, the
    seeds, an unknown section, broken bytes)."""
    target = draw(st.sampled_from(sorted(SWEEP_TARGETS)))
    params, fixed_names = SWEEP_TARGETS[target]
    k = weird_count(draw)
    places = ["seeds", "section", "bytes", *params]
    weird = set(draw(st.lists(st.sampled_from(places), max_size=k, unique=True))) if k else set()
    fixed, grid = {}, {}
    for name, strat in params.items():
        if name in fixed_names or draw(st.booleans()):
            fixed[name] = draw(weird_value if name in weird else strat)
        elif name in weird:
            grid[name] = draw(st.one_of(st.just([]), weird_value.map(lambda v: [v, v]),
                                        weird_value, st.lists(weird_value, min_size=1, max_size=2)))
        else:
            grid[name] = draw(st.lists(strat, min_size=1, max_size=3, unique_by=json.dumps))
    seeds = draw(st.sampled_from([0, -1, 2.0, 10 ** 19, 10 ** 12, "2", True])
                 if "seeds" in weird else st.integers(1, 3))
    head = [f"target = {toml_value(target)}"]
    if "seeds" in weird or draw(st.booleans()):
        head.append(f"seeds = {toml_value(seeds)}")
    text = "[sweep]\n" + "\n".join(head) + "\n"
    if "section" in weird:
        text += "[other]\nx = 1\n"
    text += "[fixed]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in fixed.items())
    text += "[grid]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in grid.items())
    data = text.encode()
    return draw(corrupt(data)) if "bytes" in weird else data


@st.composite
def sweep_case(draw) -> dict:
    files = {"s.toml": draw(sweep_toml()), "dir.csv": None, "file.parquet": b"x"}
    out = Opt(st.sampled_from(["out.csv", "out.parquet"]),
              st.sampled_from(["dir.csv", "nodir/o.csv", "o.txt", "file.parquet", "/dev/null",
                               "s.toml"]))
    spec = {"--n-jobs": cli_number(st.integers(1, 2)), "--chunk-size": cli_number(st.integers(1, 4)),
            "--fail-fast": None, "--retry-failed": None, "--json": None, "--quiet": None,
            "--max-tasks": cli_number(st.integers(20, 100)), "--oversubscribe": None,
            "--out": out}
    argv = ["sweep", "s.toml", *draw(flags(spec))]
    if "--out" not in argv:
        argv += ["--out", "out.csv"]
    if "--n-jobs" not in argv:
        argv += ["--n-jobs", "1"]
    if draw(st.integers(0, 20)) == 0:
        argv += ["--scheduler", draw(st.sampled_from(["garbage", "tcp://", "foo://x:1",
                                                      "tcp://127.0.0.1:1"]))]
    return {"argv": argv, "files": files, "rerun": draw(st.integers(0, 3)) == 0,
            "allow_exit_1": True}


def check_sweep(case, result) -> list[str]:
    import csv
    args = _args(case)
    out = Path(args.out)
    if not out.exists():
        return [f"exit 0 but no output at {out}"]
    if out.suffix == ".csv":
        with out.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        p = []
        for r in rows:
            if not r.get("status"):
                p.append(f"row without a status: {r}")
                break
        return p
    return []


def run_sweep_cli(case, workdir):
    """The sweep, and with ``rerun`` the same sweep again (a resume): the first run's output
    is set aside, its exit status must be 0 or 2, and the rerun is judged."""
    import contextlib
    import io
    if case.get("rerun"):
        from distalloc.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            first = main(list(case["argv"]))
        if first != 0:
            return ("cli", first, None, None) if first != 2 else run_cli(case, workdir)
    return run_cli(case, workdir)


@st.composite
def demo_case(draw) -> dict:
    out = draw(st.sampled_from(["afile", "afile", "/dev/null", "/sys/demo", "a/b/../c", "ok"]))
    if out == "ok" and draw(st.integers(0, 20)):
        out = "afile"           # a real tour takes seconds: rarely
    return {"argv": ["demo", "--out", out], "files": {"afile": b"keep"}}


def check_demo(case, result) -> list[str]:
    out = Path(_args(case).out)
    return [f"{name} not written" for name in ("llm_token_cdf.png", "sgd_error.png",
                                                  "forkjoin_tradeoff.png")
            if not (out / name).is_file()]


def cli_entry(command: str, strategy, check, weight=1.0, timeout_s=30.0, run=run_cli):
    return EntryPoint(f"cli: distalloc {command}", strategy, run, check, weight, timeout_s)


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


ENTRY_POINTS: list[EntryPoint] = []


def _api_entries() -> list[EntryPoint]:
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
        return run(c["problem"], c["workers"], c["policy"], **kw)

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
        p = [] if _finite(mean) and mean >= 0 else [f"E[X_(k)] = {mean!r}"]
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
        want = np.stack([g[b, np.argsort(t[b], kind="stable")[:k]].mean(axis=0)
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
            return check_queue_dict(m.to_dict(), s["servers"], s["rate"], s["powers"] or [1.0],
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
            fork_join(c["system"]), max_jobs=c["max_jobs"], tail_tol=c["tail_tol"]),
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
            max_energy=c["max_energy"]),
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


CLI_ENTRIES = [
    cli_entry("llm plan", llm_plan_case(), check_llm_plan, weight=2),
    cli_entry("llm simulate", llm_simulate_case(), check_llm_simulate, weight=3),
    cli_entry("llm compare", llm_compare_case(), check_llm_compare, weight=1),
    cli_entry("llm scenario", llm_scenario_case(), check_llm_scenario, weight=2),
    cli_entry("sgd schedule", sgd_schedule_case(), check_sgd_schedule, weight=1),
    cli_entry("sgd run", sgd_run_case(), check_sgd_run, weight=1),
    cli_entry("queue approx", queue_case("approx", {}), check_queue, weight=3),
    cli_entry("queue exact", queue_case("exact", {
        "--max-jobs": cli_number(st.integers(1, 64)),
        "--tail-tol": cli_number(st.sampled_from([1e-8, 1e-6, 1e-3]))}, max_servers=5),
        check_queue, weight=1),
    cli_entry("queue simulate", queue_case("simulate", {
        "--jobs": cli_number(st.integers(10, 20000)), "--replications": cli_number(st.integers(1, 3)),
        "--seed": cli_number(st.integers(0, 5))}), check_queue, weight=1),
    cli_entry("queue tradeoff", queue_case("tradeoff", {
        "--points": cli_number(st.integers(2, 30)),
        "--method": st.sampled_from(["approx", "approx", "exact", "nope"]),
        "--plot": st.sampled_from(["t.png", "t.gif", "t"])}, max_servers=6),
        check_tradeoff, weight=1),
    cli_entry("queue optimize", queue_case("optimize", {
        "--max-jobs": cli_number(small_floats(0.1, 10.0)),
        "--max-response": cli_number(small_floats(0.1, 10.0)),
        "--max-energy": cli_number(small_floats(0.1, 20.0))}), check_optimize, weight=0.5),
    cli_entry("sweep", sweep_case(), check_sweep, weight=1, run=run_sweep_cli, timeout_s=60),
    cli_entry("demo", demo_case(), check_demo, weight=0.1, timeout_s=120),
]
ENTRY_POINTS = CLI_ENTRIES + _api_entries()
BY_NAME = {e.name: e for e in ENTRY_POINTS}
