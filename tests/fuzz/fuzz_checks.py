"""What a successful run may return: finite, physically possible metrics (shared by the
CLI and API entries of the fuzz suite)."""
from __future__ import annotations

import json
import math
import re
import numpy as np


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


def text_has_nan(case, stdout: str) -> list[str]:
    """Without --json: a printed nan is a fault."""
    return ["nan in the output"] if re.search(r"\bnan\b", stdout, re.I) else []


def json_check(check=None, *, text=lambda case, stdout: []):
    """Wrap ``check(case, d)`` of a command's --json output into a fuzz check
    ``(case, result) -> faults``: stdout that is not JSON is a fault; without --json only
    ``text(case, stdout)`` applies.  Usable as a decorator."""
    def wrap(check):
        def checked(case, result) -> list[str]:
            if "--json" not in case["argv"]:
                return text(case, result[2])
            d = _json(result)
            return ["stdout is not JSON"] if d is None else check(case, d)
        checked.__name__ = check.__name__
        return checked
    return wrap if check is None else wrap(check)


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
    levels = np.atleast_1d(np.asarray(powers, dtype=float)) if powers is not None else [1.0]
    top = servers * max([*levels, idle])   # a scalar power is one level's
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
