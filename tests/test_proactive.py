"""Proactive sending: pacing to Teams' per-conversation and per-bot limits, 429/412/5xx retried with
Retry-After and backoff, 403/404 permanent (reported to the facilitator, never retried), 1:1
conversations created with the tenant id for users who have not talked to the bot."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botbuilder.core import MessageFactory

from bot.app import create_app
from bot.config import Config
from bot.features import core_feature
from bot.proactive import DeliveryFailed, Pacer, RateLimits, Undeliverable
from dialogs import evaluation as evaluation_feature
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.duework import SENDS
from tests.support.harness import TENANT, BotHarness
from tests.test_scheduler_cases import FAC_USER, PRE_DUE, ScriptedConnector, scheduled_case

FAST = RateLimits(base_backoff=0.01, max_backoff=0.05)


def violations(times: list[float], limits: tuple[tuple[int, float], ...], slack: float = 0.002) -> list[str]:
    """Windows of ``seconds`` holding more than ``count`` requests."""
    found = []
    times = sorted(times)
    for count, seconds in limits:
        for i in range(len(times) - count):
            if times[i + count] - times[i] < seconds - slack:
                found.append(f"{count + 1} requests within {times[i + count] - times[i]:.3f}s (limit {count}/{seconds}s)")
    return found


async def test_the_pacer_keeps_each_conversation_and_the_bot_within_their_windows():
    limits = RateLimits(per_conversation=((3, 0.1), (4, 0.3)), per_bot=((10, 0.1),), margin=0.005)
    pacer = Pacer(limits)
    sent: dict[str, list[float]] = {}

    async def send(conversation: str, n: int) -> str:
        async def request() -> str:
            sent.setdefault(conversation, []).append(time.monotonic())
            return f"{conversation}-{n}"
        return await pacer.run(conversation, request)

    start = time.monotonic()
    jobs = [send(f"c{c}", n) for n in range(8) for c in range(5)]
    results = await asyncio.gather(*jobs)
    elapsed = time.monotonic() - start
    assert sorted(results) == sorted(f"c{c}-{n}" for n in range(8) for c in range(5))
    for conversation, times in sent.items():
        assert violations(times, limits.per_conversation) == [], conversation
    assert violations([t for ts in sent.values() for t in ts], limits.per_bot) == []
    # 8 per conversation under 4 per 0.3 s needs at least 0.3 s; 40 under 10 per 0.1 s at least 0.3 s
    assert 0.3 <= elapsed < 1.5


async def test_the_pacer_keeps_the_order_of_messages_in_a_conversation():
    pacer = Pacer(RateLimits(per_conversation=((2, 0.05),), per_bot=((100, 1.0),)))
    order: list[int] = []

    async def send(n: int) -> None:
        async def request() -> None:
            order.append(n)
        await pacer.run("one", request)

    await asyncio.gather(*(send(n) for n in range(7)))
    assert order == list(range(7))


@pytest.fixture
async def bot(config: Config, clock: FixedClock, store: MemoryStore) -> AsyncIterator[BotHarness]:
    app = create_app(config, clock=clock, store=store, start_background=False,
                     features=[core_feature, evaluation_feature.register])
    h = await BotHarness(app=app, connector=ScriptedConnector()).start()
    h.parts.services.proactive.pacer = Pacer(FAST)
    await h.say(FAC_USER, "help")
    h.connector.clear()
    h.connector.attempts.clear()
    yield h
    await h.stop()


def _proactive(bot: BotHarness) -> Any:
    return bot.parts.services.proactive


async def test_a_429_is_retried_after_the_retry_after_the_server_gave(bot):
    connector: ScriptedConnector = bot.connector
    connector.script["post:personal-user-id-2"] = [(429, 0.3)]
    start = time.monotonic()
    activity_id = await _proactive(bot).send_to_user("user-id-2", MessageFactory.text("Synthetic reminder"))
    assert time.monotonic() - start >= 0.3
    assert activity_id and connector.texts_to("user-id-2") == ["Synthetic reminder"]
    assert [a[2] for a in connector.attempts] == [429, 200]
    assert _proactive(bot).pacer.stats.throttled == 1


async def test_412_and_5xx_are_retried_with_backoff_and_only_by_us(bot):
    connector: ScriptedConnector = bot.connector
    connector.script["post:personal-user-id-2"] = [(412, None), (503, None), (502, None)]
    await _proactive(bot).send_to_user("user-id-2", MessageFactory.text("Synthetic reminder"))
    # exactly four requests: the connector client's own retries are off (they ignore Retry-After)
    assert [a[2] for a in connector.attempts] == [412, 503, 502, 200]
    assert connector.texts_to("user-id-2") == ["Synthetic reminder"]


async def test_a_failure_that_goes_on_gives_up_after_the_retry_budget(bot):
    connector: ScriptedConnector = bot.connector
    connector.script["post:personal-user-id-2"] = [(503, None)] * 10
    with pytest.raises(DeliveryFailed) as raised:
        await _proactive(bot).send_to_user("user-id-2", MessageFactory.text("Synthetic reminder"))
    assert raised.value.attempts == FAST.max_attempts and raised.value.status == 503
    assert len(connector.attempts) == FAST.max_attempts and connector.texts_to("user-id-2") == []


async def test_403_and_404_are_permanent_and_not_retried(bot):
    connector: ScriptedConnector = bot.connector
    connector.script["create:user-id-9"] = [(403, None)]
    with pytest.raises(Undeliverable) as raised:
        await _proactive(bot).send_to_user("user-id-9", MessageFactory.text("Synthetic"))
    assert raised.value.status == 403 and len(connector.attempts) == 1
    connector.script["post:personal-user-id-2"] = [(404, None)]
    with pytest.raises(Undeliverable) as raised:
        await _proactive(bot).send_to_user("user-id-2", MessageFactory.text("Synthetic"))
    assert raised.value.status == 404 and len(connector.attempts) == 2


async def test_a_user_who_never_talked_to_the_bot_gets_a_new_1_1_chat_with_the_tenant(bot):
    connector: ScriptedConnector = bot.connector
    proactive = _proactive(bot)
    first = await proactive.send_to_user("user-id-4", MessageFactory.text("One"))
    second = await proactive.send_to_user("user-id-4", MessageFactory.text("Two"))
    assert first and second and first != second
    assert len(connector.created) == 1                      # the reference was kept and reused
    created = connector.created[0]
    assert created["members"] == [{"id": "user-id-4"}] and created["isGroup"] is False
    assert created["tenantID"] == TENANT and created["channelData"]["tenant"]["id"] == TENANT
    assert connector.texts_to("user-id-4") == ["One", "Two"]


async def test_an_undeliverable_evaluation_is_reported_to_the_facilitator_once_and_not_retried(bot, clock):
    connector: ScriptedConnector = bot.connector
    services = bot.parts.services
    case = await services.cases.create(scheduled_case())
    connector.script["create:user-id-4"] = [(403, None)]
    clock.set(PRE_DUE)
    report = await services.due_work.run_due()
    assert f"{case.id}:s1:evaluation.pre" in report.ran
    assert [(p.recipient, p.http_status) for p in report.problems] == [("Patti Fernandez", 403)]
    told = connector.texts_to("user-id-2")
    assert len(told) == 1 and "not installed" in told[0] and case.reference in told[0]
    assert len(connector.cards_to("user-id-0")) == 1        # the others still got theirs
    stored = await services.store.get(SENDS, f"{case.id}:s1:evaluation.pre")
    assert stored is not None and stored.data["subs"]["to:pattif@example.com"]["state"] == "undeliverable"
    attempts = len(connector.attempts)
    clock.advance(days=1)
    await services.due_work.run_due()
    await services.due_work.rebuild_index()
    await services.due_work.run_due()
    assert len(connector.attempts) == attempts and len(connector.texts_to("user-id-2")) == 1
    audit = await services.audit.entries(case.id)
    assert any(e["action"] == "delivery.problem" for e in audit)


async def test_a_transient_failure_fails_the_work_and_a_later_pass_finishes_it_without_repeats(bot, clock):
    connector: ScriptedConnector = bot.connector
    services = bot.parts.services
    case = await services.cases.create(scheduled_case())
    connector.script["create:user-id-0"] = [(503, None)] * FAST.max_attempts
    clock.set(PRE_DUE)
    report = await services.due_work.run_due()
    assert report.failed == [f"{case.id}:s1:evaluation.pre"]
    assert len(connector.cards_to("user-id-4")) == 1 and connector.cards_to("user-id-0") == []
    clock.advance(minutes=1)
    assert (await services.due_work.run_due()).ran == []      # backing off
    clock.advance(minutes=5)
    report = await services.due_work.run_due()
    assert report.ran == [f"{case.id}:s1:evaluation.pre"]
    assert len(connector.cards_to("user-id-4")) == 1 and len(connector.cards_to("user-id-0")) == 1
