"""Fuzz strategies and checks for every CLI subcommand: generated flags (typical values
with at most two weird ones) and files (scenarios, traces, sweep files).  Each entry is a
``cli_entry(command, strategy, check)``; the strategy draws ``{"argv": [...], "files":
{name: bytes}}``."""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

from fuzz_checks import (_args, _finite, _powers, check_plan_dict, check_queue_dict,
                         json_check, text_has_nan,
                         check_simulate_dict, need_finite)
from fuzz_runner import EntryPoint, run_cli
from fuzz_values import (SECRET, Opt, cli_number, corrupt, number_list, scenario_file,
                         small_floats, toml_value, trace_file, weird_count, weird_value)

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


check_llm_plan = json_check(lambda case, d: check_plan_dict(d))


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


def _online_case(draw, command: str, spec: dict) -> dict:
    """``llm COMMAND`` on a drawn scenario (and maybe a trace) with flags drawn from SPEC."""
    scen, files = draw(llm_scenario_arg(allow_big=False))
    spec = _for_scenario(spec, scen)
    trace, tfiles = _trace_option(draw)
    return {"argv": ["llm", command, *scen, *trace, *draw(flags(spec))],
            "files": {**files, **tfiles}}


@st.composite
def llm_simulate_case(draw) -> dict:
    return _online_case(draw, "simulate", _online_spec())


check_llm_simulate = json_check(lambda case, d: check_simulate_dict(d))


@st.composite
def llm_compare_case(draw) -> dict:
    from distalloc.llm.simulation import ONLINE_METHODS
    spec = _online_spec()
    del spec["--method"]
    spec["--methods"] = st.one_of(
        st.lists(st.sampled_from([m for m in ONLINE_METHODS if m != "milp"]), min_size=1,
                 max_size=3, unique=True).map(",".join),
        st.sampled_from(["", "cg-bprr,", "nope", "petals,petals"]))
    spec["--seeds"] = cli_number(st.integers(1, 3))
    spec["--plot"] = Opt(st.sampled_from(["c.png", "c.svg"]),
                         st.sampled_from(["c.txt", "nodir/c.png", "."]))
    return _online_case(draw, "compare", spec)


@json_check
def check_llm_compare(case, d) -> list[str]:
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


@json_check
def check_sgd_schedule(case, d) -> list[str]:
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
    # as `limited` for queues: within the per-case time limit a long but legitimate run
    # (--horizon 84000 at k = 1: ~5e6 iterations, minutes) must be refused, not run
    if draw(st.integers(0, 9)) == 0:
        argv += ["--max-iterations", draw(st.sampled_from(["0", "-1", "1", "x", "1e20"]))]
    else:
        argv += ["--max-iterations", "200000"]
    return {"argv": argv}


@json_check(text=text_has_nan)
def check_sgd_run(case, d) -> list[str]:
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


#: resource limits of queue exact/simulate (typical values small: never a legit long run)
QUEUE_LIMITS = {
    "--max-seconds": Opt(st.sampled_from(["0.5", "2", "4"]),
                         st.sampled_from(["0", "-1", "nan", "inf", "1e308", "x"])),
    "--max-memory-gb": Opt(st.sampled_from(["0.001", "0.1", "1"]),
                           st.sampled_from(["0", "-1", "nan", "1e308", "x"]))}


def limited(strategy, seconds="4"):
    """Cases of ``strategy`` that always carry --max-seconds (default ``seconds``): within
    the per-case time limit a slow but legitimate computation must be refused, not run."""
    @st.composite
    def case(draw):
        c = draw(strategy)
        if "--max-seconds" not in c["argv"]:
            c["argv"] = [*c["argv"], "--max-seconds", seconds]
        return c
    return case()


@json_check(text=text_has_nan)
def check_queue(case, d) -> list[str]:
    args = _args(case)
    return check_queue_dict(d, args.servers, args.rate, _powers(args), args.idle_power,
                            d.get("method", args.command))


@json_check
def check_tradeoff(case, d) -> list[str]:
    p = []
    for a, b, c in zip(d["mean_jobs"], d["energy_per_job"], d["switch_prob"]):
        if a is not None and (a < 0 or b is None or b < 0):
            p.append(f"E[N] {a}, energy {b}")
        if c is None or not 0 <= c <= 1:
            p.append(f"switch probability {c}")
    return p


@json_check
def check_optimize(case, d) -> list[str]:
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
    # each point is bounded by max_seconds (default 60 s, above the per-case limit): as in
    # `limited`, a slow but legitimate point must be refused within the case's time
    "queue.exact": ({"servers": st.integers(1, 4), "needed": st.integers(1, 4),
                     "rate": small_floats(0.05, 2.0), "max_seconds": st.sampled_from([1.0, 3.0])},
                    ["servers", "needed", "max_seconds"]),
    "llm.plan": ({"scenario": st.sampled_from(["clustered", "topology:Abvt"]),
                  "method": st.sampled_from(["cg-bprr", "petals"]),
                  "num_requests": st.integers(1, 60)}, ["scenario"]),
    # max_iterations as `sgd run` cases carry --max-iterations (the default 1e7 is minutes)
    "sgd.run": ({"workers": st.integers(2, 30), "policy": st.sampled_from(["fixed:2", "pflug"]),
                 "horizon": small_floats(1.0, 50.0), "max_iterations": st.just(200_000)},
                ["horizon", "max_iterations"]),
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


CLI_ENTRIES = [
    cli_entry("llm plan", llm_plan_case(), check_llm_plan, weight=2),
    cli_entry("llm simulate", llm_simulate_case(), check_llm_simulate, weight=3),
    cli_entry("llm compare", llm_compare_case(), check_llm_compare, weight=1),
    cli_entry("llm scenario", llm_scenario_case(), check_llm_scenario, weight=2),
    cli_entry("sgd schedule", sgd_schedule_case(), check_sgd_schedule, weight=1),
    cli_entry("sgd run", sgd_run_case(), check_sgd_run, weight=1),
    cli_entry("queue approx", queue_case("approx", {}), check_queue, weight=3),
    cli_entry("queue exact", limited(queue_case("exact", {
        **QUEUE_LIMITS, "--max-jobs": cli_number(st.integers(1, 200)),
        "--tail-tol": cli_number(st.sampled_from([1e-8, 1e-6, 1e-3]))}, max_servers=6)),
        check_queue, weight=1.5),
    cli_entry("queue simulate", limited(queue_case("simulate", {
        "--max-seconds": QUEUE_LIMITS["--max-seconds"], "--transient": None,
        "--jobs": cli_number(st.one_of(st.integers(10, 20000), st.just(10**7))),
        "--replications": cli_number(st.integers(1, 3)),
        "--seed": cli_number(st.integers(0, 5))})), check_queue, weight=1),
    cli_entry("queue tradeoff", queue_case("tradeoff", {
        "--points": cli_number(st.integers(2, 30)),
        "--method": st.sampled_from(["approx", "approx", "exact", "nope"]),
        "--plot": st.sampled_from(["t.png", "t.gif", "t"])}, max_servers=6),
        check_tradeoff, weight=1),
    # optimize is bounded by --max-seconds (default 60 s, above the per-case limit): its
    # cases carry it as exact's do (300 equal speed levels searched for 60 s before)
    cli_entry("queue optimize", limited(queue_case("optimize", {
        "--max-jobs": cli_number(small_floats(0.1, 10.0)),
        "--max-response": cli_number(small_floats(0.1, 10.0)),
        "--max-energy": cli_number(small_floats(0.1, 20.0))}, max_servers=8)), check_optimize,
        weight=0.5),
    cli_entry("sweep", sweep_case(), check_sweep, weight=1, run=run_sweep_cli, timeout_s=60),
    cli_entry("demo", demo_case(), check_demo, weight=0.1, timeout_s=120),
]
