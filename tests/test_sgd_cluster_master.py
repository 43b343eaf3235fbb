"""The real master's rounds (distalloc.sgd.cluster._Pool) against stand-in actors on one
asyncio loop, no cluster: the calls leave in a fresh random order every round, the first
k gradients are taken in arrival order, a late gradient never reaches a later round, lost
workers (a failing call, or the scheduler reporting the actor gone) are dropped without a
hang, and silence is an error after iteration_timeout_s."""
import asyncio

import numpy as np
import pytest

from distalloc import ValidationError
from distalloc.sgd.cluster import _Pool


class FakeFuture:
    status = "finished"

    def release(self):
        pass


class FakeActor:
    """Takes the real message [iteration, delay_s, w...] and answers [seconds, worker,
    iteration] after the delay; ``fail`` makes the call raise as a lost connection does,
    ``hang`` makes it never answer."""

    def __init__(self, i, log):
        self.i, self.log, self.fail, self.hang = i, log, False, False

    def gradient(self, message):
        iteration, delay_s = int(message[0]), float(message[1])
        self.log.append((iteration, self.i))
        return self._answer(iteration, delay_s)

    async def _answer(self, iteration, delay_s):
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(delay_s)
        if self.fail:
            raise OSError("Unable to contact Actor's worker")
        return np.array([delay_s, self.i, iteration], dtype=float)

    async def stop(self):
        return None


def _pool(n=4, timeout=5.0, seed=0):
    log = []
    actors = [FakeActor(i, log) for i in range(n)]
    pool = _Pool(None, [f"tcp://w{i}" for i in range(n)], actors,
                 [FakeFuture() for _ in range(n)], [], timeout, np.random.default_rng(seed))
    return pool, log


def _run(coro):
    return asyncio.run(coro)


def test_calls_leave_in_a_fresh_random_order():
    """Every round calls each live worker once, in an order drawn anew: over 400 rounds
    each worker is called first about a quarter of the time (the bound, 15 %, is 4.6
    standard deviations below), and the order is not the same every round."""
    pool, log = _pool()

    async def rounds():
        for _ in range(400):
            await pool._round(np.zeros(2), np.zeros(4), 4, 0, 0.0)
    _run(rounds())
    orders = np.array([i for _, i in log]).reshape(400, 4)
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    first = np.bincount(orders[:, 0], minlength=4)
    assert first.min() >= 60, first
    assert len({tuple(o) for o in orders}) > 10


def test_first_k_in_arrival_order_and_no_late_gradient_in_a_later_round():
    """Round 0 takes the two fastest (workers 1 and 3) and leaves 0 and 2 under way; their
    answers arrive during round 1, whose gradients must all be round 1's own."""
    pool, _ = _pool()

    async def rounds():
        got0 = await pool._round(np.zeros(2), np.array([0.15, 0.01, 0.2, 0.03]), 2, 0, 0.0)
        got1 = await pool._round(np.zeros(2), np.full(4, 0.35), 4, 1, 0.0)
        await pool._stop()
        return got0, got1
    got0, got1 = _run(rounds())
    assert [i for i, _, _ in got0] == [1, 3]
    assert [g[1] for _, g, _ in got0] == [0, 0]
    assert got0[0][2] < got0[1][2] < 0.15               # response times, in arrival order
    assert sorted(i for i, _, _ in got1) == [0, 1, 2, 3]
    assert all(g[1] == 1 for _, g, _ in got1)           # none of round 0's late answers
    assert pool.stale == {} and pool.alive == [True] * 4


def test_a_failing_call_drops_the_worker_and_caps_k():
    pool, log = _pool()
    pool.actors[2].fail = True

    async def rounds():
        got0 = await pool._round(np.zeros(2), np.full(4, 0.01), 4, 0, 0.0)
        n_calls = len(log)
        got1 = await pool._round(np.zeros(2), np.full(4, 0.01), 4, 1, 0.0)
        return got0, got1, log[n_calls:]
    got0, got1, calls1 = _run(rounds())
    assert sorted(i for i, _, _ in got0) == [0, 1, 3] and len(got1) == 3
    assert pool.alive == [True, True, False, True]
    assert [(d["worker"], d["iteration"]) for d in pool.lost] == [(2, 0)]
    assert sorted(i for _, i in calls1) == [0, 1, 3]   # the lost worker is not called again


def test_a_worker_reported_lost_while_its_call_hangs_is_dropped():
    """A call that never answers (its worker died before the connection broke) ends the
    wait as soon as the actor's future leaves 'finished' (the scheduler saw the worker
    go), checked every POLL_S."""
    pool, _ = _pool()
    pool.actors[0].hang = True

    async def rounds():
        def gone():
            pool.futures[0] = FakeFuture()
            pool.futures[0].status = "error"
        asyncio.get_running_loop().call_later(0.2, gone)
        got = await pool._round(np.zeros(2), np.full(4, 0.01), 4, 7, 0.0)
        for t in pool.stale:
            t.cancel()
        return got
    got = _run(rounds())
    assert sorted(i for i, _, _ in got) == [1, 2, 3]
    assert [(d["worker"], d["iteration"]) for d in pool.lost] == [(0, 7)]


def test_silence_is_an_error_not_a_hang():
    pool, _ = _pool(timeout=0.3)
    for a in pool.actors:
        a.hang = True

    async def one():
        try:
            await pool._round(np.zeros(2), np.zeros(4), 1, 3, 0.0)
        finally:
            for t in pool.stale:
                t.cancel()
    with pytest.raises(ValidationError, match="No gradient arrived within iteration_timeout_s"):
        _run(one())


def test_losing_every_worker_is_an_error():
    pool, _ = _pool()
    for a in pool.actors:
        a.fail = True
    with pytest.raises(ValidationError, match="Every worker was lost by iteration 5"):
        _run(pool._round(np.zeros(2), np.zeros(4), 2, 5, 0.0))
