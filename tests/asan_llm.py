"""Run the LLM kernels under AddressSanitizer on the memory-safety reproducers of issue 16.

Builds ``kernels/llm_kernels.pyx``, ``chain_kernels.pyx`` and ``swarm_kernels.pyx`` (from this checkout,
or from ``--kernels DIR``; a module missing there is skipped with its cases) with
``-fsanitize=address`` into a temporary folder, then runs every case below in a fresh
Python process with libasan preloaded and those builds standing in for
``distalloc._kernels.llm_kernels`` / ``chain_kernels`` / ``swarm_kernels``.  A case passes when the process neither crashes nor
reports an ASan error; it may raise a clean error (that is the point of most cases).

Cases: the public entry points on the reported inputs (``decode_ms`` 1e308 on a 2-server
5-block scenario, ``shortest_routes`` on a 100 000-block placement of a 2-block model,
inconsistent array widths, ``memory_gb`` 1e20, a ``petals_placement`` with counts above
L), the kernels called directly with the same hostile arrays (their own guards must stop
them), and valid inputs at the validation bounds (times at TIME_LIMIT_MS / (L l_out),
memory at 2^53 x min(block, cache), |R| = 2^53) through placement and the simulator.

Usage::

    python tests/asan_llm.py                      # this checkout: expect 0 failures
    python tests/asan_llm.py --kernels OLD/kernels  # e.g. the code before the fix

Exit status 0 iff every case is clean.  Needs Cython, gcc and libasan (run by
``tests/test_llm_hardening.py::test_kernels_under_asan`` with ``--run-slow``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import sys, importlib.util, json, math
import numpy as np
import distalloc._kernels
for name, so in {sos!r}.items():
    spec = importlib.util.spec_from_file_location("distalloc._kernels." + name, so)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    sys.modules["distalloc._kernels." + name] = mod
    setattr(distalloc._kernels, name, mod)
mod = sys.modules["distalloc._kernels.llm_kernels"]
from distalloc import ValidationError
from distalloc.llm import *
from distalloc.llm.placement import petals_placement
from distalloc.llm.routing import per_token_costs
from distalloc.llm.simulation import simulate
from distalloc._compiled import llm_kernels as K
assert K is mod
def two_server(**server0):
    s0 = dict(name="s0", memory_gb=4.0, decode_ms=2.0, prefill_ms=10.0); s0.update(server0)
    return dict(model=dict(name="m", num_blocks=5, block_gb=1.0, cache_gb=0.01),
                servers=[s0, dict(name="s1", memory_gb=4.0, decode_ms=2.0, prefill_ms=10.0)],
                clients=[dict(name="c0")], rtt_ms=[[10.0, 10.0]],
                workload=dict(input_tokens=8, output_tokens=16, requests=[0, 0]))
def expect_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except (ValidationError, ValueError, MemoryError):
        return
"""

CASES = {
    # ---- the reported inputs, through the public API --------------------------------------
    "plan decode 1e308": "expect_error(lambda: plan(scenario_from_dict(two_server(decode_ms=1e308))))",
    "simulate decode 1e308": """expect_error(lambda: simulate(scenario_from_dict(two_server(decode_ms=1e308)),
                                 rate_per_s=1.0, num_requests=20))""",
    "shortest_routes 100000 blocks": """sc = clustered(); a, b = per_token_costs(sc)
expect_error(shortest_routes, Placement.from_arrays([0], [100000]), 2, a, b)""",
    "shortest_routes widths": """sc = clustered(); a, b = per_token_costs(sc)
expect_error(shortest_routes, Placement.from_arrays([0, 0], [2, 2]), 2, a[:, :1], b[:1])""",
    "plan memory 1e20": "expect_error(lambda: plan(scenario_from_dict(two_server(memory_gb=1e20))))",
    "petals_placement counts > L": """sc = clustered()
expect_error(petals_placement, sc, np.arange(9), np.full(9, 1000))""",
    # ---- the kernels called directly: their guards must refuse ---------------------------
    "kernel shortest_routes 100000 blocks": """a = np.zeros((1, 1)); b = np.ones(1)
expect_error(K.shortest_routes, np.array([0]), np.array([100000]), 2, a, b,
             np.full(1, 2), 0.0, np.empty(1), np.empty((1, 2), np.int64), np.empty(1, np.int64))""",
    "kernel shortest_routes negative first": """a = np.zeros((1, 1)); b = np.ones(1)
expect_error(K.shortest_routes, np.array([-5]), np.array([2]), 2, a, b,
             np.full(1, 2), 0.0, np.empty(1), np.empty((1, 2), np.int64), np.empty(1, np.int64))""",
    "kernel shortest_routes narrow paths": """a = np.zeros((1, 8)); b = np.ones(8)
expect_error(K.shortest_routes, np.arange(8), np.ones(8, np.int64), 8, a, b,
             np.full(8, 8), 0.0, np.empty(1), np.empty((1, 1), np.int64), np.empty(1, np.int64))""",
    "kernel petals_place": """expect_error(K.petals_place, np.array([1000, 2]), np.ones(2), np.array([0, 1]), 4,
             np.zeros(2, np.int64), np.zeros(4))""",
    "kernel petals_place join order": """expect_error(K.petals_place, np.array([1, 2]), np.ones(2), np.array([7]), 4,
             np.zeros(2, np.int64), np.zeros(4))""",
    "kernel cg_bp NaN times": """S, L = 2, 5
out = [np.empty(S, np.int64), np.empty(S), np.empty(S, np.int64), np.empty(S, np.int64),
       np.empty(S, np.int64), np.empty(L)]
K.cg_bp(np.array([4.0, 4.0]), np.array([1e308, 2.0]), np.array([1e308, 10.0]), 1.0, 0.01, 2, L, *out)
assert np.all((out[4] >= 0) & (out[4] + out[0] <= L)), out""",
    "kernel cg_bp memory 1e300": """S, L = 2, 5
out = [np.empty(S, np.int64), np.empty(S), np.empty(S, np.int64), np.empty(S, np.int64),
       np.empty(S, np.int64), np.empty(L)]
K.cg_bp(np.array([1e300, 4.0]), np.array([2.0, 2.0]), np.array([10.0, 10.0]), 1.0, 1e-300, 2**62, L, *out)
assert out[0][0] == L, out""",
    "kernel evaluate_routes bad client": """expect_error(K.evaluate_routes, np.zeros((1, 1), np.int64), np.ones((1, 1), np.int64), 1,
             np.zeros(1, np.int64), np.array([9]), np.array([0, 1]), np.array([0]),
             np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1), np.ones(1), 4, 1.0, 0.1,
             np.empty(1), np.empty(1), np.empty(1), np.empty(1, np.int8), np.empty((1, 1)))""",
    "kernel evaluate_routes bad indptr": """expect_error(K.evaluate_routes, np.zeros((1, 1), np.int64), np.ones((1, 1), np.int64), 1,
             np.zeros(1, np.int64), np.array([0]), np.array([0, 50]), np.array([0]),
             np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1), np.ones(1), 4, 1.0, 0.1,
             np.empty(1), np.empty(1), np.empty(1), np.empty(1, np.int8), np.empty((1, 1)))""",
    "kernel simulate bad client and placement": """from distalloc._compiled import swarm_kernels as SK
N, S, L = 3, 2, 4
def call(first, num, client):
    eng = SK.Engine(first, num, L, np.ones((1, S)), np.ones((1, S)), np.ones(S), np.ones(S),
                    np.ones((1, S)), np.ones(S), np.full(S, 10.0), np.ones(S), np.ones(S),
                    np.ones(S), np.full(S, 2, dtype=np.int64), np.zeros(S), 1.0, 0.1, 4,
                    SK.POLICIES["ws-rr"], SK.JOIN_RULES["cg-bp"], 1e4, 0.75)
    out = [np.empty(N) for _ in range(4)] + [np.empty(N, np.int64) for _ in range(4)]
    return SK.simulate(eng, np.arange(N, dtype=float), client, np.full(N, 5), np.ones(N),
                       0.0, 1e3, 6e4, 10, 0.0, 0.0, 0, *out)
expect_error(call, np.array([0, 2]), np.array([2, 2]), np.array([0, 5, 0]))
expect_error(call, np.array([0, 3]), np.array([2, 9]), np.array([0, 0, 0]))
call(np.array([0, 2]), np.array([2, 2]), np.array([0, 0, 0]))""",
    # ---- chain kernels (SPEC 1.10) --------------------------------------------------------
    "chain gca bad placement": """from distalloc._compiled import chain_kernels as CK
expect_error(CK.gca, np.array([0, 3]), np.array([2, 9]), 4, np.ones((1, 2)), np.ones(2),
             np.full(2, 5), np.full(2, -1), np.ones(2))""",
    "chain jffc engine bad client": """from distalloc._compiled import chain_kernels as CK, swarm_kernels as SK
N = 3
none = np.zeros(0, np.int64)
eng = SK.Engine(np.zeros(1, np.int64), np.ones(1, np.int64), 1, np.zeros((1, 1)), np.zeros((1, 1)),
                np.zeros(1), np.zeros(1), np.zeros((1, 1)), np.zeros(1), np.full(1, 3.0),
                np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1, np.int64), np.zeros(1), 1.0, 1.0,
                1, SK.POLICIES["jffc"], SK.JOIN_RULES["chains"], 1e4, 0.75)
eng.set_chains(np.zeros(1, np.int64), np.ones(1, np.int64), np.array([0, 1]), np.array([2]),
               np.ones(1), np.full(1, -1), np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1)),
               np.full(1, -1), np.zeros((0, 1)), np.zeros(1), np.zeros(1), none, 1.0)
expect_error(SK.simulate, eng, np.arange(N, dtype=float), np.array([0, 4, 0]), np.full(N, 3),
             np.ones(N), 0.0, 1e3, 6e4, 10, 0.0, 0.0, 0, *[np.empty(N) for _ in range(4)],
             *[np.empty(N, np.int64) for _ in range(4)])
expect_error(eng.set_chains, np.zeros(1, np.int64), np.ones(1, np.int64), np.array([0, 1]),
             np.array([2]), np.ones(1), np.full(1, -1), np.ones((1, 1)), np.ones((1, 1)),
             np.ones((1, 1)), np.full(1, -1), np.zeros((0, 1)), np.zeros(1), np.zeros(1), none, 1.0)
expect_error(CK.jffc_fill, np.array([1]), np.ones((1, 1)), none, none, np.array([0, 4, 0]),
             np.empty(N, np.int64))""",
    "jffc engine: calls, churn, user score": """from distalloc._compiled import swarm_kernels as SK
import numba
sc = clustered()
sw = Swarm(sc, method="chains", rate_per_s=2.0)
t = 0.0
for i in range(300):
    a = sw.route(i % 3, t)
    t += 0.3
    if i % 7 == 0 and sw.num_sessions:
        sw.finish(sw.to_dict()["sessions"][0]["session"], t)
    if i % 50 == 10:
        sw.leave(1, t)
    if i % 50 == 30:
        sw.join(1, t); sw.take_updates()
    if i % 100 == 99:
        sw.rebalance(t)
assert sw._engine.check() is None, sw._engine.check()
@numba.cfunc("float64(float64, float64, int64, int64)")
def score(s, w, f, c):
    return -f
for m in ("chains", "jffc-whole"):
    simulate(sc if m == "chains" else scenario_from_dict(two_server(memory_gb=20.0)), m,
             rate_per_s=1.0, num_requests=400, seed=1, churn="60:20")
simulate(synthetic_scenario(200, 70, num_clients=4, seed=0), "chains", rate_per_s=5.0,
         num_requests=3000, seed=2, churn="120:30", dispatch=score)""",
    "chain block counts NaN and huge": """from distalloc._compiled import chain_kernels as CK
m = np.empty(3, np.int64)
CK.block_counts(np.array([math.nan, 1e300, 4.0]), 1.0, 1e-300, 1, 5, m)
assert m.tolist() == [0, 5, 4], m""",
    "chains through the API": """from distalloc.llm.chains import compose_chains
sc = clustered()
compose_chains(sc, "chains", rate_per_s=0.5)
expect_error(compose_chains, sc, "chains", rate_per_s=0.5, reservation=2 ** 70)
expect_error(compose_chains, sc, "chains", rate_per_s=0.5,
             placement=[{"server": 0, "first_block": 60, "num_blocks": 70}])""",
    # ---- valid inputs at the validation bounds --------------------------------------------
    "times at the bound": """from distalloc.llm.limits import time_bound_ms
t = time_bound_ms(5, 16)
d = two_server(decode_ms=t, prefill_ms=t); d["rtt_ms"] = [[t, t]]
sc = scenario_from_dict(d)
for m in ("cg-bprr", "petals"):
    plan(sc, m)
for m in ("cg-bprr", "petals"):
    expect_error(simulate, sc, m, rate_per_s=1.0, num_requests=30, noise=10.0)""",
    "memory at the bound": """d = two_server(memory_gb=2.0**53 * 0.01)
sc = scenario_from_dict(d)
plan(sc, "cg-bprr"); plan(sc, "petals")
simulate(sc, "cg-bprr", rate_per_s=5.0, num_requests=50)
simulate(sc, "petals", rate_per_s=5.0, num_requests=50)""",
    "planned |R| 2^53": """sc = clustered()
expect_error(simulate, sc, rate_per_s=1.0, num_requests=10, planned_requests=2**53)
cg_bp_placement(sc, 2**53)""",
}


MODULES = ("llm_kernels", "chain_kernels", "swarm_kernels")


def build(kernels: Path, out: Path) -> dict[str, str]:
    """Compile the LLM kernel modules found in ``kernels`` with AddressSanitizer; returns
    {module: shared object}."""
    from Cython.Build import cythonize
    import numpy as np
    src = out / "src"
    shutil.copytree(kernels, src, ignore=shutil.ignore_patterns("*.so", "*.c"))
    built = {}
    for name in MODULES:
        if not (src / f"{name}.pyx").exists():
            continue
        cythonize([str(src / f"{name}.pyx")], include_path=[str(src)], quiet=True,
                  compiler_directives={"language_level": "3", "cdivision": True})
        so = out / (name + sysconfig.get_config_var("EXT_SUFFIX"))
        cmd = ["gcc", "-shared", "-fPIC", "-O1", "-g", "-fsanitize=address",
               "-fno-omit-frame-pointer", "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION",
               f"-I{sysconfig.get_paths()['include']}", f"-I{np.get_include()}", f"-I{src}",
               str(src / f"{name}.c"), "-o", str(so)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        built[name] = str(so)
    return built


def run_case(sos: dict[str, str], code: str, libasan: str) -> tuple[bool, str]:
    script = textwrap.dedent(PRELUDE.format(sos=sos)) + "\n" + code + "\nprint('CLEAN')\n"
    env = dict(os.environ, LD_PRELOAD=libasan,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    ok = proc.returncode == 0 and "CLEAN" in proc.stdout and "AddressSanitizer" not in proc.stderr
    detail = ""
    if not ok:
        lines = [ln for ln in proc.stderr.splitlines() if "ERROR: AddressSanitizer" in ln]
        detail = (lines[0] if lines else (proc.stderr.strip().splitlines() or ["?"])[-1])[:160]
        detail = f"exit {proc.returncode}: {detail}"
    return ok, detail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=Path, default=ROOT / "kernels",
                    help="folder holding llm_kernels.pyx and llm_core.pxd (default: this checkout)")
    ap.add_argument("--keep", action="store_true", help="keep the build folder")
    args = ap.parse_args(argv)
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="asan-llm-"))
    try:
        sos = build(args.kernels, tmp)
        failures = 0
        for name, code in CASES.items():
            if "chain_kernels" not in sos and ("CK." in code or "compose_chains" in code):
                print(f"skip   {name}  (no chain_kernels.pyx in {args.kernels})")
                continue
            ok, detail = run_case(sos, code, libasan)
            failures += not ok
            print(f"{'clean' if ok else 'FAIL '}  {name}" + (f"  ({detail})" if detail else ""))
        print(f"{len(CASES) - failures} of {len(CASES)} cases clean under AddressSanitizer")
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
