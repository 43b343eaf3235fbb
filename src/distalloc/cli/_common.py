"""Helpers shared by every family's subcommands: one-line errors, strict JSON output,
comma-separated number lists."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

from distalloc._validation import ValidationError

__all__ = ["Parser", "print_json", "floats"]


class Parser(argparse.ArgumentParser):
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


def print_json(obj: dict) -> None:
    print(json.dumps(_clean(json.loads(json.dumps(obj, default=_json_default)))))



def floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(f"The '{name}' option must be comma-separated numbers. "
                              f"Got {text!r} instead.") from None

