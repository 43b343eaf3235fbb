"""Running a sweep: tasks in the workers (:func:`run_chunk`) and the parent's loop that
feeds the engines and writes the rows (:func:`run_sweep`).  Public names are re-exported by
:mod:`distalloc.sweep`; read its docstring first."""
from __future__ import annotations

import functools
import importlib
import itertools
import json
import os
import time
import warnings
from collections import Counter, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from distalloc._validation import ValidationError, check_number

if TYPE_CHECKING:
    from distalloc.sweep import SweepConfig

__all__ = ["run_chunk", "chunk_result", "run_sweep", "task_meta", "DEFAULT_MAX_TASKS",
           "MAX_OVERSUBSCRIBE", "RESERVED", "TARGET_COLUMN", "SweepWarning"]

#: More tasks than this need ``max_tasks`` (``--max-tasks``): the resume keys of 10^7 rows
#: take about 1 GB.
DEFAULT_MAX_TASKS = 10_000_000
#: Worker processes per core allowed with ``oversubscribe``.
MAX_OVERSUBSCRIBE = 16
#: The column naming the target of every row: an output holds one target's rows.
TARGET_COLUMN = "sweep_target"
RESERVED = ("seed", "status", TARGET_COLUMN)


class SweepWarning(UserWarning):
    """Warnings raised inside tasks, gathered from the workers and reported once."""


def resolve_target(name: str):
    from distalloc.sweep import resolve_target as resolve   # sweep.py imports this module
    return resolve(name)


# ------------------------------------------------------------------------------------------
# Running tasks (in the workers)
# ------------------------------------------------------------------------------------------
def _limit_threads() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


def one_line(exc: BaseException) -> str:
    """The one-line error of a failed task (``status`` column)."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, ValidationError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return (text[:497] + "...") if len(text) > 500 else (text or "error")


def _plain(value: Any) -> Any:
    """Metric values as the sinks can store them: numbers, strings, booleans, None, lists and
    dicts of those (numpy scalars and arrays converted); anything else as its text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if type(value).__module__ == "numpy":
        return _plain(value.tolist())
    return str(value)


def task_meta(target: str, files: tuple[str, ...], inputs: dict, params: dict
              ) -> tuple[dict, dict]:
    """The sweep's own columns of a task (``sweep_target``, ``<file>_sha256``) and the
    parameters the target is called with (input file values replaced by resolved paths)."""
    meta: dict[str, Any] = {TARGET_COLUMN: target}
    call = params
    for name in files:
        value = params.get(name)
        found = inputs.get(value) if isinstance(value, str) else None
        meta[f"{name}_sha256"] = found[1] if found else None
        if found:
            call = {**call, name: found[0]}
    return meta, call


def _row(point: dict, seed: int, fixed: dict, metrics: Any, status: str, meta: dict) -> dict:
    row: dict[str, Any] = {}
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            k = str(k)
            if k in RESERVED or k in meta:    # the sweep's own columns win
                k = f"metric_{k}"
            if k not in point and k not in fixed:
                row[k] = _plain(v)
    row.update(point)
    row["seed"] = seed
    row["status"] = status
    row.update(meta)
    row.update(fixed)
    return row


def run_chunk(target: str, fixed: dict, chunk: list[tuple[dict, int]], *,
              fail_fast: bool = False, inputs: dict | None = None) -> list[dict]:
    """Evaluate a chunk of (grid point, seed) tasks: one row per task (a failed task's row
    has its one-line error as ``status`` and no metrics).  ``inputs``: a SweepConfig's."""
    return chunk_result(target, fixed, chunk, fail_fast=fail_fast, inputs=inputs)["rows"]


def chunk_result(target: str, fixed: dict, chunk: list[tuple[dict, int]], *, running=None,
                 fail_fast: bool = False, inputs: dict | None = None) -> dict:
    """What a worker returns for a chunk: ``{"rows": [...], "warnings": {text: count}}``.
    ``running`` (shared memory) receives the index of the task being run, so that the
    parent knows which task a dying worker was running.  ``inputs`` maps input file values
    as written to (resolved value, sha256) (:class:`distalloc.sweep.SweepConfig`)."""
    _limit_threads()
    rows: list[dict] = []
    caught: Counter = Counter()
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("default")
        try:
            spec = resolve_target(target)
        except ValidationError as exc:
            return {"rows": [_row(p, s, fixed, None, one_line(exc), {TARGET_COLUMN: target})
                             for p, s in chunk], "warnings": {}}
        files = tuple(getattr(spec, "files", ()))
        tasks = [task_meta(target, files, inputs or {}, {**fixed, **p}) for p, _ in chunk]
        results: list[Any] | None = None
        batch = getattr(spec, "batch", None)
        if batch is not None and len(chunk) > 1:
            try:
                results = list(batch([call for _, call in tasks]))
                if len(results) != len(chunk):
                    results = None
            except Exception:
                results = None        # one bad point: go task by task to find it
        for i, (point, seed) in enumerate(chunk):
            if running is not None:
                running.value = i
            meta, call = tasks[i]
            if results is not None:
                metrics = results[i]
            else:
                try:
                    metrics = spec.run(seed=seed, **call)
                except (Exception, SystemExit) as exc:
                    metrics = exc
            if isinstance(metrics, BaseException):
                rows.append(_row(point, seed, fixed, None, one_line(metrics), meta))
            elif not isinstance(metrics, dict):
                rows.append(_row(point, seed, fixed, None,
                                 f"the target returned {type(metrics).__name__}, not a dict "
                                 "of metrics", meta))
            else:
                rows.append(_row(point, seed, fixed, metrics, "ok", meta))
            if fail_fast and rows[-1]["status"] != "ok":
                break
        if running is not None:
            running.value = -1
    for w in log:
        caught[f"{w.category.__name__}: {' '.join(str(w.message).split())[:300]}"] += 1
    return {"rows": rows, "warnings": dict(caught)}


# ------------------------------------------------------------------------------------------
# Running a sweep (in the parent)
# ------------------------------------------------------------------------------------------
def _check_n_jobs(n_jobs: Any, oversubscribe: bool) -> int:
    from distalloc._sweep_engines import usable_cores
    cores = usable_cores()
    if n_jobs is None:
        return cores
    n = check_number(n_jobs, "n_jobs", low=1, integer=True)
    limit = cores * MAX_OVERSUBSCRIBE if oversubscribe else cores
    if n > limit:
        if oversubscribe:
            raise ValidationError(f"The 'n_jobs' parameter asks for {n} worker processes on "
                                  f"{cores} cores; at most {limit} ({MAX_OVERSUBSCRIBE} per "
                                  "core) even with --oversubscribe.")
        raise ValidationError(f"The 'n_jobs' parameter asks for {n} worker processes on "
                              f"{cores} cores; at most {cores} unless --oversubscribe "
                              "(oversubscribe=True) allows more.")
    return n


def _describe(point: dict, seed: int) -> str:
    parts = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in point.items()]
    return ", ".join(parts + [f"seed={seed}"])


def run_sweep(config: "SweepConfig", out: str | Path, *, n_jobs: int | None = None,
              scheduler: str | None = None, chunk_size: int | None = None,
              progress: bool | None = None, fail_fast: bool = False,
              retry_failed: bool = False, oversubscribe: bool = False,
              max_tasks: int = DEFAULT_MAX_TASKS, max_task_deaths: int = 2) -> dict[str, Any]:
    """Run (or resume) a sweep, writing rows to ``out`` as chunks finish.

    Parameters
    ----------
    config : SweepConfig
    out : path
        ``.csv`` or ``.parquet`` (a folder of part files; needs pyarrow).  Locked while the
        sweep runs (``OUT.lock`` holds the pid); a second sweep on it is refused.
    n_jobs : int
        local worker processes (default: the usable cores; more needs ``oversubscribe``).
    scheduler : str
        a Dask scheduler address (``tcp://host:8786``); default ``$DASK_SCHEDULER_ADDRESS``.
    chunk_size : int
        tasks per chunk (default: about 4 chunks per worker, at most 256 tasks).
    progress : bool
        a progress bar on stderr (default: only on a terminal).
    fail_fast : bool
        stop at the first failed task (a ValidationError naming it) instead of recording
        it and going on; its row is not written, so a rerun tries it again.
    retry_failed : bool
        remove the failed rows from the output first, so that they are computed again.
    max_tasks : int
        refuse larger sweeps (default 10^7).
    max_task_deaths : int
        a task whose local worker process died this many times is recorded as failed.

    Returns
    -------
    dict with ``tasks``, ``skipped`` (already in the output), ``written``, ``failed``
    (written with an error status), ``crashed`` (recorded as failed because their worker
    died), ``retried`` (failed rows removed by ``retry_failed``), ``restarts`` (worker
    deaths), ``wall_s``.

    Raises
    ------
    ValidationError
        a bad output path (missing folder, read-only, a folder where a file belongs, ...),
        an output locked by a running sweep, bad options — all before any task runs; with
        ``fail_fast``, the first failure.
    """
    from distalloc import _sweep_engines as engines
    from distalloc import _sweep_output as output
    from distalloc.sweep import SweepConfig
    if not isinstance(config, SweepConfig):
        raise ValidationError(f"run_sweep needs a SweepConfig (from load_sweep). Got "
                              f"{type(config).__name__} instead.")
    out = output.check_output_path(out)
    if chunk_size is not None:
        chunk_size = check_number(chunk_size, "chunk_size", low=1, integer=True)
    max_tasks = check_number(max_tasks, "max_tasks", low=1, integer=True)
    max_task_deaths = check_number(max_task_deaths, "max_task_deaths", low=1, integer=True)
    total = config.num_tasks
    if total > max_tasks:
        raise ValidationError(f"The sweep has {total} tasks ({config.num_points} grid points x "
                              f"{config.seeds} seeds), more than --max-tasks {max_tasks}; "
                              "raise --max-tasks (max_tasks=...) to run it.")
    from_env = scheduler is None and bool(os.environ.get("DASK_SCHEDULER_ADDRESS"))
    scheduler = scheduler if scheduler is not None else (
        os.environ.get("DASK_SCHEDULER_ADDRESS") or None)
    if scheduler is not None:
        if n_jobs is not None:
            raise ValidationError("The 'n_jobs' option is for local processes; with a Dask "
                                  f"scheduler ({scheduler!r}"
                                  + (", from DASK_SCHEDULER_ADDRESS" if from_env else "")
                                  + ") the cluster's workers run the tasks.")
        scheduler = engines.check_scheduler_address(scheduler)
    else:
        n_jobs = _check_n_jobs(n_jobs, oversubscribe)
        import multiprocessing
        if multiprocessing.current_process().daemon:
            raise ValidationError("run_sweep cannot start its worker processes from a daemonic "
                                  "process (a multiprocessing pool worker, for instance); call "
                                  "it from a regular process or give a Dask scheduler.")

    t0 = time.perf_counter()
    summary = {"tasks": total, "skipped": 0, "written": 0, "failed": 0, "crashed": 0,
               "retried": 0, "restarts": 0}
    # the key: every parameter, the seed, the target and the input files' digests
    key_names = config.grid_names + config.fixed_names + ["seed"] + config.meta_names

    def meta_of(point: dict) -> dict:
        return task_meta(config.target, config.files, config.inputs,
                         {**config.fixed, **point})[0]

    with output.OutputLock(out):
        sink = output.open_sink(out, key_names, config.grid_names, config.fixed_names,
                                config.meta_names, config.target)
        if retry_failed:
            summary["retried"] = sink.drop_failed()

        def pending_tasks() -> Iterator[tuple[dict, int]]:
            done = sink.done
            for point, seed, key in sink.task_keys(config, meta_of):
                if key in done:
                    summary["skipped"] += 1
                else:
                    yield point, seed

        workers = n_jobs or 4
        remaining = max(1, total - len(sink.done))
        cap = getattr(resolve_target(config.target), "batch_chunk", None) or 256
        size = chunk_size or max(1, min(cap, remaining // (4 * workers)))
        stream = pending_tasks()
        fresh = iter(lambda: list(itertools.islice(stream, size)), [])
        first = next(fresh, None)
        if first is None:
            return {**summary, "wall_s": time.perf_counter() - t0}
        queue: deque[list] = deque([first])
        # with fail_fast a chunk stops at its first failure
        run = functools.partial(chunk_result, fail_fast=fail_fast, inputs=config.inputs)
        args = (config.target, config.fixed)
        if scheduler is None:
            for module in resolve_target(config.target).modules:   # once, before forking
                importlib.import_module(module)
        engine = (engines.DaskEngine(scheduler, run, args) if scheduler is not None
                  else engines.LocalEngine(n_jobs, run, args))
        lost_limit = 1 if scheduler is not None else max_task_deaths
        show = progress if progress is not None else _stderr_is_terminal()
        bar = None
        if show:
            from tqdm import tqdm
            bar = tqdm(total=remaining, unit="task", desc=config.target)
        in_flight: dict[int, list] = {}
        deaths: Counter = Counter()
        caught: Counter = Counter()
        next_id = 0

        def write(rows: list[dict]) -> None:
            sink.write(rows)
            summary["written"] += len(rows)
            summary["failed"] += sum(r["status"] != "ok" for r in rows)
            if bar is not None:
                bar.update(len(rows))

        try:
            while True:
                while engine.capacity() > 0:
                    chunk = queue.popleft() if queue else next(fresh, None)
                    if chunk is None:
                        break
                    engine.submit(next_id, chunk)
                    in_flight[next_id] = chunk
                    next_id += 1
                if not in_flight:
                    break
                for event in engine.wait():
                    kind, chunk_id = event[0], event[1]
                    chunk = in_flight.pop(chunk_id)
                    if kind == "done":
                        result = event[2]
                        caught.update(result["warnings"])
                        rows = result["rows"]
                        bad = next((r for r in rows if r["status"] != "ok"), None)
                        if fail_fast and bad is not None:
                            write([r for r in rows if r["status"] == "ok"])
                            i = rows.index(bad)
                            raise ValidationError(
                                f"Sweep stopped at the first failure (--fail-fast), "
                                f"{_describe(*chunk[i])}: {bad['status']}")
                        write(rows)
                        continue
                    # a worker died (or Dask lost it) while running this chunk
                    index, reason = event[2], event[3]
                    summary["restarts"] += 1
                    if index is None and len(chunk) > 1:
                        queue.extend([t] for t in chunk)       # isolate the culprit
                        continue
                    i = 0 if index is None else index
                    culprit, others = chunk[i], chunk[:i] + chunk[i + 1:]
                    if others:
                        queue.append(others)
                    key = json.dumps([culprit[0], culprit[1]], sort_keys=True, default=str)
                    deaths[key] += 1
                    if deaths[key] >= lost_limit:
                        if fail_fast:
                            raise ValidationError(
                                f"Sweep stopped at the first failure (--fail-fast), "
                                f"{_describe(*culprit)}: {reason}")
                        times = "" if deaths[key] == 1 else f" ({deaths[key]} times)"
                        write([_row(culprit[0], culprit[1], config.fixed, None,
                                    f"not computed: {reason}{times} while running this task",
                                    meta_of(culprit[0]))])
                        summary["crashed"] += 1
                    else:
                        queue.appendleft([culprit])
        finally:
            if bar is not None:
                bar.close()
            engine.close(cancel=bool(in_flight))
    for text, count in sorted(caught.items()):
        warnings.warn(f"{count} task(s) of the sweep warned: {text}", SweepWarning, stacklevel=2)
    return {**summary, "wall_s": time.perf_counter() - t0}


def _stderr_is_terminal() -> bool:
    import sys
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
