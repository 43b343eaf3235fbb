"""The ``distalloc`` command line (SPEC 4.2 contract).

``--json`` prints one JSON object on stdout and nothing else there; otherwise a
human-readable table.  Exit status 0 on success, 2 on bad input with a one-line message on
stderr (no traceback).  One module per family builds its subcommands
(:mod:`distalloc.cli.llm`, ``sgd``, ``queue``, ``sweep``); they share :mod:`._common`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from distalloc._validation import ValidationError
from distalloc.cli import llm, queue, sgd, sweep
from distalloc.cli._common import Parser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="distalloc", description="Resource allocation for distributed computing "
               "on heterogeneous, straggling servers.")
    sub = p.add_subparsers(dest="family", required=True, parser_class=Parser)
    for family in (llm, sgd, queue, sweep):
        family.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ValidationError as exc:
        print(f"distalloc: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # pragma: no cover
        print("distalloc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
