"""From record to summary to an action marked done, through the Microsoft 365 Agents Playground.

A held case (Bolton profile) is seeded into the bot's store before its stack starts. Adele
(facilitator) types ``record session`` in the team's General channel: the form comes to her
personal chat; a first publish with a bad due date is refused naming the field and keeping what was
typed; the corrected record is published. The summary card lands in that channel thread; Patti (lead
professional, GP) gets the full record and her action card in personal chat, marks the action done
(Action.Execute, card replaced in place) and Adele's actions card is updated in place. No message in
the group chat or channel, and nothing in the bot's log, carries the child's or family's identifiers.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from supervision.catalogue import Catalogue
from supervision.clock import uk_local
from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    FamilyMember,
    Invitee,
    InviteStatus,
    Person,
    RequestDetails,
    SessionPlan,
    Transition,
    find_identifiers,
    identifiers_of,
)
from tests.e2e.playground import (
    GENERAL_CHANNEL,
    PlaygroundClient,
    Stack,
    assert_no_identifiers_shared,
    card_actions,
    seeded_stack,
)

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")
CASE_ID = "case-e2e-record"
REFERENCE = "MAGS-BOL-E2E-REC1"
# distinctive synthetic identifiers, so the substring check over the whole session cannot misfire
CHILD = ChildDetails(forename="Ottoline", surname="Fauxname", also_known_as="Ottie", date_of_birth=date(2016, 7, 19),
                     address="7 Pretend Parade, Mocktown, MK0 0ZZ")
MOTHER = FamilyMember(relationship="mother", name="Perpetua Fauxname", date_of_birth=date(1988, 11, 23),
                      address="7 Pretend Parade, Mocktown, MK0 0ZZ")
SHARED_CHECK = ["Ottoline", "Fauxname", "Ottie", "Perpetua", "2016-07-19", "19/07/2016", "19 July 2016",
                "1988-11-23", "7 Pretend Parade", "Mocktown"]


def seeded_case() -> Case:
    held = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    request = RequestDetails(
        requester=Person(name="Alex Wilber", email="alexw@example.com", user_id="user-id-0", organisation="School"),
        child=CHILD, family=[MOTHER], level_of_need="Targeted Help",
        lead_professional=Person(name="Patti Fernandez", email="pattif@example.com", user_id="user-id-4",
                                 organisation="GP"),
        reason="Synthetic e2e reason",
        invitees=[Invitee(agency="GP", name="Patti Fernandez", email="pattif@example.com", user_id="user-id-4",
                          status=InviteStatus.CONFIRMED, delegated_authority=True),
                  Invitee(agency="Primary School", name="Alex Wilber", email="alexw@example.com", user_id="user-id-0",
                          status=InviteStatus.CONFIRMED, delegated_authority=True)])
    case = Case(id=CASE_ID, reference=REFERENCE, profile_id="bolton", state=CaseState.HELD,
                created_at=held - timedelta(days=20), request=request, agreed_at=held - timedelta(days=15),
                facilitators=[FacilitatorAssignment(name="Adele Vance", email="adelev@example.com", agency="Health",
                                                    user_id="user-id-2", lead=True)],
                session=SessionPlan(number=1, starts_at=held - timedelta(hours=1), held_at=held))
    case.history.append(Transition(at=held, actor="teams", event="mark_held", from_state=CaseState.PRE_SESSION,
                                   to_state=CaseState.HELD))
    return case


@pytest.fixture(scope="module")
def record_stack() -> Iterator[Stack]:
    with seeded_stack("e2e-record-", [seeded_case()]) as stack:
        yield stack


@pytest.fixture
async def client(record_stack: Stack) -> AsyncIterator[PlaygroundClient]:
    async with record_stack.client() as playground:
        yield playground


def button(card: dict[str, Any], title: str) -> dict[str, Any]:
    found = [a for a in card_actions(card) if a.get("title") == title]
    assert found, f"no {title!r} in {[a.get('title') for a in card_actions(card)]}"
    return found[0]


async def test_record_to_summary_in_the_chat_to_an_action_marked_done(
        client: PlaygroundClient, record_stack: Stack, validate_card: Callable[[dict[str, Any]], None]) -> None:
    case = seeded_case()
    today = uk_local(datetime.now(UTC)).date()
    adele_chat = await client.personal_chat("adele")
    patti_chat = await client.personal_chat("patti")
    for who in ("adele", "patti", "alex"):        # each has talked to the bot once (it knows their email)
        await client.ask("hello", user=who)

    # record session in the team's channel: the form goes to Adele privately, the summary to that thread
    said = await client.say("record session", user="adele", conversation="channel")
    answer = await client.reply(said)
    assert answer.text == T("record.sent_privately")
    thread = said.conversation_id
    assert thread.startswith(f"{GENERAL_CHANNEL};messageid=")
    form = await client.wait_for_card(adele_chat, T("record.form.title", reference=REFERENCE), after=said.mark)
    validate_card(form.card)
    assert "Patti Fernandez (GP)" in form.all_text and "Ottoline" not in form.all_text

    # part 1: the session, learning and Bolton's mapping; Next saves it and opens part 2
    sections = {f"section_{key}": f"Reflection on {key}." for key in
                ("known", "not_known", "strengths", "concerns", "hypotheses", "change", "success_measures")}
    part_one = {"learning_points": "Each agency saw a different part of the week.", "themes": "5", **sections}
    pressed = await client.press(form, T("record.form.next"), part_one, user="adele")
    second = await client.wait_for_card(adele_chat, T("record.form.step_2"), after=pressed.mark)
    validate_card(second.card)

    part_two = {"action_1_description": "Book a joint review with school", "action_1_owner": "pattif@example.com",
                "action_1_due": (today - timedelta(days=30)).isoformat(),
                "plan_changes": "Add a weekly check-in", "plan_changes_shared_by": "Patti Fernandez",
                "review_on": (today + timedelta(days=42)).isoformat()}
    pressed = await client.press(second, T("record.form.publish"), part_two, user="adele")
    refused = await client.wait_for_card(adele_chat, "can't be before the session", after=pressed.mark)
    validate_card(refused.card)
    assert "Action 1: due date can't be before the session." in refused.all_text
    assert "Book a joint review with school" in refused.all_text       # nothing typed is lost

    due = today + timedelta(days=14)
    pressed = await client.press(refused, T("record.form.publish"), {"action_1_due": due.isoformat()}, user="adele")
    done = await client.wait_for_card(adele_chat, T("record.done.title", reference=REFERENCE), after=pressed.mark)
    validate_card(done.card)

    # the summary card in the channel, with no child or family details
    summary = await client.wait_for_card(thread, T("record.summary.title", reference=REFERENCE), after=pressed.mark)
    validate_card(summary.card)
    assert summary.activity["conversation"]["id"].startswith(GENERAL_CHANNEL)
    assert "School attendance" in summary.all_text and "Adele Vance" in summary.all_text

    # Patti: the full record (with its document link) and her action card, in personal chat
    record_card = await client.wait_for_card(patti_chat, T("record.full.private"), after=pressed.mark)
    validate_card(record_card.card)
    link = button(record_card.card, T("record.full.download"))["url"]
    async with aiohttp.ClientSession() as http, http.get(link) as response:
        assert response.status == 200 and (await response.read())[:2] == b"PK"
    action = await client.wait_for_card(patti_chat, "Book a joint review with school", after=pressed.mark)
    validate_card(action.card)
    board = await client.wait_for_card(adele_chat, T("actions.board.title", reference=REFERENCE), after=pressed.mark)

    body = await client.press(action, T("actions.card.confirm_done"), {"done_note": "Review booked for Tuesday"},
                              user="patti")
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    validate_card(body["value"])
    assert T("actions.card.answered_done") in json.dumps(body["value"])
    updated = await client.wait_for(lambda m: m.kind == "update" and m.id == board.id
                                    and "1 done" in m.all_text, after=pressed.mark)
    assert updated.conversation_id == adele_chat

    mark = client.mark()
    await client.say("my actions", user="patti")
    mine = await client.wait_for_card(patti_chat, T("actions.mine.title"), after=mark)
    assert T("actions.mine.none") in mine.all_text

    # nothing identifying left personal chat: the recorder's whole session and the bot's log
    checked = assert_no_identifiers_shared(record_stack, SHARED_CHECK)
    assert checked >= 2
    identifiers = identifiers_of(case.request)
    for message in client.messages():
        if record_stack.shared_conversation(message.conversation_id):
            assert find_identifiers(json.dumps(message.activity), identifiers) == [], message
