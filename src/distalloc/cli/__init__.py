"""The ``distalloc`` command line (SPEC 4.2 contract).

``--json`` prints one JSON object on stdout and nothing else there; otherwise a
human-readable table.  Exit status 0 on success, 2 on bad input with a one-line message on
stderr (no traceback).  One module per family builds its subcommands
(:mod:`distalloc.cli.llm`, ``sgd``, ``queue``, ``sweep``); they share :mod:`._common`.

Warnings raised while a command runs (numpy ``RuntimeWarning``, scipy
``IntegrationWarning``, ...) are held back: after a successful command each distinct one is
printed once to stderr, after a failed one only the one-line error is printed.  An
unexpected exception (a bug) is one line too, exit status 1; set ``DISTALLOC_TRACEBACK=1``
to see the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from distalloc._validation import ValidationError
from distalloc.cli import llm, queue, sgd, sweep
from distalloc.cli._common import Parser, check_plot_path

__all__ = ["main", "build_parser"]


def _version() -> str:
    """The installed distribution's version (package metadata)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("distalloc")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``: the metadata is read only when asked for, not on every command."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="distalloc", description="Resource allocation for distributed computing "
               "on heterogeneous, straggling servers.")
    p.add_argument("--version", action=_VersionAction,
                   help="print the installed version of distalloc and exit")
    sub = p.add_subparsers(dest="family", required=True, parser_class=Parser)
    for family in (llm, sgd, queue, sweep):
        family.add_parser(sub)
    return p


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:          # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    if getattr(args, "plot", None) is not None:   # every command's --plot (also ''), before any work
        check_plot_path(args.plot)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 2 bad input, 1 a bug)."""
    code = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for quiet in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                      ResourceWarning):      # about libraries, not about the user's answer
            warnings.simplefilter("ignore", quiet)
        try:
            code = _run(argv)
        except ValidationError as exc:
            print(f"distalloc: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # pragma: no cover - e.g. piped into head
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:  # pragma: no cover
            print("distalloc: interrupted", file=sys.stderr)
            return 130
        except MemoryError:
            print("distalloc: error: out of memory (the problem is too large for this "
                  "machine).", file=sys.stderr)
            return 2
        except Exception as exc:
            if os.environ.get("DISTALLOC_TRACEBACK"):
                raise
            print(f"distalloc: internal error (a bug; please report it with the command): "
                  f"{type(exc).__name__}: {_one_line(exc)[:500]} (DISTALLOC_TRACEBACK=1 shows "
                  "the traceback)", file=sys.stderr)
            return 1
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {_one_line(w.message)}"
        if text not in seen:
            seen.add(text)
            print(f"distalloc: warning: {text}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
