"""CG-BP + WS-RR, PETALS and chain composition (GBP-CR + GCA + JFFC) when servers fail
and come back (SPEC 5.1, issues 11 and 10).

    python bench/reproduce_churn.py [--seeds 5] [--requests 1000] [--rate 0.5] > churn.md

Scenarios: ``clustered`` (9 servers) and ``topology:BellCanada`` (19 servers, topology
seed 0); Poisson arrivals at ``--rate`` req/s, uniform clients; every server fails after
Exp(MTBF) and comes back after Exp(MTTR = MTBF / 10), for MTBF = 1 h, 10 min, 1 min, and
no churn.  Each seed draws its own arrivals and failure streams, shared by every method
(and PETALS's own join order).  A failure releases the server's sessions, which are
re-routed at once (their progress lost); a repaired server re-joins by its method's rule
(CG-BP's window rule on the free session slots / PETALS's weakest window / the chain
method's: GCA on the slots no chain reserves, the chains through a failed server gone).
"+ re-route" is CG-BP + WS-RR with ``reroute_waiting`` (waiting bookings routed again when
a server re-joins).  Cells: mean over seeds of the mean per-token time (s), the mean
response time (s), sessions interrupted, serving time lost (s) and server availability.
"""
import argparse

import numpy as np

from distalloc.llm.scenario import clustered, topology_scenario
from distalloc.llm.simulation import poisson_workload, simulate

CHURN = [("none", None), ("1 h", "3600"), ("10 min", "600"), ("1 min", "60")]
METHODS = [("CG-BP + WS-RR", "cg-bprr", {}),
           ("CG-BP + WS-RR + re-route", "cg-bprr", {"reroute_waiting": True}),
           ("PETALS", "petals", {}),
           ("chains", "chains", {})]


def runs(sc, method, churn, seeds, n, rate, kw):
    out = []
    for s in range(seeds):
        wl = poisson_workload(sc, rate, n, seed=s)
        out.append(simulate(sc, method, workload=wl, seed=s, churn=churn, **kw).to_dict())
    return {k: float(np.mean([d[k] for d in out]))
            for k in ("mean_token_s", "p95_token_s", "mean_response_s", "interrupted",
                      "lost_token_s", "availability", "dropped", "mean_retries")}


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.5)
    args = ap.parse_args()
    scenarios = [("clustered (9 servers)", clustered()),
                 ("BellCanada (19 servers)", topology_scenario("Bellcanada", seed=0))]
    print(f"{args.requests} requests at {args.rate:g} req/s, {args.seeds} seeds; MTTR = MTBF/10\n")
    print("| scenario | MTBF | method | mean per-token s | p95 per-token s | mean response s "
          "| interrupted | lost serving s | availability |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, sc in scenarios:
        for label, churn in CHURN:
            for mname, m, kw in METHODS:
                if kw and churn is None:
                    continue                    # re-routing acts only when a server joins
                d = runs(sc, m, churn, args.seeds, args.requests, args.rate, kw)
                print(f"| {name} | {label} | {mname} | {d['mean_token_s']:.2f} | "
                      f"{d['p95_token_s']:.2f} | {d['mean_response_s']:.1f} | "
                      f"{d['interrupted']:.0f} | {d['lost_token_s']:.0f} | "
                      f"{d['availability']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
