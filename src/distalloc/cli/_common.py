"""Helpers shared by every family's subcommands: one-line errors, help that shows every
default, strict JSON output, warnings held back from it, comma-separated number lists,
checks of output files."""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

from distalloc._validation import ValidationError, describe

__all__ = ["Parser", "HelpFormatter", "print_json", "guarded", "floats", "check_plot_path",
           "check_writable_folder", "refuse_options", "PLOT_FORMATS"]

#: File types ``--plot`` can write (matplotlib's Agg backend).
PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or "default" in text.lower()
                or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2, and shows defaults
    in the help.  Options are spelled in full: an abbreviation is an unknown option, never
    a silent match (``llm compare --seed 1000`` used to run 1000 seeds as ``--seeds``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        if kwargs.get("formatter_class") in (None, argparse.HelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        elif kwargs["formatter_class"] is argparse.RawDescriptionHelpFormatter:
            kwargs["formatter_class"] = _RawDescriptionHelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # noqa: D401
        raise ValidationError(f"{self.prog}: {' '.join(message.split())}")


class _RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    pass


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


def print_json(obj: dict) -> None:
    print(json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default)))))


def guarded(command: Callable[[Any], int]) -> Callable[[Any], int]:
    """Run a command so that warnings never garble its output (every ``llm`` command runs
    so).

    A RuntimeWarning (numpy overflow, invalid value, division by zero) means a number
    went wrong, so it becomes the command's one-line error and no answer is printed.
    Other warnings are held back: dropped when the command ends in an error (the error
    stays the only stderr line), else printed after the answer as one
    ``distalloc: warning:`` line each on stderr (never on stdout)."""
    @functools.wraps(command)
    def run(args) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", RuntimeWarning)
            try:
                status = command(args)
            except RuntimeWarning as exc:
                raise ValidationError(f"a numeric computation failed ({exc}); no result is "
                                      "reported because it would be wrong.") from None
        for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught if str(w.message)):
            print(f"distalloc: warning: {message}", file=sys.stderr)
        return status
    return run


def refuse_options(args: argparse.Namespace, options: tuple[str, ...] | list[str],
                   reason: str) -> None:
    """Refuse any of ``options`` (argparse dest names) that the user gave, where it would
    have no effect: nothing is silently ignored.  An option counts as given when its value
    is not None (nor False for a flag), so an option that can be inapplicable has default
    None and its command fills in the documented default.  ``reason`` ends the message,
    e.g. "applies only to real runs (with --cluster)"."""
    for dest in options:
        value = getattr(args, dest, None)
        if value is None or value is False:
            continue
        text = describe(value)
        if isinstance(value, str):              # as typed, without repr's quotes
            text = " ".join(value.split())
            text = text if len(text) <= 40 else text[:37] + "..."
        shown = "" if value is True else f" {text}"
        raise ValidationError(f"Option '--{dest.replace('_', '-')}{shown}' {reason}.")


def floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(f"The '{name}' option must be comma-separated numbers. "
                              f"Got {text!r} instead.") from None


def check_writable_folder(folder: Path, what: str) -> None:
    """The folder exists, is a folder, and a file can be created in it (tried, not guessed:
    permissions, read-only file systems and quotas all answer)."""
    if not folder.exists():
        raise ValidationError(f"The folder of {what} '{folder}' does not exist.")
    if not folder.is_dir():
        raise ValidationError(f"The folder of {what} '{folder}' is not a folder.")
    probe = folder / f".distalloc-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise ValidationError(f"Cannot write {what} to the folder '{folder}': "
                              f"{exc.strerror or exc}.") from None


def check_plot_path(path: str, option: str = "plot") -> Path:
    """``--plot FILE``: a known image type, not a folder, in a writable folder — checked
    before anything is computed."""
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise ValidationError(f"The '{option}' option must be a file ending in "
                              f"{', '.join('.' + f for f in PLOT_FORMATS)}. Got {path!r} instead.")
    return check_output_file(path, option)


def check_output_file(path: str, option: str) -> Path:
    """``--out FILE`` (and the like): not a folder, not an existing read-only file, in a
    writable folder — checked before anything is computed."""
    p = Path(path)
    if not str(path) or p.is_dir():
        raise ValidationError(f"The '{option}' option names a folder: {path!r}.")
    if p.exists() and not p.is_file():
        raise ValidationError(f"The '{option}' option names something that is not a regular "
                              f"file: {path!r}.")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValidationError(f"The '{option}' file {path!r} exists and is not writable.")
    check_writable_folder(p.parent, f"the '{option}' file")
    return p
