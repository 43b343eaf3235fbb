"""The ``distalloc`` command line (SPEC 4.2 contract).

``--json`` prints one JSON object on stdout and nothing else there; otherwise a
human-readable table.  Exit status 0 on success, 2 on bad input with a one-line message on
stderr (no traceback).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from distalloc._validation import ValidationError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401
        raise ValidationError(f"{self.prog}: {message}")


def _json_default(obj: Any) -> Any:
    import numpy as np
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Non-finite floats become null so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _print_json(obj: dict) -> None:
    print(json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default)))))


# ------------------------------------------------------------------------------------------
# llm
# ------------------------------------------------------------------------------------------
def _scenario(args) -> Any:
    from distalloc.llm.scenario import resolve_scenario
    sc = resolve_scenario(args.scenario, num_servers=getattr(args, "servers", None),
                          seed=getattr(args, "scenario_seed", None) or 0)
    return sc


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _plan_table(plans: Sequence[Any], scenario: Any) -> str:
    lines = [f"scenario {scenario.name}: {scenario.num_servers} servers, "
             f"{scenario.num_clients} clients, L = {scenario.num_blocks} blocks, "
             f"|R| = {scenario.num_requests} requests"]
    head = f"{'':>22}" + "".join(f"{p.method:>22}" for p in plans)
    lines.append(head)
    for label, get in [
        ("status", lambda p: p.status),
        ("mean per-token ms", lambda p: _fmt_ms(p.mean_token_ms)),
        ("bound ms", lambda p: _fmt_ms(p.bound_ms)),
        ("gap", lambda p: "-" if p.gap is None else f"{p.gap:.2%}"),
        ("servers used", lambda p: str(len(p.placement.to_list())) if p.placement is not None else "-"),
        ("solve ms", lambda p: f"{p.solve_s * 1e3:.2f}"),
    ]:
        lines.append(f"{label:>22}" + "".join(f"{get(p):>22}" for p in plans))
    lines.append("")
    lines.append("placement (blocks per server) and the route of client 0:")
    width = max(len(n) for n in scenario.server_names)
    lines.append(f"{'server':>{width}}" + "".join(f"{p.method:>22}" for p in plans))
    for j, name in enumerate(scenario.server_names):
        cells = []
        for p in plans:
            if p.placement is None or p.placement.num_blocks[j] == 0:
                cells.append("-")
            else:
                a, m = int(p.placement.first_block[j]), int(p.placement.num_blocks[j])
                cells.append(f"[{a}, {a + m})")
        lines.append(f"{name:>{width}}" + "".join(f"{c:>22}" for c in cells))
    for p in plans:
        route = p.routes[0] if p.routes else None
        lines.append(f"{p.method}: " + (" -> ".join(scenario.server_names[j] for j in route)
                                         if route else f"no plan ({p.reason})"))
    return "\n".join(lines)


def _cmd_llm_plan(args) -> int:
    from distalloc.llm.placement import plan
    sc = _scenario(args)
    methods = [args.method] if args.method else (["cg-bprr"] if args.json else ["cg-bprr", "petals"])
    plans = [plan(sc, m, seed=args.seed, num_requests=args.num_requests,
                  time_limit_s=args.time_limit) for m in methods]
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests)
    if args.json:
        _print_json(plans[0].to_dict())
    else:
        print(_plan_table(plans, sc))
    if args.plot:
        from distalloc.plots import placement_map
        placement_map(sc, plans, args.plot)
    return 0


def _cmd_llm_scenario(args) -> int:
    sc = _scenario(args)
    if args.num_requests is not None:
        sc = sc.with_requests(args.num_requests)
    if args.json:
        _print_json(sc.to_dict())
    else:
        print(sc.to_json(indent=1))
    return 0


# ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="distalloc", description="Resource allocation for distributed computing "
                "on heterogeneous, straggling servers.")
    sub = p.add_subparsers(dest="family", required=True, parser_class=_Parser)

    llm = sub.add_parser("llm", help="pipeline-parallel LLM inference (PETALS setting)")
    llm_sub = llm.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from distalloc.llm.placement import METHODS
    pl = llm_sub.add_parser("plan", help="offline block placement and routing")
    pl.add_argument("scenario", help="path to a .json/.toml scenario or a built-in name "
                    "(clustered, topology:GtsCe, synthetic:1000)")
    pl.add_argument("--method", choices=list(METHODS), default=None,
                    help="placement method (default: cg-bprr and petals side by side; "
                    "cg-bprr with --json)")
    pl.add_argument("--num-requests", type=int, default=None, metavar="R",
                    help="size of the request set |R| (clients repeat cyclically)")
    pl.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                    help="MILP time limit in seconds (default 60)")
    pl.add_argument("--seed", type=int, default=0, help="PETALS join order seed (default 0)")
    pl.add_argument("--servers", type=int, default=None, metavar="C",
                    help="number of servers of a topology/synthetic scenario")
    pl.add_argument("--scenario-seed", type=int, default=0, metavar="N",
                    help="seed of the built-in scenario's random choices (default 0)")
    pl.add_argument("--plot", default=None, metavar="FILE", help="write a placement map PNG")
    pl.add_argument("--json", action="store_true", help="print one JSON object")
    pl.set_defaults(func=_cmd_llm_plan)

    scn = llm_sub.add_parser("scenario", help="print a scenario as canonical JSON")
    scn.add_argument("scenario")
    scn.add_argument("--servers", type=int, default=None, metavar="C")
    scn.add_argument("--seed", dest="scenario_seed", type=int, default=0, metavar="N",
                     help="seed of the built-in scenario's random choices (default 0)")
    scn.add_argument("--num-requests", type=int, default=None, metavar="R")
    scn.add_argument("--json", action="store_true")
    scn.set_defaults(func=_cmd_llm_scenario)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ValidationError as exc:
        print(f"distalloc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("distalloc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
