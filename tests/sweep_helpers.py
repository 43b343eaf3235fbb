"""User-function sweep targets for the tests (importable as sweep_helpers:NAME)."""
import os
import time


def slow_square(x, seed, delay=0.0):
    time.sleep(delay)
    return {"value": x * x + seed, "pid": os.getpid()}


def die_once(x, seed, marker):
    """Kills its worker process the first time it runs (marker file absent)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return {"value": 10 * x + seed}


def crash_on(x, seed, bad):
    """A kernel crash (SIGSEGV) for x == bad; other tasks are fine."""
    if x == bad:
        import signal
        os.kill(os.getpid(), signal.SIGSEGV)
    return {"value": 10 * x + seed}


def fail_on(x, seed, bad):
    if x == bad:
        raise ValueError(f"cannot do {x}")
    return {"value": x}


def record_call(x, seed, marker):
    """Leaves a file behind: a test asserts it is absent when the sweep was refused."""
    open(marker, "a").close()
    return {"value": x}


def warn_once(x, seed):
    import warnings
    warnings.warn("numbers got large", RuntimeWarning)
    return {"value": x}
