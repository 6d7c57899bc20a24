"""Scheduling a session and confirming attendance end to end, through the Microsoft 365 Agents
Playground with the real bot (offline calendar, the embedded default): a case with facilitators
assigned is seeded into the bot's store before its stack starts; Adele (lead facilitator) types
``schedule``, gets the proposed times and schedules with Action.Execute; Patti (GP), who never
talked to the bot, gets the invitation in a 1:1 chat the bot creates, and confirms with delegated
authority; Adele's attendance card is updated in place; the .ics link serves UK local times; no
child identifier leaves personal chat."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import icalendar
import pytest

from supervision.catalogue import Catalogue
from supervision.clock import FixedClock, format_uk_datetime
from tests.e2e.playground import PlaygroundClient, Stack, assert_no_identifiers_shared, card_actions, seeded_stack
from tests.test_schedule_domain import make_assigned_case

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")
CASE_ID = "case-e2e-schedule"
IDENTIFIERS = ["Wilhelmina", "Testcase-Scheduling", "3 Imaginary Mews", "2016-02-29"]


def seeded_case() -> Any:
    case = make_assigned_case(FixedClock(datetime.now(UTC).replace(microsecond=0)), case_id=CASE_ID)
    child = case.request.child
    child.forename, child.surname = "Wilhelmina", "Testcase-Scheduling"
    child.address = "3 Imaginary Mews, Nowhereville"
    child.date_of_birth = datetime(2016, 2, 29).date()
    return case


@pytest.fixture(scope="module")
def schedule_stack() -> Iterator[Stack]:
    with seeded_stack("e2e-schedule-", [seeded_case()]) as stack:
        yield stack


@pytest.fixture
async def client(schedule_stack: Stack) -> AsyncIterator[PlaygroundClient]:
    async with schedule_stack.client() as playground:
        yield playground


async def test_schedule_and_confirm_attendance_in_teams(client: PlaygroundClient, schedule_stack: Stack,
                                                        validate_card: Callable[[dict[str, Any]], None]) -> None:
    # --- Adele, the lead facilitator, asks for the scheduling card ------------------------------
    card = await client.ask("schedule", user="adele")
    assert card.card is not None and T("schedule.title") in card.all_text
    validate_card(card.card)
    reference = seeded_case().reference
    assert reference in card.all_text
    adele_chat = card.conversation_id
    slot = next(i for i in card.card["body"] if i.get("id") == "slot")
    first = slot["value"]
    assert first != "typed" and len(slot["choices"]) >= 2           # proposals, and "another date"

    # --- she schedules the proposed time (Action.Execute: the card is replaced in place) ---------
    mark = client.mark()
    answer = await client.press(card, T("schedule.button_schedule"), user="adele")
    assert answer["type"] == "application/vnd.microsoft.card.adaptive"
    validate_card(answer["value"])
    assert T("schedule.scheduled_title") in str(answer["value"])
    starts_at = datetime.fromisoformat(first)

    # --- Patti gets her invitation in a personal chat the bot opened ------------------------------
    invitation = await client.wait_for(lambda m: m.card is not None and T("schedule.invite.title",
                                       process="Multi-Agency Supervision and Mapping") in m.all_text,
                                       after=mark, timeout=15)
    validate_card(invitation.card)
    assert invitation.conversation_id == await client.personal_chat("patti")
    assert "Wilhelmina Testcase-Scheduling" in invitation.all_text          # personal chat, case member
    assert T("schedule.invite.what_is_not") in invitation.all_text
    titles = [a.get("title") for a in card_actions(invitation.card)]
    for title in ("schedule.invite.button_confirm", "schedule.invite.button_authority",
                  "schedule.invite.button_decline", "schedule.ics_link"):
        assert T(title) in titles

    # the facilitators' attendance card, before anyone answers
    attendance = await client.wait_for_card(adele_chat, T("schedule.attendance.title", reference=reference),
                                            after=mark)
    validate_card(attendance.card)
    assert T("schedule.attendance.no_answer") in attendance.all_text

    # --- Patti confirms with delegated authority ---------------------------------------------------
    mark = client.mark()
    answered = await client.press(invitation, T("schedule.invite.button_authority"), user="patti")
    assert T("schedule.invite.answered_authority") in str(answered["value"])
    validate_card(answered["value"])
    updated = await client.wait_for(lambda m: m.kind == "update" and m.conversation_id == adele_chat
                                    and T("schedule.attendance.authority") in m.all_text, after=mark)
    assert updated.activity.get("id") == attendance.id or updated.id == attendance.id

    # --- the .ics link serves the session in UK local time -------------------------------------------
    ics_url = next(a["url"] for a in card_actions(invitation.card) if a.get("title") == T("schedule.ics_link"))
    async with aiohttp.ClientSession() as http, http.get(ics_url) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/calendar")
        event = icalendar.Calendar.from_ical(await response.read()).walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event.decoded("DTSTART").astimezone(UTC) == starts_at

    # --- the bot kept the date: "schedule" now offers to move or cancel it --------------------------
    again = await client.ask("schedule", user="adele")
    assert again.card is not None and T("schedule.manage_title") in again.all_text
    validate_card(again.card)
    local = format_uk_datetime(starts_at)
    assert local in again.all_text
    assert "Wilhelmina" not in updated.all_text                               # the attendance card names no child
    assert_no_identifiers_shared(schedule_stack, IDENTIFIERS)
