"""Scheduling through the real bot over HTTP (loopback connector): the lead facilitator's card on
``facilitators.assigned``, scheduling with Action.Execute, invitations (personal cards, a 1:1 chat
created with the tenant id, email for federated invitees), answers, the attendance card updated in
place, reschedule and cancel; offline (the .ics by signed link) and with Graph (loopback server)."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import icalendar
import pytest

from bot.app import create_app
from bot.graph import GraphCalendar
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.models import CaseState, InviteStatus
from supervision.ports import DomainEvent
from supervision.repository import CaseRepository
from tests.support.connector import FakeConnector, Sent
from tests.support.graph_server import GraphServer, StaticToken, attachment_bytes
from tests.support.harness import TENANT, BotHarness, User
from tests.test_schedule_domain import make_assigned_case

ADELE = User("user-id-2", "Adele Vance", "aad-adele", "adelev@example.com")
ISAIAH = User("user-id-3", "Isaiah Langer", "aad-isaiah", "isaiahl@example.com")
PATTI = User("user-id-4", "Patti Fernandez", "aad-patti", "pattif@example.com")


def cards_to(sent: list[Sent], conversation_id: str) -> list[dict[str, Any]]:
    return [c for s in sent if s.conversation_id == conversation_id for c in s.cards]


def texts_to(sent: list[Sent], conversation_id: str) -> list[str]:
    return [s.text for s in sent if s.conversation_id == conversation_id and s.text]


def execute_data(verb: str, case_id: str, **inputs: Any) -> dict[str, Any]:
    return {"verb": verb, "case_id": case_id, **inputs}


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


async def seeded(harness: BotHarness, clock: FixedClock) -> str:
    case = await CaseRepository(harness.parts.services.store).create(make_assigned_case(clock))
    await harness.say(ADELE, "help")          # Adele has talked to the bot: reference and email known
    harness.connector.clear()
    await harness.parts.services.events.publish(DomainEvent("facilitators.assigned", case.id, clock.now(), {}))
    return case.id


def first_slot(card: dict[str, Any]) -> str:
    (choice,) = [b for b in card["body"] if b.get("id") == "slot"]
    return str(choice["choices"][0]["value"])


@pytest.fixture
async def only_scheduling(config, clock: FixedClock) -> AsyncIterator[BotHarness]:
    """The bot with only the help and scheduling features, so every message seen here is ours."""
    from bot.features import core_feature
    from dialogs.schedule import register

    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False,
                     features=[core_feature, register])
    h = await BotHarness(app=app, connector=FakeConnector()).start()
    yield h
    await h.stop()


async def test_offline_schedule_invite_answer_and_attendance(only_scheduling: BotHarness, clock, validate_card):
    harness = only_scheduling
    case_id = await seeded(harness, clock)
    (scheduling,) = [c for c in cards_to(harness.connector.sent, "personal-user-id-2")
                     if "Schedule the session" in card_text(c)]
    validate_card(scheduling)
    assert "Schedule the session" in card_text(scheduling) and "Mon 26 Jan 2026" in card_text(scheduling)
    harness.connector.clear()

    status, body = await harness.execute(ADELE, "schedule.submit", execute_data("schedule.submit", case_id,
                                                                                 slot=first_slot(scheduling)))
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    validate_card(body["value"])
    assert "Session scheduled" in card_text(body["value"])
    case = await harness.parts.services.cases.require(case_id)
    assert case.state == CaseState.SCHEDULED and case.session.join_url == ""

    # Patti never talked to the bot: a 1:1 chat is created with the tenant id, then the card goes there
    (created,) = [c for c in harness.connector.created if c["members"][0]["id"] == "user-id-4"]
    assert created["channelData"]["tenant"]["id"] == TENANT
    assert TENANT in {created.get("tenantId"), created.get("tenantID")}       # botbuilder writes "tenantID"
    patti_conversation = next(s.conversation_id for s in harness.connector.sent
                              if s.cards and "You are invited" in card_text(s.cards[0]))
    (invitation,) = cards_to(harness.connector.sent, patti_conversation)
    validate_card(invitation)
    text = card_text(invitation)
    assert "Zebedee Example" in text                      # personal chat with a case member
    assert "does not replace statutory meetings" in text and "chronology" in text and "pre-session" in text
    assert "No Teams link" in text
    ics_url = next(a["url"] for a in invitation["actions"] if a["type"] == "Action.OpenUrl")
    verbs = {a.get("verb") for a in invitation["actions"]}
    assert {"schedule.confirm", "schedule.authority", "schedule.decline"} <= verbs

    # the facilitators' attendance card, and the lead told about who could not be reached offline
    (attendance,) = [c for c in cards_to(harness.connector.sent, "personal-user-id-2")
                     if "Attendance" in card_text(c)]
    validate_card(attendance)
    assert "Zebedee" not in card_text(attendance)
    notices = texts_to(harness.connector.sent, "personal-user-id-2")
    assert any("Quentin Placeholder" in n and "/downloads/" in n for n in notices)     # federated, no mail
    assert any("Yolanda Sample" in n for n in notices)                                 # not in Teams
    assert not any("Zebedee" in n for n in notices)
    attendance_posts = {s.activity_id for s in harness.connector.sent
                        if s.method == "POST" and s.cards and "Attendance" in card_text(s.cards[0])}
    assert len(attendance_posts) == 2                      # one each for Adele and Isaiah

    # the .ics link works for Patti and carries UK local time
    assert harness.client is not None
    response = await harness.client.get(ics_url[ics_url.index("/downloads/"):])
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/calendar")
    event = icalendar.Calendar.from_ical(await response.read()).walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event.decoded("DTSTART").astimezone(UTC) == case.session.starts_at

    # decline without a reason: the card comes back naming the field, with what was typed kept
    harness.connector.clear()
    status, body = await harness.execute(PATTI, "schedule.decline", execute_data(
        "schedule.decline", case_id, decline_reason="", colleague="Dr Synthetic Colleague"))
    assert status == 200 and "why you can't attend" in card_text(body["value"])
    assert "Dr Synthetic Colleague" in card_text(body["value"])
    validate_card(body["value"])
    status, body = await harness.execute(PATTI, "schedule.decline", execute_data(
        "schedule.decline", case_id, decline_reason="Clinic all day", colleague="Dr Synthetic Colleague"))
    assert "down as not attending" in card_text(body["value"])
    puts = [s for s in harness.connector.sent if s.method == "PUT"]
    assert {p.activity_id for p in puts} == attendance_posts   # updated in place, for both facilitators
    assert "Declined" in card_text(puts[-1].cards[0]) and "Clinic all day" in card_text(puts[-1].cards[0])
    assert "Dr Synthetic Colleague" in card_text(puts[-1].cards[0])

    status, body = await harness.execute(PATTI, "schedule.authority", execute_data("schedule.authority", case_id))
    assert "delegated authority" in card_text(body["value"])
    puts = [s for s in harness.connector.sent if s.method == "PUT"]
    assert "Attending, with delegated authority" in card_text(puts[-1].cards[0])
    case = await harness.parts.services.cases.require(case_id)
    patti = next(i for i in case.request.invitees if i.email == "pattif@example.com")
    assert patti.status == InviteStatus.CONFIRMED and patti.delegated_authority


async def test_a_late_date_needs_a_reason_and_keeps_what_was_typed(harness: BotHarness, clock, validate_card):
    case_id = await seeded(harness, clock)
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-02-03", session_time="10:30", late_reason=""))
    card = body["value"]
    validate_card(card)
    assert "after the deadline" in card_text(card)
    date_input = next(b for b in card["body"] if b.get("id") == "session_date")
    assert date_input["value"] == "2026-02-03"
    assert (await harness.parts.services.cases.require(case_id)).state == CaseState.FACILITATORS_ASSIGNED
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-02-03", session_time="10:30",
        late_reason="The GP is on leave until February"))
    assert "Session scheduled" in card_text(body["value"])
    case = await harness.parts.services.cases.require(case_id)
    assert case.session.late_reason == "The GP is on leave until February"
    assert case.session.starts_at == datetime(2026, 2, 3, 10, 30, tzinfo=UTC)


async def test_offline_the_lead_gives_the_teams_link_they_made_and_invitations_carry_it(
        only_scheduling: BotHarness, clock, validate_card):
    harness = only_scheduling
    case_id = await seeded(harness, clock)
    (scheduling,) = [c for c in cards_to(harness.connector.sent, "personal-user-id-2")
                     if "Schedule the session" in card_text(c)]
    assert any(b.get("id") == "join_url" for b in scheduling["body"])          # offline: asked for
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot=first_slot(scheduling), join_url="our usual Teams room"))
    validate_card(body["value"])
    assert "Teams meeting link: please paste the whole https:// link" in card_text(body["value"])
    kept = next(b for b in body["value"]["body"] if b.get("id") == "join_url")
    assert kept["value"] == "our usual Teams room"                             # what was typed is kept
    link = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_DIALOG%40thread.v2/0"
    harness.connector.clear()
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot=first_slot(scheduling), join_url=link))
    assert "Session scheduled" in card_text(body["value"])
    assert (await harness.parts.services.cases.require(case_id)).session.join_url == link
    invitation = next(c for s in harness.connector.sent for c in s.cards if "You are invited" in card_text(c))
    assert link in [a.get("url") for a in invitation["actions"]] and "No Teams link" not in card_text(invitation)


async def test_bad_typed_date_names_the_field_and_only_the_lead_schedules(harness: BotHarness, clock):
    case_id = await seeded(harness, clock)
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-01-17", session_time="10:00"))
    assert "not a working day" in card_text(body["value"])
    status, body = await harness.execute(ISAIAH, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-01-20", session_time="10:00"))
    assert body["type"] == "application/vnd.microsoft.activity.message" and "lead facilitator" in body["value"]
    refusals = [e for e in await harness.parts.services.audit.entries(case_id) if not e["allowed"]]
    assert refusals


# --- with Graph --------------------------------------------------------------------------------
@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    server = GraphServer(organiser="organiser@example.com")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def graph_harness(make_config, clock: FixedClock, graph: GraphServer) -> AsyncIterator[BotHarness]:
    config = make_config(GRAPH_TENANT_ID="00000000-0000-0000-0000-00000000000a", GRAPH_CLIENT_ID="client",
                         GRAPH_CLIENT_SECRET="synthetic", GRAPH_ORGANISER="organiser@example.com",
                         GRAPH_BASE_URL=graph.url)
    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False)
    h = await BotHarness(app=app, connector=FakeConnector()).start()

    async def no_wait(seconds: float) -> None:
        return None

    assert config.graph is not None
    gateway = GraphCalendar(config.graph, credential=StaticToken(), sleep=no_wait)
    scheduling = h.parts.services.features["scheduling"]
    assert isinstance(scheduling.gateway, GraphCalendar)          # Graph configured: the Graph gateway
    scheduling.gateway = scheduling.free_busy = gateway
    yield h
    await h.stop()


async def test_with_graph_teams_meeting_email_for_federated_reschedule_and_cancel(graph_harness: BotHarness,
                                                                                 clock, graph: GraphServer,
                                                                                 validate_card):
    harness = graph_harness
    case_id = await seeded(harness, clock)
    (scheduling,) = [c for c in cards_to(harness.connector.sent, "personal-user-id-2")
                     if "Schedule the session" in card_text(c)]
    assert "free in the calendars" in card_text(scheduling)
    assert graph.calls_to("schedule")
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data("schedule.submit", case_id,
                                                                                 slot=first_slot(scheduling)))
    assert "Session scheduled" in card_text(body["value"])
    case = await harness.parts.services.cases.require(case_id)
    assert case.session.graph_event_id in graph.events
    join_url = graph.events[case.session.graph_event_id]["onlineMeeting"]["joinUrl"]
    assert case.session.join_url == join_url
    invitation = next(c for s in harness.connector.sent for c in s.cards if "You are invited" in card_text(c))
    validate_card(invitation)
    assert any(a.get("url") == join_url for a in invitation["actions"])
    # Quentin is federated and Yolanda is not in Teams: both get the email with the .ics
    assert sorted(m["toRecipients"][0]["emailAddress"]["address"] for m in graph.mail) == \
        ["quentin@other-tenant.example.org", "yolanda@example.com"]
    mail = graph.mail[0]
    assert "Zebedee" not in str(mail)                              # email leaves the organisation
    assert join_url in mail["body"]["content"] and "chronology" in mail["body"]["content"]
    ics = icalendar.Calendar.from_ical(attachment_bytes(mail))
    assert str(ics.walk("VEVENT")[0]["UID"]) == graph.events[case.session.graph_event_id]["iCalUId"]

    harness.connector.clear()
    status, body = await harness.execute(ADELE, "schedule.manage", execute_data("schedule.manage", case_id))
    validate_card(body["value"])
    status, body = await harness.execute(ADELE, "schedule.reschedule", execute_data(
        "schedule.reschedule", case_id, session_date="2026-01-22", session_time="14:00", reason=""))
    assert "Please give a reason" in card_text(body["value"])
    status, body = await harness.execute(ADELE, "schedule.reschedule", execute_data(
        "schedule.reschedule", case_id, session_date="2026-01-22", session_time="14:00", reason="Room clash"))
    assert "now on Thu 22 Jan 2026, 14:00" in card_text(body["value"])
    (patch,) = graph.calls_to("update")
    assert patch.body["start"]["dateTime"] == "2026-01-22T14:00:00"
    moved = [c for s in harness.connector.sent for c in s.cards if "The session has moved" in card_text(c)]
    assert moved and "Room clash" in card_text(moved[0])
    assert len(graph.mail) == 4

    status, body = await harness.execute(ADELE, "schedule.cancel", execute_data("schedule.cancel", case_id,
                                                                                 reason="Family moved away"))
    assert "cancelled" in card_text(body["value"])
    assert graph.events[case.session.graph_event_id]["isCancelled"] is True
    cancelled_mail = graph.mail[-1]
    assert cancelled_mail["subject"].startswith("Cancelled")
    assert str(icalendar.Calendar.from_ical(attachment_bytes(cancelled_mail))["METHOD"]) == "CANCEL"
    puts = [s for s in harness.connector.sent if s.method == "PUT"]
    assert any("Session cancelled" in card_text(c) for s in puts for c in s.cards)
    assert (await harness.parts.services.cases.require(case_id)).state == CaseState.CANCELLED
    assert graph.violations == []
    # reading the case to tell everyone is audited, once per event
    notified = [e["what"] for e in await harness.parts.services.audit.entries(case_id)
                if e["action"] == "schedule.notify"]
    assert notified == ["session.scheduled", "session.rescheduled", "session.cancelled"]


async def test_graph_failure_is_reported_with_what_to_do_and_changes_nothing(graph_harness: BotHarness, clock,
                                                                            graph: GraphServer):
    harness = graph_harness
    case_id = await seeded(harness, clock)
    graph.fail_next("create", 503, times=4)
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-01-20", session_time="10:00"))
    text = card_text(body["value"])
    assert "after 4 tries" in text and "Nothing has been changed" in text and "try again" in text
    assert (await harness.parts.services.cases.require(case_id)).state == CaseState.FACILITATORS_ASSIGNED



async def test_schedule_command_gives_the_lead_their_cards(only_scheduling: BotHarness, clock, validate_card):
    harness = only_scheduling
    case = await CaseRepository(harness.parts.services.store).create(make_assigned_case(clock))
    replies = await harness.say(ADELE, "schedule")
    (card,) = [c for r in replies for c in r.cards]
    validate_card(card)
    assert case.reference in card_text(card) and first_slot(card)
    replies = await harness.say(ISAIAH, "schedule")            # a facilitator, not the lead
    assert not any(r.cards for r in replies) and "not the lead facilitator" in replies[-1].text


async def test_an_answer_from_a_channel_or_group_chat_never_shows_the_child(only_scheduling: BotHarness, clock):
    """The invitation names the child, so it is answered only in personal chat: a confirm, decline or
    authority sent from a channel or group chat is refused there (politely), changes nothing and
    shows nothing of the case."""
    harness = only_scheduling
    case_id = await seeded(harness, clock)
    (scheduling,) = [c for c in cards_to(harness.connector.sent, "personal-user-id-2")
                     if "Schedule the session" in card_text(c)]
    await harness.execute(ADELE, "schedule.submit", execute_data("schedule.submit", case_id,
                                                                 slot=first_slot(scheduling)))
    for kind, where in (("channel", "19:coordinators@thread.tacv2"), ("groupChat", "19:group@thread.v2")):
        for verb, inputs in (("schedule.confirm", {}), ("schedule.authority", {}),
                             ("schedule.decline", {"decline_reason": "", "colleague": "Dr Synthetic Colleague"}),
                             ("schedule.decline", {"decline_reason": "Clinic", "colleague": ""})):
            harness.connector.clear()
            status, body = await harness.execute(PATTI, verb, execute_data(verb, case_id, **inputs),
                                                 conversation_type=kind, conversation_id=where)
            assert status == 200, body
            shown = json.dumps(body, ensure_ascii=False) + json.dumps([s.body for s in harness.connector.sent])
            assert "personal chat" in shown
            for identifier in ("Zebedee", "Synthetic Street", "2017"):
                assert identifier not in shown, (kind, verb)
            replies = await harness.submit(PATTI, execute_data(verb, case_id, **inputs),
                                           conversation_type=kind, conversation_id=where)
            assert replies and all("Zebedee" not in json.dumps(s.body) for s in replies)
    case = await harness.parts.services.cases.require(case_id)
    patti = next(i for i in case.request.invitees if i.email == "pattif@example.com")
    assert patti.status == InviteStatus.INVITED                    # nothing was answered from there


async def test_the_ics_link_of_a_session_weeks_away_works_until_a_day_after_it_ends(only_scheduling: BotHarness,
                                                                                    clock):
    harness = only_scheduling
    case_id = await seeded(harness, clock)
    harness.connector.clear()
    # the last working day allowed (Mon 26 Jan 2026), three weeks after the invitation
    status, body = await harness.execute(ADELE, "schedule.submit", execute_data(
        "schedule.submit", case_id, slot="typed", session_date="2026-01-26", session_time="10:00", late_reason=""))
    assert status == 200 and "Session scheduled" in card_text(body["value"])
    case = await harness.parts.services.cases.require(case_id)
    assert case.session.ends_at is not None and case.session.ends_at - clock.now() > timedelta(days=14)
    patti = next(s.conversation_id for s in harness.connector.sent
                 if s.cards and "You are invited" in card_text(s.cards[0]))
    (invitation,) = cards_to(harness.connector.sent, patti)
    ics_url = next(a["url"] for a in invitation["actions"] if a["type"] == "Action.OpenUrl")
    grant = await harness.parts.services.downloads.verify(unquote(ics_url.rsplit("/", 1)[1]))
    assert grant.expires == case.session.ends_at + timedelta(days=1)
    assert harness.client is not None
    path = ics_url[ics_url.index("/downloads/"):]
    clock.set(case.session.starts_at - timedelta(hours=1))           # the morning of the session
    assert (await harness.client.get(path)).status == 200
    clock.set(case.session.ends_at + timedelta(hours=23))
    assert (await harness.client.get(path)).status == 200
    clock.set(case.session.ends_at + timedelta(days=1, minutes=1))
    assert (await harness.client.get(path)).status == 410


def test_an_ics_link_lasts_until_the_session_ends_plus_a_day_within_the_cap(clock: FixedClock):
    from bot.downloads import DEFAULT_TTL, MAX_TTL
    from dialogs.schedule import ics_ttl

    case = make_assigned_case(clock)
    now = clock.now()
    assert ics_ttl(case, now) == timedelta(days=14)                         # no session time yet
    case.session.starts_at = now + timedelta(days=21)                        # 15 working days ahead
    assert ics_ttl(case, now) == timedelta(days=22)                          # start + a day when no end
    case.session.ends_at = now + timedelta(days=21, hours=2)
    assert ics_ttl(case, now) == timedelta(days=22, hours=2)
    case.session.ends_at = now + timedelta(days=90)
    assert ics_ttl(case, now) == MAX_TTL == timedelta(days=45)              # still a cap
    case.session.ends_at = now - timedelta(days=3)
    assert ics_ttl(case, now) == DEFAULT_TTL                                # after the session: an hour
