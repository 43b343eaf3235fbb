"""Parameter sweeps over a grid x seeds, on local processes or a Dask cluster (SPEC 4.1).

A sweep file (TOML)::

    [sweep]
    target = "queue.simulate"   # queue.approx, queue.exact, llm.plan, llm.simulate, sgd.run,
                                # or "package.module:function" for your own function
    seeds = 5                   # seeds 0..4 for every grid point
    [fixed]                     # parameters shared by every point
    servers = 10
    needed = 5
    [grid]                      # the Cartesian product of these lists
    rate = [1.0, 2.0, 3.0]
    probs = [[1.0, 0.0], [0.5, 0.5]]

Every (grid point, seed) is a task; tasks run in chunks.  Results are appended to a CSV
file after every chunk (whole lines, flushed and fsync'ed), and, where pyarrow is
installed and the output ends in ``.parquet``, written as one part file per chunk in that
directory.  A rerun of the same sweep skips the (point, seed) pairs already in the output,
so an interrupted sweep resumes with nothing lost and nothing duplicated.  A chunk whose
worker dies is resubmitted (local: a new process pool; Dask: task retries).

Columns: the grid parameters, ``seed``, then the target's metrics (the keys of its
``--json`` output; arrays are summarised as their last value, ``final_*``).
"""
from __future__ import annotations

import csv
import importlib
import inspect
import io
import itertools
import json
import os
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from distalloc._validation import ValidationError, check_keys, check_number

__all__ = ["SweepConfig", "load_sweep", "run_sweep", "TARGETS", "evaluate_task"]


# ------------------------------------------------------------------------------------------
# Targets: parameters -> metrics (the same keys as the CLI's --json output)
# ------------------------------------------------------------------------------------------
def _queue(method: str) -> Callable[..., dict]:
    def target(seed: int, servers, needed, rate, speeds=(1.0,), powers=None, probs=None,
               idle_power=0.0, **kw) -> dict:
        from distalloc import queueing
        system = queueing.ForkJoin(servers, needed, rate, speeds, powers, probs, idle_power)
        if method == "simulate":
            m = queueing.simulate(system, kw.get("jobs", 200_000), seed=seed,
                                  replications=kw.get("replications", 1))
        elif method == "exact":
            m = queueing.exact(system, max_jobs=kw.get("max_jobs"))
        else:
            m = queueing.approximate(system)
        d = m.to_dict()
        d.pop("completion_fraction", None)
        d.pop("wall_s", None)
        return d
    target.params = {"servers", "needed", "rate", "speeds", "powers", "probs", "idle_power",
                     *({"jobs", "replications"} if method == "simulate" else ()),
                     *({"max_jobs"} if method == "exact" else ())}
    return target


def _llm_plan(seed: int, scenario, method="cg-bprr", num_requests=None, time_limit=60.0,
              servers=None, scenario_seed=0) -> dict:
    from distalloc.llm import plan, resolve_scenario
    sc = resolve_scenario(scenario, num_servers=servers, seed=scenario_seed)
    d = plan(sc, method, seed=seed, num_requests=num_requests, time_limit_s=time_limit).to_dict()
    d["servers_used"] = len(d.pop("placement"))
    d.pop("routes")
    d.pop("join_order", None)
    return d


_llm_plan.params = {"scenario", "method", "num_requests", "time_limit", "servers",
                    "scenario_seed"}


def _llm_simulate(seed: int, scenario, method="cg-bprr", rate=None, num_requests=None,
                  allocation_delay=0.0, planned_requests=None, noise=0.0, client_weights=None,
                  servers=None, scenario_seed=0, output_tokens=None) -> dict:
    from distalloc.llm import resolve_scenario
    from distalloc.llm.simulation import simulate
    sc = resolve_scenario(scenario, num_servers=servers, seed=scenario_seed,
                          output_tokens=output_tokens)
    d = simulate(sc, method, rate_per_s=rate, num_requests=num_requests,
                 allocation_delay_s=allocation_delay, planned_requests=planned_requests,
                 noise=noise, client_weights=client_weights, seed=seed).to_dict()
    for key in ("join_order", "wall_s", "events"):
        d.pop(key, None)
    return d


_llm_simulate.params = {"scenario", "method", "rate", "num_requests", "allocation_delay",
                        "planned_requests", "noise", "client_weights", "servers",
                        "scenario_seed", "output_tokens"}


def _sgd_run(seed: int, problem="synthetic", workers=50, policy="pflug", horizon=None, lr=None,
             k_max=None) -> dict:
    from distalloc.sgd import run
    r = run(problem, workers, policy, horizon=horizon, lr=lr, seed=seed, k_max=k_max)
    return {"policy": r.policy, "final_time": float(r.time[-1]), "final_error": float(r.error[-1]),
            "min_error": float(r.error.min()), "final_k": int(r.k[-1]),
            "iterations": r.iterations, "uplink_gradients": r.uplink_gradients,
            "downlink_models": r.downlink_models}


_sgd_run.params = {"problem", "workers", "policy", "horizon", "lr", "k_max"}

TARGETS: dict[str, Callable[..., dict]] = {
    "queue.simulate": _queue("simulate"), "queue.approx": _queue("approx"),
    "queue.exact": _queue("exact"), "llm.plan": _llm_plan, "llm.simulate": _llm_simulate,
    "sgd.run": _sgd_run,
}


# --- Batched targets (queueing helper) ----------------------------------------------------
# A target may carry ``batch(params_list) -> list``: per task, what the target returns for
# ``target(seed=..., **params)`` or the exception it raises (rows identical to the scalar
# path, values to 1e-12); ``run_chunk`` then evaluates a whole chunk in one call, and
# ``batch_chunk`` is its preferred chunk size.  queue.approx: approximate_grid (Numba).
def _queue_approx_batch(params_list: list[dict]) -> list:
    from distalloc.queueing.grid import approximate_rows
    scalar = TARGETS["queue.approx"]            # (one kernel thread per worker)
    return approximate_rows(params_list, lambda params: scalar(seed=0, **params))


TARGETS["queue.approx"].batch = _queue_approx_batch
TARGETS["queue.approx"].batch_chunk = 65_536
# ------------------------------------------------------------------------------------------


def _resolve_target(name: str) -> Callable[..., dict]:
    if name in TARGETS:
        return TARGETS[name]
    module, sep, func = name.partition(":")
    if not sep or not module or not func:
        raise ValidationError(f"Unknown sweep target {name!r} (built-in: {', '.join(TARGETS)}; "
                              "or 'package.module:function').")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValidationError(f"Sweep target {name!r} cannot be imported: {exc}.") from None
    if not callable(fn):
        raise ValidationError(f"Sweep target {name!r} is not callable.")
    return fn


def _target_params(fn: Callable) -> set[str] | None:
    """Accepted parameter names, or None if the function takes **kwargs."""
    if hasattr(fn, "params"):
        return set(fn.params)
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n in sig.parameters if n != "seed"}


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepConfig:
    target: str
    seeds: int
    fixed: dict[str, Any]
    grid: dict[str, list]

    @property
    def grid_names(self) -> list[str]:
        return list(self.grid)

    def points(self) -> list[dict[str, Any]]:
        names = self.grid_names
        return [dict(zip(names, combo)) for combo in itertools.product(*self.grid.values())]

    def tasks(self) -> list[tuple[dict[str, Any], int]]:
        return [(p, s) for p in self.points() for s in range(self.seeds)]


def load_sweep(source: str | Path | dict) -> SweepConfig:
    """Read and validate a sweep file (or an already parsed dict).

    Raises
    ------
    ValidationError
        unknown sections or keys, unknown target, unknown parameters for the target, empty
        or non-list grids, seeds < 1 — all before any work starts.
    """
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ValidationError(f"Sweep file '{path}' does not exist.")
        import tomllib
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"Sweep file '{path}' is not valid TOML: {exc}") from None
    check_keys(data, "sweep file", {"sweep"}, {"fixed", "grid"})
    head = check_keys(data["sweep"], "sweep", {"target"}, {"seeds"})
    target = head["target"]
    if not isinstance(target, str):
        raise ValidationError(f"The 'target' parameter of sweep must be a string. Got {target!r} instead.")
    seeds = check_number(head.get("seeds", 1), "seeds", "sweep", low=1, integer=True)
    fixed = data.get("fixed", {})
    grid = data.get("grid", {})
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise ValidationError("'fixed' and 'grid' must be tables.")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValidationError(f"Grid parameter '{name}' must be a non-empty list. Got {values!r} instead.")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValidationError(f"Parameter '{both[0]}' is both fixed and in the grid.")
    if "seed" in fixed or "seed" in grid:
        raise ValidationError("'seed' is set by the sweep (seeds 0..N-1); do not give it.")
    fn = _resolve_target(target)
    allowed = _target_params(fn)
    if allowed is not None:
        unknown = sorted((set(fixed) | set(grid)) - allowed)
        if unknown:
            raise ValidationError(f"Unknown parameter '{unknown[0]}' for target {target} "
                                  f"(allowed: {', '.join(sorted(allowed))}).")
    return SweepConfig(target, seeds, dict(fixed), dict(grid))


# ------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    """Canonical text of a value in the output (and in resume keys)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def evaluate_task(target: str, params: dict, seed: int) -> dict:
    """Run one task in a worker: one kernel thread, the target, a flat metrics dict."""
    fn = _resolve_target(target)
    return fn(seed=seed, **params)


def _limit_threads() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


def run_chunk(target: str, fixed: dict, chunk: list[tuple[dict, int]]) -> list[dict]:
    """Evaluate a chunk of (grid point, seed) tasks; returns one row per task."""
    _limit_threads()
    rows = []
    batch = getattr(_resolve_target(target), "batch", None)
    if batch is not None:                       # batched target (see _queue_approx_batch)
        results = batch([{**fixed, **point} for point, _ in chunk])
        for (point, seed), metrics in zip(chunk, results):
            if isinstance(metrics, Exception):
                raise metrics
            rows.append({**point, "seed": seed, **metrics})
        return rows
    for point, seed in chunk:
        metrics = evaluate_task(target, {**fixed, **point}, seed)
        rows.append({**point, "seed": seed, **metrics})
    return rows


class _CsvSink:
    def __init__(self, path: Path, columns_hint: list[str]):
        self.path = path
        self.columns: list[str] | None = None
        self.key_columns = columns_hint
        self.done: set[tuple[str, ...]] = set()
        if path.exists():
            text = path.read_text()
            if text and not text.endswith("\n"):   # a write cut short: drop the partial line
                text = text[: text.rfind("\n") + 1]
                path.write_text(text)
            reader = csv.DictReader(io.StringIO(text))
            self.columns = reader.fieldnames
            for row in reader:
                self.done.add(tuple(row.get(c, "") for c in self.key_columns))

    def write(self, rows: list[dict]) -> None:
        if self.columns is None:
            self.columns = list(rows[0])
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)
        extra = [k for r in rows for k in r if k not in self.columns]
        if extra:
            raise ValidationError(f"Target returned a new metric '{extra[0]}' not in the output "
                                  f"columns of {self.path}.")
        buf = io.StringIO()
        w = csv.writer(buf)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in self.columns])
        with self.path.open("a", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


class _ParquetSink:
    def __init__(self, path: Path, columns_hint: list[str]):
        import pyarrow.parquet as pq
        self.path = path
        self.key_columns = columns_hint
        self.done: set[tuple[str, ...]] = set()
        path.mkdir(parents=True, exist_ok=True)
        for part in sorted(path.glob("part-*.parquet")):
            for row in pq.read_table(part).to_pylist():
                self.done.add(tuple(_cell(row.get(c)) for c in self.key_columns))

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.Table.from_pylist(rows)
        tmp = self.path / f".tmp-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp)
        os.replace(tmp, self.path / f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")


def _make_sink(out: Path, key_columns: list[str]):
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValidationError("Parquet output needs pyarrow (pip install pyarrow); "
                                  "use a .csv output otherwise.") from None
        return _ParquetSink(out, key_columns)
    return _CsvSink(out, key_columns)


class _LocalEngine:
    def __init__(self, n_jobs: int):
        self.n_jobs = n_jobs
        self.pool = ProcessPoolExecutor(max_workers=n_jobs)

    def submit(self, *args):
        return self.pool.submit(run_chunk, *args)

    def restart(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = ProcessPoolExecutor(max_workers=self.n_jobs)

    def close(self):
        self.pool.shutdown(wait=True)


class _DaskEngine:
    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise ValidationError("A Dask scheduler needs the 'distributed' package "
                                  "(pip install 'distalloc[dask]').") from None
        try:
            self.client = Client(address, timeout="10s")
        except OSError as exc:
            raise ValidationError(f"Cannot reach the Dask scheduler at {address!r}: {exc}") from None

    def submit(self, *args):
        return self.client.submit(run_chunk, *args, pure=False, retries=3)

    def restart(self):  # pragma: no cover - Dask retries tasks itself
        pass

    def close(self):
        self.client.close()


def _wait_any(futures, dask: bool):
    if dask:
        from distributed import wait as dask_wait
        res = dask_wait(list(futures), return_when="FIRST_COMPLETED")
        return res.done
    done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
    return done


def run_sweep(config: SweepConfig, out: str | Path, *, n_jobs: int | None = None,
              scheduler: str | None = None, chunk_size: int | None = None,
              progress: bool | None = None, max_restarts: int = 3) -> dict[str, Any]:
    """Run (or resume) a sweep, writing rows to ``out`` as chunks finish.

    Parameters
    ----------
    config : SweepConfig
    out : path
        ``.csv`` (default) or ``.parquet`` (a directory of part files; needs pyarrow).
    n_jobs : int
        local worker processes (default: CPU count); ignored with a scheduler.
    scheduler : str
        a Dask scheduler address (``tcp://host:8786``); default ``$DASK_SCHEDULER_ADDRESS``.
    chunk_size : int
        tasks per chunk (default: about 4 chunks per worker, at most 256 tasks).
    progress : bool
        a progress bar (default: only on a terminal).

    Returns
    -------
    dict with ``tasks``, ``skipped`` (already in the output), ``written``, ``wall_s``.
    """
    out = Path(out)
    scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    key_columns = config.grid_names + ["seed"]
    sink = _make_sink(out, key_columns)
    tasks = config.tasks()
    todo = [(p, s) for p, s in tasks
            if tuple(_cell(p[c]) for c in config.grid_names) + (str(s),) not in sink.done]
    t0 = time.perf_counter()
    summary = {"tasks": len(tasks), "skipped": len(tasks) - len(todo), "written": 0}
    if not todo:
        return {**summary, "wall_s": 0.0}
    engine = _DaskEngine(scheduler) if scheduler else _LocalEngine(
        check_number(n_jobs or os.cpu_count() or 1, "n_jobs", low=1, integer=True))
    workers = getattr(engine, "n_jobs", 4)
    cap = getattr(_resolve_target(config.target), "batch_chunk", 256)
    size = chunk_size or max(1, min(cap, len(todo) // (4 * workers) or 1))
    chunks = [todo[i: i + size] for i in range(0, len(todo), size)]
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="task", desc=config.target)
    restarts = 0
    try:
        pending = {engine.submit(config.target, config.fixed, c): c for c in chunks}
        while pending:
            done = _wait_any(pending, scheduler is not None)
            for fut in done:
                chunk = pending.pop(fut)
                try:
                    rows = fut.result()
                except BrokenProcessPool:
                    # a worker died: resubmit everything not yet written on a fresh pool
                    restarts += 1
                    if restarts > max_restarts:
                        raise
                    lost = [chunk] + list(pending.values())
                    engine.restart()
                    pending = {engine.submit(config.target, config.fixed, c): c for c in lost}
                    break
                sink.write(rows)
                summary["written"] += len(rows)
                if bar is not None:
                    bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
        engine.close()
    return {**summary, "restarts": restarts, "wall_s": time.perf_counter() - t0}
