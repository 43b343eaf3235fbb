"""Reproduce the paper's online comparison (SPEC 1.8) under the model of SPEC 1.1/1.7.

    python bench/reproduce_llm_comparison.py [--seeds 5] > comparison.md

Clustered: λ in {0.1, 0.5, 1, 2} req/s, l_out in {64, 128}, l_in = 20, 100 and 1 000
requests, all requests from the Cluster0 client or all from the Cluster1 client.
Scattered: AboveNet, BellCanada, GTS-CE (topology seed 0), l_out = 128, 1 000 requests.
Each cell: mean per-token time (s) averaged over seeds (each seed: its own arrivals, shared
by both methods, and its own PETALS join order), with allocation delay 0 (the algorithms
alone) and with the paper's 250 s (PETALS) / 60 s (CG-BPRR).
"""
import argparse

import numpy as np

from distalloc.llm.scenario import clustered, topology_scenario
from distalloc.llm.simulation import poisson_workload, simulate

DELAYS = {"0": "0", "paper": "petals=250,cg-bprr=60"}


def cell(sc, rate, n, weights, seeds, delay):
    out = {}
    for m in ("petals", "cg-bprr"):
        vals, waits, retries = [], [], []
        for s in range(seeds):
            wl = poisson_workload(sc, rate, n, client_weights=weights, seed=s)
            r = simulate(sc, m, workload=wl, seed=s, allocation_delay_s=delay)
            d = r.to_dict()
            vals.append(d["mean_token_s"])
            waits.append(d["mean_wait_s"])
            retries.append(d["mean_retries"])
        out[m] = (np.mean(vals), np.std(vals), np.mean(waits), np.mean(retries))
    return out


def fmt(c):
    p, g = c["petals"], c["cg-bprr"]
    return f"{p[0]:.2f} / {g[0]:.2f} ({1 - g[0] / p[0]:+.0%})"


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    rates = [0.1, 0.5, 1.0, 2.0]
    for key, delay in DELAYS.items():
        print(f"\n### Allocation delay {'0' if key == '0' else '250 s PETALS / 60 s CG-BPRR'}"
              f" — mean per-token time (s), PETALS / CG-BPRR (cut)\n")
        print("| scenario | client | l_out | N | " + " | ".join(f"λ {r:g}" for r in rates) + " |")
        print("|---|---|---|---|" + "---|" * len(rates))
        for lout in (64, 128):
            sc = clustered(output_tokens=lout)
            for cname, w in (("Cluster0", [1, 0, 0]), ("Cluster1", [0, 1, 0])):
                for n in (100, 1000):
                    cells = [fmt(cell(sc, r, n, w, args.seeds, delay)) for r in rates]
                    print(f"| clustered | {cname} | {lout} | {n} | " + " | ".join(cells) + " |")
        for topo in ("Abvt", "Bellcanada", "GtsCe"):
            sc = topology_scenario(topo, seed=0)
            cells = [fmt(cell(sc, r, 1000, None, args.seeds, delay)) for r in rates]
            print(f"| {topo} ({sc.num_servers} servers) | proxy | 128 | 1000 | "
                  + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
