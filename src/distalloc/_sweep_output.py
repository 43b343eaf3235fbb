"""Sweep output (SPEC 4.1): canonical resume keys and the CSV and Parquet sinks.

A row is identified by its *key*: the values of every parameter (grid and fixed), the
seed, the target (``sweep_target``) and the sha256 of its input files, in a canonical form so that ``1``, ``1.0`` and the CSV text ``"1.0"`` are the same key
(Parquet stores a column mixing 1 and 1.5 as doubles; CSV gives everything back as text).
Keys are kept as 16-byte digests so that resuming a sweep of 10^7 rows holds ~1 GB at most.
The checks made before any work (the output path, the lock, an existing output holding
another sweep's rows) are :mod:`distalloc._sweep_output_checks`'s; ``OutputLock`` and
``check_output_path`` are imported from here too.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from distalloc._sweep_output_checks import (SEED, STATUS, OutputLock, check_columns,
                                            check_output_path, check_writable_dir,
                                            other_target)
from distalloc._sweep_run import TARGET_COLUMN
from distalloc._validation import ValidationError

__all__ = ["OK", "canonical", "row_key", "OutputLock", "open_sink", "check_output_path"]

OK = "ok"

csv.field_size_limit(min(sys.maxsize, 2 ** 31 - 1))


# ------------------------------------------------------------------------------------------
# Canonical values and keys
# ------------------------------------------------------------------------------------------
def canonical(value: Any) -> Any:
    """The value a key is made of: text read back from a CSV cell is parsed as JSON,
    integral floats become ints, NaN/None/empty become None, sequences become lists."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "":
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return value if isinstance(parsed, str) else canonical(parsed)
    if isinstance(value, bool):
        return value
    type_name = type(value).__module__
    if type_name == "numpy":
        import numpy as np
        if isinstance(value, np.ndarray):
            return [canonical(v) for v in value.tolist()]
        value = value.item()
        if isinstance(value, bool):
            return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isfinite(value) and value == int(value) and abs(value) < 2 ** 53:
            return int(value)
        return value
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    return str(value)


def canonical_text(value: Any) -> str:
    """The canonical value as compact JSON: the unit keys are made of."""
    return json.dumps(canonical(value), sort_keys=True, allow_nan=True, separators=(",", ":"))


def key_from_texts(texts: Iterable[str]) -> bytes:
    """16-byte digest of canonical texts (in a fixed order of names)."""
    return hashlib.blake2b("\x1f".join(texts).encode(), digest_size=16).digest()


def row_key(values: Iterable[Any]) -> bytes:
    return key_from_texts(canonical_text(v) for v in values)


def _json_default(obj: Any) -> Any:
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def cell(value: Any) -> str:
    """Text of a value in a CSV cell: strings as they are, None and NaN empty, the rest
    as JSON."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return repr(value) if math.isfinite(value) else ("" if value != value else
                                                         json.dumps(value))
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    return json.dumps(value, default=_json_default)


def is_ok(status: Any) -> bool:
    """Rows written before the status column existed (empty or missing) count as ok."""
    return status is None or status == "" or status == OK


# ------------------------------------------------------------------------------------------
# Sinks
# ------------------------------------------------------------------------------------------
class _Sink:
    """Common part: which rows are in the output (their keys), and the key of a new row."""

    def __init__(self, path: Path, key_names: list[str], grid_names: list[str],
                 fixed_names: list[str], meta_names: list[str], target: str):
        self.path = path
        self.key_names = list(key_names)
        self.grid_names, self.fixed_names = list(grid_names), list(fixed_names)
        self.meta_names, self.target = list(meta_names), target
        self.extra_names: list[str] = []
        self.done: set[bytes] = set()
        self.failed_in_output = 0

    def _set_columns(self, columns: list[str]) -> None:
        """Columns after ``status`` are fixed parameters (see :func:`order_columns`); those
        this sweep does not set are part of the key too, so a row written with a fixed value
        the sweep no longer sets matches only where that value is empty."""
        after = columns[columns.index(STATUS) + 1:] if STATUS in columns else []
        self.extra_names = [c for c in after if c not in self.key_names]

    def _remember(self, rows: Iterable[dict]) -> None:
        for row in rows:
            found = row.get(TARGET_COLUMN)
            if found != self.target:
                raise other_target(self.path, found, self.target)
            self.done.add(self.key_of(row))
            if not is_ok(row.get(STATUS)):
                self.failed_in_output += 1

    def key_of(self, row: dict) -> bytes:
        return row_key(row.get(n) for n in self.key_names + self.extra_names)

    def task_keys(self, config, meta_of) -> Iterator[tuple[dict, int, bytes]]:
        """(grid point, seed, key) of every task of ``config``, in order, without building
        the list; the canonical text of each grid and fixed value is made once.
        ``meta_of(point)`` gives the sweep's own columns of a point (target, digests)."""
        grid_names = list(config.grid)
        values = list(config.grid.values())
        texts = [[canonical_text(v) for v in vals] for vals in values]
        fixed = {n: canonical_text(v) for n, v in config.fixed.items()}
        none = canonical_text(None)
        order = self.key_names + self.extra_names
        where = {n: i for i, n in enumerate(grid_names)}
        for idx in itertools.product(*(range(len(v)) for v in values)):
            parts = []
            for n in order:
                if n == SEED:
                    parts.append(None)
                elif n in where:
                    j = where[n]
                    parts.append(texts[j][idx[j]])
                else:
                    parts.append(fixed.get(n, none))
            point = {n: values[j][idx[j]] for j, n in enumerate(grid_names)}
            meta = meta_of(point)
            for i, n in enumerate(order):
                if n in meta and n not in where and n not in config.fixed:
                    parts[i] = canonical_text(meta[n])
            seed_at = parts.index(None)
            for seed in range(config.seeds):
                parts[seed_at] = str(seed)
                yield point, seed, key_from_texts(parts)


def order_columns(existing: list[str], rows: list[dict], grid_names: list[str],
                  fixed_names: list[str], meta_names: list[str] = ()) -> list[str]:
    """Grid parameters, seed, metrics (in order of appearance), status, the sweep's own
    columns (target, input digests), fixed parameters; columns already in the output keep
    their place, new metrics go before the status."""
    params = set(grid_names) | set(fixed_names) | set(meta_names) | {SEED, STATUS}
    columns = list(existing) if existing else grid_names + [SEED]
    seen = set(columns)
    new_metrics = []
    for r in rows:
        for k in r:
            if k not in seen and k not in params:
                new_metrics.append(k)
                seen.add(k)
    if STATUS in columns:
        i = columns.index(STATUS)
        columns[i:i] = new_metrics
    else:
        columns += new_metrics
    for name in grid_names + [SEED, STATUS] + list(meta_names) + fixed_names:
        if name not in columns:
            columns.append(name)
    return columns


class CsvSink(_Sink):
    """Appends whole lines, flushed and fsync'ed after every chunk.  A line cut short by a
    kill is dropped on the next start.  New columns (a metric first seen, a new fixed
    parameter) rewrite the file once, atomically."""

    def __init__(self, path: Path, *args):
        super().__init__(path, *args)
        self.columns: list[str] = []
        if path.exists() and path.stat().st_size > 0:
            self._open_existing()

    def _open_existing(self) -> None:
        """Read the rows already there (checking they are this sweep's), then drop a line
        cut short by a kill; a refused output is left byte for byte as it was."""
        path = self.path
        try:
            with path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = keep = fh.tell()
                fh.seek(max(0, size - 1))
                if fh.read(1) != b"\n":          # a write cut short: the partial line
                    fh.seek(max(0, size - 65536))
                    tail = fh.read()
                    cut = tail.rfind(b"\n")
                    keep = size - len(tail) + cut + 1 if cut >= 0 else 0
            if not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
            with path.open("rb") as fh:
                reader = csv.DictReader(_lines_before(fh, keep))
                columns = list(reader.fieldnames or [])
                check_columns(self.path, columns, self.grid_names, self.fixed_names)
                self.columns = columns
                self._set_columns(columns)
                self._remember(reader)
            if keep < size:
                with path.open("rb+") as fh:
                    fh.truncate(keep)
        except UnicodeDecodeError:
            raise ValidationError(f"The output '{path}' exists and is not a UTF-8 CSV file; "
                                  "choose another --out.") from None
        except PermissionError as exc:
            raise ValidationError(f"Cannot read and write the output '{path}': "
                                  f"{exc.strerror}.") from None
        except csv.Error as exc:
            raise ValidationError(f"The output '{path}' exists and is not a readable CSV file "
                                  f"({exc}); choose another --out.") from None

    def _read_all(self) -> list[dict]:
        with self.path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def _rewrite(self, columns: list[str], rows: list[dict]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([cell(r.get(c)) for c in columns])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.columns = columns
        self._set_columns(columns)

    def drop_failed(self) -> int:
        """Remove the rows whose status is not ok (``--retry-failed``)."""
        if not self.columns or STATUS not in self.columns:
            return 0
        rows = self._read_all()
        keep = [r for r in rows if is_ok(r.get(STATUS))]
        if len(keep) < len(rows):
            self._rewrite(self.columns, keep)
            self.done = set()
            self.failed_in_output = 0
            self._remember(keep)
        return len(rows) - len(keep)

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        columns = order_columns(self.columns, rows, self.grid_names, self.fixed_names,
                                self.meta_names)
        if columns != self.columns:
            old = self._read_all() if self.columns else []
            for r in old:        # rows from before the status column existed were ok
                if not r.get(STATUS):
                    r[STATUS] = OK
            self._rewrite(columns, old)
        buf = []
        memo: dict[int, str] = {}      # lists shared by the rows of a chunk: one JSON each
        for r in rows:
            line = []
            for c in self.columns:
                v = r.get(c)
                if type(v) is list:
                    text = memo.get(id(v))
                    if text is None:
                        text = memo[id(v)] = cell(v)
                    line.append(text)
                else:
                    line.append(cell(v))
            buf.append(line)
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(buf)
            fh.flush()
            os.fsync(fh.fileno())


def _lines_before(fh, limit: int) -> Iterator[str]:
    """The text lines of a binary file that end at or before byte ``limit``."""
    pos = 0
    for line in fh:
        pos += len(line)
        if pos > limit:
            return
        yield line.decode("utf-8")


class ParquetSink(_Sink):
    """One part file per chunk in the output folder, written to a temporary name and
    renamed.  Parts share one schema: when a chunk brings a new column or a wider type
    (a metric first seen, ints then floats), earlier parts are rewritten to it."""

    def __init__(self, path: Path, *args):
        super().__init__(path, *args)
        import pyarrow.parquet as pq
        self.schema = None
        path.mkdir(exist_ok=True)
        check_writable_dir(path, "the Parquet output folder")
        columns: list[str] = []
        try:
            for part in self._parts():
                table = pq.read_table(part)
                self.schema = table.schema if self.schema is None else self._unify(
                    self.schema, table.schema)
                columns = list(self.schema.names)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise ValidationError(f"The output '{path}' holds a part file that cannot be read "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                                  "choose another --out.") from None
        check_columns(self.path, columns, self.grid_names, self.fixed_names)
        self._set_columns(columns)
        for part in self._parts():
            self._remember(pq.read_table(part).to_pylist())

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    @staticmethod
    def _unify(a, b):
        """One schema for both: a column keeps its type, a null column takes the other's,
        ints widen to double; any other mix (numbers and booleans, numbers and text or
        lists) becomes text, written as the CSV cell would be, so that the resume key read
        back equals the one computed (Arrow's own casts write inf as 'inf' and True as 1)
        and no chunk's rows are ever refused after they were computed."""
        import pyarrow as pa
        fields = []
        for name in list(a.names) + [n for n in b.names if n not in a.names]:
            types = [s.field(name).type for s in (a, b) if name in s.names]
            types = [t for t in types if not pa.types.is_null(t)] or types[:1]
            first = types[0]
            if all(t.equals(first) for t in types):
                kind = first
            elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
                kind = pa.float64()
            else:
                kind = pa.string()
            fields.append(pa.field(name, kind))
        return pa.schema(fields)

    def _replace(self, table, name: str | None = None) -> None:
        import pyarrow.parquet as pq
        tmp = self.path / f".tmp-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp)
        final = self.path / (name or f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")
        os.replace(tmp, final)

    def _conform(self, table, schema=None):
        """``table`` in ``schema`` (default the sink's): columns cast where the values allow
        it; text columns made of each value's CSV cell.  Raises _NotRepresentable naming a
        column whose values do not fit (an int beyond 2^53 in a double column)."""
        import pyarrow as pa
        schema = self.schema if schema is None else schema
        for field in schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        table = table.select(schema.names)
        columns = []
        for field, column in zip(schema, table.columns):
            if column.type.equals(field.type):
                pass
            elif pa.types.is_string(field.type):
                column = pa.array([None if v is None else cell(v)
                                   for v in column.to_pylist()], type=field.type)
            else:
                try:
                    column = column.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise _NotRepresentable(field.name) from None
            columns.append(column)
        return pa.table(dict(zip(schema.names, columns)), schema=schema)

    def drop_failed(self) -> int:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        dropped = 0
        if self.schema is None or STATUS not in self.schema.names:
            return 0
        for part in self._parts():
            table = pq.read_table(part)
            status = table.column(STATUS)
            ok = pc.or_kleene(pc.is_null(status), pc.equal(status, OK))
            ok = pc.fill_null(ok, True)
            keep = table.filter(ok)
            if keep.num_rows < table.num_rows:
                dropped += table.num_rows - keep.num_rows
                if keep.num_rows:
                    self._replace(keep, part.name)
                else:
                    part.unlink()
        if dropped:
            self.done = set()
            self.failed_in_output = 0
            for part in self._parts():
                self._remember(pq.read_table(part).to_pylist())
        return dropped

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        if not rows:
            return
        columns = order_columns(list(self.schema.names) if self.schema is not None else [],
                                rows, self.grid_names, self.fixed_names, self.meta_names)
        data = {}
        for c in columns:
            values = [_arrow_value(r.get(c)) for r in rows]
            try:
                data[c] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):   # mixed kinds: keep them as JSON text
                data[c] = pa.array([None if v is None else cell(v) for v in values])
        table = pa.table(data)
        if self.schema is None:
            self.schema = table.schema
            self._set_columns(list(table.schema.names))
            self._replace(table)
            return
        unified = self._unify(self.schema, table.schema)
        new = pa.schema([unified.field(c) for c in columns])        # order_columns' order
        while True:        # everything conformed in memory first: a failed cast loses nothing
            try:
                parts = ([] if new.equals(self.schema) else
                         [(part.name, self._conform(pq.read_table(part), new))
                          for part in self._parts()])
                table = self._conform(table, new)
                break
            except _NotRepresentable as bad:                         # that column as text
                new = new.set(new.get_field_index(bad.column), pa.field(bad.column, pa.string()))
        if not new.equals(self.schema):          # widen the parts already written
            self.schema = new
            self._set_columns(columns)
            for name, part in parts:
                self._replace(part, name)
        self._replace(table)


class _NotRepresentable(Exception):
    """A column's values do not fit the unified type (an int beyond 2^53 as a double)."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def _arrow_value(v: Any) -> Any:
    """NaN as null; tables (dicts) as JSON text: Parquet has no struct without fields, and a
    parameter's shape should not change the column type from row to row."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return cell(v)
    return v


def open_sink(path: Path, key_names: list[str], grid_names: list[str],
              fixed_names: list[str], meta_names: list[str], target: str):
    """The sink for ``path`` (checked by :func:`check_output_path`, locked by the caller);
    an existing output is checked to hold this sweep's rows (``target``)."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValidationError("Parquet output needs pyarrow (pip install pyarrow); use a "
                                  ".csv output otherwise.") from None
        return ParquetSink(path, key_names, grid_names, fixed_names, meta_names, target)
    if not path.exists():
        check_writable_dir(path.parent, "the output folder")
    return CsvSink(path, key_names, grid_names, fixed_names, meta_names, target)
