"""Small asyncio helpers for the use cases (standard library only)."""
from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


async def gather_eagerly(*coros: Coroutine[Any, Any, T]) -> list[T]:
    """``asyncio.gather`` for coroutines, each first run at once until it waits (as Python 3.12's eager
    tasks run): one that finishes without waiting - a store answering from memory - costs no task and
    no turn of the event loop, which under load is several milliseconds of every other turn's work.
    The ones that wait are then awaited together, as ``gather`` would. Results come in the order of
    the coroutines; the first exception (in that order) is raised once every coroutine has finished."""
    results: list[Any] = [None] * len(coros)
    errors: list[tuple[int, BaseException]] = []
    waiting: list[tuple[int, Coroutine[Any, Any, T]]] = []
    for index, coro in enumerate(coros):
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            results[index] = stop.value
            continue
        except Exception as error:
            errors.append((index, error))
            continue
        waiting.append((index, _finish(coro, yielded)))
    if waiting:
        outcomes = await asyncio.gather(*(rest for _, rest in waiting), return_exceptions=True)
        for (index, _), outcome in zip(waiting, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                errors.append((index, outcome))
            else:
                results[index] = outcome
    if errors:
        raise min(errors, key=lambda pair: pair[0])[1]
    return results


async def _finish(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    return await _resume(coro, yielded)  # type: ignore[no-any-return]


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], yielded: Any) -> Generator[Any, Any, T]:
    """Go on driving a coroutine that has already yielded ``yielded`` (the future it waits for), from
    inside a task: the task waits for what is yielded and sends or throws back what comes of it,
    exactly as ``await`` delegation would."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as error:       # the awaited future's exception, or a cancellation
            try:
                yielded = coro.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
