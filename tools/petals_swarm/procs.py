"""Process groups that are always torn down: every swarm process (DHT, servers, relay,
client) starts in its own session (``setsid``), so ``kill -TERM -- -PGID`` reaches the
children it spawns too (a PETALS server's DHT process, runtime, connection handlers and
``p2pd``).  SIGTERM to the main pid alone would leave those behind; SIGINT is ignored by
background jobs.

:class:`Swarm` is a context manager: leaving it, by return, exception, Ctrl-C (SIGINT) or
SIGTERM, terminates every group it started (SIGTERM, then SIGKILL after a grace period)
and waits until no process of any group is left.  Standard library only, so CI tests it
without PETALS (``tests/test_petals_swarm_teardown.py``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Sequence

__all__ = ["Swarm", "group_members", "wait_for_line"]


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes whose process group is ``pgid`` (/proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


class Swarm:
    """Start commands in their own process groups; tear all of them down on exit.

    Parameters
    ----------
    log_dir : path
        each process's stdout and stderr go to ``log_dir/NAME.log``.
    grace_s : float
        time between SIGTERM and SIGKILL of a group.
    """

    def __init__(self, log_dir: str | Path, grace_s: float = 10.0):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO] = []
        self._old_handlers: dict[int, object] = {}

    # -- starting -----------------------------------------------------------------------
    def start(self, name: str, argv: Sequence[str], env: dict | None = None,
              cwd: str | Path | None = None) -> subprocess.Popen:
        if name in self.procs:
            raise ValueError(f"process {name!r} already started")
        log = open(self.log_dir / f"{name}.log", "wb")
        self._logs.append(log)
        p = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)   # setsid: pgid == pid
        self.procs[name] = p
        return p

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def check_alive(self, *names: str) -> None:
        """Raise if a named process (default: all) has exited."""
        for name in names or list(self.procs):
            rc = self.procs[name].poll()
            if rc is not None:
                tail = self.log_path(name).read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"{name} exited with status {rc}; log tail:\n" + "\n".join(tail))

    # -- stopping -----------------------------------------------------------------------
    def stop(self, name: str) -> None:
        self._terminate([self.procs.pop(name)])

    def _terminate(self, procs: list[subprocess.Popen]) -> None:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.grace_s
        pending = list(procs)
        while pending and time.monotonic() < deadline:
            for p in pending:
                p.poll()
            pending = [p for p in pending if group_members(p.pid)]
            if pending:
                time.sleep(0.1)
        for p in pending:          # still there after the grace period
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(50):        # SIGKILLed children are reaped by init; wait for it
            if not any(group_members(p.pid) for p in procs):
                break
            time.sleep(0.1)

    def close(self) -> None:
        """Terminate every group, newest first, and close the logs.  Idempotent."""
        procs = list(self.procs.values())[::-1]
        self.procs.clear()
        self._terminate(procs)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def survivors(self, pgids: Sequence[int]) -> list[int]:
        return [pid for g in pgids for pid in group_members(g)]

    # -- context manager: also on Ctrl-C and SIGTERM ---------------------------------------
    def _on_signal(self, signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> "Swarm":
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:     # not the main thread: the caller handles signals
                pass
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        finally:
            for sig, h in self._old_handlers.items():
                signal.signal(sig, h)
            self._old_handlers.clear()


def wait_for_line(path: str | Path, needle: str, timeout_s: float, swarm: Swarm | None = None,
                  name: str | None = None) -> str:
    """Wait until ``needle`` appears in the file at ``path``; return that line.  Raises
    TimeoutError, or RuntimeError if ``name``'s process exits first."""
    deadline = time.monotonic() + timeout_s
    path = Path(path)
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    return line
        if swarm is not None and name is not None:
            swarm.check_alive(name)
        time.sleep(0.2)
    raise TimeoutError(f"'{needle}' did not appear in {path} within {timeout_s:g} s")


if __name__ == "__main__":  # a stand-in for tests: python procs.py spawn N
    if sys.argv[1:2] == ["spawn"]:
        n = int(sys.argv[2])
        kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                for _ in range(n)]
        print("ready", os.getpid(), *[k.pid for k in kids], flush=True)
        time.sleep(600)
