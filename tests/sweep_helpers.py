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
