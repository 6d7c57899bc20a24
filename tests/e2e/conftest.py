"""End-to-end fixtures: one bot + Playground stack per test session (``stack``), a factory for
stacks with another configuration (``start_stack``), and a per-test Playground client
(``playground``). See tests/e2e/playground.py for what the Playground does and how to act as
each of its six users."""
from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest

from tests.e2e.identifiers import assert_stack_leaked_nothing
from tests.e2e.playground import PLAYGROUND_BIN, PlaygroundClient, Stack


def _require_playground() -> None:
    if not PLAYGROUND_BIN.exists():
        pytest.fail(f"{PLAYGROUND_BIN} missing: run `make test` (it runs `npm ci`) first")
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `make test` needs Node.js")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The shared default stack: Bolton profile, the six Playground users in their fixed roles."""
    _require_playground()
    running = Stack().start()
    try:
        yield running
    finally:
        running.stop()
    assert_stack_leaked_nothing(running)      # every case it holds, against every shared activity


@pytest.fixture(scope="session")
def start_stack() -> Iterator[Callable[[Mapping[str, str]], Stack]]:
    """Start another stack with extra environment, e.g. ``start_stack({"DEFAULT_PROFILE":
    "argyll_bute"})``; each is stopped at the end of the session (or call ``.stop()`` sooner)."""
    _require_playground()
    started: list[Stack] = []

    def start(extra_env: Mapping[str, str] | None = None) -> Stack:
        running = Stack(extra_env).start()
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
    for running in started:
        assert_stack_leaked_nothing(running)


@pytest.fixture
async def playground(stack: Stack) -> AsyncIterator[PlaygroundClient]:
    """A client of the default stack's Playground for one test."""
    async with stack.client() as client:
        yield client
