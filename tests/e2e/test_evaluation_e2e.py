"""Pre- and post-session evaluations end to end, through the Microsoft 365 Agents Playground with the
real bot and its background scheduler (SCHEDULER_INTERVAL_SECONDS=1): a scheduled case is seeded
into the bot's store before its stack starts, with the session two days away, so the pre-session
evaluation is due at once. Patti (GP), who never talked to the bot, gets the form in a 1:1 chat the
bot creates and answers with Action.Execute (the card is replaced in place); Adele (facilitator)
sees her status card updated in place; the Teams meeting-end event, sent as a custom activity,
marks the session held and the post-session form goes out; Patti's answers give the impact (post
minus pre) on Adele's card. No child identifier leaves personal chat."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.handler import MEETING_END
from supervision.catalogue import Catalogue
from supervision.clock import uk_datetime, uk_local
from tests.e2e.playground import PlaygroundClient, Stack, assert_no_identifiers_shared, seeded_stack
from tests.test_scheduler_cases import JOIN_URL, scheduled_case

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")
CASE_ID = "case-e2e-evaluation"
IDENTIFIERS = ["Zebedee", "Evaltest-Example", "1 Synthetic Street", "2015-06-01"]
ATTENDEES = [("user-id-4", "Patti Fernandez", "pattif@example.com", "GP"),
             ("user-id-0", "Alex Wilber", "alexw@example.com", "School")]


def seeded_case() -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    starts = uk_datetime(uk_local(now).date() + timedelta(days=2), 10)
    case = scheduled_case(CASE_ID, starts_at=starts, scheduled_at=now - timedelta(minutes=1),
                          join_url=JOIN_URL.replace("ZXhhbXBsZQ", "ZTJlZXZhbA"), attendees=ATTENDEES)
    child = case.request.child
    child.forename, child.surname = "Zebedee", "Evaltest-Example"
    child.address = "1 Synthetic Street, Nowhere"
    child.date_of_birth = datetime(2015, 6, 1).date()
    return case


@pytest.fixture(scope="module")
def evaluation_stack() -> Iterator[Stack]:
    with seeded_stack("e2e-evaluation-", [seeded_case()], {"SCHEDULER_INTERVAL_SECONDS": "1"}) as stack:
        yield stack


@pytest.fixture
async def client(evaluation_stack: Stack) -> AsyncIterator[PlaygroundClient]:
    async with evaluation_stack.client() as playground:
        yield playground


async def test_evaluations_through_the_playground(client: PlaygroundClient, evaluation_stack: Stack,
                                                  validate_card: Callable[[dict[str, Any]], None]) -> None:
    reference = seeded_case().reference
    patti_chat = await client.personal_chat("patti")
    adele_chat = await client.personal_chat("adele")

    # --- the scheduler sends the pre-session form to Patti, in a chat it opened ---------------------
    pre = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == patti_chat
                                and T("evaluation.pre_title") in m.all_text, timeout=45)
    validate_card(pre.card)
    assert T("evaluation.pre_question") in pre.all_text and reference in pre.all_text
    assert "late" not in pre.all_text
    status = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == adele_chat
                                   and T("evaluation.status.title") in m.all_text, timeout=20)
    validate_card(status.card)
    assert "Pre-session: 0 of 2 answered" in status.all_text

    # --- Patti answers (Action.Execute): the card is replaced in place -------------------------------
    mark = client.mark()
    answered = await client.press(pre, T("evaluation.submit"), {"score": "2", "why": "Plans keep drifting"},
                                  user="patti")
    assert answered["type"] == "application/vnd.microsoft.card.adaptive"
    validate_card(answered["value"])
    assert T("evaluation.received_title") in str(answered["value"]) and "Plans keep drifting" in str(answered["value"])
    updated = await client.wait_for(lambda m: m.kind == "update" and m.conversation_id == adele_chat
                                    and "answered (2)" in m.all_text, after=mark, timeout=15)
    assert updated.id == status.id and "Pre-session: 1 of 2 answered" in updated.all_text

    # --- the meeting ends: Teams' event, sent as a custom activity to the meeting chat ------------------
    mark = client.mark()
    end = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    await client.custom_activity({"type": "event", "name": MEETING_END,
                                  "value": {"Id": "MCMxOTptZWV0aW5nX2UyZQ==", "Title": "Group supervision",
                                            "JoinUrl": seeded_case().session.join_url, "EndTime": end}},
                                 user="adele", conversation="group")
    ended = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == evaluation_stack.group_chat_id
                                  and "has ended" in m.all_text, after=mark, timeout=15)
    assert reference in ended.all_text
    post = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == patti_chat
                                 and T("evaluation.post_title") in m.all_text, after=mark, timeout=30)
    validate_card(post.card)

    # --- the pre-session form has closed; Patti answers the post-session one ------------------------------
    closed = await client.press(pre, T("evaluation.submit"), {"score": "3"}, user="patti")
    assert T("evaluation.closed_title") in str(closed["value"])
    mark = client.mark()
    answered = await client.press(post, T("evaluation.submit"), {"score": "4", "worked_well": "The mapping",
                                                                  "better": "More time", "learning": "Ask the school",
                                                                  "other": ""}, user="patti")
    validate_card(answered["value"])
    final = await client.wait_for(lambda m: m.kind == "update" and m.conversation_id == adele_chat
                                  and "+2" in m.all_text, after=mark, timeout=15)
    assert "Post-session: 1 of 2 answered" in final.all_text

    # --- nothing went twice, no identifier left personal chat, no error in the bot's log -----------------
    await asyncio.sleep(2.5)                                   # two more scheduler passes
    sent_to_patti = [m for m in client.messages(patti_chat) if m.kind == "send"]
    assert [m.all_text.count(T("evaluation.pre_title")) > 0 for m in sent_to_patti].count(True) == 1
    assert [m.all_text.count(T("evaluation.post_title")) > 0 for m in sent_to_patti].count(True) == 1
    assert_no_identifiers_shared(evaluation_stack, IDENTIFIERS)
    assert evaluation_stack.errors_logged() == []
