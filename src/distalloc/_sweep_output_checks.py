"""Sweep output (SPEC 4.1), the checks made before any task runs: the output path is of the
right kind and writable, no other sweep holds it (the lock), and an existing output holds
this sweep's rows (its columns and its target).

An existing output holding another sweep's rows (another target, columns that do not fit)
is refused before anything in it changes.  Reading and writing the rows, and their resume
keys, are :mod:`distalloc._sweep_output`'s.
"""
from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import Any

from distalloc._sweep_run import TARGET_COLUMN
from distalloc._validation import ValidationError

__all__ = ["STATUS", "SEED", "OutputLock", "check_output_path", "check_writable_dir",
           "check_columns", "not_ours", "other_target"]

STATUS = "status"
SEED = "seed"


# ------------------------------------------------------------------------------------------
# The lock: one sweep per output at a time
# ------------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """``OUT.lock`` beside the output, holding the owner's pid.

    The lock itself is a POSIX record lock (``fcntl.lockf``): the kernel releases it when
    its process dies, however it dies, and forked workers do not inherit it, so a lock file
    left by a dead sweep is simply taken over.  Where ``fcntl`` is missing, the file is
    created exclusively and a lock whose pid is not alive is taken over.
    """

    def __init__(self, out: Path):
        self.out = out
        self.path = out.with_name(out.name + ".lock")
        self.fd: int | None = None
        for _ in range(5):
            if self._try_acquire():
                return
        raise ValidationError(f"Cannot lock the output '{out}': its lock file {self.path} keeps "
                              "changing (another sweep starting at the same time?).")

    def _refuse(self) -> None:
        try:
            pid = self.path.read_text().strip() or "unknown"
        except OSError:
            pid = "unknown"
        raise ValidationError(f"The output '{self.out}' is in use by another sweep (pid {pid}, "
                              f"lock file {self.path}); wait for it to finish or choose "
                              "another --out.")

    def _try_acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._try_acquire_exclusive()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ValidationError(f"Cannot create the lock file {self.path} beside the output: "
                                  f"{exc.strerror or exc}.") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self._refuse()
        try:   # the file we locked must still be the one at the path (not unlinked meanwhile)
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def _try_acquire_exclusive(self) -> bool:  # pragma: no cover - not POSIX
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                pid = int(self.path.read_text().strip())
            except (OSError, ValueError):
                pid = None
            if pid is not None and _pid_alive(pid):
                self._refuse()
            self.path.unlink(missing_ok=True)
            return False
        except OSError as exc:
            raise ValidationError(f"Cannot create the lock file {self.path} beside the output: "
                                  f"{exc.strerror or exc}.") from None
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------
# Output paths, checked before any work
# ------------------------------------------------------------------------------------------
def check_output_path(out: str | Path) -> Path:
    """The output must end in .csv or .parquet, its folder must exist, and what is there
    must be of the right kind (a regular file for CSV, a folder for Parquet)."""
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise ValidationError(f"The 'out' option must be a file path. Got {out!r} instead.")
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValidationError(f"The 'out' option must end in .csv or .parquet. Got '{path}' "
                              "instead.")
    parent = path.parent
    if not parent.exists():
        raise ValidationError(f"The folder of the output '{path}' does not exist.")
    if not parent.is_dir():
        raise ValidationError(f"The folder of the output '{path}' is not a folder.")
    if path.exists() or path.is_symlink():
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ValidationError(f"Cannot read the output '{path}': {exc.strerror or exc}.") \
                from None
        if suffix == ".csv" and not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ValidationError(f"The output '{path}' is {kind}; a .csv output must be a "
                                  "regular file (it is appended to and read back to resume).")
        if suffix == ".parquet" and not stat.S_ISDIR(mode):
            raise ValidationError(f"The output '{path}' exists and is not a folder; a .parquet "
                                  "output is a folder of part files.")
    return path


def check_writable_dir(folder: Path, what: str) -> None:
    """``folder`` takes a new file (a probe file is created and removed)."""
    probe = folder / f".distalloc-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise ValidationError(f"Cannot write to {what} '{folder}': {exc.strerror or exc}.") \
            from None


# ------------------------------------------------------------------------------------------
# An existing output must be this sweep's
# ------------------------------------------------------------------------------------------
def not_ours(path: Path, why: str) -> ValidationError:
    return ValidationError(f"The output '{path}' exists and is not the output of this "
                           f"sweep ({why}); choose another --out, or delete it to start "
                           "again.")


def check_columns(path: Path, columns: list[str], grid_names: list[str],
                  fixed_names: list[str]) -> None:
    """An existing output's columns must be this sweep's: its grid parameters and seed,
    the target column, and no parameter of this sweep among the metrics."""
    if not columns:
        return
    missing = [c for c in grid_names + [SEED] if c not in columns]
    if missing:
        raise not_ours(path, f"no '{missing[0]}' column")
    if TARGET_COLUMN not in columns:
        raise not_ours(path, f"no '{TARGET_COLUMN}' column: written by another program "
                       "or an older distalloc, so whose results it holds is unknown")
    if STATUS in columns:
        params = set(grid_names) | set(fixed_names)
        metrics = columns[columns.index(SEED) + 1:columns.index(STATUS)]
        clash = [c for c in metrics if c in params]
        if clash:
            raise not_ours(path, f"its column '{clash[0]}' holds a metric, here it is a "
                           "parameter")


def other_target(path: Path, found: Any, target: str) -> ValidationError:
    """The error for a row of the output whose target (``found``) is not ``target``."""
    shown = "none" if found in (None, "") else repr(str(found)[:80])
    return not_ours(path, f"its rows are of the target {shown}, not {target!r}")
