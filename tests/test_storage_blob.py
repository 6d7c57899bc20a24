"""Several instances on one Azure Blob store (Azurite): no lost update when two instances change one
case at once (repositories and card submits through two bot apps), and scheduler leadership by blob
lease: only the leader sends, nothing is sent twice, and another instance takes over when the
leader dies (its lease is not renewed and expires)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import create_app
from bot.config import Config
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from storage.blob_store import BlobStore
from supervision.clock import FixedClock
from supervision.duework import DueWork, DueWorkRunner, RunContext
from supervision.models import Case, CaseState
from supervision.repository import CaseRepository
from tests.support.azurite import Azurite
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

pytestmark = pytest.mark.azurite
START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def new_case(case_id: str) -> Case:
    return Case(id=case_id, reference=f"MAGS-BOL-260105-{case_id[-4:].upper()}", profile_id="bolton",
                state=CaseState.REQUESTED, created_at=START)


@pytest.fixture
async def two_stores(azurite: Azurite) -> AsyncIterator[tuple[BlobStore, BlobStore]]:
    container = azurite.container_name("multi")
    one, two = BlobStore(azurite.connection_string, container), BlobStore(azurite.connection_string, container)
    yield one, two
    await one.close()
    await two.close()


async def test_two_instances_updating_one_case_lose_nothing(two_stores: tuple[BlobStore, BlobStore]) -> None:
    one, two = CaseRepository(two_stores[0]), CaseRepository(two_stores[1])
    await one.create(new_case("case-multi-0001"))

    def note(text: str) -> Callable[[Case], None]:
        return lambda case: case.request.additional_information.append(text)

    await asyncio.gather(*(repo.update("case-multi-0001", note(f"{name} {i}"))
                           for i in range(8) for name, repo in (("one", one), ("two", two))))
    stored = await two.require("case-multi-0001")
    assert sorted(stored.request.additional_information) == sorted(f"{n} {i}" for i in range(8) for n in ("one", "two"))
    assert stored.version == 17


async def test_concurrent_card_submits_on_two_app_instances(make_config: Callable[..., Config],
                                                            azurite: Azurite) -> None:
    container = azurite.container_name("submits")
    config = make_config(STORAGE_BACKEND="blob", AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
                         BLOB_CONTAINER=container)

    def notes_feature(router: Router, services: Services) -> list[Any]:
        async def add_note(turn: Turn) -> None:
            assert turn.action is not None
            text = turn.action.input("note")
            await turn.services.cases.update(turn.action.id("case_id"),
                                             lambda case: case.request.additional_information.append(text))
            await turn.send_text(f"noted {text}")

        router.verb("test.note.add", add_note)
        return []

    apps = []
    for _ in range(2):
        app = create_app(config, store=BlobStore(azurite.connection_string, container),
                         features=[notes_feature], start_background=False)
        apps.append(await BotHarness(app=app, connector=FakeConnector()).start())
    try:
        await apps[0].parts.services.cases.create(new_case("case-submits-0001"))
        users = [User(f"user-submit-{i}", f"Practitioner {i}") for i in range(6)]
        submits = [apps[i % 2].submit(user, {"verb": "test.note.add", "case_id": "case-submits-0001",
                                             "note": f"note from {user.id}"})
                   for i, user in enumerate(users)]
        replies = await asyncio.gather(*submits)
        assert all(r and r[-1].text.startswith("noted ") for r in replies)
        stored = await apps[1].parts.services.cases.require("case-submits-0001")
        assert sorted(stored.request.additional_information) == sorted(f"note from {u.id}" for u in users)
        assert stored.version == 1 + len(users)
    finally:
        for harness in apps:
            await harness.stop()


async def test_one_lease_holder_at_a_time_across_instances(two_stores: tuple[BlobStore, BlobStore]) -> None:
    first, second = two_stores[0].leader_election(), two_stores[1].leader_election()
    lease = await first.try_acquire("scheduler", 15)
    assert lease is not None
    assert await second.try_acquire("scheduler", 15) is None
    assert await lease.renew()
    await lease.release()
    assert await lease.renew() is False          # a released lease stays released
    taken = await second.try_acquire("scheduler", 15)
    assert taken is not None
    stale = await first.try_acquire("scheduler", 15)
    assert stale is None
    await taken.release()


class Instance:
    """One bot instance's scheduler loop, as bot/scheduler.py runs it: hold the lease, run what is due."""

    def __init__(self, name: str, store: BlobStore, clock: FixedClock, sent: list[tuple[str, str, float]]) -> None:
        self.name, self.clock, self.sent = name, clock, sent
        self.runner = DueWorkRunner(CaseRepository(store), store, clock)
        self.runner.add_source(self.source)
        self.runner.on("test.reminder", self.send)
        self.election = store.leader_election()
        self.lease: Any = None
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def source(case: Case) -> list[DueWork]:
        return [DueWork(key=f"{case.id}:reminder", kind="test.reminder", case_id=case.id, due_at=case.created_at)]

    async def send(self, work: DueWork, ctx: RunContext) -> None:
        self.sent.append((self.name, work.key, time.monotonic()))

    async def loop(self) -> None:
        while True:
            if self.lease is None:
                self.lease = await self.election.try_acquire("scheduler", 15)
                if self.lease is not None:
                    await self.runner.rebuild_index()
            elif not await self.lease.renew():
                self.lease = None
            if self.lease is not None:
                await self.runner.run_due(self.clock.now())
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self.task = asyncio.create_task(self.loop())

    async def kill(self) -> None:
        """Die without a goodbye: the lease is neither renewed nor released."""
        assert self.task is not None
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_only_the_leader_sends_nothing_twice_and_another_takes_over(
        two_stores: tuple[BlobStore, BlobStore]) -> None:
    clock = FixedClock(START + timedelta(hours=1))
    sent: list[tuple[str, str, float]] = []
    a, b = Instance("a", two_stores[0], clock, sent), Instance("b", two_stores[1], clock, sent)
    for i in range(5):
        await a.runner.cases.create(new_case(f"case-lead-{i:04d}"))
    a.start()
    await wait_until(lambda: a.lease is not None)          # a is leader before b starts
    b.start()
    await wait_until(lambda: len(sent) >= 5)
    await asyncio.sleep(1.0)                                # time for a double send to show, if any
    assert sorted(key for _, key, _ in sent) == [f"case-lead-{i:04d}:reminder" for i in range(5)]
    assert {name for name, _, _ in sent} == {"a"}
    assert b.lease is None

    await a.kill()
    died = time.monotonic()
    for i in range(5, 8):               # new work after the leader died
        await b.runner.cases.create(new_case(f"case-lead-{i:04d}"))
    deadline = died + 40
    while len(sent) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await b.kill()
    keys = [key for _, key, _ in sent]
    assert sorted(keys) == [f"case-lead-{i:04d}:reminder" for i in range(8)]       # each once
    late = [(name, at) for name, key, at in sent if key >= "case-lead-0005"]
    assert {name for name, _ in late} == {"b"}
    assert min(at for _, at in late) - died >= 12        # not before a's lease (15 s) ran out
    if b.lease is not None:
        await b.lease.release()
