"""Run a real PETALS 2.2 swarm on loopback with the block ranges of a distalloc placement and
the RTTs of a distalloc scenario, time a client workload, write SPEC 1.11 measurements.

Runs with the repository's Python (distalloc importable); every PETALS process runs with the
PETALS venv's Python (``build_env.sh``).  One run:

1. a tiny random LLaMA with the scenario's L blocks (``petals_side.py model``, cached);
2. one delay relay process (``relay.py``): server j listens on P_j, announces P_j + 1000
   where the relay holds each chunk ``rtt_j / 2`` ms in each direction;
3. a DHT, then the servers one after another in join order, each started when the previous
   logged ``Started``: ``--block_indices a:b`` (a distalloc placement) or ``--num_blocks m``
   (PETALS chooses the blocks itself; the harness reads the choice from the log);
4. the client (``petals_side.py client``) runs the requests one after another, timing every
   step; each request becomes one measurements row (chain, blocks, injected RTTs, TTFT,
   mean per-token time after the first) plus the machine load;
5. every process group is terminated (``procs.Swarm``), also on Ctrl-C and on failure.

Command line (see the README section "Validation against a real PETALS swarm")::

    python tools/petals_swarm/swarm.py SCENARIO --method cg-bprr --out run.csv
    python tools/petals_swarm/swarm.py SCENARIO --method petals --own-choice --out run.csv
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from procs import Swarm, wait_for_line  # noqa: E402

DEFAULT_ENV = os.environ.get("PETALS_ENV", "/work/petals-env")
DEFAULT_WORK = os.environ.get("PETALS_RUNS", "/work/petals-runs")


@dataclass
class ServerSpec:
    """One PETALS server: ``block_indices`` (first, end) pins its blocks, ``None`` lets PETALS
    choose ``num_blocks`` of them; ``rtt_ms`` is the round trip its relay adds."""

    name: str
    num_blocks: int
    block_indices: tuple[int, int] | None
    rtt_ms: float
    throughput: float = 1.0


@dataclass
class RunSpec:
    label: str
    num_blocks_total: int
    servers: list[ServerSpec]              # in join order
    workload: list[tuple[int, int]]        # (input_tokens, output_tokens) per request
    rebalance: bool = False


@dataclass
class RunResult:
    spec: RunSpec
    rows: list[Any]                        # distalloc.llm.calibrate.Measurement
    extra: list[dict]
    chosen_blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    wall_s: float = 0.0


def load_avg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pick_base_port(n: int, start: int = 31000) -> int:
    for base in range(start, 40000, 50):
        ports = [base + i for i in range(n + 1)] + [base + 1000 + i for i in range(n + 1)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free block of loopback ports")


def ensure_model(petals_py: str, model_root: Path, num_blocks: int) -> Path:
    folder = model_root / f"tiny-llama-{num_blocks}"
    if not (folder / "config.json").exists():
        import subprocess
        subprocess.run([petals_py, str(HERE / "petals_side.py"), "model", str(folder),
                        "--blocks", str(num_blocks)], check=True, env=_petals_env(),
                       stdout=subprocess.DEVNULL)
    return folder


def _announced_blocks(line: str) -> tuple[int, int]:
    """(first, end) from "Announced that blocks [3, 4, 5] are joining" or "... range(3, 6) ..."."""
    m = re.search(r"blocks (?:range\((\d+), (\d+)\)|\[([\d, ]+)\])", line)
    if m is None:
        raise RuntimeError(f"cannot read the blocks of: {line}")
    if m.group(1) is not None:
        return int(m.group(1)), int(m.group(2))
    blocks = [int(x) for x in m.group(3).split(",")]
    return min(blocks), max(blocks) + 1


def _petals_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def run_swarm(spec: RunSpec, *, petals_env: str = DEFAULT_ENV, work_dir: str | Path = DEFAULT_WORK,
              num_handlers: int = 2, start_timeout_s: float = 180.0,
              client_timeout_s: float = 900.0, grace_s: float = 10.0,
              log=print) -> RunResult:
    """Start the swarm of ``spec``, run its workload, tear everything down.

    Raises RuntimeError/TimeoutError when a process dies or does not become ready; every
    process group started so far is terminated first.
    """
    from distalloc.llm.calibrate import Measurement
    petals_py = str(Path(petals_env) / "bin" / "python")
    work = Path(work_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{spec.label}"
    run_dir = work / "logs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    model = ensure_model(petals_py, work / "models", spec.num_blocks_total)
    env = _petals_env()
    n = len(spec.servers)
    base = _pick_base_port(n)
    dht_port = base
    prefix = f"distalloc-{uuid.uuid4().hex[:8]}"   # fresh prefix: stale records cause dial backoff
    t_start = time.monotonic()
    result = RunResult(spec, [], [])
    with Swarm(run_dir, grace_s=grace_s) as swarm:
        ids = [str(run_dir / f"{s.name}.id") for s in spec.servers] + [str(run_dir / "dht.id")]
        import subprocess
        out = subprocess.run([petals_py, str(HERE / "petals_side.py"), "identity", *ids],
                             check=True, capture_output=True, text=True, env=env).stdout.split()
        peer_ids = out[-len(ids):]
        name_of = {peer_ids[j]: s.name for j, s in enumerate(spec.servers)}
        dht_peer = f"/ip4/127.0.0.1/tcp/{dht_port}/p2p/{peer_ids[-1]}"

        relays = [f"{base + 1001 + j}:{base + 1 + j}:{s.rtt_ms / 2:g}"
                  for j, s in enumerate(spec.servers)]
        swarm.start("relay", [sys.executable, str(HERE / "relay.py"), *relays], env=env)
        wait_for_line(swarm.log_path("relay"), "relay ready", 30, swarm, "relay")

        swarm.start("dht", [petals_py, "-m", "petals.cli.run_dht", "--host_maddrs",
                            f"/ip4/127.0.0.1/tcp/{dht_port}", "--identity_path", ids[-1]], env=env)
        wait_for_line(swarm.log_path("dht"), "Running a DHT instance", start_timeout_s, swarm, "dht")
        log(f"[{spec.label}] DHT up at {dht_peer} (prefix {prefix}), load {load_avg():.1f}")

        for j, s in enumerate(spec.servers):
            port = base + 1 + j
            argv = [petals_py, "-m", "petals.cli.run_server", str(model), "--dht_prefix", prefix,
                    "--initial_peers", dht_peer, "--host_maddrs", f"/ip4/127.0.0.1/tcp/{port}",
                    "--announce_maddrs", f"/ip4/127.0.0.1/tcp/{port + 1000}",
                    "--identity_path", ids[j], "--device", "cpu", "--torch_dtype", "float32",
                    "--quant_type", "none", "--throughput", f"{s.throughput:g}",
                    "--num_handlers", str(num_handlers), "--skip_reachability_check",
                    "--no_auto_relay", "--inference_max_length", "4096"]
            if s.block_indices is not None:
                argv += ["--block_indices", f"{s.block_indices[0]}:{s.block_indices[1]}"]
            else:
                argv += ["--num_blocks", str(s.num_blocks)]
                if not spec.rebalance:
                    argv += ["--balance_quality", "0"]
            swarm.start(s.name, argv, env=env)
            wait_for_line(swarm.log_path(s.name), "Started", start_timeout_s, swarm, s.name)
            line = wait_for_line(swarm.log_path(s.name), "Announced that blocks", 5, swarm, s.name)
            first, end = _announced_blocks(line)
            result.chosen_blocks[s.name] = (first, end)
            log(f"[{spec.label}] server {s.name} serves [{first}, {end}), rtt {s.rtt_ms:g} ms")

        workload = [{"input_tokens": a, "output_tokens": b} for a, b in spec.workload]
        client = swarm.start("client", [petals_py, str(HERE / "petals_side.py"), "client",
                                        str(model), "--peer", dht_peer, "--prefix", prefix,
                                        "--workload", json.dumps(workload)], env=env)
        deadline = time.monotonic() + client_timeout_s
        done = False
        while not done and client.poll() is None and time.monotonic() < deadline:
            swarm.check_alive(*[s.name for s in spec.servers], "dht", "relay")
            time.sleep(0.5)
            done = '{"event": "client done"}' in swarm.log_path("client").read_text(errors="replace")
        if not done and client.returncode is None:
            raise TimeoutError(f"client did not finish within {client_timeout_s:g} s")
        if not done and client.returncode != 0:
            swarm.check_alive("client")
        rtt_of = {s.name: s.rtt_ms for s in spec.servers}
        for line in swarm.log_path("client").read_text().splitlines():
            if not line.startswith('{"request"'):
                continue
            r = json.loads(line)
            names = [name_of[p] for p, _, _ in r["chain"]]
            steps = r["step_ms"]
            if len(steps) < 2:
                continue
            result.rows.append(Measurement(
                servers=tuple(names), blocks=tuple(int(e - a) for _, a, e in r["chain"]),
                rtt_ms=tuple(rtt_of[nm] for nm in names), input_tokens=r["input_tokens"],
                output_tokens=r["output_tokens"], ttft_ms=float(steps[0]),
                token_ms=float(sum(steps[1:]) / (len(steps) - 1))))
            result.extra.append({"run": stamp, "request": r["request"],
                                 "first_blocks": ">".join(str(a) for _, a, _ in r["chain"]),
                                 "token_ms_median": f"{sorted(steps[1:])[(len(steps) - 2) // 2]:.4f}",
                                 "load_avg_1m": f"{load_avg():.2f}"})
        if len(result.rows) != len(spec.workload):
            raise RuntimeError(f"client reported {len(result.rows)} of {len(spec.workload)} requests")
    result.wall_s = time.monotonic() - t_start
    log(f"[{spec.label}] {len(result.rows)} requests in {result.wall_s:.0f} s, load {load_avg():.1f}")
    return result


# ------------------------------------------------------------------------------------------
# distalloc scenario + plan -> RunSpec
# ------------------------------------------------------------------------------------------
def workload(num_requests: int, input_tokens: Sequence[int], output_tokens: int) -> list[tuple[int, int]]:
    """Requests alternating over the prompt lengths (two or more lengths let the
    calibration separate prefill per token from per block)."""
    return [(int(input_tokens[i % len(input_tokens)]), int(output_tokens)) for i in range(num_requests)]


def scenario_delays(scenario, client: int = 0, rtt_offset_ms: float = 100.0,
                    rtt_scale: float = 1.0) -> list[float]:
    """Injected round trip per server: (scenario RTT - offset) x scale, >= 0.  The built-in
    scenarios add SPEC 1.3's 100 ms per-token overhead to the raw RTT; the offset removes
    it so that the relay injects the raw network round trip (scaled)."""
    import numpy as np
    return [float(x) for x in np.maximum(scenario.rtt_ms[client] - rtt_offset_ms, 0.0) * rtt_scale]


def spec_from_plan(scenario, plan, *, label: str, own_choice: bool, delays: Sequence[float],
                   requests: list[tuple[int, int]], join_order: Sequence[int] | None = None) -> RunSpec:
    """Servers of ``plan``'s placement (used servers only), pinned to its block ranges, or,
    with ``own_choice``, started in ``join_order`` with the plan's block counts and the
    scenario's announced throughputs so that PETALS picks the blocks itself."""
    pl = plan.placement
    used = [int(j) for j in range(scenario.num_servers) if pl.num_blocks[j] > 0]
    order = [j for j in (join_order if join_order is not None else used) if j in used]
    thr = scenario.server_throughput(pl.num_blocks)
    servers = []
    for j in order:
        a, m = int(pl.first_block[j]), int(pl.num_blocks[j])
        servers.append(ServerSpec(scenario.server_names[j], m, None if own_choice else (a, a + m),
                                  float(delays[j]), float(thr[j])))
    return RunSpec(label, scenario.num_blocks, servers, requests)


def write_csv(path: str | Path, results: Sequence[RunResult]) -> None:
    from distalloc.llm.calibrate import write_measurements
    rows = [r for res in results for r in res.rows]
    extra = [e for res in results for e in res.extra]
    write_measurements(path, rows, extra)


def main(argv: Sequence[str] | None = None) -> int:
    from distalloc.llm import plan as make_plan, resolve_scenario
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("scenario", help="distalloc scenario (file or built-in, e.g. topology:Abvt)")
    ap.add_argument("--servers", type=int, default=None, help="servers of a built-in scenario")
    ap.add_argument("--scenario-seed", type=int, default=0)
    ap.add_argument("--method", default="cg-bprr", help="distalloc placement method")
    ap.add_argument("--seed", type=int, default=0, help="PETALS join order seed")
    ap.add_argument("--own-choice", action="store_true",
                    help="start servers without --block_indices (PETALS chooses), in the join "
                    "order of distalloc's petals method")
    ap.add_argument("--planned-requests", type=int, default=8, help="|R| for the placement")
    ap.add_argument("--client", type=int, default=0, help="client whose RTTs are injected")
    ap.add_argument("--rtt-offset-ms", type=float, default=100.0)
    ap.add_argument("--rtt-scale", type=float, default=1.0)
    ap.add_argument("--requests", type=int, default=6)
    ap.add_argument("--input-tokens", default="8,32")
    ap.add_argument("--output-tokens", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", required=True, help="measurements CSV to write")
    ap.add_argument("--petals-env", default=DEFAULT_ENV)
    ap.add_argument("--work-dir", default=DEFAULT_WORK)
    a = ap.parse_args(argv)
    sc = resolve_scenario(a.scenario, num_servers=a.servers, seed=a.scenario_seed)
    sc = sc.with_requests(a.planned_requests)
    p = make_plan(sc, a.method, seed=a.seed)
    if not p.feasible:
        print(f"swarm.py: {a.method} has no plan: {p.reason}", file=sys.stderr)
        return 2
    order = p.extra.get("join_order") if a.own_choice else None
    spec = spec_from_plan(sc, p, label=f"{a.method}{'-own' if a.own_choice else ''}",
                          own_choice=a.own_choice,
                          delays=scenario_delays(sc, a.client, a.rtt_offset_ms, a.rtt_scale),
                          requests=workload(a.requests, [int(x) for x in a.input_tokens.split(",")],
                                            a.output_tokens), join_order=order)
    results = [run_swarm(spec, petals_env=a.petals_env, work_dir=a.work_dir)
               for _ in range(a.repeats)]
    write_csv(a.out, results)
    print(f"wrote {sum(len(r.rows) for r in results)} rows to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
