"""Online workloads (SPEC 1.7, 1.9): Poisson arrivals with client weights, and trace replay.

A :class:`Workload` is drawn once from the seed, so every method simulated with that seed
sees the same arrivals.

Trace formats (:data:`TRACE_FORMATS`; ``trace_format=None`` detects the format from the
columns, in this order):

===========  =====================================  =============================  =========
format       columns (time, prompt, output tokens)  numeric timestamps             files
===========  =====================================  =============================  =========
azure        TIMESTAMP, ContextTokens,              seconds (date-times also)      CSV
             GeneratedTokens
burstgpt     Timestamp, Request tokens,             seconds since the trace start  CSV
             Response tokens
mooncake     timestamp, input_length,               milliseconds since the first   JSON lines
             output_length                          request                        or CSV
===========  =====================================  =============================  =========

Date-time stamps (ISO 8601, ``2023-11-16 18:17:03.97996``, optionally with ``Z`` or a
``+hh:mm`` offset) are accepted in every format; a column must not mix numbers and
date-times.  A numeric timestamp is never read as a calendar year.  Requests that
generated no token (BurstGPT marks failed requests so) are not replayed: they are
counted in :attr:`Workload.skipped_zero_output` and reported by the simulator.
"""
from __future__ import annotations

import calendar
import csv
import json
import math
import re
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from distalloc._validation import (ValidationError, as_generator, check_choice, check_count,
                                   check_readable_file, check_real, describe, file_error)
from distalloc.llm.limits import MAX_COUNT, MAX_SPAN_S, check_memory
from distalloc.llm.scenario import Scenario

__all__ = ["Workload", "poisson_workload", "trace_workload", "workload_from_args",
           "client_probs", "TraceFormat", "TRACE_FORMATS"]

#: bytes per request while a workload is drawn (three result arrays and the temporaries)
BYTES_PER_ARRIVAL = 64


@dataclass(frozen=True, eq=False)
class Workload:
    """Arrival times (s, sorted), client index and output tokens (>= 1) of each request.

    ``skipped_zero_output`` counts the trace rows that generated no token and were
    therefore not replayed (0 for Poisson workloads)."""

    arrival_s: np.ndarray
    client: np.ndarray
    output_tokens: np.ndarray
    source: str = "poisson"
    skipped_zero_output: int = 0

    @property
    def num_requests(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def rate_per_s(self) -> float:
        """Realised arrival rate (N - 1) / (last - first arrival); inf when every request
        arrives at the same instant (one request, or equal timestamps)."""
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if self.num_requests > 1 else 0.0
        return (self.num_requests - 1) / span if span > 0 else math.inf


def client_probs(scenario: Scenario, client_weights) -> np.ndarray:
    """Client probabilities from relative weights (uniform when ``None``); any finite
    non-negative weights with a positive sum, however large (normalised by the largest
    weight first, so that the sum cannot overflow)."""
    C = scenario.num_clients
    if client_weights is None:
        return np.full(C, 1.0 / C)
    try:
        w = list(client_weights)
    except TypeError:
        raise ValidationError(f"'client_weights' must be a sequence of {C} numbers. Got "
                              f"{describe(client_weights)} instead.") from None
    if len(w) != C:
        raise ValidationError(f"'client_weights' must have {C} entries (one per client). Got {len(w)} instead.")
    w = np.array([check_real(x, f"client_weights[{i}]", low=0) for i, x in enumerate(w)])
    if w.max() <= 0:
        raise ValidationError(f"'client_weights' must have a positive sum. Got {w.tolist()} instead.")
    w = w / w.max()
    return w / w.sum()


def poisson_workload(scenario: Scenario, rate_per_s: float, num_requests: int,
                     client_weights=None, seed: Any = 0,
                     max_memory_gb: float | None = None) -> Workload:
    """Poisson arrivals at ``rate_per_s``; clients drawn with ``client_weights``
    (uniform by default); every request generates the scenario's ``output_tokens``.

    Raises
    ------
    ValidationError
        a rate so low that the arrivals would span more than 1e12 s
        (``num_requests / rate_per_s``), more than 2^53 requests, or a workload that
        needs more than ``max_memory_gb``."""
    rate = check_real(rate_per_s, "rate_per_s", low=0, low_open=True)
    n = check_count(num_requests, "num_requests", low=1, high=MAX_COUNT)
    if n / rate > MAX_SPAN_S:
        from distalloc.llm.limits import span_error
        raise span_error(n, rate)
    check_memory(n * BYTES_PER_ARRIVAL, f"a workload of {n} requests", max_memory_gb)
    probs = client_probs(scenario, client_weights)
    rng = as_generator(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n))
    clients = rng.choice(scenario.num_clients, size=n, p=probs).astype(np.int64)
    return Workload(arrivals, clients, np.full(n, scenario.output_tokens, dtype=np.int64))


# ------------------------------------------------------------------------------------------
# Trace replay
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceFormat:
    """Column names of a public LLM trace and the unit of its numeric timestamps."""

    name: str
    time_column: str
    input_column: str
    output_column: str
    seconds_per_unit: float
    description: str

    @property
    def columns(self) -> tuple[str, str, str]:
        return (self.time_column, self.input_column, self.output_column)


TRACE_FORMATS: dict[str, TraceFormat] = {
    "azure": TraceFormat("azure", "TIMESTAMP", "ContextTokens", "GeneratedTokens", 1.0,
                         "Azure LLM inference trace (Splitwise); numeric timestamps in seconds"),
    "burstgpt": TraceFormat("burstgpt", "Timestamp", "Request tokens", "Response tokens", 1.0,
                            "BurstGPT; timestamps in seconds since the trace start"),
    "mooncake": TraceFormat("mooncake", "timestamp", "input_length", "output_length", 1e-3,
                            "Mooncake; timestamps in milliseconds since the first request"),
}

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
                       r"\s*(Z|[+-]\d{2}:?\d{2})?")
_SAFE_NAME = re.compile(r"[A-Za-z0-9 _.()/-]{1,40}")
_INT64_MAX = 2 ** 63 - 1


@lru_cache(maxsize=4096)
def _day_seconds(y: str, mo: str, d: str) -> int | None:
    """Seconds from the epoch to the start of a calendar day, None if it is no date."""
    year, month, day = int(y), int(mo), int(d)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]) or year < 1:
        return None
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def _datetime_ns(text: str) -> tuple[int, bool] | None:
    """(ns since the epoch, has a time zone) of an ISO 8601 date-time, None if not one.
    Naive date-times are taken as UTC (only differences between them matter)."""
    m = _DATETIME.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    day = _day_seconds(y, mo, d)
    hour, minute, sec = int(h or 0), int(mi or 0), int(s or 0)
    if day is None or hour > 23 or minute > 59 or sec > 60:
        return None
    ns = (day + 3600 * hour + 60 * minute + sec) * 10 ** 9 + (int(frac.ljust(9, "0")) if frac else 0)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 10 ** 9
    return ns, tz is not None


class _TraceReader:
    """Reads one trace file row by row into compact arrays, with one-line errors that name
    the line and the column but never quote the file's content."""

    def __init__(self, path: Path, fmt: TraceFormat | None, limit: int | None):
        self.path = path
        self.fmt = fmt
        self.limit = limit
        self.times_s = array("d")    # numeric timestamps, in the format's unit
        self.times_ns = array("q")   # date-time timestamps, ns since the epoch
        self.time_kind: str | None = None  # "number" or "datetime"
        self.has_tz: bool | None = None
        self.outputs = array("q")
        self.skipped = 0
        self.rows = 0

    def fail(self, line: int | None, what: str) -> ValidationError:
        at = f" line {line}" if line is not None else ""
        return ValidationError(f"Trace file '{self.path.name}'{at}: {what}")

    # -- cells ----------------------------------------------------------------------------
    def _tokens(self, value: Any, column: str, line: int) -> int:
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.isdigit()):
                raise self.fail(line, f"'{column}' must be a non-negative integer.")
            if len(text) > 19 and int(text) > _INT64_MAX:
                raise self.fail(line, f"'{column}' must be at most 2^63 - 1. Got "
                                f"{describe(int(text))}.")
            value = int(text)
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(line, f"'{column}' must be a non-negative integer.")
        if value > _INT64_MAX:
            raise self.fail(line, f"'{column}' must be at most 2^63 - 1. Got {describe(value)}.")
        return value

    def _time(self, value: Any, line: int) -> float | int:
        """The timestamp: a number in the format's unit, or ns since the epoch."""
        column = self.fmt.time_column
        kind = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            kind, number = "number", float(value)
        elif isinstance(value, str):
            text = value.strip()
            if _NUMBER.fullmatch(text):
                kind, number = "number", float(text)
            else:
                parsed = _datetime_ns(text)
                if parsed is not None:
                    kind = "datetime"
                    ns, tz = parsed
                    if self.has_tz is not None and tz != self.has_tz:
                        raise self.fail(line, f"'{column}' mixes date-times with and without "
                                        "a time zone.")
                    self.has_tz = tz
        if kind is None:
            raise self.fail(line, f"'{column}' must be a number ({self._unit()}) or an "
                            "ISO 8601 date-time.")
        if self.time_kind is not None and kind != self.time_kind:
            raise self.fail(line, f"'{column}' mixes numbers ({self._unit()}) and date-times.")
        self.time_kind = kind
        if kind == "number":
            if not math.isfinite(number):
                raise self.fail(line, f"'{column}' must be finite.")
            return number
        return ns

    def _unit(self) -> str:
        return "milliseconds" if self.fmt.seconds_per_unit == 1e-3 else "seconds"

    def add(self, time_value: Any, input_value: Any, output_value: Any, line: int) -> bool:
        """One request; False once ``limit`` requests are read."""
        t = self._time(time_value, line)
        self._tokens(input_value, self.fmt.input_column, line)
        out = self._tokens(output_value, self.fmt.output_column, line)
        self.rows += 1
        if out == 0:
            self.skipped += 1
            return True
        (self.times_s if self.time_kind == "number" else self.times_ns).append(t)
        self.outputs.append(out)
        return self.limit is None or len(self.outputs) < self.limit

    # -- formats --------------------------------------------------------------------------
    def _choose(self, found: list[str]) -> None:
        candidates = [self.fmt] if self.fmt is not None else list(TRACE_FORMATS.values())
        for fmt in candidates:
            if set(fmt.columns) <= set(found):
                self.fmt = fmt
                return
        want = (f"columns {', '.join(self.fmt.columns)} ({self.fmt.name} format)"
                if self.fmt is not None else "the columns of one of the formats " + "; ".join(
                    f"{f.name}: {', '.join(f.columns)}" for f in TRACE_FORMATS.values()))
        if found and all(_SAFE_NAME.fullmatch(c) for c in found):
            shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
            got = f"Found columns {shown}."
        else:
            got = "Its first line is not a header of such a trace."
        raise self.fail(None, f"must have {want}. {got}")

    def read_csv(self, fh) -> None:
        reader = csv.reader(fh)
        header = next(reader, None)
        found = [c.strip() for c in header] if header else []
        self._choose(found)
        seen: set[str] = set()
        for c in found:                  # which of two equal columns holds the data?
            if c in seen and c in self.fmt.columns:
                raise self.fail(1, f"names the column {c} twice.")
            seen.add(c)
        where = [found.index(c) for c in self.fmt.columns]
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = reader.line_num
            if len(row) != len(found):   # a shifted or garbled row: never guess which
                raise self.fail(line, f"has {len(row)} fields; the header has {len(found)}.")
            if not self.add(row[where[0]], row[where[1]], row[where[2]], line):
                return

    def read_json_lines(self, fh) -> None:
        if self.fmt is None:
            self.fmt = TRACE_FORMATS["mooncake"]
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text, object_pairs_hook=_unique_keys)
            except _DuplicateKey as exc:
                raise self.fail(line, f"names the key {exc.args[0]} twice.") from None
            except (ValueError, RecursionError):
                raise self.fail(line, "is not a JSON object.") from None
            if not isinstance(obj, dict) or not set(self.fmt.columns) <= set(obj):
                raise self.fail(line, f"must be a JSON object with keys "
                                f"{', '.join(self.fmt.columns)} ({self.fmt.name} format).")
            t, i, o = (obj[c] for c in self.fmt.columns)
            if not self.add(t, i, o, line):
                return

    def _text_lines(self, fh) -> Iterator[str]:
        """The file's lines decoded one by one, so that an undecodable byte is reported
        with its offset in the file (a BOM at the start is dropped)."""
        offset = 0
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.fail(None, f"is not UTF-8 text (undecodable byte at offset "
                                f"{offset + exc.start}, line {number}).") from None
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            offset += len(raw)
            yield text

    def read(self) -> None:
        try:
            with self.path.open("rb") as fh:
                lines = self._text_lines(fh)
                first = next((ln for ln in lines if ln.strip()), "")
                fh.seek(0)
                lines = self._text_lines(fh)
                if first.lstrip().startswith("{"):
                    self.read_json_lines(lines)
                else:
                    self.read_csv(lines)
        except OSError as exc:
            raise file_error(self.path, "Trace file", exc) from None
        except csv.Error:
            raise self.fail(None, "is not valid CSV.") from None

    def relative_seconds(self) -> np.ndarray:
        """Arrival times relative to the first request, in seconds, checked in order."""
        if self.time_kind == "datetime":
            ns = np.frombuffer(self.times_ns, dtype=np.int64) if len(self.times_ns) else np.zeros(0, np.int64)
            rel = (ns - ns[0]).astype(np.int64) / 1e9
        else:
            t = np.frombuffer(self.times_s, dtype=np.float64)
            rel = (t - t[0]) * self.fmt.seconds_per_unit
        back = np.diff(rel) < 0
        if back.any():
            raise self.fail(None, f"timestamps are not in order (request {int(np.argmax(back)) + 2} "
                            "arrives before the one read before it).")
        return rel


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different (json keeps the last of two silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            name = k if _SAFE_NAME.fullmatch(k) else "(a key)"
            raise _DuplicateKey(name)
        out[k] = v
    return out


def trace_workload(scenario: Scenario, path: str | Path, *, time_scale: float = 1.0,
                   num_requests: int | None = None, client_weights=None,
                   seed: Any = 0, trace_format: str | None = None) -> Workload:
    """Replay a public LLM trace (SPEC 1.9): arrival times and output lengths.

    Parameters
    ----------
    scenario : Scenario
    path : str or Path
        a CSV file (``azure``, ``burstgpt`` or ``mooncake`` columns) or a JSON-lines file
        (``mooncake``, as Mooncake publishes its traces); see :data:`TRACE_FORMATS`.
    time_scale : float
        multiplies the inter-arrival gaps (0.5 = twice the load).
    num_requests : int, optional
        replay only the first ``num_requests`` requests.
    client_weights : sequence of float, optional
        clients are drawn with these weights (uniform by default).
    seed : int or Generator
    trace_format : {'azure', 'burstgpt', 'mooncake'}, optional
        default: detected from the columns (azure, then burstgpt, then mooncake).

    Returns
    -------
    Workload
        arrivals relative to the first replayed request (seconds); output lengths capped
        at the scenario's ``output_tokens`` (the static maximum its cache is sized for).
        Numeric timestamps are seconds (milliseconds for mooncake), never calendar years.
        Prompt lengths are read and validated, but prefill times stay the scenario's
        profiled values at its static ``input_tokens``.  Rows whose output is 0 tokens are
        skipped and counted in ``skipped_zero_output``.

    Raises
    ------
    ValidationError
        missing, unreadable or non-UTF-8 file, missing columns, unparsable or negative
        values, token counts beyond 2^63 - 1, timestamps out of order or mixing numbers and
        date-times, arrivals spanning more than 1e12 s after scaling, no request with
        output.  Messages name the line and the column, never the file's content.
    """
    p = check_readable_file(path, "Trace file")
    scale = check_real(time_scale, "time_scale", low=0, low_open=True)
    if num_requests is not None:
        num_requests = check_count(num_requests, "num_requests", low=1, high=MAX_COUNT)
    if trace_format is not None:
        check_choice(trace_format, "trace_format", TRACE_FORMATS)
    probs = client_probs(scenario, client_weights)
    reader = _TraceReader(p, TRACE_FORMATS.get(trace_format) if trace_format else None,
                          num_requests)
    reader.read()
    if not reader.outputs:
        what = (f"has no request with output tokens ({reader.skipped} rows generated none)"
                if reader.skipped else "has no requests")
        raise reader.fail(None, what + ".")
    with np.errstate(over="ignore"):
        rel = reader.relative_seconds() * scale
    if not math.isfinite(rel[-1]) or rel[-1] > MAX_SPAN_S:
        raise reader.fail(None, f"arrivals span {rel[-1]:.3g} s after time_scale; at most "
                          f"{MAX_SPAN_S:g} s are supported.")
    n = len(reader.outputs)
    rng = as_generator(seed)
    clients = rng.choice(scenario.num_clients, size=n, p=probs).astype(np.int64)
    out = np.minimum(np.frombuffer(reader.outputs, dtype=np.int64), scenario.output_tokens)
    return Workload(rel, clients, out.astype(np.int64), source=f"trace:{p.name}",
                    skipped_zero_output=reader.skipped)


def workload_from_args(scenario, rng, rate_per_s, num_requests, client_weights, trace,
                       time_scale, trace_format=None, max_memory_gb=None) -> Workload:
    """The workload of a simulation: the arguments, else the scenario's workload section."""
    online = scenario.online
    trace = trace if trace is not None else online.get("trace")
    weights = client_weights if client_weights is not None else online.get("client_weights")
    if trace is not None:
        scale = time_scale if time_scale is not None else online.get("time_scale", 1.0)
        fmt = trace_format if trace_format is not None else online.get("trace_format")
        return trace_workload(scenario, trace, time_scale=scale, num_requests=num_requests,
                              client_weights=weights, seed=rng, trace_format=fmt)
    rate = rate_per_s if rate_per_s is not None else online.get("rate_per_s")
    n = num_requests if num_requests is not None else online.get("num_requests")
    if rate is None:
        raise ValidationError("A Poisson workload needs 'rate_per_s' (or give a trace).")
    if n is None:
        raise ValidationError("A Poisson workload needs 'num_requests'.")
    return poisson_workload(scenario, rate, n, weights, rng, max_memory_gb=max_memory_gb)
