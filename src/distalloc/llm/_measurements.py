"""Measurements of a real swarm (SPEC 1.11, **contract** columns): one row per measured
request, read from a CSV and checked row by row (one line naming the row, the column and
the value otherwise), checked likewise when built in Python, and written back.

The format, and the fit made of the rows, are described in :mod:`distalloc.llm.calibrate`,
which re-exports the public names of this module.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from distalloc._validation import (ValidationError, check_count, check_number,
                                   check_readable_file, check_real, describe, file_error)
from distalloc.llm.limits import MAX_BLOCKS, MAX_COUNT, TIME_LIMIT_MS

__all__ = ["Measurement", "MEASUREMENT_COLUMNS", "MIN_MEASURED_MS", "check_measurement",
           "measurement_rows", "parse_measurement", "read_measurements", "write_measurements"]

MEASUREMENT_COLUMNS = ("servers", "blocks", "rtt_ms", "input_tokens", "output_tokens",
                       "ttft_ms", "token_ms")


@dataclass(frozen=True)
class Measurement:
    """One measured request: its chain (server names, blocks, RTT per hop) and its times."""

    servers: tuple[str, ...]
    blocks: tuple[int, ...]
    rtt_ms: tuple[float, ...]
    input_tokens: int
    output_tokens: int
    ttft_ms: float
    token_ms: float

    def to_row(self) -> dict[str, Any]:
        return {"servers": ">".join(self.servers), "blocks": ">".join(map(str, self.blocks)),
                "rtt_ms": ">".join(f"{x:g}" for x in self.rtt_ms),
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "ttft_ms": f"{self.ttft_ms:.4f}", "token_ms": f"{self.token_ms:.4f}"}


def _hops(text: str, column: str, where: str) -> list[str]:
    parts = [p.strip() for p in (text or "").split(">")]
    if not parts or any(p == "" for p in parts):
        raise ValidationError(f"{where}: the '{column}' column must be a '>'-separated list "
                              "with no empty entry.")  # (never quote a file's content)
    return parts


def _num(text: str, column: str, where: str, *, integer: bool = False, low: float = 0,
         low_open: bool = False) -> float | int:
    try:
        value: float | int = float(text)
    except (TypeError, ValueError):
        kind = "an int" if integer else "a number"
        raise ValidationError(f"{where}: the '{column}' column must be {kind}.") from None
    if integer and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)  # an integer cell, parsed through float above
    if integer:
        return check_count(value, column, where, low=int(low), high=_HIGH[column])
    return check_number(value, column, where, low=low, low_open=low_open, high=_HIGH[column])


#: bounds of the measured values (issue 16): times at most TIME_LIMIT_MS, so that the sums
#: over hops, the weighted least squares and the predictions stay finite; measured times at
#: least MIN_MEASURED_MS (1 ns), so that the weights 1 / time and the relative errors do
#: (a subnormal 1e-320 ms would make them overflow to inf)
MIN_MEASURED_MS = 1e-6
_HIGH = {"blocks": MAX_BLOCKS, "input_tokens": MAX_COUNT, "output_tokens": MAX_COUNT,
         "rtt_ms": TIME_LIMIT_MS, "ttft_ms": TIME_LIMIT_MS, "token_ms": TIME_LIMIT_MS}


def check_measurement(m: Any, where: str = "row") -> Measurement:
    """A :class:`Measurement` built in Python checked as a CSV row is: names, hops of the
    same length, every number in its range (one line naming the field otherwise)."""
    if not isinstance(m, Measurement):
        raise ValidationError(f"{where} must be a Measurement. Got {describe(m)} instead.")
    for col in ("servers", "blocks", "rtt_ms"):
        v = getattr(m, col)
        if not isinstance(v, (tuple, list)) or not v:
            raise ValidationError(f"{where}: '{col}' must be a non-empty tuple (one entry per "
                                  f"hop). Got {describe(v)} instead.")
        if len(v) != len(m.servers):
            raise ValidationError(f"{where}: '{col}' has {len(v)} entries but 'servers' has "
                                  f"{len(m.servers)} (one per hop).")
    for s in m.servers:
        if not isinstance(s, str) or not s.strip() or ">" in s:
            raise ValidationError(f"{where}: 'servers' must hold non-empty names without '>'. "
                                  f"Got {describe(s)} instead.")
    for k in m.blocks:
        check_count(k, "blocks", where, low=1, high=MAX_BLOCKS)
    for x in m.rtt_ms:
        check_real(x, "rtt_ms", where, low=0, high=TIME_LIMIT_MS)
    for col in ("input_tokens", "output_tokens"):
        check_count(getattr(m, col), col, where, low=1, high=MAX_COUNT)
    for col in ("ttft_ms", "token_ms"):
        check_real(getattr(m, col), col, where, low=MIN_MEASURED_MS, high=TIME_LIMIT_MS)
    return m


def measurement_rows(value: Any, name: str) -> list[Measurement]:
    """``measurements``/``validate`` of :func:`~distalloc.llm.calibrate.calibrate` (and
    ``rows`` of its ``predict``): a path, or a sequence of :class:`Measurement` (each
    checked)."""
    if isinstance(value, (str, Path)):
        return read_measurements(value)
    if isinstance(value, Measurement) or not isinstance(value, Sequence):
        raise ValidationError(f"The '{name}' parameter must be a path to a measurements CSV or "
                              f"a sequence of Measurement. Got {describe(value)} instead.")
    return [check_measurement(m, f"{name}[{i}]") for i, m in enumerate(value)]


def parse_measurement(row: Mapping[str, str], where: str = "row") -> Measurement:
    """Validate one CSV row (a mapping column -> text)."""
    servers = _hops(row["servers"], "servers", where)
    blocks_t = _hops(row["blocks"], "blocks", where)
    rtt_t = _hops(row["rtt_ms"], "rtt_ms", where)
    for col, vals in (("blocks", blocks_t), ("rtt_ms", rtt_t)):
        if len(vals) != len(servers):
            raise ValidationError(f"{where}: the '{col}' column has {len(vals)} entries but "
                                  f"'servers' has {len(servers)} (one per hop).")
    blocks = tuple(int(_num(b, "blocks", where, integer=True, low=1)) for b in blocks_t)
    rtt = tuple(float(_num(r, "rtt_ms", where)) for r in rtt_t)
    return Measurement(
        servers=tuple(servers), blocks=blocks, rtt_ms=rtt,
        input_tokens=int(_num(row["input_tokens"], "input_tokens", where, integer=True, low=1)),
        output_tokens=int(_num(row["output_tokens"], "output_tokens", where, integer=True, low=1)),
        ttft_ms=float(_num(row["ttft_ms"], "ttft_ms", where, low=MIN_MEASURED_MS)),
        token_ms=float(_num(row["token_ms"], "token_ms", where, low=MIN_MEASURED_MS)))


def read_measurements(path: str | Path) -> list[Measurement]:
    """Read and validate a measurements CSV (SPEC 1.11).

    Raises
    ------
    ValidationError
        a missing file or column, an empty file, or a bad row (the message names the row,
        counted from 1 after the header, the column and the value).
    """
    path = check_readable_file(path, "Measurements file")  # missing, folder, unreadable
    try:
        return _read_measurement_rows(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise file_error(path, "Measurements file", exc) from None
    except csv.Error:
        raise ValidationError(f"Measurements file '{path}' is not valid CSV.") from None


def _read_measurement_rows(path: Path) -> list[Measurement]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in MEASUREMENT_COLUMNS if c not in header]
        if missing:
            raise ValidationError(f"Measurements file '{path}' lacks the column '{missing[0]}' "
                                  f"(needs {', '.join(MEASUREMENT_COLUMNS)}).")
        reader.fieldnames = header
        rows = []
        for i, row in enumerate(reader, start=1):
            if None in row or any(row.get(c) is None for c in MEASUREMENT_COLUMNS):
                raise ValidationError(f"Measurements file '{path}', row {i}: expected "
                                      f"{len(header)} fields, got a different number.")
            rows.append(parse_measurement(row, f"Measurements file '{path}', row {i}"))
    if not rows:
        raise ValidationError(f"Measurements file '{path}' has no rows.")
    return rows


def write_measurements(path: str | Path, rows: Iterable[Measurement],
                       extra: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Write rows in the SPEC 1.11 format; ``extra`` adds columns per row (same keys)."""
    rows = list(rows)
    extra = list(extra) if extra is not None else [{}] * len(rows)
    names = list(MEASUREMENT_COLUMNS) + [k for k in (extra[0] if extra else {})
                                         if k not in MEASUREMENT_COLUMNS]
    with Path(path).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for m, e in zip(rows, extra):
            w.writerow({**m.to_row(), **e})
