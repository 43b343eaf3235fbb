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

**A sweep file is code**: its target names a Python function that is imported and called
with the file's values.  Run only sweep files you trust.  The target's signature is checked
against the file (unknown and missing parameters) before anything else is imported or run.

Every (grid point, seed) is a task; tasks run in chunks, generated as they are needed (a
sweep of 10^7 tasks never holds its task list).  Rows are written as chunks finish: CSV
lines appended, flushed and fsync'ed; or, for an output ending in ``.parquet``, one part
file per chunk in that folder (needs pyarrow).  A rerun skips the rows already in the
output (their key: every grid and fixed parameter, the seed, the target and the sha256 of
every input file), so an interrupted sweep resumes with nothing lost and nothing duplicated.
An output holding another sweep's rows (another target, or without this sweep's columns) is
refused before any work, and left as it is.

File paths in a sweep file (the ``scenario`` of ``llm.plan`` and ``llm.simulate``, also as
``topology:<path>``) are read relative to the sweep file's folder; a missing or unreadable
file is an error before any work.  Each row records the sha256 of its input file's bytes
(``scenario_sha256``), so a rerun after the file was edited computes its rows again.

The built-in targets take the resource limits of the functions they call, under the same
names: ``max_seconds`` (``queue.exact``, ``queue.simulate``), ``max_memory_gb``
(``queue.exact``, ``llm.plan``, ``llm.simulate``), ``time_limit`` (``llm.plan``),
``max_iterations`` (``sgd.run``); a point
over its limit is refused, and its row says so, like any other failure.  Unset, each is the
function's own default (e.g. 60 s for ``queue.exact``).

A task that fails (invalid for the target, an unstable system, a solver error) writes its
row with empty metrics and its one-line error in the ``status`` column (``ok`` otherwise),
and the sweep goes on; ``fail_fast`` stops at the first failure instead.  Failed rows are
not retried on a rerun unless ``retry_failed``.  A task whose worker process dies (a crash,
the OOM killer; on Dask ``KilledWorker``) is retried once on a fresh worker, then recorded
as failed; the others are untouched.

Columns: the grid parameters, ``seed``, then the target's metrics (the keys of its
``--json`` output; arrays are summarised, e.g. ``final_error``; ``llm.plan``'s own
``status`` is ``plan_status``), then ``status``, ``sweep_target`` (the target's name), the
input files' digests (``scenario_sha256``; empty for a built-in scenario), then the fixed
parameters.

Adding a target: put a :class:`Target` in :data:`TARGETS`.  A target may also give
``run_batch`` (many tasks in one call, e.g. a batched compiled kernel over the chunk's
grid points); its results must equal ``run``'s, one per task, an exception where a task
fails.
"""
from __future__ import annotations

import importlib
import inspect
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from distalloc._sweep_run import (DEFAULT_MAX_TASKS, RESERVED, TARGET_COLUMN, SweepWarning,
                                  run_chunk, run_sweep)
from distalloc._validation import ValidationError, check_keys, check_number

__all__ = ["SweepConfig", "Target", "TARGETS", "SweepWarning", "load_sweep", "run_sweep",
           "evaluate_task", "run_chunk", "DEFAULT_MAX_TASKS"]

# ------------------------------------------------------------------------------------------
# Targets: parameters -> metrics (the same keys as the CLI's --json output)
# ------------------------------------------------------------------------------------------
@dataclass
class Target:
    """A sweep target.

    Calling it, ``target(seed=..., **params)``, runs ``run``: the metrics of one task as a
    flat dict.  ``params`` are the parameter names it accepts (None: any, it takes
    ``**kwargs``), ``required`` the ones without a default.  ``batch(params_list)``,
    optional, evaluates many tasks in one call (a batched compiled kernel over a chunk's grid
    points; the target must not depend on the seed): one metrics dict per task, equal to
    ``run``'s, or the exception ``run`` raises; ``batch_chunk`` is then its preferred chunk
    size.  ``modules`` are imported once in the parent before local workers are forked, so
    that each worker does not import (and JIT-load) them again.  ``files`` are the
    parameters whose values may name input files (read relative to the sweep file's folder,
    their sha256 recorded in a ``<name>_sha256`` column and part of the resume key).
    """

    run: Callable[..., dict]
    params: frozenset[str] | None
    required: frozenset[str] = frozenset()
    batch: Callable[[list[dict]], list[Any]] | None = None
    batch_chunk: int | None = None
    modules: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def __call__(self, **kwargs) -> dict:
        return self.run(**kwargs)

    @classmethod
    def from_function(cls, fn: Callable, name: str, **kw) -> "Target":
        """Read the accepted and required parameters from ``fn``'s signature."""
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            raise ValidationError(f"Sweep target {name!r}: its signature cannot be read, so its "
                                  "parameters cannot be checked.") from None
        params, required, takes_kwargs, takes_seed = set(), set(), False, False
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                takes_kwargs = True
            elif p.kind is p.VAR_POSITIONAL:
                continue
            elif p.kind is p.POSITIONAL_ONLY:
                if p.default is p.empty:
                    raise ValidationError(f"Sweep target {name!r} has a positional-only "
                                          f"parameter '{p.name}'; targets are called with "
                                          "keyword arguments.")
            elif p.name == "seed":
                takes_seed = True
            else:
                params.add(p.name)
                if p.default is p.empty:
                    required.add(p.name)
        if not (takes_seed or takes_kwargs):
            raise ValidationError(f"Sweep target {name!r} must take a 'seed' keyword argument "
                                  "(the sweep passes seeds 0..N-1).")
        return cls(fn, None if takes_kwargs else frozenset(params), frozenset(required), **kw)


def _fork_join(servers, needed, rate, speeds, powers, probs, idle_power):
    from distalloc.queueing import ForkJoin
    return ForkJoin(servers, needed, rate, speeds, powers, probs, idle_power)


def _queue_metrics(m) -> dict:
    d = m.to_dict()
    d.pop("completion_fraction", None)
    d.pop("wall_s", None)
    return d


def _queue_approx(seed, servers, needed, rate, speeds=(1.0,), powers=None, probs=None,
                  idle_power=0.0) -> dict:
    from distalloc.queueing import approximate
    return _queue_metrics(approximate(_fork_join(servers, needed, rate, speeds, powers, probs,
                                                 idle_power)))


def _limits(**limits) -> dict:
    """The resource limits a sweep file sets (TOML has no null: an absent limit is the
    API's default, passed on by leaving it out)."""
    return {name: value for name, value in limits.items() if value is not None}


def _queue_exact(seed, servers, needed, rate, speeds=(1.0,), powers=None, probs=None,
                 idle_power=0.0, max_jobs=None, tail_tol=1e-8, max_seconds=None,
                 max_memory_gb=None) -> dict:
    from distalloc.queueing import exact
    return _queue_metrics(exact(_fork_join(servers, needed, rate, speeds, powers, probs,
                                           idle_power), max_jobs=max_jobs, tail_tol=tail_tol,
                                **_limits(max_seconds=max_seconds,
                                          max_memory_gb=max_memory_gb)))


def _queue_simulate(seed, servers, needed, rate, speeds=(1.0,), powers=None, probs=None,
                    idle_power=0.0, jobs=200_000, replications=1, max_seconds=None) -> dict:
    from distalloc.queueing import simulate
    return _queue_metrics(simulate(_fork_join(servers, needed, rate, speeds, powers, probs,
                                              idle_power), jobs, seed=seed,
                                   replications=replications,
                                   **_limits(max_seconds=max_seconds)))


def _llm_plan(seed, scenario, method="cg-bprr", num_requests=None, time_limit=60.0,
              servers=None, scenario_seed=0, max_memory_gb=None) -> dict:
    from distalloc.llm import plan, resolve_scenario
    sc = resolve_scenario(scenario, num_servers=servers, seed=scenario_seed)
    d = plan(sc, method, seed=seed, num_requests=num_requests, time_limit_s=time_limit,
             max_memory_gb=max_memory_gb).to_dict()
    d["servers_used"] = len(d.pop("placement") or [])
    d["plan_status"] = d.pop("status")       # the sweep's own `status` column is ok/error
    d.pop("routes", None)
    d.pop("join_order", None)
    return d


def _llm_simulate(seed, scenario, method="cg-bprr", rate=None, num_requests=None,
                  allocation_delay=0.0, planned_requests=None, noise=0.0, client_weights=None,
                  servers=None, scenario_seed=0, output_tokens=None,
                  max_memory_gb=None) -> dict:
    from distalloc.llm import resolve_scenario
    from distalloc.llm.simulation import simulate
    sc = resolve_scenario(scenario, num_servers=servers, seed=scenario_seed,
                          output_tokens=output_tokens)
    d = simulate(sc, method, rate_per_s=rate, num_requests=num_requests,
                 allocation_delay_s=allocation_delay, planned_requests=planned_requests,
                 noise=noise, client_weights=client_weights, seed=seed,
                 max_memory_gb=max_memory_gb).to_dict()
    for key in ("join_order", "wall_s", "events"):
        d.pop(key, None)
    return d


def _sgd_run(seed, problem="synthetic", workers=50, policy="pflug", horizon=None, lr=None,
             k_max=None, max_iterations=None) -> dict:
    from distalloc.sgd import run
    r = run(problem, workers, policy, horizon=horizon, lr=lr, seed=seed, k_max=k_max,
            **_limits(max_iterations=max_iterations))
    return {"policy": r.policy, "final_time": float(r.time[-1]), "final_error": float(r.error[-1]),
            "min_error": float(r.error.min()), "final_k": int(r.k[-1]),
            "iterations": r.iterations, "uplink_gradients": r.uplink_gradients,
            "downlink_models": r.downlink_models}


TARGETS: dict[str, Target] = {
    name: Target.from_function(fn, name, modules=(module,), files=files)
    for name, fn, module, files in [
        ("queue.simulate", _queue_simulate, "distalloc.queueing", ()),
        ("queue.approx", _queue_approx, "distalloc.queueing", ()),
        ("queue.exact", _queue_exact, "distalloc.queueing", ()),
        ("llm.plan", _llm_plan, "distalloc.llm", ("scenario",)),
        ("llm.simulate", _llm_simulate, "distalloc.llm.simulation", ("scenario",)),
        ("sgd.run", _sgd_run, "distalloc.sgd", ())]}

# --- Batched targets (queueing helper) ----------------------------------------------------
# queue.approx: approximate_grid (Numba) over a chunk's points, rows identical to the scalar
# path (values to 1e-12), the scalar path's exception for every point it refuses.
def _queue_approx_batch(params_list: list[dict]) -> list:
    from distalloc.queueing.grid import approximate_rows
    return approximate_rows(params_list, lambda params: _queue_approx(seed=0, **params))


TARGETS["queue.approx"].batch = _queue_approx_batch
TARGETS["queue.approx"].batch_chunk = 65_536
# ------------------------------------------------------------------------------------------

_USER_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                          r":[A-Za-z_][A-Za-z0-9_]*$")


def resolve_target(name: str) -> Target:
    """A built-in target, or ``package.module:function`` imported (which runs that module's
    code: a sweep file is code)."""
    if not isinstance(name, str):
        raise ValidationError(f"The sweep target must be a name (a string). Got "
                              f"{type(name).__name__} instead.")
    if name in TARGETS:
        return TARGETS[name]
    if not _USER_TARGET.match(name):
        raise ValidationError(f"Unknown sweep target {name!r} (built-in: {', '.join(TARGETS)}; "
                              "or 'package.module:function').")
    module, _, func = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except Exception as exc:   # ImportError, AttributeError, or whatever the module raises
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise ValidationError(f"Sweep target {name!r} cannot be imported: "
                              f"{type(exc).__name__}: {text}.") from None
    if not callable(fn):
        raise ValidationError(f"Sweep target {name!r} is not callable.")
    return Target.from_function(fn, name)


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepConfig:
    """A checked sweep.  ``inputs`` maps each input file value as written in the sweep file
    (``"sc.json"``, ``"topology:net.graph"``) to the value the target is called with (the
    path resolved against the sweep file's folder) and the sha256 of the file's bytes;
    ``files`` are the target's file parameters (one ``<name>_sha256`` column each)."""
    target: str
    seeds: int
    fixed: dict[str, Any]
    grid: dict[str, list]
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def meta_names(self) -> list[str]:
        """The columns the sweep adds after ``status``: the target, the input digests."""
        return [TARGET_COLUMN] + [f"{name}_sha256" for name in self.files]

    @property
    def grid_names(self) -> list[str]:
        return list(self.grid)

    @property
    def fixed_names(self) -> list[str]:
        return list(self.fixed)

    @property
    def num_points(self) -> int:
        return math.prod(len(v) for v in self.grid.values())

    @property
    def num_tasks(self) -> int:
        return self.num_points * self.seeds

    def iter_points(self) -> Iterator[dict[str, Any]]:
        names = self.grid_names
        return (dict(zip(names, combo)) for combo in itertools.product(*self.grid.values()))

    def iter_tasks(self) -> Iterator[tuple[dict[str, Any], int]]:
        """(grid point, seed) pairs, generated lazily."""
        return ((p, s) for p in self.iter_points() for s in range(self.seeds))

    def _guard(self, n: int) -> None:
        if n > DEFAULT_MAX_TASKS:
            raise ValidationError(f"This sweep has {n} tasks; use iter_tasks() / iter_points() "
                                  "to go through them without building a list.")

    def points(self) -> list[dict[str, Any]]:
        self._guard(self.num_points)
        return list(self.iter_points())

    def tasks(self) -> list[tuple[dict[str, Any], int]]:
        self._guard(self.num_tasks)
        return list(self.iter_tasks())


def _check_value(value: Any, where: str) -> None:
    """Parameter values are what JSON and every output format can hold (TOML dates and
    times are not; integers must fit in 64 bits, as TOML's own do)."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and not -2 ** 63 <= value < 2 ** 63:
        raise ValidationError(f"The value of {where} must be an integer that fits in 64 bits. "
                              f"Got {value} instead.")
    if isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_value(v, f"{where}.{k}")
        return
    raise ValidationError(f"The value of {where} must be a number, string, boolean, list or "
                          f"table. Got {value!r} instead.")


def _read_sweep_file(path: Path) -> dict:
    import tomllib
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"Sweep file '{path}' does not exist.") from None
    except IsADirectoryError:
        raise ValidationError(f"Sweep file '{path}' is a folder, not a file.") from None
    except OSError as exc:
        raise ValidationError(f"Sweep file '{path}' cannot be read: {exc.strerror or exc}.") \
            from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"Sweep file '{path}' is not UTF-8 text (byte {exc.start}).") \
            from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"Sweep file '{path}' is not valid TOML: "
                              f"{str(exc).splitlines()[0]}.") from None


def _input_path(value: str, base: Path) -> tuple[str, str] | None:
    """(prefix, path as written) if a file parameter's value names a file, None for a
    built-in name: ``x.json``/``x.toml`` or an existing file, ``topology:<path>`` where the
    path ends in ``.graph`` or has a folder part (a bare name is a shipped topology)."""
    kind, sep, arg = value.partition(":")
    if kind == "topology" and sep:
        if arg.lower().endswith(".graph") or "/" in arg or os.sep in arg:
            return "topology:", arg
        return None
    if Path(value).suffix.lower() in (".json", ".toml") or (base / value).is_file():
        return "", value
    return None


def _read_inputs(spec: "Target", fixed: dict, grid: dict, base: Path
                 ) -> dict[str, tuple[str, str]]:
    """Resolve the file parameters' values against ``base`` and hash the files, before any
    work: a missing, unreadable file is a one-line error naming where it was looked for."""
    import hashlib
    inputs: dict[str, tuple[str, str]] = {}
    for name in spec.files:
        if name in fixed:
            values = [(f"fixed.{name}", fixed[name])]
        else:
            values = [(f"grid.{name}[{i}]", v) for i, v in enumerate(grid.get(name, []))]
        for where, value in values:
            if not isinstance(value, str) or value in inputs:
                continue
            found = _input_path(value, base)
            if found is None:
                continue
            prefix, written = found
            path = (base / written) if not Path(written).is_absolute() else Path(written)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise ValidationError(f"The input file of {where} ('{written}') does not exist "
                                      f"(looked for {path}: relative paths are read from the "
                                      "sweep file's folder).") from None
            except IsADirectoryError:
                raise ValidationError(f"The input file of {where} ('{written}') is a folder, "
                                      f"not a file ({path}).") from None
            except OSError as exc:
                raise ValidationError(f"The input file of {where} ('{written}') cannot be read "
                                      f"({path}: {exc.strerror or type(exc).__name__}).") \
                    from None
            inputs[value] = (prefix + str(path.resolve()), hashlib.sha256(data).hexdigest())
    return inputs


def load_sweep(source: str | Path | dict, *, base: str | Path | None = None) -> SweepConfig:
    """Read and validate a sweep file (or an already parsed dict).

    The target is resolved (a ``module:function`` target is imported: a sweep file is
    code) and its signature checked against the file's parameters before anything runs.
    Input files named by the target's file parameters (``scenario``) are read relative to
    the sweep file's folder (``base`` for a dict, default the current folder) and hashed.

    Raises
    ------
    ValidationError
        an unreadable, non-UTF-8 or invalid TOML file; unknown sections or keys; an unknown
        target; parameters the target does not take or required ones missing; empty,
        non-list or repeated grid values; seeds < 1; a missing or unreadable input file —
        all before any work starts.
    """
    if isinstance(source, dict):
        data = source
        folder = Path(base) if base is not None else Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        data = _read_sweep_file(Path(source))
        folder = Path(base) if base is not None else Path(source).parent
    else:
        raise ValidationError(f"A sweep must be a file path or a dict. Got "
                              f"{type(source).__name__} instead.")
    check_keys(data, "sweep file", {"sweep"}, {"fixed", "grid"})
    head = check_keys(data["sweep"], "sweep", {"target"}, {"seeds"})
    target = head["target"]
    if not isinstance(target, str):
        raise ValidationError(f"The 'target' parameter of sweep must be a string. "
                              f"Got {target!r} instead.")
    seeds = check_number(head.get("seeds", 1), "seeds", "sweep", low=1, integer=True)
    fixed = data.get("fixed", {})
    grid = data.get("grid", {})
    for section, table in (("fixed", fixed), ("grid", grid)):
        if not isinstance(table, dict):
            raise ValidationError(f"'{section}' must be a table. Got {table!r} instead.")
    from distalloc._sweep_output import canonical
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValidationError(f"Grid parameter '{name}' must be a non-empty list. "
                                  f"Got {values!r} instead.")
        seen: dict[str, Any] = {}
        for i, v in enumerate(values):
            _check_value(v, f"grid.{name}[{i}]")
            key = json.dumps(canonical(v), sort_keys=True)
            if key in seen:
                raise ValidationError(f"Grid parameter '{name}' lists the value {v!r} twice "
                                      f"(as {seen[key]!r} too).")
            seen[key] = v
    for name, value in fixed.items():
        _check_value(value, f"fixed.{name}")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValidationError(f"Parameter '{both[0]}' is both fixed and in the grid.")
    for name in RESERVED:
        if name in fixed or name in grid:
            raise ValidationError(f"'{name}' is set by the sweep (seeds 0..N-1, the ok/error "
                                  "status and the target of each row); do not give it.")
    spec = resolve_target(target)
    given = set(fixed) | set(grid)
    if spec.params is not None:
        unknown = sorted(given - spec.params)
        if unknown:
            raise ValidationError(f"Unknown parameter '{unknown[0]}' for target {target} "
                                  f"(allowed: {', '.join(sorted(spec.params))}).")
    missing = sorted(spec.required - given)
    if missing:
        raise ValidationError(f"Missing parameter '{missing[0]}' for target {target}: give it "
                              "in [fixed] or [grid] (required: "
                              f"{', '.join(sorted(spec.required))}).")
    inputs = _read_inputs(spec, fixed, grid, folder)
    return SweepConfig(target, seeds, dict(fixed), dict(grid), inputs, tuple(spec.files))


def evaluate_task(target: str, params: dict, seed: int) -> dict:
    """Run one task directly (no error capture): the target's metrics dict."""
    return resolve_target(target).run(seed=seed, **params)

