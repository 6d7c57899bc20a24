"""The record flow through the real bot over HTTP (loopback connector): record session from the
meeting chat, the form in personal chat, the identifier refusal that keeps what was typed, publishing
(summary to the meeting chat with no identifiers, full record and action cards in personal chat, the
facilitator's board), reminders through the due-work runner."""
from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from docx import Document

from supervision.models import CaseState, find_identifiers
from tests.support.harness import BotHarness
from tests.test_record_helpers import ADELE, ALEX, IDENTIFIERS, PATTI, good_form, held_case

MEETING_CHAT = "19:meeting_rec@thread.v2"


@pytest.fixture
def config(make_config):
    return make_config(ADMINISTRATORS="lynner@example.com")


def cards_in(sent) -> list[dict]:
    return [c for s in sent for c in s.cards]


def texts(value) -> str:
    return json.dumps(value)


async def introduce(harness: BotHarness, *users) -> None:
    """Each user says hello in personal chat, so the bot knows their email and can reach them."""
    for user in users:
        await harness.say(user, "hello")


async def test_record_from_the_meeting_chat_to_published(harness: BotHarness, clock, validate_card):
    services = harness.parts.services
    clock.set(held_case().session.held_at + timedelta(days=1))
    await services.cases.create(held_case())
    await introduce(harness, ADELE, PATTI, ALEX)
    harness.connector.clear()

    replies = await harness.say(ADELE, "record session", conversation_type="groupChat", conversation_id=MEETING_CHAT)
    assert "personal chat" in replies[-1].text
    form_cards = [s for s in harness.connector.sent if s.conversation_id == f"personal-{ADELE.id}" and s.cards]
    assert form_cards, "the record form went to Adele's personal chat"
    form_card = form_cards[-1].cards[0]
    validate_card(form_card)
    assert "Session record" in texts(form_card) and "Zebedee" not in texts(form_card)

    harness.connector.clear()
    value = {"verb": "record.publish", "case_id": "case-rec-1", **good_form(held_case())}
    await harness.submit(ADELE, value)
    sent = harness.connector.sent
    assert sent[0].type == "typing" and sent[0].conversation_id == f"personal-{ADELE.id}"    # long work shows
    done = [c for s in sent if s.conversation_id == f"personal-{ADELE.id}" for c in s.cards]
    assert any("Record sent" in texts(c) for c in done)
    assert any("Actions went out within the deadline (Thu 05 Mar 2026)" in texts(c) for c in done)
    assert any("published within the minutes deadline (Tue 31 Mar 2026)" in texts(c) for c in done)
    assert any("goes to the BSCP Quality Practice Group and the partnership learning log" in texts(c) for c in done)

    chat = [s for s in sent if s.conversation_id == MEETING_CHAT]
    assert len(chat) == 1 and "Session summary" in texts(chat[0].cards[0])
    validate_card(chat[0].cards[0])
    for message in sent:
        if not message.conversation_id.startswith(("personal-", "a:personal-")):
            assert find_identifiers(texts(message.body), IDENTIFIERS) == [], message.conversation_id

    to_patti = [c for s in sent if s.conversation_id == f"personal-{PATTI.id}" for c in s.cards]
    to_alex = [c for s in sent if s.conversation_id == f"personal-{ALEX.id}" for c in s.cards]
    assert any("Your action" in texts(c) and "Arrange a joint home visit" in texts(c) for c in to_patti)
    assert any("Your action" in texts(c) and "Share attendance figures weekly" in texts(c) for c in to_alex)
    assert any("Key learning points" in texts(c) for c in to_patti), "the full record went to Patti"
    for c in to_patti + to_alex + done:
        validate_card(c)
    case = await services.cases.require("case-rec-1")
    assert case.state == CaseState.MINUTES_DONE
    assert case.session.actions_distributed_at == clock.now() == case.session.minutes_done_at

    # the record document: a signed link to the DOCX for the child's file
    links = [a["url"] for c in to_patti for a in c.get("actions", []) if a["type"] == "Action.OpenUrl"]
    assert links and "/downloads/" in links[0]
    path = links[0][links[0].index("/downloads/"):]
    response = await harness.client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert (await response.read())[:2] == b"PK"

    # the evaluations are part of the session record: each attendee's before, after and impact
    from supervision.evaluation import EvaluationResponse, EvaluationStore, Phase

    def answers(doc):
        for who, pre, post in ((PATTI, 1, 4), (ALEX, 3, 2)):
            for phase, score in ((Phase.PRE, pre), (Phase.POST, post)):
                doc.responses[f"{phase.value}:{who.email}"] = EvaluationResponse(
                    respondent=who.email, name=who.name, agency="GP", phase=phase, score=score)

    await EvaluationStore(services.store).update("case-rec-1", 1, answers)
    response = await harness.client.get(path)
    document = Document(io.BytesIO(await response.read()))
    rows = [tuple(c.text for c in row.cells) for table in document.tables for row in table.rows]
    assert ("Attendee", "Agency", "Before (0-5)", "After (0-5)", "Impact (after minus before)") in rows
    assert (PATTI.name, "GP", "1", "4", "+3") in rows                 # agencies as the case knows them
    assert (ALEX.name, "Primary School", "3", "2", "-1") in rows
    paragraphs = "\n".join(p.text for p in document.paragraphs)
    assert "Pre- and post-session evaluation" in paragraphs
    assert "Mean before: 2; mean after: 3; impact for the session (mean change of those who answered both): +1." \
        in paragraphs
    audited = [e for e in await services.audit.entries(case_id="case-rec-1") if e["action"] == "record.document"]
    assert audited and "evaluation scores" in audited[-1]["what"]


async def test_the_argyll_refusal_names_the_field_and_keeps_everything(harness: BotHarness, clock):
    services = harness.parts.services
    clock.set(held_case().session.held_at + timedelta(days=1))
    await services.cases.create(held_case(profile_id="argyll_bute"))
    await introduce(harness, ADELE)
    harness.connector.clear()
    form = good_form(held_case(), learning_points="Marigold Example was not invited")
    replies = await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1", **form})
    card = cards_in(replies)[-1]
    body = texts(card)
    assert "Key learning points contains child or family identifiers (Marigold Example" in body
    assert "Marigold Example was not invited" in body          # what was typed is still in the form
    assert "Part 1 of 2" in body                                # the part that holds the field
    stored = await services.features["record"].get_stored("case-rec-1", 1)
    assert stored.form["action_2_description"] == "Share attendance figures weekly"   # part 2 kept too
    replies = await harness.submit(ADELE, {"verb": "record.next", "case_id": "case-rec-1", "phase": "1",
                                           "learning_points": "A parent was not invited"})
    part_two = texts(cards_in(replies)[-1])
    assert "Part 2 of 2" in part_two and "Share attendance figures weekly" in part_two
    assert (await services.cases.require("case-rec-1")).state == CaseState.HELD
    refusals = [e for e in await services.audit.entries("case-rec-1") if not e["allowed"]]
    assert refusals and refusals[-1]["why"] == "identifiers in the record"


async def test_someone_who_is_not_the_facilitator_cannot_record(harness: BotHarness, clock):
    services = harness.parts.services
    await services.cases.create(held_case())
    replies = await harness.say(PATTI, "record session")
    assert "no held sessions" in replies[-1].text
    replies = await harness.submit(PATTI, {"verb": "record.publish", "case_id": "case-rec-1",
                                           **good_form(held_case())})
    assert "needs one of these roles: facilitator" in replies[-1].text
    assert (await services.cases.require("case-rec-1")).state == CaseState.HELD


async def test_session_held_offers_the_record_and_reminders_follow_until_done(harness: BotHarness, clock):
    from supervision.ports import DomainEvent

    services = harness.parts.services
    case = held_case()
    clock.set(case.session.held_at)
    await services.cases.create(case)
    await introduce(harness, ADELE)
    harness.connector.clear()
    await services.events.publish(DomainEvent("session.held", case.id, clock.now(), {"session": 1}))
    offers = cards_in(harness.connector.messages(f"personal-{ADELE.id}"))
    assert any("The session has been held" in texts(c) and "record.open" in texts(c) for c in offers)

    harness.connector.clear()
    # Tue 3 Mar held; actions due Thu 5 Mar: the reminder the day before (Wed), on the day, then overdue
    clock.set(datetime(2026, 3, 4, 9, 30, tzinfo=UTC))      # Wed 09:30: on time
    report = await services.due_work.run_due()
    assert "case-rec-1:record:actions:1:2026-03-04" in report.ran
    clock.set(case.session.held_at + timedelta(days=6))      # Mon 9 Mar
    report = await services.due_work.run_due()
    assert "case-rec-1:record:actions:1:2026-03-09" in report.ran
    assert "case-rec-1:record:actions:1:2026-03-05" in report.ran    # the day itself, caught up (late)
    again = await services.due_work.run_due()
    assert not [k for k in again.ran if ":record:" in k]                # nothing twice
    reminders = [c for c in cards_in(harness.connector.messages(f"personal-{ADELE.id}"))
                 if "Actions to send" in texts(c)]
    assert len(reminders) == 3 and "Overdue" in texts(reminders[-1])
    late = [c for c in reminders if "Due today (Thu 05 Mar 2026)" in texts(c)]
    assert late and "This message is late" in texts(late[0])       # caught up after downtime, and says so
    assert "This message is late" not in texts(reminders[0])
    clock.set(case.session.held_at + timedelta(days=7))      # Tue 10 Mar: the due index wakes the case again
    report = await services.due_work.run_due()
    assert "case-rec-1:record:actions:1:2026-03-10" in report.ran
    # once the actions are out, no more reminders about them
    await harness.submit(ADELE, {"verb": "record.send_actions", "case_id": case.id, **good_form(held_case())})
    clock.set(case.session.held_at + timedelta(days=8))
    report = await services.due_work.run_due()
    assert not [k for k in report.ran if ":record:actions:" in k]


async def test_the_facilitator_is_reminded_on_the_review_date_once(harness: BotHarness, clock, validate_card):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case())
    await introduce(harness, ADELE, PATTI, ALEX)
    # review on Sat 18 Apr 2026: the reminder comes on the working day before, Fri 17 Apr at 09:00 UK (08:00 UTC)
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1",
                                 **good_form(held_case(), review_on="2026-04-18")})
    case = await services.cases.require("case-rec-1")
    assert [(t.id, t.due_on, t.status) for t in case.tracked if t.kind == "record_review"] == \
        [("review-s1", date(2026, 4, 18), "open")]
    key = "case-rec-1:record:review:review-s1:2026-04-18"
    assert [w.due_at for w in services.due_work.work_for(case) if w.key == key] == \
        [datetime(2026, 4, 17, 8, 0, tzinfo=UTC)]
    harness.connector.clear()
    report = await services.due_work.run_due(datetime(2026, 4, 17, 7, 59, tzinfo=UTC))
    assert key not in report.ran
    report = await services.due_work.run_due(datetime(2026, 4, 17, 8, 0, tzinfo=UTC))
    assert key in report.ran
    reviews = [c for c in cards_in(harness.connector.messages(f"personal-{ADELE.id}")) if "Review date" in texts(c)]
    assert len(reviews) == 1 and "Sat 18 Apr 2026" in texts(reviews[0]) and "late" not in texts(reviews[0])
    validate_card(reviews[0])
    assert not [s for s in harness.connector.sent if "Review date" in texts(s.body)
                and s.conversation_id != f"personal-{ADELE.id}"]                  # facilitators only
    again = await services.due_work.run_due(datetime(2026, 4, 20, 9, 0, tzinfo=UTC))
    assert key not in again.ran
    case = await services.cases.require("case-rec-1")
    assert [t.status for t in case.tracked if t.kind == "record_review"] == ["reminded"]
    assert not [w for w in services.due_work.work_for(case) if w.kind == "record.review_due"]

    # after downtime the reminder still comes, once, and says it is late
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case("case-rec-2"))
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-2",
                                 **good_form(held_case("case-rec-2"), review_on="2026-04-21")})
    harness.connector.clear()
    report = await services.due_work.run_due(datetime(2026, 4, 23, 12, 0, tzinfo=UTC))
    assert "case-rec-2:record:review:review-s1:2026-04-21" in report.ran
    late = [c for c in cards_in(harness.connector.messages(f"personal-{ADELE.id}")) if "Review date" in texts(c)]
    assert len(late) == 1 and "This message is late" in texts(late[0]) and "Tue 21 Apr 2026" in texts(late[0])


async def test_a_facilitator_with_two_held_sessions_picks_one_and_the_listing_is_audited(harness: BotHarness, clock,
                                                                                          validate_card):
    services = harness.parts.services
    clock.set(held_case().session.held_at + timedelta(days=1))
    first, second = held_case(), held_case("case-rec-2")
    for case in (first, second):
        await services.cases.create(case)
    replies = await harness.say(ADELE, "record session")
    picker = cards_in(replies)[-1]
    validate_card(picker)
    assert first.reference in texts(picker) and second.reference in texts(picker)
    assert find_identifiers(texts(picker), IDENTIFIERS) == []
    listed = [e for e in await services.audit.entries() if e["action"] == "record.list_cases"]
    assert len(listed) == 1 and listed[0]["actor"] == ADELE.id and listed[0]["what"] == "2 case reference(s)"


def test_the_meeting_chat_id_comes_from_the_join_url():
    from supervision.record import meeting_chat_id

    url = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZmFrZS1tZWV0aW5n%40thread.v2/0"
           "?context=%7b%22Tid%22%3a%22t%22%7d")
    assert meeting_chat_id(url) == "19:meeting_ZmFrZS1tZWV0aW5n@thread.v2"
    assert meeting_chat_id("https://example.com/ics-only") == ""
    assert meeting_chat_id("") == ""


async def test_when_held_the_offer_and_then_the_summary_go_to_the_meeting_chat(harness: BotHarness, clock):
    from supervision.ports import DomainEvent

    services = harness.parts.services
    chat = "19:meeting_ZmFrZS1tZWV0aW5n@thread.v2"
    case = held_case()
    case.session.join_url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZmFrZS1tZWV0aW5n%40thread.v2/0"
    clock.set(case.session.held_at)
    await services.cases.create(case)
    await introduce(harness, ADELE, PATTI, ALEX)
    await harness.say(PATTI, "help", conversation_type="groupChat", conversation_id=chat)   # the bot hears the chat
    harness.connector.clear()
    await services.events.publish(DomainEvent("session.held", case.id, clock.now(), {"session": 1}))
    offers = harness.connector.messages(chat)
    assert len(offers) == 1 and "The session has been held" in texts(offers[0].body)
    assert find_identifiers(texts(offers[0].body), IDENTIFIERS) == []

    harness.connector.clear()
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": case.id, **good_form(held_case())})
    summaries = harness.connector.messages(chat)
    assert len(summaries) == 1 and "Session summary" in texts(summaries[0].body)
    assert find_identifiers(texts(summaries[0].body), IDENTIFIERS) == []


MY_VERBS = ["record.start", "record.open", "record.save", "record.next", "record.back", "record.add_action",
            "record.send_actions",
            "record.publish", "actions.mine", "actions.open", "actions.done", "actions.new_date", "actions.cannot",
            "followup.submit", "concern.start", "concern.submit", "concern.resolve", "tracker.show"]


@pytest.mark.parametrize("verb", MY_VERBS)
async def test_stale_or_tampered_payloads_to_every_verb_answer_politely(harness: BotHarness, verb: str):
    await harness.parts.services.cases.create(held_case())
    payloads = ({}, {"case_id": "nope"}, {"case_id": "case-rec-1"}, {"case_id": "case-rec-1", "item_id": "zz"},
                {"case_id": "case-rec-1", "action_rows": "999", "held_on": 5, "themes": "a,b,99"},
                {"case_id": "case-rec-1", "item_id": "s1a1", "new_due": "x", "done_note": True})
    for extra in payloads:
        status, _ = await harness.post(harness.activity(ADELE, value={"verb": verb, **extra}, replyToId="card-1"))
        assert status == 200, (extra, status)
        status, body = await harness.execute(ADELE, verb, extra)
        assert status == 200 and body["statusCode"] == 200, (extra, status, body)
    assert not [s for s in harness.connector.sent if "quote reference" in s.text], "no turn failed"


async def test_with_no_chat_or_channel_known_the_facilitator_is_told_no_summary_was_posted(harness: BotHarness, clock):
    services = harness.parts.services
    clock.set(held_case().session.held_at + timedelta(days=1))
    await services.cases.create(held_case())
    await introduce(harness, ADELE)
    replies = await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1", **good_form(held_case())})
    body = texts(cards_in(replies)[-1])
    assert "No channel or meeting chat is known for this case, so no summary was posted." in body
    assert not [s for s in harness.connector.sent if not s.conversation_id.startswith(("personal-", "a:personal-"))]


async def test_a_further_session_goes_back_to_the_lead_facilitator_to_schedule(harness: BotHarness, clock):
    from supervision.catalogue import Catalogue

    services = harness.parts.services
    clock.set(held_case().session.held_at + timedelta(days=1))
    await services.cases.create(held_case())
    await introduce(harness, ADELE, PATTI, ALEX)
    harness.connector.clear()
    form = good_form(held_case(), further_sessions="yes", further_sessions_when="2026-04-07")
    replies = await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1", **form})
    assert "A further session was agreed" in texts(cards_in(replies)[-1])
    case = await services.cases.require("case-rec-1")
    assert case.state == CaseState.FACILITATORS_ASSIGNED and case.session.number == 2
    assert case.previous_sessions[0].held_at == held_case().session.held_at
    title = Catalogue("en")("schedule.title")
    to_adele = [c for s in harness.connector.messages(f"personal-{ADELE.id}") for c in s.cards]
    assert any(title in texts(c) for c in to_adele), "the scheduling card for session 2"
    # session 1's actions are still followed up
    assert {t.id for t in case.tracked if t.kind == "action_item"} == {"s1a1", "s1a2"}


async def test_the_meeting_end_event_offers_the_record_in_that_chat_and_the_summary_follows(harness: BotHarness, clock):
    """Through the meeting feature: Teams' meeting-end event in the meeting chat marks the session held,
    and ``session.held`` carries that chat, which gets the offer and, later, the summary."""
    from bot.handler import MEETING_END

    services = harness.parts.services
    chat = "19:meeting_cmVjb3JkLWUyZQ@thread.v2"
    join_url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_cmVjb3JkLWUyZQ%40thread.v2/0"
    case = held_case(state=CaseState.PRE_SESSION)
    case.session.held_at = None
    case.session.join_url = join_url
    case.history[-1].to_state = CaseState.PRE_SESSION
    clock.set(case.session.starts_at + timedelta(hours=2))
    await services.cases.create(case)
    await introduce(harness, ADELE, PATTI, ALEX)
    harness.connector.clear()
    end = (case.session.starts_at + timedelta(minutes=90)).isoformat().replace("+00:00", "Z")
    await harness.event(ADELE, MEETING_END, {"Id": "x", "Title": "Group supervision", "EndTime": end,
                                             "JoinUrl": join_url}, conversation_type="groupChat", conversation_id=chat)
    assert (await services.cases.require(case.id)).state == CaseState.HELD
    offers = [s for s in harness.connector.messages(chat) if "The session has been held" in texts(s.body)]
    assert len(offers) == 1 and find_identifiers(texts(offers[0].body), IDENTIFIERS) == []

    harness.connector.clear()
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": case.id, **good_form(case)})
    summaries = [s for s in harness.connector.messages(chat) if "Session summary" in texts(s.body)]
    assert len(summaries) == 1 and find_identifiers(texts(summaries[0].body), IDENTIFIERS) == []
