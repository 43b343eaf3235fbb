"""Running fuzz cases so that no case can take the test session down with it.

Cases run in a worker process forked from the test process (imports already loaded, so a
fork costs milliseconds).  The parent sends a case and waits at most the entry's time limit:
a case that does not answer in time is a *hang* (the worker is killed and replaced), a worker
that dies is a *crash* (the signal is reported: a segfault is a finding, not a lost
session).  Workers run with an address-space limit, so unbounded memory shows up as
MemoryError, and die with the test process.

Outcomes: ``ok`` (exit 0 / a return value whose metrics are finite and physically possible),
``clean`` (exit 2 with exactly one stderr line / a ValidationError with a one-line
message), or a fault: ``fault`` (a traceback, the wrong exception type, an impossible
metric, noise on stdout, ...), ``hang``, ``crash``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fuzz_values import SECRET

MEM_LIMIT_BYTES = int(os.environ.get("DISTALLOC_FUZZ_MEM_GB", "4")) * 2 ** 30


@dataclass
class EntryPoint:
    """One row of the fuzz table: how to draw a case, run it (in the worker) and judge it.

    ``run(case, workdir)`` returns ``("cli", code, stdout, stderr)`` or ``("api", value)``;
    an exception it raises is judged too.  ``check(case, result)`` returns the problems of
    a successful run (impossible metrics...); ``weight`` scales the CI budget (cheap entry
    points get more cases), ``timeout_s`` is the per-case limit.
    """

    name: str
    strategy: Any
    run: Callable[[dict, Path], tuple]
    check: Callable[[dict, Any], list[str]]
    weight: float = 1.0
    timeout_s: float = 30.0


@dataclass
class Outcome:
    category: str                  # ok, clean, fault, hang, crash
    problems: list[str] = field(default_factory=list)
    signature: str = ""
    detail: str = ""
    seconds: float = 0.0

    @property
    def is_fault(self) -> bool:
        return self.category in ("fault", "hang", "crash")


# ------------------------------------------------------------------------------------------
# in the worker
# ------------------------------------------------------------------------------------------
def _where(tb) -> str:
    """The innermost frame inside distalloc (else the innermost frame)."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "distalloc" in f.filename and "/tests/" not in f.filename]
    f = (ours or frames or [None])[-1]
    if f is None:
        return "?"
    path = f.filename.split("distalloc/")[-1] if "distalloc/" in f.filename else Path(f.filename).name
    return f"{path}:{f.name}"


def _signature(kind: str, text: str) -> str:
    return kind + ": " + re.sub(r"[-+]?\d[\d.e+-]*", "N", text)[:120]


def _write_files(workdir: Path, files: dict) -> None:
    for name, content in (files or {}).items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, tuple) and content[0] == "symlink":
            os.symlink(content[1], path)
        else:
            path.write_bytes(content)


def execute(entry: EntryPoint, case: dict) -> Outcome:
    """Run and judge one case (in the worker), in a fresh working directory."""
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-"))
    old_cwd = os.getcwd()
    try:
        _write_files(workdir, case.get("files"))
        os.chdir(workdir)
        return _execute(entry, case, workdir)
    finally:
        os.chdir(old_cwd)
        shutil.rmtree(workdir, ignore_errors=True)


def _execute(entry: EntryPoint, case: dict, workdir: Path) -> Outcome:
    from distalloc import ValidationError
    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    old_streams = sys.stdout, sys.stderr
    t0 = time.perf_counter()
    exc: BaseException | None = None
    result: Any = None
    try:
        os.dup2(out_f.fileno(), 1)
        os.dup2(err_f.fileno(), 2)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        try:
            result = entry.run(case, workdir)
        except BaseException as e:   # noqa: BLE001 - judged below
            exc = e
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        sys.stdout, sys.stderr = old_streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    seconds = time.perf_counter() - t0
    out_f.seek(0)
    err_f.seek(0)
    stdout = out_f.read().decode("utf-8", "backslashreplace")
    stderr = err_f.read().decode("utf-8", "backslashreplace")
    out_f.close()
    err_f.close()

    if exc is not None:
        if isinstance(exc, ValidationError) and result is None and "\n" not in str(exc):
            return Outcome("clean", seconds=seconds)
        kind = ("traceback" if "argv" in case else "wrong exception type"
                if not isinstance(exc, ValidationError) else "multi-line error")
        if isinstance(exc, MemoryError):
            kind = "out of memory"
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return Outcome("fault", [f"{kind}: {text} at {_where(exc.__traceback__)}"],
                       _signature(f"{type(exc).__name__}@{_where(exc.__traceback__)}", ""),
                       "".join(traceback.format_exception(exc))[-3000:], seconds)
    if result[0] == "cli":
        outcome = judge_cli(entry, case, result[1], stdout, stderr)
    else:
        try:
            problems = entry.check(case, result[1])
        except Exception as e:  # noqa: BLE001 - a result the check cannot even read
            problems = [f"result cannot be checked: {type(e).__name__}: {e}"]
        outcome = Outcome("fault" if problems else "ok", problems,
                          _signature("impossible result", problems[0]) if problems else "")
        if outcome.category == "ok" and stdout:
            outcome = Outcome("fault", ["an API call printed to stdout: " + stdout[:200]],
                              "api printed to stdout")
    outcome.seconds = seconds
    return outcome


def judge_cli(entry: EntryPoint, case: dict, code: int, stdout: str, stderr: str) -> Outcome:
    """The CLI contract (SPEC 4.2): 0 with a sane answer, or 2 with exactly one stderr line
    and nothing on stdout; never a traceback, never anything else."""
    err_lines = stderr.strip("\n").splitlines() if stderr.strip() else []
    tail = f" (stdout {stdout[:300]!r}, stderr {stderr[-600:]!r})"
    if SECRET in stdout or SECRET in stderr:       # untrusted files are not echoed (issue 16)
        return Outcome("fault", [f"the output quotes the content of a file it read{tail}"],
                       "quotes a file")
    if code == 2:
        problems = []
        if len(err_lines) != 1 or not err_lines[0].startswith("distalloc: error: "):
            problems.append(f"exit 2 without exactly one 'distalloc: error:' line{tail}")
        if stdout:
            problems.append(f"exit 2 with output on stdout{tail}")
        if "out of memory" in stderr:
            problems.append("ran out of memory (refuse what cannot fit, with an estimate)")
        if problems:
            return Outcome("fault", problems, _signature("bad error output", problems[0]))
        return Outcome("clean")
    if code == 0:
        problems = [f"stderr line that is not a warning: {x!r}" for x in err_lines
                    if not x.startswith("distalloc: warning: ")]
        if "--json" in case["argv"]:
            lines = stdout.splitlines()
            if len(lines) != 1:
                problems.append(f"--json printed {len(lines)} lines on stdout{tail}")
        try:
            problems += entry.check(case, ("cli", 0, stdout, stderr))
        except Exception as e:  # noqa: BLE001 - an answer the check cannot even read
            problems.append(f"output cannot be checked: {type(e).__name__}: {e}{tail}")
        if problems:
            return Outcome("fault", problems, _signature("exit 0 with", problems[0]))
        return Outcome("ok")
    if code == 1 and case.get("allow_exit_1") and len(err_lines) == 1:
        return Outcome("ok")
    problem = f"exit status {code}{tail}"
    return Outcome("fault", [problem], _signature(f"exit {code}", err_lines[-1] if err_lines else ""))


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _worker(conn, parent: int, entries: dict) -> None:
    _die_with_parent(parent)
    import faulthandler
    import resource
    faulthandler.disable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT_BYTES, MEM_LIMIT_BYTES))
    except (ValueError, OSError):
        pass
    os.environ["DISTALLOC_TRACEBACK"] = "1"      # a bug raises instead of printing one line
    os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if msg is None:
            os._exit(0)
        name, case = msg
        try:
            outcome = execute(entries[name], case)
        except BaseException as exc:  # noqa: BLE001 - the harness itself failed
            outcome = Outcome("fault", [f"fuzz harness error: {exc!r}"], "harness")
        conn.send(outcome)


class FuzzWorker:
    """A forked worker that runs cases one at a time with a time limit."""

    def __init__(self, entries: dict):
        self.entries = entries
        self.ctx = mp.get_context("fork")
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        # not a daemon: the cases start processes of their own (sweeps); it dies with us
        # anyway (PR_SET_PDEATHSIG) and close() ends it
        self.proc = self.ctx.Process(target=_worker, args=(child, os.getpid(), self.entries))
        self.proc.start()
        child.close()

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.conn.close()
        self.proc = None

    def run(self, name: str, case: dict, timeout_s: float) -> Outcome:
        if self.proc is None or not self.proc.is_alive():
            self._stop()
            self._start()
        t0 = time.perf_counter()
        self.conn.send((name, case))
        if self.conn.poll(timeout_s):
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                pass
            self.proc.join(timeout=5)
            code = self.proc.exitcode
            self._stop()
            sig = (signal.Signals(-code).name if code is not None and code < 0
                   else f"exit {code}")
            return Outcome("crash", [f"the process died: {sig}"], f"crash: {sig}",
                           seconds=time.perf_counter() - t0)
        self._stop()
        return Outcome("hang", [f"no answer within {timeout_s:g} s"], "hang",
                       seconds=time.perf_counter() - t0)

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(timeout=5)
            except OSError:
                pass
        self._stop()


def run_cli(case: dict, workdir: Path) -> tuple:
    """In the worker: ``distalloc ARGV`` in-process."""
    from distalloc.cli import main
    code = main(list(case["argv"]))
    return ("cli", code, None, None)


def tidy(case: dict) -> str:
    """A reproducer: the command line (or call) and the files it reads."""
    lines = []
    for name, content in (case.get("files") or {}).items():
        if isinstance(content, bytes):
            lines.append(f"# {name}: {content[:600]!r}")
        else:
            lines.append(f"# {name}: {content!r}")
    if "argv" in case:
        import shlex
        lines.append("distalloc " + " ".join(shlex.quote(a) for a in case["argv"]))
    else:
        lines.append(repr({k: v for k, v in case.items() if k != "files"})[:1500])
    return "\n".join(lines)

