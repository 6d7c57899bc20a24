"""The end-to-end suite's identifier guard (tests/e2e/identifiers.py), run here without a stack:
it must find a child's name, date of birth or address in a shared activity or the bot's log, read
every case from a real TinyDB store, and pass when only personal chats carry them."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storage.tinydb_store import TinyDBStore
from supervision.clock import FixedClock
from supervision.repository import CaseRepository
from tests.e2e.identifiers import assert_stack_leaked_nothing, case_identifiers
from tests.e2e.playground import BotMessage
from tests.test_schedule_domain import make_assigned_case

PERSONAL = "personal-chat"


@dataclass
class Recorder:
    messages: list[BotMessage] = field(default_factory=list)

    def snapshot(self) -> list[BotMessage]:
        return list(self.messages)


@dataclass
class FakeStack:
    data_dir: Path
    recorder: Recorder = field(default_factory=Recorder)
    log: str = ""

    def shared_conversation(self, conversation_id: str) -> bool:
        return conversation_id != PERSONAL

    def read_bot_log(self, since: int = 0) -> str:
        return self.log


def post(seq: int, conversation: str, text: str) -> BotMessage:
    activity: dict[str, Any] = {"type": "message", "text": text}
    return BotMessage(seq=seq, kind="send", conversation_id=conversation, activity=activity)


@pytest.fixture
def stack(tmp_path: Path, clock: FixedClock) -> FakeStack:
    async def seed() -> None:
        store = TinyDBStore(tmp_path / "data")
        try:
            await CaseRepository(store).create(make_assigned_case(clock))
        finally:
            await store.close()

    asyncio.run(seed())
    return FakeStack(tmp_path / "data")


def test_identifiers_come_from_every_case_in_the_store(stack: FakeStack) -> None:
    found = case_identifiers(stack.data_dir)
    assert "Zebedee" in found and "1 Synthetic Street, Testtown" in found and "01/04/2017" in found
    assert "Example" not in found            # shared with the synthetic email domain
    assert case_identifiers(stack.data_dir.parent / "nothing-here") == []


def test_personal_chats_may_carry_them_shared_places_and_the_log_may_not(stack: FakeStack) -> None:
    stack.recorder.messages = [post(1, PERSONAL, "Zebedee Example, born 01/04/2017"),
                               post(2, "team;messageid=1", "Case MAGS-BOL-1: agreed")]
    assert assert_stack_leaked_nothing(stack) == 1
    stack.recorder.messages.append(post(3, "team;messageid=2", "about zebedee"))
    with pytest.raises(AssertionError, match="Zebedee"):
        assert_stack_leaked_nothing(stack)
    stack.recorder.messages.pop()
    stack.log = "INFO sent a card to 1 Synthetic Street"
    with pytest.raises(AssertionError, match="bot's log"):
        assert_stack_leaked_nothing(stack)
