"""Every scheduling card in its variants passes the Adaptive Card 1.5 schema; the attendance card
shows each answer; the email HTML names no child and escapes what people typed."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime

from cards.schedule import (
    Preparation,
    attendance_card,
    cancelled_card,
    invitation_card,
    invitation_html,
    manage_card,
    message_card,
    scheduled_card,
    scheduling_card,
)
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.lifecycle import Event, apply
from supervision.models import Invitee, InviteStatus
from supervision.profile import load_preset
from supervision.scheduling import Interval, Proposals, ScheduleRecord
from tests.test_schedule_domain import make_assigned_case

T = Catalogue("en")
BOLTON = load_preset("bolton")
PREP = Preparation(12, date(2026, 1, 13), 3)


def scheduled_case():
    clock = FixedClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    case = make_assigned_case(clock)
    apply(case, Event.SCHEDULE, actor="user-id-2", clock=clock)
    case.session.starts_at = datetime(2026, 1, 28, 10, tzinfo=UTC)
    case.session.ends_at = datetime(2026, 1, 28, 11, 30, tzinfo=UTC)
    case.session.join_url = "https://teams.microsoft.com/l/meetup-join/x"
    case.session.late_reason = "GP on leave"
    return case


def test_scheduling_card_variants(validate_card):
    case = make_assigned_case(FixedClock(datetime(2026, 1, 5, 9, tzinfo=UTC)))
    slot = Interval(datetime(2026, 1, 20, 9, tzinfo=UTC), datetime(2026, 1, 20, 10, 30, tzinfo=UTC))
    with_slots = scheduling_card(T, case, BOLTON, Proposals((slot,), case.session_due, True))
    validate_card(with_slots)
    assert "Tue 20 Jan 2026, 09:00" in json.dumps(with_slots)
    none = scheduling_card(T, case, BOLTON, Proposals((), case.session_due, False), errors=["Please check"],
                           values={"slot": "typed", "session_date": "2026-02-02", "late_reason": "Leave"})
    validate_card(none)
    text = json.dumps(none)
    assert "no free office time" in text and "2026-02-02" in text and "Leave" in text and "Please check" in text
    assert "join_url" not in text                                   # Graph makes the meeting: nothing to ask
    offline = scheduling_card(T, case, BOLTON, Proposals((slot,), case.session_due, False), ask_join_url=True,
                              values={"join_url": "https://teams.microsoft.com/l/meetup-join/typed"})
    validate_card(offline)
    link = next(i for i in offline["body"] if i.get("id") == "join_url")
    assert link["label"] == T("schedule.join_url_label") and link["value"].endswith("/typed")


def test_manage_scheduled_cancelled_and_message_cards(validate_card):
    case = scheduled_case()
    manage = manage_card(T, case, BOLTON)
    validate_card(manage)
    assert {i.get("id"): i.get("value") for i in manage["body"] if i.get("id")}["session_time"] == "10:00"
    done = scheduled_card(T, case)
    validate_card(done)
    assert any(a["type"] == "Action.OpenUrl" for a in done["actions"]) and "GP on leave" in json.dumps(done)
    validate_card(cancelled_card(T, case, "Wed 28 Jan 2026, 10:00", "Moved away"))
    validate_card(message_card("Title", "Body"))


def test_invitation_card_answered_and_rescheduled(validate_card):
    case = scheduled_case()
    patti = case.request.invitees[0]
    patti.status, patti.delegated_authority = InviteStatus.CONFIRMED, True
    card = invitation_card(T, case, BOLTON, patti, PREP, ics_url="https://bot.example/downloads/x",
                           rescheduled_reason="Room clash")
    validate_card(card)
    text = json.dumps(card)
    assert "delegated authority from your agency" in text and "Room clash" in text and "Tue 13 Jan 2026" in text
    assert [a["title"] for a in card["actions"] if a["type"] == "Action.OpenUrl"] == \
        [T("schedule.join"), T("schedule.ics_link")]


def test_attendance_card_shows_every_answer(validate_card):
    case = scheduled_case()
    patti, quentin, yolanda = case.request.invitees
    patti.status = InviteStatus.CONFIRMED
    quentin.status, quentin.decline_reason, quentin.suggested_colleague = InviteStatus.DECLINED, "Court", "DC Example"
    yolanda.status = InviteStatus.INVITED
    case.request.invitees.append(Invitee(agency="Housing", name="Una Sent", email="una@example.com"))
    record = ScheduleRecord(case_id=case.id, emailed=["quentin@other-tenant.example.org"],
                            unreached=["yolanda@example.com"])
    card = attendance_card(T, case, BOLTON, record)
    validate_card(card)
    text = json.dumps(card)
    for shown in ("Attending", "Declined", "No answer yet", "Not invited yet", "Court", "DC Example",
                  "invited by email", "could not be reached", "1 attending (0 with delegated authority), 1 declined, "
                  "1 not answered yet. Maximum 12."):
        assert shown in text, shown
    assert "Zebedee" not in text


def test_invitation_email_names_no_child_and_escapes_input():
    case = scheduled_case()
    case.facilitators[0].name = "Adele <b>Vance</b>"
    html = invitation_html(T, case, BOLTON, case.request.invitees[1], PREP)
    assert "Zebedee" not in html and "Synthetic Street" not in html
    assert "&lt;b&gt;Vance&lt;/b&gt;" in html and "<b>Vance</b>" not in html
    assert case.session.join_url in html and case.reference in html
    cancelled = invitation_html(T, case, BOLTON, case.request.invitees[1], PREP, cancelled_reason="Moved")
    assert "Moved" in cancelled and "cancelled" in cancelled
