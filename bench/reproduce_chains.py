"""Reproduce the chain-composition paper (2604.14993 §4; SPEC 1.10) under distalloc's model.

    python bench/reproduce_chains.py [--part sim|grid|testbed|swarm|swarm-checks|all] [--seeds 10]

* ``sim``: the model-driven setting (BLOOM-176B, J = 20 servers on RIPE Atlas RTTs, η = 0.2,
  λ = 0.2 req/s, ρ̄ = 0.7, 2 000 Poisson jobs, exponential service as in the paper and the
  deterministic model): mean response of PETALS, CG-BP + WS-RR, jffc-whole and chains
  (auto c, and the fixed c = 7 of Fig. 6) over ``--seeds`` seeds (each seed: its own server
  draw and arrivals, shared by every method).
* ``grid``: the J x η grid of Fig. 6 (exponential service), mean response per method.
* ``testbed``: LLaMA-2-7B on 9 MIG slices, the first 1 000 requests of the Azure code trace,
  Table 1's columns, at the trace's own speed and 5x compressed.
* ``swarm``: ``synthetic:10000`` at 50 req/s and ``synthetic:1000`` at 5 req/s (20 000
  requests), chains (client groups chosen by the search, and the one-group reading)
  against PETALS and CG-BP + WS-RR, the two-nearest-A100 limit, and the CPU time of the
  search over c.
* ``swarm-checks``: the same swarms with the clients' RTT rows made equal (the one-group
  reading is then exact), other seeds, a higher rate and 16 clients.
Prints markdown tables.
"""
import argparse
import dataclasses
import time

import numpy as np

from distalloc.llm import builtin_scenario, synthetic_scenario
from distalloc.llm.chains import NoChainsError, search_reservation
from distalloc.llm.paper_scenarios import chains_sim_scenario
from distalloc.llm.simulation import choose_planned_requests, poisson_workload, simulate

METHODS = ("petals", "cg-bprr", "jffc-whole", "chains", "chains c=7")


def run(sc, method, seed, **kw):
    """One simulation; None where the method cannot serve the scenario."""
    extra = {}
    if method == "chains c=7":
        method, extra = "chains", {"reservation": 7}
    try:
        return simulate(sc, method, seed=seed, **kw, **extra)
    except NoChainsError:
        return None


def part_sim(seeds):
    print("\n### Model-driven setting: BLOOM-176B, J = 20, η = 0.2, λ = 0.2 req/s, ρ̄ = 0.7, "
          f"2 000 jobs, {seeds} seeds — mean response time (s), mean ± std over seeds\n")
    print("| service | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for service in ("exponential", "model"):
        vals = {m: [] for m in METHODS}
        cs = []
        for s in range(seeds):
            sc = chains_sim_scenario(20, 0.2, seed=s)
            wl = poisson_workload(sc, 0.2, 2000, seed=s)
            for m in METHODS:
                r = run(sc, m, s, workload=wl, service=service)
                vals[m].append(np.nan if r is None else r.to_dict()["mean_response_s"])
                if m == "chains" and r is not None:
                    cs.append(r.extra["reservation"])
        cells = [("n/a" if np.all(np.isnan(v)) else f"{np.nanmean(v):.2f} ± {np.nanstd(v):.2f}")
                 for v in vals.values()]
        print(f"| {service} | " + " | ".join(cells) + " |")
        best = np.array(vals["chains"])
        for m in ("petals", "cg-bprr"):
            cut = 1 - best / np.array(vals[m])
            print(f"<!-- {service}: chains vs {m}: mean cut {np.nanmean(cut):.1%}, "
                  f"range {np.nanmin(cut):.1%} .. {np.nanmax(cut):.1%}; tuned c {sorted(set(cs))} -->")


def part_grid(seeds):
    print(f"\n### Fig. 6 grid: mean response time (s), exponential service, λ = 0.2, {seeds} "
          "seeds — PETALS / CG-BP + WS-RR / chains (cut of chains against the better)\n")
    etas = (0.1, 0.2, 0.3, 0.4)
    print("| J | " + " | ".join(f"η = {e}" for e in etas) + " |")
    print("|---|" + "---|" * len(etas))
    for J in (10, 20, 30, 40):
        cells = []
        for eta in etas:
            v = {m: [] for m in ("petals", "cg-bprr", "chains")}
            for s in range(seeds):
                sc = chains_sim_scenario(J, eta, seed=s)
                wl = poisson_workload(sc, 0.2, 1000, seed=s)
                for m in v:
                    try:
                        r = simulate(sc, m, workload=wl, seed=s, service="exponential")
                        v[m].append(r.to_dict()["mean_response_s"])
                    except Exception:          # a baseline that cannot place the model
                        v[m].append(np.nan)
            p, g, c = (np.nanmean(v[m]) if not np.all(np.isnan(v[m])) else np.nan for m in v)
            cut = 1 - c / np.nanmin([p, g])
            cells.append(f"{p:.1f} / {g:.1f} / {c:.1f} ({cut:+.0%})")
        print(f"| {J} | " + " | ".join(cells) + " |")


def part_testbed():
    published = {"petals": (31.4, 27.8, 68.5, 89.3, 24.2, 20.5, 61.3, 142.6, 7.2),
                 "cg-bprr": (19.8, 16.9, 44.2, 61.7, 12.6, 9.7, 37.1, 98.4, 7.2),
                 "jffc-whole": (10.0, 8.5, 22.1, 29.6, 1.5, 0.1, 7.8, 25.1, 8.5),
                 "chains": (7.3, 6.5, 15.2, 21.4, 0.6, 0.1, 4.8, 24.3, 6.7)}
    cols = ("resp mean", "resp median", "resp p95", "resp p99", "wait mean", "wait median",
            "wait p95", "wait max", "service mean")
    for comm in ("petals", "relay"):
        sc = builtin_scenario(f"chains-testbed:{comm}")
        planned = choose_planned_requests(dataclasses.replace(sc, output_tokens=28), 2.57)
        for scale in (1.0, 0.2):
            print(f"\n### Testbed: LLaMA-2-7B, 9 MIG slices, first 1 000 Azure code requests, "
                  f"time scale {scale:g}, communication '{comm}' — seconds, "
                  "ours (published)\n")
            print("| metric | " + " | ".join(published) + " |")
            print("|---|" + "---|" * len(published))
            rows = {c: [] for c in cols}
            for m in published:
                kw = ({"design_rate_per_s": 2.57 / scale} if m in ("chains", "jffc-whole")
                      else {"planned_requests": planned} if m == "cg-bprr" else {})
                r = simulate(sc, m, num_requests=1000, time_scale=scale, seed=0, **kw)
                resp, wait, svc = r.response_s, r.wait_s, r.end_s - r.start_s
                ours = (resp.mean(), np.median(resp), *np.percentile(resp, [95, 99]),
                        wait.mean(), np.median(wait), np.percentile(wait, 95), wait.max(),
                        svc.mean())
                for c, o, p in zip(cols, ours, published[m]):
                    rows[c].append(f"{o:.1f} ({p})")
            for c in cols:
                print(f"| {c} | " + " | ".join(rows[c]) + " |")


def two_a100_limit(sc):
    """Mean over the clients of the fastest possible per-token time: L = 96 blocks need two
    servers (an A100 holds at most 62) and A100s are the fastest per block, so no chain is
    faster for client c than its two nearest A100s (capacity ignored)."""
    from distalloc.llm.chain_groups import client_costs
    alpha, beta = client_costs(sc)
    a100 = np.flatnonzero(sc.decode_ms == sc.decode_ms.min())
    best = [np.sort(alpha[c, a100])[:2].sum() + sc.num_blocks * beta[a100[0]]
            for c in range(sc.num_clients)]
    return float(np.mean(best)) / sc.output_tokens / 1000.0


def part_swarm():
    print("\n### Large swarms (4 clients, 20 000 Poisson requests, seed 0) — mean per-token "
          "time (s) / mean response time (s)\n")
    print("| swarm | λ | PETALS | CG-BP + WS-RR | chains, one group | chains | chains vs PETALS "
          "| limit | c search (CPU) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for S, lam in ((1000, 5.0), (10_000, 50.0)):
        sc = synthetic_scenario(S, 96, num_clients=4, seed=0)
        wl = poisson_workload(sc, lam, 20_000, seed=0)
        cpu = {}
        for groups in ("auto", "one"):
            t0 = time.process_time()
            s = search_reservation(sc, wl.rate_per_s, client_groups=groups)
            cpu[groups] = time.process_time() - t0
            if groups == "auto":
                best = s
        d = {m: simulate(sc, m, workload=wl, seed=0).to_dict()
             for m in ("petals", "cg-bprr", "chains")}
        d["one"] = simulate(sc, "chains", workload=wl, seed=0, client_groups="one").to_dict()
        tok = 1 - d["chains"]["mean_token_s"] / d["petals"]["mean_token_s"]
        resp = 1 - d["chains"]["mean_response_s"] / d["petals"]["mean_response_s"]
        cells = [f"{d[m]['mean_token_s']:.4f} / {d[m]['mean_response_s']:.2f}"
                 for m in ("petals", "cg-bprr", "one", "chains")]
        print(f"| synthetic:{S} | {lam:g} | " + " | ".join(cells)
              + f" | {tok:+.2%} / {resp:+.2%} | {two_a100_limit(sc):.4f} | c* = {best.best}, "
              f"{best.best_groups.num_groups} groups, {best.reservation.size} values, "
              f"{cpu['auto']:.2f} s (one group {cpu['one']:.2f} s) |")


def part_swarm_checks():
    print("\n### Large swarms, checks (5 000 Poisson requests) — mean per-token time (s): "
          "PETALS / chains (cut)\n")
    print("| case | PETALS | chains, one group | chains |")
    print("|---|---|---|---|")

    def row(name, sc, wl, seed):
        p = simulate(sc, "petals", workload=wl, seed=seed).to_dict()["mean_token_s"]
        one = simulate(sc, "chains", workload=wl, seed=seed,
                       client_groups="one").to_dict()["mean_token_s"]
        c = simulate(sc, "chains", workload=wl, seed=seed).to_dict()["mean_token_s"]
        print(f"| {name} | {p:.4f} | {one:.4f} ({1 - one / p:+.2%}) | {c:.4f} "
              f"({1 - c / p:+.2%}) |")
    for S, lam in ((1000, 5.0), (10_000, 50.0)):       # the diagnosis: equal RTT rows
        sc = synthetic_scenario(S, 96, num_clients=4, seed=0)
        eq = dataclasses.replace(
            sc, rtt_ms=np.ascontiguousarray(np.repeat(sc.rtt_ms[:1], 4, 0)),
            prefill_rtt_ms=np.ascontiguousarray(np.repeat(sc.prefill_rtt_ms[:1], 4, 0)))
        row(f"synthetic:{S}, λ {lam:g}, clients' RTT rows equal", eq,
            poisson_workload(sc, lam, 5000 if S == 1000 else 20_000, seed=0), 0)
    for seed in range(1, 6):
        sc = synthetic_scenario(1000, 96, num_clients=4, seed=seed)
        row(f"synthetic:1000, λ 5, seed {seed}", sc, poisson_workload(sc, 5.0, 5000, seed=seed),
            seed)
    sc = synthetic_scenario(1000, 96, num_clients=4, seed=0)
    row("synthetic:1000, λ 15, seed 0", sc, poisson_workload(sc, 15.0, 8000, seed=0), 0)
    sc = synthetic_scenario(1000, 96, num_clients=16, seed=0)
    row("synthetic:1000, 16 clients, λ 5, seed 0", sc, poisson_workload(sc, 5.0, 5000, seed=0), 0)


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--part", default="all",
                    choices=["sim", "grid", "testbed", "swarm", "swarm-checks", "all"])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    if args.part in ("sim", "all"):
        part_sim(args.seeds)
    if args.part in ("grid", "all"):
        part_grid(max(1, args.seeds // 2))
    if args.part in ("testbed", "all"):
        part_testbed()
    if args.part in ("swarm", "all"):
        part_swarm()
    if args.part in ("swarm-checks", "all"):
        part_swarm_checks()


if __name__ == "__main__":
    main()
