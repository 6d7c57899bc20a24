"""supervision/aio.py gather_eagerly: what finishes without waiting costs no task; the rest is gathered."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from supervision.aio import gather_eagerly


async def at_once(value: Any) -> Any:
    return value


async def after(seconds: float, value: Any, seen: list[Any] | None = None) -> Any:
    await asyncio.sleep(seconds)
    await asyncio.sleep(0)                      # a bare yield too
    if seen is not None:
        seen.append(value)
    return value


async def fails_at_once(message: str) -> Any:
    raise ValueError(message)


async def fails_later(message: str) -> Any:
    await asyncio.sleep(0.01)
    raise KeyError(message)


def count_tasks(loop: asyncio.AbstractEventLoop) -> list[int]:
    made = [0]

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    return made


async def test_coroutines_that_never_wait_cost_no_task_and_no_turn_of_the_loop() -> None:
    loop = asyncio.get_running_loop()
    made = count_tasks(loop)
    turns = [0]

    def tick() -> None:
        turns[0] += 1

    loop.call_soon(tick)
    assert await gather_eagerly(*(at_once(i) for i in range(20))) == list(range(20))
    assert made[0] == 0 and turns[0] == 0                 # the loop never ran in between
    assert await asyncio.gather(*(at_once(i) for i in range(3))) == [0, 1, 2]
    assert made[0] == 3                                   # what asyncio.gather costs instead
    loop.set_task_factory(None)


async def test_mixed_coroutines_come_back_in_order_and_the_waiting_ones_run_together() -> None:
    seen: list[Any] = []
    started = asyncio.get_running_loop().time()
    result = await gather_eagerly(after(0.05, "a", seen), at_once("b"), after(0.05, "c", seen), at_once("d"))
    assert result == ["a", "b", "c", "d"]
    assert sorted(seen) == ["a", "c"]
    assert asyncio.get_running_loop().time() - started < 0.09       # together, not one after the other


async def test_the_first_error_in_order_is_raised_after_every_coroutine_has_finished() -> None:
    seen: list[Any] = []
    with pytest.raises(KeyError, match="second"):
        await gather_eagerly(at_once(1), fails_later("second"), after(0.03, "x", seen), fails_at_once("third"))
    assert seen == ["x"]
    with pytest.raises(ValueError, match="first"):
        await gather_eagerly(fails_at_once("first"), fails_later("later"))


async def test_a_cancellation_reaches_the_coroutines_that_wait() -> None:
    cancelled: list[str] = []

    async def waits_long() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("inner")
            raise

    task = asyncio.ensure_future(gather_eagerly(waits_long(), at_once(1)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == ["inner"]


async def test_an_exception_thrown_into_a_waiting_coroutine_can_be_handled_there() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()

    async def handles() -> str:
        try:
            await future
        except RuntimeError as error:
            return f"handled {error}"
        return "not reached"

    pending = asyncio.ensure_future(gather_eagerly(handles()))
    await asyncio.sleep(0)
    future.set_exception(RuntimeError("boom"))
    assert await pending == ["handled boom"]


async def test_a_case_update_whose_indexes_are_current_costs_no_task() -> None:
    """CaseRepository._index uses gather_eagerly: with every member already indexed and the store
    answering at once (memory here; TinyDB's cache on the bot), an update starts no task."""
    from datetime import UTC, datetime

    from bench.support.turns_bot import make_case
    from storage.memory import MemoryStore
    from supervision.repository import USER_INDEX, CaseRepository

    store = MemoryStore()
    cases = CaseRepository(store)
    case = make_case(1, datetime(2026, 1, 5, 9, tzinfo=UTC))
    await cases.create(case)
    assert (await store.get(USER_INDEX, "bench.user1@example.com")).data == {"cases": [case.id]}
    made = count_tasks(asyncio.get_running_loop())
    try:
        updated, _ = await cases.update(case.id, lambda c: None)
    finally:
        asyncio.get_running_loop().set_task_factory(None)
    assert updated.version == 2 and made[0] == 0
