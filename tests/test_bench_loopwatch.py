"""The benchmark's stall watch (bench/support/loopwatch.py) counts a callback that holds the event loop
over 20 ms - by computing or by blocking in a system call - and nothing shorter."""
from __future__ import annotations

import asyncio
import asyncio.events
import gc
import time

import pytest

from bench.support.loopwatch import STALL, LoopWatch


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> LoopWatch:
    monkeypatch.setattr(asyncio.events.Handle, "_run", asyncio.events.Handle._run)   # put back afterwards
    watch = LoopWatch()
    yield watch
    if watch._gc in gc.callbacks:
        gc.callbacks.remove(watch._gc)


def busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def test_a_computing_and_a_blocking_callback_are_stalls_and_short_ones_are_not(watch: LoopWatch) -> None:
    watch.install()
    loop = asyncio.get_running_loop()
    for _ in range(200):                              # short callbacks: no stall
        loop.call_soon(busy, 0.0005)
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert watch.stalls == 0 and 0.0005 <= watch.longest < STALL
    loop.call_soon(busy, STALL * 1.5)                  # computes for 30 ms
    await asyncio.sleep(0.05)
    loop.call_soon(time.sleep, STALL * 1.5)            # blocks in a system call for 30 ms
    await asyncio.sleep(0.05)
    assert watch.stalls == 2, watch.where
    assert watch.longest >= STALL * 1.5
    assert all("ms CPU" in where for where in watch.where)
    watch.reset()
    loop.call_soon(busy, STALL * 1.2)                  # after a reset, counted afresh
    await asyncio.sleep(0.05)
    assert watch.stalls == 1


async def test_collections_are_counted_and_timed_by_generation(watch: LoopWatch) -> None:
    watch.install()
    for _ in range(3):
        gc.collect(0)
    gc.collect()                                        # a full collection: generation 2
    assert watch.gc_runs[0] >= 3 and watch.gc_runs[2] >= 1
    assert watch.gc_seconds[2] > 0 and watch.gc_seconds[2] >= watch.gc_longest[2]
    watch.reset()
    assert watch.gc_runs == [0, 0, 0] and watch.gc_seconds == [0.0, 0.0, 0.0]
