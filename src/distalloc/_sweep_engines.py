"""Sweep engines (SPEC 4.1): local worker processes and a Dask cluster, behind one small
interface used by :func:`distalloc.sweep.run_sweep`:

``capacity()`` chunks the engine can take now, ``submit(chunk_id, chunk)``,
``wait()`` -> a list of events ``("done", chunk_id, result)`` or
``("lost", chunk_id, running_index_or_None, reason)``, ``close(cancel)``.

Local workers are processes we start and watch ourselves (not a pool): each runs one chunk
at a time and writes the index of the task it is running into shared memory, so when one
dies (a kernel crash, the OOM killer) we know which task it was running and the others are
untouched.  Workers die with their parent (Linux ``PR_SET_PDEATHSIG``; elsewhere a thread
watching the parent pid), so killing a sweep never leaves orphans holding its pipes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
from multiprocessing.connection import wait as mp_wait
from typing import Any, Callable

from distalloc._validation import ValidationError

__all__ = ["LocalEngine", "DaskEngine", "usable_cores", "signal_name"]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


# ------------------------------------------------------------------------------------------
# Dying with the parent
# ------------------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:     # the parent died before prctl
                    os._exit(1)
                return
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass

    def watch() -> None:  # pragma: no cover - not Linux
        import time
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()  # pragma: no cover


def _worker_main(conn, running, parent_pid: int, run_chunk: Callable, args: tuple) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the parent's to handle
    import faulthandler
    faulthandler.disable()     # a crash is reported once, by the parent, in the status column
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        chunk_id, chunk = msg
        running.value = -1
        result = run_chunk(*args, chunk, running=running)
        try:
            conn.send((chunk_id, result))
        except (BrokenPipeError, OSError):
            break
    os._exit(0)


class _Worker:
    def __init__(self, ctx, run_chunk, args):
        self.conn, child = ctx.Pipe()
        self.running = ctx.RawValue("q", -1)
        self.proc = ctx.Process(target=_worker_main, daemon=True,
                                args=(child, self.running, os.getpid(), run_chunk, args))
        self.proc.start()
        child.close()
        self.chunk_id: Any = None


class LocalEngine:
    """``n_workers`` processes, each running one chunk at a time."""

    def __init__(self, n_workers: int, run_chunk: Callable, args: tuple):
        methods = mp.get_all_start_methods()
        self.ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        self.n_workers = n_workers
        self.run_chunk, self.args = run_chunk, args
        self.workers: list[_Worker] = []

    def capacity(self) -> int:
        idle = sum(w.chunk_id is None for w in self.workers)
        return idle + self.n_workers - len(self.workers)

    def busy(self) -> int:
        return sum(w.chunk_id is not None for w in self.workers)

    def submit(self, chunk_id: Any, chunk: list) -> None:
        worker = next((w for w in self.workers if w.chunk_id is None), None)
        if worker is None:
            worker = _Worker(self.ctx, self.run_chunk, self.args)
            self.workers.append(worker)
        worker.chunk_id = chunk_id
        worker.conn.send((chunk_id, chunk))

    def wait(self) -> list[tuple]:
        busy = [w for w in self.workers if w.chunk_id is not None]
        ready = set(mp_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
        events = []
        for w in busy:
            if w.conn in ready:
                try:
                    chunk_id, result = w.conn.recv()
                except (EOFError, OSError):
                    pass                      # died while sending: handled as a death below
                else:
                    events.append(("done", chunk_id, result))
                    w.chunk_id = None
                    continue
            if w.conn in ready or w.proc.sentinel in ready:
                w.proc.join(timeout=5)
                if w.proc.is_alive():    # pragma: no cover - the pipe broke but it lives
                    w.proc.kill()
                    w.proc.join()
                index = int(w.running.value)
                events.append(("lost", w.chunk_id, index if index >= 0 else None,
                               f"its worker process died ({signal_name(w.proc.exitcode)})"))
                w.conn.close()
                self.workers.remove(w)
        return events

    def close(self, cancel: bool = False) -> None:
        for w in self.workers:
            if cancel or w.chunk_id is not None:
                w.proc.kill()
            else:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self.workers:
            w.proc.join(timeout=10)
            if w.proc.is_alive():  # pragma: no cover
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self.workers = []


# ------------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------------
def check_scheduler_address(address: str) -> str:
    """A Dask address (``tcp://host:8786``, ``tls://...``, ``inproc://...``, ``host:port``),
    parsed and, for TCP/TLS, reachable — checked before any work, one line if not."""
    if not isinstance(address, str) or not address.strip():
        raise ValidationError(f"The 'scheduler' option must be a Dask scheduler address such "
                              f"as tcp://host:8786. Got {address!r} instead.")
    try:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port
    except ImportError:
        raise ValidationError("A Dask scheduler needs the 'distributed' package "
                              "(pip install 'distalloc[dask]').") from None
    try:
        scheme, loc = parse_address(address.strip())
        if scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
            raise ValueError(f"unknown scheme {scheme!r}")
        if scheme in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(loc)
            if not host or not port:
                raise ValueError("missing host or port")
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"The 'scheduler' option must be a Dask scheduler address such "
                              f"as tcp://host:8786. Got {address!r} instead ({exc}).") from None
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as exc:
            raise ValidationError(f"Cannot reach the Dask scheduler at {address!r}: "
                                  f"{exc.strerror or exc}.") from None
    return address.strip()


class DaskEngine:
    """Chunks as Dask tasks; a chunk whose worker is lost (``KilledWorker`` after the
    scheduler's own retries, a lost connection) is reported as ``lost`` with no running
    index (Dask does not say which task it was running)."""

    def __init__(self, address: str, run_chunk: Callable, args: tuple):
        from distributed import Client
        address = check_scheduler_address(address)
        try:
            self.client = Client(address, timeout="20s", set_as_default=False)
        except (OSError, ValueError, TimeoutError) as exc:
            raise ValidationError(f"Cannot connect to the Dask scheduler at {address!r}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                  ".") from None
        self.run_chunk, self.args = run_chunk, args
        self.futures: dict[Any, Any] = {}
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # pragma: no cover - scheduler gone
            threads = 2
        self.n_workers = max(1, threads)
        self.max_in_flight = max(4, 2 * threads)

    def capacity(self) -> int:
        return self.max_in_flight - len(self.futures)

    def busy(self) -> int:
        return len(self.futures)

    def submit(self, chunk_id: Any, chunk: list) -> None:
        self.futures[chunk_id] = self.client.submit(self.run_chunk, *self.args, chunk,
                                                    pure=False, retries=0)

    def wait(self) -> list[tuple]:
        from distributed import wait as dask_wait
        with self.client.as_current():
            done = dask_wait(list(self.futures.values()), return_when="FIRST_COMPLETED").done
        events = []
        for chunk_id, fut in list(self.futures.items()):
            if fut not in done:
                continue
            del self.futures[chunk_id]
            try:
                events.append(("done", chunk_id, fut.result()))
            except Exception as exc:   # KilledWorker, CommClosedError, CancelledError, ...
                text = str(exc).splitlines()[0] if str(exc) else ""
                events.append(("lost", chunk_id, None,
                               f"its Dask worker was lost ({type(exc).__name__}"
                               + (f": {text[:200]}" if text else "") + ")"))
        return events

    def close(self, cancel: bool = False) -> None:
        if cancel and self.futures:
            try:
                self.client.cancel(list(self.futures.values()))
            except Exception:  # pragma: no cover
                pass
        self.futures = {}
        self.client.close()
