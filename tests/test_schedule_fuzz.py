"""Property tests: random payloads thrown at every card verb the scheduling feature registers, as
Action.Execute and as Action.Submit, by the lead facilitator, an invitee and a stranger. The bot must
never answer 5xx, never fall into its turn-error handler, and always say something."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from dialogs.schedule import ScheduleFlow, verbs
from storage.memory import MemoryStore
from supervision.catalogue import Catalogue
from supervision.ports import DomainEvent
from supervision.repository import CaseRepository
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User
from tests.test_schedule_dialogs import ADELE, PATTI, execute_data, first_slot
from tests.test_schedule_domain import make_assigned_case

T = Catalogue("en")
TURN_ERROR = T("error.turn", correlation_id="").split("{")[0][:40]
STRANGER = User("user-id-9", "Quentin Stranger", "aad-q", "quentin@example.com")
INPUT_KEYS = ["slot", "session_date", "session_time", "late_reason", "join_url", "reason", "decline_reason",
              "colleague", "msteams", "verb "]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=60),
                    st.sampled_from(["", "typed", "2026-01-12T10:00:00+00:00", "2026-02-30", "12/01/2026", "25:61",
                                     "10:00", "2026-01-14", "https://teams.microsoft.com/l/meetup-join/x",
                                     "javascript:alert(1)", "x" * 5000]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))
REAL: dict[str, str] = {}


def registered_verbs() -> list[str]:
    return sorted(verbs(ScheduleFlow.__new__(ScheduleFlow)))


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {"verb": draw(st.sampled_from(registered_verbs()))}
    choice = draw(st.sampled_from(["absent", "assigned", "scheduled", "random", "odd"]))
    if choice in ("assigned", "scheduled"):
        payload["case_id"] = REAL[choice]
    elif choice == "random":
        payload["case_id"] = draw(st.text(max_size=30))
    elif choice == "odd":
        payload["case_id"] = draw(VALUES)
    for key in draw(st.lists(st.sampled_from(INPUT_KEYS) | st.text(max_size=12), max_size=6)):
        payload[key] = draw(VALUES)
    return payload


@pytest.fixture
async def prepared(config, clock) -> AsyncIterator[BotHarness]:
    """One bot (help and scheduling only) with a case waiting to be scheduled and one scheduled."""
    from bot.features import core_feature
    from dialogs.schedule import register

    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False,
                     features=[core_feature, register])
    harness = await BotHarness(app=app, connector=FakeConnector()).start()
    repository = CaseRepository(harness.parts.services.store)
    assigned = await repository.create(make_assigned_case(clock))
    scheduled = await repository.create(make_assigned_case(clock))
    await harness.say(ADELE, "help")
    await harness.parts.services.events.publish(DomainEvent("facilitators.assigned", scheduled.id, clock.now(), {}))
    status, body = await harness.execute(ADELE, "schedule.open", execute_data("schedule.open", scheduled.id))
    assert status == 200
    status, _ = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", scheduled.id, slot=first_slot(body["value"])))
    assert status == 200
    REAL.update({"assigned": assigned.id, "scheduled": scheduled.id})
    yield harness
    await harness.stop()


async def test_every_registered_schedule_verb_is_in_the_fuzzed_set(prepared: BotHarness) -> None:
    mine = {v for v in prepared.parts.router.verbs if v.startswith("schedule.")}
    assert mine == set(registered_verbs())


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(payload=payloads(), user=st.sampled_from([ADELE, PATTI, STRANGER]))
async def test_random_invokes_answer_200_with_a_message_or_card(prepared: BotHarness, payload: dict[str, Any],
                                                                 user: User) -> None:
    verb = payload.pop("verb")
    status, body = await prepared.execute(user, verb, payload)
    assert status == 200, body
    assert isinstance(body, dict) and body.get("statusCode") == 200, body
    assert body["type"] in ("application/vnd.microsoft.activity.message", "application/vnd.microsoft.card.adaptive")
    assert TURN_ERROR not in str(body.get("value"))


@FUZZ
@given(payload=payloads(), user=st.sampled_from([ADELE, PATTI, STRANGER]), in_channel=st.booleans())
async def test_random_submits_never_crash(prepared: BotHarness, payload: dict[str, Any], user: User,
                                          in_channel: bool) -> None:
    extra = {"conversation_type": "channel", "conversation_id": "19:coordinators@thread.tacv2"} if in_channel else {}
    replies = await prepared.submit(user, payload, **extra)       # asserts HTTP 200
    assert replies, "the bot said nothing"
    for sent in replies:
        assert sent.text or sent.cards, sent.body
        assert TURN_ERROR not in sent.text, sent.text
        if in_channel:      # nothing of the case's child or family ever shows in a channel
            assert "Zebedee" not in str(sent.body), payload
