"""Validate distalloc's performance model against a real PETALS swarm on loopback.

    python tools/petals_swarm/validate.py run [--out-dir DIR]       # real swarm, ~35 min
    python tools/petals_swarm/validate.py analyse DIR               # tables from the CSVs

``run`` needs the PETALS venv (``build_env.sh``).  The scenario is ``topology:Abvt`` with 6
servers (1 A100 + 5 MIG profiles, scenario seed 0): its raw client-server RTTs (6-29 ms)
are injected by the relays unscaled, its L = 70 blocks are 70 blocks of the tiny model.

1. Calibration set (``train.csv``): runs whose servers hold a random contiguous partition of
   the 70 blocks (1-4 servers, so the chain is forced), random injected RTTs in
   {0, 5, 10, 20, 30} ms, every scenario server name in several runs.
2. Held-out set (``heldout.csv``): CG-BPRR's placement of the scenario (pinned with
   ``--block_indices``), and PETALS's own block choice (servers started without it, in the
   join order of distalloc's ``petals`` method for seeds 0, 1, 2, with the block counts and
   announced throughputs distalloc's PETALS model gives them), with the scenario's RTTs.
3. ``joins.json``: per own-choice run, the blocks each server chose and the blocks
   distalloc's ``petals`` method predicts for the same join order.

``analyse`` calibrates on ``train.csv``, predicts ``heldout.csv`` and prints (1) the
median/p95 relative errors of per-token time and TTFT, (2) measured per-token times beside
distalloc's predictions for CG-BPRR and PETALS, (3) predicted against chosen blocks.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SCENARIO = "topology:Abvt"
NUM_SERVERS = 6
PLANNED_REQUESTS = 8
RTT_OFFSET_MS = 100.0          # SPEC 1.3's per-token overhead the built-ins add to raw RTT
TRAIN_RUNS = 10
TRAIN_RTTS_MS = (0.0, 5.0, 10.0, 20.0, 30.0)
PROMPTS = (8, 32)
OUTPUT_TOKENS = 24
OWN_CHOICE_SEEDS = (0, 1, 2)


def scenario():
    from distalloc.llm import builtin_scenario
    return builtin_scenario(SCENARIO, num_servers=NUM_SERVERS, seed=0).with_requests(PLANNED_REQUESTS)


def raw_rtt_scenario(sc):
    """The scenario with its RTT matrices replaced by the raw network round trips (what the
    relays inject), the form a calibrated profile is applied to."""
    raw = np.maximum(sc.rtt_ms - RTT_OFFSET_MS, 0.0)
    return replace(sc, rtt_ms=raw, prefill_rtt_ms=raw.copy())


def train_specs(sc, seed: int = 0):
    import swarm
    rng = np.random.default_rng(seed)
    names = list(sc.server_names)
    specs, cursor = [], 0
    for r in range(TRAIN_RUNS):
        k = int(rng.integers(1, 5))
        chosen = [names[(cursor + i) % len(names)] for i in range(k)]   # every name recurs
        cursor += k
        rng.shuffle(chosen)
        cuts = np.sort(rng.choice(np.arange(1, sc.num_blocks), size=k - 1, replace=False))
        edges = [0, *cuts.tolist(), sc.num_blocks]
        servers = [swarm.ServerSpec(n, edges[i + 1] - edges[i], (edges[i], edges[i + 1]),
                                    float(rng.choice(TRAIN_RTTS_MS)))
                   for i, n in enumerate(chosen)]
        specs.append(swarm.RunSpec(f"train{r}", sc.num_blocks, servers,
                                   swarm.workload(4, PROMPTS, OUTPUT_TOKENS)))
    return specs


def heldout_specs(sc):
    import swarm
    from distalloc.llm import plan
    delays = swarm.scenario_delays(sc, 0, RTT_OFFSET_MS, 1.0)
    reqs = swarm.workload(6, PROMPTS, OUTPUT_TOKENS)
    specs = [swarm.spec_from_plan(sc, plan(sc, "cg-bprr"), label=f"cg-bprr{i}",
                                  own_choice=False, delays=delays, requests=reqs)
             for i in range(2)]
    for seed in OWN_CHOICE_SEEDS:
        p = plan(sc, "petals", seed=seed)
        specs.append(swarm.spec_from_plan(sc, p, label=f"petals-own-seed{seed}", own_choice=True,
                                          delays=delays, requests=reqs,
                                          join_order=p.extra["join_order"]))
    return specs


def cmd_run(args) -> int:
    import swarm
    out = Path(args.out_dir or Path(swarm.DEFAULT_WORK) / time.strftime("validation-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    sc = scenario()
    t0 = time.monotonic()
    kw = dict(petals_env=args.petals_env, work_dir=args.work_dir)
    train = [swarm.run_swarm(s, **kw) for s in train_specs(sc)]
    swarm.write_csv(out / "train.csv", train)
    held = []
    joins = []
    for s in heldout_specs(sc):
        res = swarm.run_swarm(s, **kw)
        for e in res.extra:
            e["label"] = s.label
        held.append(res)
        swarm.write_csv(out / "heldout.csv", held)
        if s.label.startswith("petals-own"):
            joins.append({"label": s.label, "join_order": [x.name for x in s.servers],
                          "chosen": {k: list(v) for k, v in res.chosen_blocks.items()}})
            (out / "joins.json").write_text(json.dumps(joins, indent=1) + "\n")
    print(f"validation runs done in {time.monotonic() - t0:.0f} s; data in {out}")
    analyse(out)
    return 0


# ------------------------------------------------------------------------------------------
# Analysis (no PETALS needed)
# ------------------------------------------------------------------------------------------
def _labelled_rows(path: Path):
    import csv
    from distalloc.llm.calibrate import parse_measurement
    with path.open(newline="") as f:
        return [(r.get("label", ""), parse_measurement(r)) for r in csv.DictReader(f)]


def _extra_rows(path: Path) -> list[dict]:
    import csv
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def distalloc_predictions(sc, profile) -> dict[str, dict]:
    """What distalloc predicts for client 0 from the plans alone, with the calibrated profile:
    CG-BPRR's placement with the per-token shortest route; distalloc's PETALS placement
    (per seed) with PETALS's routing rule."""
    from distalloc.llm import evaluate_routes, plan
    from distalloc.llm.calibrate import apply_profile
    from distalloc.llm.routing import per_token_costs, petals_costs, shortest_routes
    cal = apply_profile(raw_rtt_scenario(sc), profile)
    out = {}
    for label, p, costs in ([("cg-bprr", plan(sc, "cg-bprr"), per_token_costs)]
                            + [(f"petals-own-seed{s}", plan(sc, "petals", seed=s), petals_costs)
                               for s in OWN_CHOICE_SEEDS]):
        alpha, beta = costs(cal)
        route = shortest_routes(p.placement, sc.num_blocks, alpha[:1], beta).path(0)
        m = evaluate_routes(cal, p.placement, [route], [0])
        out[label] = {"route": [sc.server_names[j] for j in route],
                      "token_ms": float(m.token_ms[0]), "ttft_ms": float(m.ttft_ms[0])}
    return out


def analyse(data_dir: str | Path, out=print) -> dict:
    from distalloc.llm.calibrate import calibrate, predict, read_measurements
    from distalloc.llm.placement import petals_placement
    from distalloc.llm import plan
    data_dir = Path(data_dir)
    train = read_measurements(data_dir / "train.csv")
    labelled = _labelled_rows(data_dir / "heldout.csv")
    held = [m for _, m in labelled]
    # every loopback server is the same CPU: one class of constants is the honest model;
    # per-server constants (3 per server) are shown too, to see what over-fitting costs
    cal = calibrate(train, classes="one")
    prof = cal.profile
    pred = predict(prof, held)
    report = {"profile": prof.to_dict(), "fit": cal.fit.summary(), "heldout": pred.summary()}
    per_server = calibrate(train)
    report["per_server"] = {"fit": per_server.fit.summary(),
                            "heldout": predict(per_server.profile, held).summary(),
                            "decode_ms": {k: v.decode_ms for k, v in per_server.profile.servers.items()},
                            "hop_overhead_ms": per_server.profile.hop_overhead_ms}
    loads = [float(r["load_avg_1m"]) for r in _extra_rows(data_dir / "train.csv")
             + _extra_rows(data_dir / "heldout.csv") if r.get("load_avg_1m")]
    sp = next(iter(prof.servers.values()))
    out(f"calibrated on {len(train)} requests ({data_dir / 'train.csv'}), one class: decode "
        f"{sp.decode_ms:.3f} ms/block, hop overhead {prof.hop_overhead_ms:.2f} ms/token; prefill "
        f"{sp.prefill_ms_intercept:.3f} + {sp.prefill_ms_per_token:.4f} l_in ms/block, prompt hop "
        f"overhead {prof.prefill_hop_overhead_ms:.2f} + {prof.prefill_hop_overhead_ms_per_token:.3f} l_in ms"
        + (f"; load average {min(loads):.1f}-{max(loads):.1f} (median {np.median(loads):.1f})"
           if loads else ""))
    out("")
    out("| constants | set | rows | per-token error median | p95 | mean signed | "
        "TTFT error median | p95 |")
    out("|---|---|---|---|---|---|---|---|")
    for cname, fit_s, held_s in (("one class (same CPU)", report["fit"], report["heldout"]),
                                 ("per server", report["per_server"]["fit"],
                                  report["per_server"]["heldout"])):
        for name, d in (("fitted", fit_s), ("held out", held_s)):
            out(f"| {cname} | {name} | {d['num_rows']} | {d['token_rel_error_median']:.1%} | "
                f"{d['token_rel_error_p95']:.1%} | {d['token_rel_bias']:+.1%} | "
                f"{d['ttft_rel_error_median']:.1%} | {d['ttft_rel_error_p95']:.1%} |")
    # (2) per placement: measured beside predicted
    sc = scenario()
    dp = distalloc_predictions(sc, prof)
    out("")
    out("| placement | measured per-token ms (median) | predicted, chain used | "
        "distalloc's prediction from the plan | chain used (blocks) | distalloc's route |")
    out("|---|---|---|---|---|---|")
    groups: dict[str, list[int]] = {}
    for i, (label, _) in enumerate(labelled):
        groups.setdefault(label.rstrip("0123456789") if label.startswith("cg-bprr") else label,
                          []).append(i)
    report["placements"] = {}
    for label, idx in groups.items():
        meas = float(np.median(pred.measured_token_ms[idx]))
        chain_pred = float(np.median(pred.token_ms[idx]))
        chains = sorted({" > ".join(f"{n}({k})" for n, k in zip(held[i].servers, held[i].blocks))
                         for i in idx})
        plan_pred = dp[label]["token_ms"]
        out(f"| {label} | {meas:.1f} | {chain_pred:.1f} | {plan_pred:.1f} | "
            f"{'; '.join(chains)} | {' > '.join(dp[label]['route'])} |")
        report["placements"][label] = {"measured_token_ms": meas, "chain_predicted_token_ms": chain_pred,
                                       "plan_predicted_token_ms": plan_pred, "chains": chains,
                                       "route": dp[label]["route"]}
    # (3) PETALS's own block choice against distalloc's petals method
    joins_path = data_dir / "joins.json"
    if joins_path.exists():
        out("")
        out("| join order seed | server (join order) | blocks chosen by PETALS | "
            "distalloc's petals prediction |")
        out("|---|---|---|---|")
        report["joins"] = []
        for j in json.loads(joins_path.read_text()):
            seed = int(j["label"].rsplit("seed", 1)[1])
            p = plan(sc, "petals", seed=seed)
            order = p.extra["join_order"]
            placement, _ = petals_placement(sc, np.array(order), p.placement.num_blocks)
            agree = 0
            for name in j["join_order"]:
                k = sc.server_names.index(name)
                a, m = int(placement.first_block[k]), int(placement.num_blocks[k])
                chosen = tuple(j["chosen"][name])
                agree += chosen == (a, a + m)
                out(f"| {seed} | {name} | [{chosen[0]}, {chosen[1]}) | [{a}, {a + m})"
                    f"{'' if chosen == (a, a + m) else ' ≠'} |")
            report["joins"].append({"seed": seed, "servers": len(j["join_order"]), "agree": agree})
    return report


def main(argv=None) -> int:
    import swarm
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the real swarm (needs the PETALS venv), then analyse")
    r.add_argument("--out-dir", default=None)
    r.add_argument("--petals-env", default=swarm.DEFAULT_ENV)
    r.add_argument("--work-dir", default=swarm.DEFAULT_WORK)
    a_ = sub.add_parser("analyse", help="tables from train.csv, heldout.csv, joins.json")
    a_.add_argument("data_dir")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        return cmd_run(a)
    analyse(a.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
