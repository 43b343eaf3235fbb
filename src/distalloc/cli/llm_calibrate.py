"""``distalloc llm calibrate``: fit the performance model to measurements of a real swarm
(SPEC 1.11); registered under ``distalloc llm`` by :mod:`distalloc.cli.llm`."""
from __future__ import annotations

import json

from distalloc._validation import ValidationError
from distalloc.cli._common import guarded, print_json

__all__ = ["add_parser"]


def _cmd_llm_calibrate(args) -> int:
    from distalloc.cli._common import check_output_file
    from distalloc.llm.calibrate import calibrate, parse_classes
    if args.out is not None:            # checked before any work (issue 16), '' included
        check_output_file(args.out, "out")
    cal = calibrate(args.file, validate=args.validate,
                    classes=parse_classes(args.classes) if args.classes else None)
    d = cal.to_dict()
    if args.out:
        _write_atomic(args.out, json.dumps(d, indent=1) + "\n")
    if args.json:
        print_json(d)
        return 0
    p = cal.profile
    print(f"calibrated on {d['num_rows']} measured requests ({args.file}); ms")
    width = max(len(n) for n in p.servers)
    print(f"{'server':>{width}}  {'decode_ms':>10}  {'prefill_ms':>22}")
    for name, sp in p.servers.items():
        print(f"{name:>{width}}  {sp.decode_ms:>10.4g}  "
              f"{f'{sp.prefill_ms_intercept:.4g} + {sp.prefill_ms_per_token:.4g} l_in':>22}")
    print(f"hop overhead: {p.hop_overhead_ms:.4g} per token, "
          f"{p.prefill_hop_overhead_ms:.4g} + {p.prefill_hop_overhead_ms_per_token:.4g} l_in "
          "per prompt")
    for label, s in (("fit", d), ("held out", d.get("validation"))):
        if s is not None:
            print(f"{label:>8}: per-token relative error median {s['token_rel_error_median']:.1%}"
                  f", p95 {s['token_rel_error_p95']:.1%}; time to first token median "
                  f"{s['ttft_rel_error_median']:.1%}, p95 {s['ttft_rel_error_p95']:.1%} "
                  f"({s['num_rows']} rows)")
    if args.out:
        print(f"profile written to {args.out}")
    return 0


def _write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so that an
    earlier file is never left half-written (a full disk is a one-line error)."""
    import os
    import tempfile
    from pathlib import Path
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                               prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ValidationError(f"Cannot write '{path}': {exc.strerror or exc}.") from None


def add_parser(llm_sub) -> None:
    """The ``calibrate`` subcommand, added to the subparsers of ``distalloc llm``."""
    cal = llm_sub.add_parser("calibrate", help="fit the performance model to measurements "
                             "of a real swarm")
    cal.add_argument("file", help="measurements CSV: servers,blocks,rtt_ms,input_tokens,"
                     "output_tokens,ttft_ms,token_ms (hops '>'-separated)")
    cal.add_argument("--validate", default=None, metavar="CSV",
                     help="held-out measurements to predict with the fitted profile")
    cal.add_argument("--classes", default=None, metavar="one|NAME=CLASS,...",
                     help="servers of one class share their constants ('one': all servers)")
    cal.add_argument("--out", default=None, metavar="PROFILE.json",
                     help="write the profile (the --json object) for --profile")
    cal.add_argument("--json", action="store_true", help="print one JSON object")
    cal.set_defaults(func=guarded(_cmd_llm_calibrate))
