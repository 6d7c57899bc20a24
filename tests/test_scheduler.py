"""The durable scheduler: every job through its due time under a controlled clock (across Easter's
bank holidays and a weekend), catch-up with a late note, a restart between sending and recording,
the background task and its lease, and ``python -m bot run-due``."""
from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import PARTS, create_app
from bot.config import Config
from bot.features import core_feature
from dialogs import evaluation as evaluation_feature
from dialogs import meeting as meeting_feature
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.duework import LEDGER, SENDS, DueWork, DueWorkRunner, RunContext
from supervision.evaluation import KIND_POST, KIND_PRE, KIND_REMINDER, mark_session_held
from supervision.repository import CaseRepository
from supervision.roles import Actor
from tests.support.harness import BotHarness
from tests.test_scheduler_cases import (
    FAC_USER,
    PRE_DUE,
    REMINDER_DUE,
    SCHEDULED_AT,
    SESSION_START,
    ScriptedConnector,
    scheduled_case,
)

ROOT = Path(__file__).resolve().parent.parent
LATE = "This message is late"


# These features only, so that other features' messages do not mix with the ones counted here.
MINE = [core_feature, evaluation_feature.register, meeting_feature.register]


async def start_bot(config: Config, clock: FixedClock, store: MemoryStore, features: Any = MINE) -> BotHarness:
    app = create_app(config, clock=clock, store=store, start_background=False, features=features)
    h = await BotHarness(app=app, connector=ScriptedConnector()).start()
    await h.say(FAC_USER, "help")           # the facilitator has talked to the bot: a service URL is known
    h.connector.clear()
    return h


@pytest.fixture
async def bot(config: Config, clock: FixedClock, store: MemoryStore) -> AsyncIterator[BotHarness]:
    h = await start_bot(config, clock, store)
    yield h
    await h.stop()


@pytest.fixture
async def full_bot(config: Config, clock: FixedClock, store: MemoryStore) -> AsyncIterator[BotHarness]:
    h = await start_bot(config, clock, store, features=None)      # every feature's sources and handlers
    yield h
    await h.stop()


def facilitator() -> Actor:
    return Actor(user_id="user-id-2", name="Adele Vance", email="adelev@example.com")


async def test_every_job_runs_once_at_its_due_time_across_a_weekend_and_bank_holidays(full_bot, clock):
    bot = full_bot
    services = bot.parts.services
    runner: DueWorkRunner = services.due_work
    case = await services.cases.create(scheduled_case())
    seen: dict[str, list[tuple[datetime, bool]]] = {}
    expected: dict[str, DueWork] = {}
    for kind, original in list(runner.handlers.items()):
        async def record(work: DueWork, ctx: RunContext, original: Any = original, kind: str = kind) -> None:
            seen.setdefault(work.key, []).append((ctx.now, ctx.late))
            if kind.startswith("evaluation."):
                await original(work, ctx)
        runner.handlers[kind] = record

    start = SCHEDULED_AT
    clock.set(start)
    end = datetime(2026, 4, 10, 18, 0, tzinfo=UTC)
    while clock.now() <= end:
        current = await services.cases.require(case.id)
        for work in runner.work_for(current):
            expected.setdefault(work.key, work)
        await runner.run_due(clock.now())
        if clock.now() == SESSION_START + timedelta(hours=2):
            await mark_session_held(cases=services.cases, audit=services.audit, events=services.events,
                                    clock=clock, case_id=case.id, actor=facilitator(), source="facilitator")
        clock.advance(hours=1)

    kinds = {w.kind for w in expected.values()}
    assert {KIND_PRE, KIND_REMINDER, KIND_POST} <= kinds
    for key, work in expected.items():
        if work.due_at > end - timedelta(hours=1) or work.kind not in runner.handlers:
            continue
        if work.expires_at is not None and work.expires_at <= work.due_at:
            continue
        assert len(seen.get(key, [])) == 1, (key, seen.get(key))
        ran_at, late = seen[key][0]
        due = max(work.due_at, start)
        assert due <= ran_at < due + timedelta(hours=1), (key, work.due_at, ran_at)
        assert late == (ran_at - work.due_at > timedelta(hours=1))
    pre = seen[f"{case.id}:s1:evaluation.pre"][0][0]
    reminder = seen[f"{case.id}:s1:evaluation.pre.reminder"][0][0]
    # three working days before Wed 8 April 2026 skip Easter Monday, the weekend and Good Friday
    assert (pre, reminder) == (PRE_DUE, REMINDER_DUE)
    assert pre.weekday() == 2 and reminder.weekday() == 1
    connector: ScriptedConnector = bot.connector
    for user in ("user-id-4", "user-id-0"):
        titles = [c["body"][0]["text"] for c in connector.cards_to(user)]
        assert titles == ["Pre-session views", "Pre-session views", "Post-session views"], (user, titles)
        assert not any(LATE in str(c) for c in connector.cards_to(user))


async def test_after_downtime_it_catches_up_once_and_says_it_is_late(bot, clock):
    services = bot.parts.services
    case = await services.cases.create(scheduled_case())
    clock.set(datetime(2026, 4, 7, 13, 0, tzinfo=UTC))      # down since before 1 April
    report = await services.due_work.run_due()
    assert sorted(report.ran) == [f"{case.id}:s1:evaluation.pre", f"{case.id}:s1:evaluation.pre.reminder"]
    connector: ScriptedConnector = bot.connector
    for user in ("user-id-4", "user-id-0"):
        cards = connector.cards_to(user)
        assert len(cards) == 1, user               # the reminder is not sent on top of the late form
        assert LATE in str(cards[0]) and "Wed 01 Apr 2026, 09:00" in str(cards[0])
    again = await services.due_work.run_due()
    assert again.ran == [] and len(connector.cards_to("user-id-4")) == 1


async def test_a_pass_reads_only_the_cases_that_are_due(bot, clock):
    services = bot.parts.services
    for n in range(15):
        starts = SESSION_START + timedelta(days=7 * (n % 3))
        await services.cases.create(scheduled_case(f"case-idx-{n:03d}", starts_at=starts))
    clock.set(PRE_DUE + timedelta(minutes=5))
    report = await services.due_work.run_due()
    assert report.cases_read == 5 and len(report.ran) == 5
    quiet = await services.due_work.run_due()
    # each case run once re-indexes: only cases whose state changed meanwhile are read again
    assert quiet.ran == [] and quiet.cases_read <= 5
    settled = await services.due_work.run_due()
    assert settled.cases_read == 0


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the bot catches it)."""


class CrashingStore(MemoryStore):
    """Dies at the write ``crash_when`` picks: that write and every later one are lost, until
    ``restart()`` (a new process on the same data)."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_when: Any = None
        self.dead = False

    async def put(self, collection: str, key: str, data: dict[str, Any], **kw: Any) -> str:
        if self.dead or (self.crash_when is not None and self.crash_when(collection, key, data)):
            self.dead = True
            raise Crash()
        return await super().put(collection, key, data, **kw)

    def restart(self) -> None:
        self.crash_when, self.dead = None, False


async def _restart(config: Config, clock: FixedClock, store: MemoryStore, connector: ScriptedConnector) -> BotHarness:
    app = create_app(config, clock=clock, store=store, start_background=False, features=MINE)
    harness = BotHarness(app=app, connector=connector)
    harness.client = TestClient(TestServer(app))
    await harness.client.start_server()
    return harness


@pytest.mark.parametrize("window", ["between_send_and_record", "between_sends_and_done"])
async def test_a_restart_between_sending_and_recording_sends_nothing_twice(config, clock, window):
    store = CrashingStore()
    first = await start_bot(config, clock, store)
    connector: ScriptedConnector = first.connector
    case = await first.parts.services.cases.create(scheduled_case())
    clock.set(PRE_DUE)
    if window == "between_send_and_record":   # Patti's card went, the bot died before writing "sent"
        store.crash_when = lambda c, k, d: c == SENDS and \
            d.get("subs", {}).get("to:pattif@example.com", {}).get("state") == "sent"
    else:                                     # every card went and was recorded; died before "done"
        store.crash_when = lambda c, k, d: c == LEDGER and d.get("done") is True
    with pytest.raises(Crash):
        await first.parts.services.due_work.run_due()
    assert len(connector.cards_to("user-id-4")) == 1
    await first.client.close()                # the process is gone; the connector (Teams) stays
    store.restart()

    clock.advance(minutes=11)                 # its claim has timed out
    second = await _restart(config, clock, store, connector)
    try:
        report = await second.parts.services.due_work.run_due()
        assert f"{case.id}:s1:evaluation.pre" in report.ran
        assert len(connector.cards_to("user-id-4")) == 1       # never twice
        reported = [p.recipient for p in report.problems]
        # Alex: sent once, or (his send was in flight when the bot died) not sent again and reported
        assert len(connector.cards_to("user-id-0")) == 1 or (
            connector.cards_to("user-id-0") == [] and "Alex Wilber" in reported)
        facilitator_texts = connector.texts_to("user-id-2")
        if window == "between_send_and_record":
            # Patti's card went but was never recorded (Alex's too, if his answer came after the crash)
            assert "Patti Fernandez" in [p.recipient for p in report.problems]
            assert {p.status.value for p in report.problems} == {"unconfirmed"}
            assert any("could not confirm" in text for text in facilitator_texts)
        else:
            assert report.problems == [] and facilitator_texts == []
        assert (await second.parts.services.due_work.run_due()).ran == []
        assert len(connector.cards_to("user-id-4")) == 1
    finally:
        await second.client.close()
        await connector.stop()


async def test_the_background_scheduler_runs_due_work_only_while_it_holds_the_lease(make_config, clock, store):
    from storage.leader import LocalLeaderElection

    config = make_config(SCHEDULER_INTERVAL_SECONDS="1")
    connector = ScriptedConnector()
    await connector.start()
    app = create_app(config, clock=clock, store=store, start_background=True, features=MINE)
    services = app[PARTS].services
    leader = LocalLeaderElection()
    services.leader = leader
    other = await leader.try_acquire("scheduler", 60)           # another instance leads
    assert other is not None
    harness = BotHarness(app=app, connector=connector)
    harness.client = TestClient(TestServer(app))
    await harness.client.start_server()                        # cleanup_ctx starts the scheduler
    try:
        await harness.say(FAC_USER, "help")
        await services.cases.create(scheduled_case())
        clock.set(PRE_DUE)
        await asyncio.sleep(1.6)
        assert connector.cards_to("user-id-4") == []
        await other.release()                                  # the leader goes away
        scheduler = services.features["scheduler"]
        for _ in range(100):                                   # up to 10 s on a busy machine
            if connector.cards_to("user-id-4") and scheduler.passes:
                break
            await asyncio.sleep(0.1)
        assert len(connector.cards_to("user-id-4")) == 1
        assert scheduler.lease is not None and scheduler.passes >= 1
    finally:
        await harness.client.close()                           # stops the scheduler and releases the lease
        await connector.stop()
    assert await leader.try_acquire("scheduler", 60) is not None


async def test_interval_zero_turns_the_background_scheduler_off(config, clock, store):
    app = create_app(config, clock=clock, store=store, start_background=True)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert "scheduler" not in app[PARTS].services.features
    finally:
        await client.close()


async def test_run_due_command_runs_once_and_not_twice(tmp_path, clock):
    from storage.tinydb_store import TinyDBStore

    connector = ScriptedConnector()
    await connector.start()
    data = tmp_path / "data"
    store = TinyDBStore(data)
    try:
        await CaseRepository(store).create(scheduled_case())
        await store.put("conversation_refs", "user:user-id-2", {
            "channelId": "msteams", "serviceUrl": connector.url, "conversation": {"id": "personal-user-id-2"},
            "user": {"id": "user-id-2"}, "bot": {"id": "28:bot-id"}})
    finally:
        await store.close()
    env = {**os.environ, "STORAGE_BACKEND": "tinydb", "DATA_DIR": str(data), "SCHEDULER_INTERVAL_SECONDS": "0",
           "PYTHONPATH": str(ROOT)}

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run-due", *args, cwd=tmp_path,
                                                       env=env, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    def pre_cards(user: str) -> int:
        return sum(1 for c in connector.cards_to(user) if c["body"][0]["text"] == "Pre-session views")

    try:
        code, out = await run("--now", "2026-04-01T08:30:00Z")
        assert code == 0 and out.startswith("run-due: ran"), out
        assert pre_cards("user-id-4") == 1 and pre_cards("user-id-0") == 1
        # the next run (here in-process, on the same files) finds it done: nothing goes twice
        from bot.config import load_config
        from bot.scheduler import run_due_once

        config = load_config({k: env[k] for k in ("STORAGE_BACKEND", "DATA_DIR", "SCHEDULER_INTERVAL_SECONDS")},
                             env_file=None)
        report = await run_due_once(config, datetime(2026, 4, 1, 9, 30, tzinfo=UTC))
        assert report is not None and not any("evaluation" in key for key in report.ran)
        assert pre_cards("user-id-4") == 1 and pre_cards("user-id-0") == 1
    finally:
        await connector.stop()


def test_run_due_needs_an_iso_time_with_a_zone():
    from bot.scheduler import parse_now

    assert parse_now("2026-04-01T09:00:00+01:00") == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert parse_now("2026-04-01T08:00:00Z") == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert parse_now(None) is None
    with pytest.raises(ValueError):
        parse_now("2026-04-01T09:00:00")
    with pytest.raises(ValueError):
        parse_now("yesterday")


async def test_the_send_ledger_sends_each_sub_key_at_most_once_and_remembers_why(store):
    from supervision.duework import Delivery, PermanentDeliveryFailure, SendLedger

    work = DueWork("c1:s1:job", "job", "c1", PRE_DUE)
    problems: list[Any] = []

    async def report(problem: Any) -> None:
        problems.append(problem)

    sent: list[str] = []

    async def send() -> str:
        sent.append("x")
        await asyncio.sleep(0)
        return f"act-{len(sent)}"

    async def gone() -> str:
        raise PermanentDeliveryFailure("forbidden", 403)

    async def flaky() -> str:
        raise ConnectionError("down")

    first = SendLedger(store, work, PRE_DUE, report)
    both = await asyncio.gather(first.once("to:a", send), first.once("to:a", send))
    assert sorted(o.status for o in both) == [Delivery.SENT, Delivery.SKIPPED] and len(sent) == 1
    assert (await first.once("to:b", gone, recipient="B")).status == Delivery.UNDELIVERABLE
    with pytest.raises(ConnectionError):
        await first.once("to:c", flaky)
    stored = await store.get(SENDS, "c1:s1:job")                            # a crash mid-send to D
    await store.put(SENDS, "c1:s1:job", {**stored.data, "subs": {**stored.data["subs"],
                                                                 "to:d": {"state": "sending", "recipient": "D"}}})
    second = SendLedger(store, work, PRE_DUE + timedelta(minutes=11), report)
    outcomes = {sub: (await second.once(sub, send)).status for sub in ("to:a", "to:b", "to:c", "to:d")}
    assert outcomes == {"to:a": Delivery.ALREADY_SENT, "to:b": Delivery.SKIPPED, "to:c": Delivery.SENT,
                        "to:d": Delivery.UNCONFIRMED}
    assert len(sent) == 2                                                    # a once, c after its failure
    assert [(p.recipient, p.status, p.http_status) for p in problems] == [
        ("B", Delivery.UNDELIVERABLE, 403), ("D", Delivery.UNCONFIRMED, 0)]
