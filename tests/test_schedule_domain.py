"""The scheduling domain: slot proposals, typed dates, the late reason, lifecycle, audit, events,
attendance answers and the maximum number of attendees, against an in-memory store and fakes."""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from storage.memory import MemoryStore
from supervision.calendar import WorkingCalendar
from supervision.clock import FixedClock, uk_local
from supervision.errors import DomainError, Forbidden, IllegalTransition, ValidationFailed
from supervision.lifecycle import Deadlines, Event, apply
from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    Invitee,
    InviteStatus,
    Person,
    RequestDetails,
)
from supervision.ports import DomainEvent
from supervision.profile import load_preset
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Actor
from supervision.scheduling import (
    AttendanceStatus,
    CalendarUnavailable,
    EventRef,
    Interval,
    Mail,
    Meeting,
    OfflineCalendar,
    Response,
    Scheduling,
    attendance_status,
    office_slots,
    parse_typed_start,
    pick_spread,
    propose,
)

BOLTON = load_preset("bolton")
ADELE = Actor("user-id-2", "Adele Vance", "adelev@example.com")
ISAIAH = Actor("user-id-3", "Isaiah Langer", "isaiahl@example.com")
PATTI = Actor("user-id-4", "Patti Fernandez", "pattif@example.com")
ALEX = Actor("user-id-0", "Alex Wilber", "alexw@example.com")


def make_assigned_case(clock: FixedClock, *, case_id: str | None = None, invitees: list[Invitee] | None = None,
                       profile_id: str = "bolton", agreed_on: date | None = None) -> Case:
    """A case in FACILITATORS_ASSIGNED, built through the lifecycle, with synthetic people."""
    profile = load_preset(profile_id)
    case_id = case_id or f"case-{secrets.token_hex(4)}"
    agreed_on = agreed_on or uk_local(clock.now()).date()
    request = RequestDetails(
        requester=Person(name="Alex Wilber", email="alexw@example.com", user_id="user-id-0", organisation="School"),
        child=ChildDetails(forename="Zebedee", surname="Example", date_of_birth=date(2017, 4, 1),
                           address="1 Synthetic Street, Testtown"),
        lead_professional=Person(name="Patti Fernandez", email="pattif@example.com", user_id="user-id-4"),
        reason="Drift in the plan", invitees=invitees if invitees is not None else [
            Invitee(agency="GP", name="Patti Fernandez", role="GP", email="pattif@example.com", user_id="user-id-4"),
            Invitee(agency="Police", name="Quentin Placeholder", role="PC", email="quentin@other-tenant.example.org",
                    federated=True),
            Invitee(agency="School", name="Yolanda Sample", role="DSL", email="yolanda@example.com"),
        ])
    case = Case(id=case_id, reference=f"MAGS-BOL-260105-{case_id[-4:].upper()}", profile_id=profile.id,
                state=CaseState.REQUESTED, created_at=clock.now(), request=request)
    apply(case, Event.SUBMIT, actor="user-id-0", clock=clock)
    apply(case, Event.AGREE, actor="user-id-1", clock=clock)
    case.agreed_at = clock.now()
    case.session_due = Deadlines(profile, WorkingCalendar(profile.nation)).session_due(agreed_on)
    case.facilitators = [
        FacilitatorAssignment(name="Adele Vance", email="adelev@example.com", agency="Health", user_id="user-id-2",
                              lead=True),
        FacilitatorAssignment(name="Isaiah Langer", email="isaiahl@example.com", agency="Police", user_id="user-id-3"),
    ]
    apply(case, Event.ASSIGN_FACILITATORS, actor="user-id-1", clock=clock)
    return case


@dataclass
class RecordingSink:
    events: list[DomainEvent] = field(default_factory=list)

    async def publish(self, event: DomainEvent) -> None:
        self.events.append(event)


@dataclass
class FakeCalendar:
    """A CalendarGateway and FreeBusy that records calls and can be told to fail."""

    online: bool = True
    busy: dict[str, list[Interval]] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)

    async def create_event(self, meeting: Meeting) -> EventRef:
        self.calls.append(("create", meeting))
        if "create" in self.fail:
            raise CalendarUnavailable("create_event", "down", status=503, attempts=4)
        return EventRef("evt-1", "https://teams.microsoft.com/l/meetup-join/abc", "graph-uid-1")

    async def update_event(self, event_id: str, meeting: Meeting) -> EventRef:
        self.calls.append(("update", (event_id, meeting)))
        if "update" in self.fail:
            raise CalendarUnavailable("update_event", "down", status=429, attempts=4)
        return EventRef(event_id, "https://teams.microsoft.com/l/meetup-join/abc", "graph-uid-1")

    async def cancel_event(self, event_id: str, comment: str) -> None:
        self.calls.append(("cancel", (event_id, comment)))

    async def send_mail(self, mail: Mail) -> None:
        self.calls.append(("mail", mail))

    async def find_busy(self, emails: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Interval]]:
        self.calls.append(("busy", (tuple(emails), start, end)))
        if "busy" in self.fail:
            raise CalendarUnavailable("find_busy", "down")
        return {e: self.busy.get(e, []) for e in emails}


@pytest.fixture
def env(clock: FixedClock, store: MemoryStore):
    sink = RecordingSink()
    gateway = FakeCalendar()
    cases = CaseRepository(store)
    audit = AuditLog(store, clock)
    scheduling = Scheduling(cases=cases, audit=audit, events=sink, clock=clock, store=store, gateway=gateway,
                            free_busy=gateway, profile_for=lambda c: load_preset(c.profile_id),
                            calendar_for=lambda p: WorkingCalendar(p.nation))
    return scheduling, cases, audit, sink, gateway


# --- proposals ---------------------------------------------------------------------------------
def test_office_slots_are_on_working_days_in_office_hours_in_uk_time():
    calendar = WorkingCalendar(BOLTON.nation)
    # Thu 2026-12-24 .. Tue 2026-12-29: Christmas (Fri), the weekend and Boxing Day's substitute (Mon) are skipped
    slots = office_slots(BOLTON, calendar, date(2026, 12, 24), date(2026, 12, 29),
                         datetime(2026, 12, 1, tzinfo=UTC))
    days = sorted({uk_local(s.start).date() for s in slots})
    assert days == [date(2026, 12, 24), date(2026, 12, 29)]
    first, last = slots[0], slots[-1]
    assert uk_local(first.start).hour == 9 and uk_local(last.end).hour == 17 and uk_local(last.end).minute == 0
    assert all(s.end - s.start == timedelta(minutes=90) for s in slots)


def test_office_hours_follow_uk_clock_in_summer():
    calendar = WorkingCalendar(BOLTON.nation)
    slots = office_slots(BOLTON, calendar, date(2026, 6, 1), date(2026, 6, 1), datetime(2026, 1, 1, tzinfo=UTC))
    assert slots[0].start == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)   # 09:00 BST


def test_proposals_are_before_the_deadline_spread_over_days_and_avoid_busy_times(clock):
    case = make_assigned_case(clock)
    calendar = WorkingCalendar(BOLTON.nation)
    assert case.session_due == date(2026, 1, 26)
    all_slots = propose(BOLTON, calendar, clock.now(), case.session_due)
    assert 1 <= len(all_slots) <= 6
    days = [uk_local(s.start).date() for s in all_slots]
    assert len(set(days)) == len(days)          # one per day first
    assert all(d <= case.session_due and calendar.is_working_day(d) for d in days)
    # leave time for chronologies: not before 6 working days from today
    assert min(days) >= calendar.add_working_days(date(2026, 1, 5), 6)
    busy = [Interval(s.start - timedelta(minutes=30), s.start + timedelta(minutes=30)) for s in all_slots]
    again = propose(BOLTON, calendar, clock.now(), case.session_due, busy)
    assert again and not any(s.overlaps(b) for s in again for b in busy)


def test_pick_spread_adds_second_slots_far_from_the_first():
    calendar = WorkingCalendar(BOLTON.nation)
    slots = office_slots(BOLTON, calendar, date(2026, 2, 2), date(2026, 2, 3), datetime(2026, 1, 1, tzinfo=UTC))
    picked = pick_spread(slots, 4)
    assert len(picked) == 4
    assert [uk_local(p.start).strftime("%d %H:%M") for p in picked] == ["02 09:00", "02 15:30", "03 09:00", "03 15:30"]


def test_no_proposals_when_no_office_time_is_left(clock):
    calendar = WorkingCalendar(BOLTON.nation)
    assert propose(BOLTON, calendar, clock.now(), date(2026, 1, 5)) == []


async def test_proposals_use_free_busy_of_facilitators_and_teams_invitees(env, clock):
    scheduling, cases, _, _, gateway = env
    case = await cases.create(make_assigned_case(clock))
    free = await scheduling.proposals(case)
    first = free.slots[0]
    gateway.busy["adelev@example.com"] = [Interval(first.start, first.end)]
    busy = await scheduling.proposals(case)
    assert busy.free_busy_used and first not in busy.slots
    (_, (emails, _, _)) = [c for c in gateway.calls if c[0] == "busy"][-1]
    assert "quentin@other-tenant.example.org" not in emails            # federated: not visible
    assert {"adelev@example.com", "isaiahl@example.com", "pattif@example.com"} <= set(emails)
    gateway.fail.add("busy")
    fallback = await scheduling.proposals(case)
    assert fallback.free_busy_failed and not fallback.free_busy_used and fallback.slots == free.slots


# --- typed date and time -----------------------------------------------------------------------
def field_of(error: ValidationFailed) -> list[str]:
    return [e.field for e in error.errors]


@pytest.mark.parametrize(("day", "hour", "field_", "key"), [
    ("2026-02-30", "10:00", "session_date", "schedule.error.date_format"),
    ("tomorrow", "10:00", "session_date", "schedule.error.date_format"),
    ("2026-02-03", "25:00", "session_time", "schedule.error.time_format"),
    ("2026-01-02", "10:00", "session_date", "schedule.error.in_past"),
    ("2026-02-07", "10:00", "session_date", "schedule.error.not_working_day"),      # Saturday
    ("2026-05-04", "10:00", "session_date", "schedule.error.not_working_day"),      # early May bank holiday
])
def test_typed_date_and_time_errors_name_the_field(clock, day, hour, field_, key):
    with pytest.raises(ValidationFailed) as caught:
        parse_typed_start(day, hour, now=clock.now(), calendar=WorkingCalendar(BOLTON.nation))
    assert field_of(caught.value) == [field_] and caught.value.errors[0].key == key


def test_typed_time_is_uk_wall_clock_on_both_sides_of_the_clock_change(clock):
    calendar = WorkingCalendar(BOLTON.nation)
    assert parse_typed_start("2026-03-27", "10:00", now=clock.now(), calendar=calendar) == \
        datetime(2026, 3, 27, 10, tzinfo=UTC)
    assert parse_typed_start("2026-03-30", "10:00", now=clock.now(), calendar=calendar) == \
        datetime(2026, 3, 30, 9, tzinfo=UTC)
    assert parse_typed_start("2026-03-30", "10:00:00", now=clock.now(), calendar=calendar).minute == 0


# --- schedule, reschedule, cancel --------------------------------------------------------------
async def test_schedule_within_deadline_creates_event_moves_case_audits_and_publishes(env, clock):
    scheduling, cases, audit, sink, gateway = env
    case = await cases.create(make_assigned_case(clock))
    when = datetime(2026, 1, 20, 10, tzinfo=UTC)
    done = await scheduling.schedule(ADELE, case.id, when)
    assert done.state == CaseState.SCHEDULED
    assert done.session.starts_at == when and done.session.ends_at == when + timedelta(minutes=90)
    assert done.session.graph_event_id == "evt-1" and done.session.join_url.startswith("https://teams")
    assert all(i.status == InviteStatus.INVITED for i in done.request.invitees)
    (_, meeting) = gateway.calls[-1]
    assert isinstance(meeting, Meeting) and case.reference in meeting.subject
    assert "Zebedee" not in meeting.subject + meeting.description          # no identifiers in calendars
    assert {a.email for a in meeting.attendees} >= {"adelev@example.com", "quentin@other-tenant.example.org"}
    assert [e.kind for e in sink.events] == ["session.scheduled"]
    assert sink.events[0].data["starts_at"] == when.isoformat()
    entries = await audit.entries(case.id)
    assert any(e["action"] == "session.schedule" and e["allowed"] for e in entries)
    assert done.history[-1].event == Event.SCHEDULE.value
    record = await scheduling.records.get(case.id)
    assert record.ical_uid == "graph-uid-1" and record.sequence == 0


async def test_a_date_past_the_deadline_needs_a_recorded_reason(env, clock):
    scheduling, cases, _, sink, _ = env
    case = await cases.create(make_assigned_case(clock))
    late = datetime(2026, 1, 28, 10, tzinfo=UTC)
    with pytest.raises(ValidationFailed) as caught:
        await scheduling.schedule(ADELE, case.id, late, "  ")
    assert field_of(caught.value) == ["late_reason"]
    assert (await cases.require(case.id)).state == CaseState.FACILITATORS_ASSIGNED and not sink.events
    done = await scheduling.schedule(ADELE, case.id, late, "Lead professional on leave")
    assert done.session.late_reason == "Lead professional on leave"
    assert done.history[-1].reason == "Lead professional on leave"


async def test_only_the_lead_facilitator_or_a_coordinator_schedules_and_refusals_are_audited(env, clock):
    from supervision.models import Role

    scheduling, cases, audit, _, _ = env
    case = await cases.create(make_assigned_case(clock))
    for actor in (ISAIAH, PATTI, ALEX):
        with pytest.raises(Forbidden):
            await scheduling.schedule(actor, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    refusals = [e for e in await audit.entries(case.id) if not e["allowed"]]
    assert len(refusals) == 3
    coordinator = Actor("user-id-1", "Megan Bowen", "meganb@example.com", global_roles=frozenset({Role.COORDINATOR}))
    assert (await scheduling.schedule(coordinator, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))).state == \
        CaseState.SCHEDULED


async def test_calendar_failure_changes_nothing(env, clock):
    scheduling, cases, _, sink, gateway = env
    case = await cases.create(make_assigned_case(clock))
    gateway.fail.add("create")
    with pytest.raises(CalendarUnavailable) as caught:
        await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    assert caught.value.params["attempts"] == 4
    stored = await cases.require(case.id)
    assert stored.state == CaseState.FACILITATORS_ASSIGNED and stored.session.starts_at is None and not sink.events


async def test_schedule_twice_is_an_illegal_transition(env, clock):
    scheduling, cases, _, _, _ = env
    case = await cases.create(make_assigned_case(clock))
    await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    with pytest.raises(IllegalTransition):
        await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 21, 10, tzinfo=UTC))


async def test_reschedule_updates_the_event_resets_answers_and_bumps_the_sequence(env, clock):
    scheduling, cases, audit, sink, gateway = env
    case = await cases.create(make_assigned_case(clock))
    await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    await scheduling.respond(PATTI, case.id, Response.AUTHORITY)
    with pytest.raises(ValidationFailed) as caught:
        await scheduling.reschedule(ADELE, case.id, datetime(2026, 1, 22, 10, tzinfo=UTC), "")
    assert field_of(caught.value) == ["reason"]
    moved = await scheduling.reschedule(ADELE, case.id, datetime(2026, 1, 22, 10, tzinfo=UTC), "Room clash")
    assert moved.state == CaseState.SCHEDULED and moved.session.starts_at == datetime(2026, 1, 22, 10, tzinfo=UTC)
    kind, (event_id, meeting) = gateway.calls[-1]
    assert kind == "update" and event_id == "evt-1" and meeting.sequence == 1 and meeting.uid == "graph-uid-1"
    patti = moved.request.invitees[0]
    assert patti.status == InviteStatus.INVITED and not patti.delegated_authority
    assert sink.events[-1].kind == "session.rescheduled" and sink.events[-1].data["reason"] == "Room clash"
    assert (await scheduling.records.get(case.id)).sequence == 1
    assert any(e["action"] == "session.reschedule" and e["why"] == "Room clash" for e in await audit.entries(case.id))


async def test_cancel_cancels_the_event_and_the_case(env, clock):
    scheduling, cases, _, sink, gateway = env
    case = await cases.create(make_assigned_case(clock))
    await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    done = await scheduling.cancel(ADELE, case.id, "Family moved out of area")
    assert done.state == CaseState.CANCELLED
    assert gateway.calls[-1] == ("cancel", ("evt-1", "Family moved out of area"))
    assert sink.events[-1].kind == "session.cancelled"
    meeting = await scheduling.meeting_for(done)
    assert meeting is not None and meeting.cancelled and meeting.sequence == 1


async def test_offline_calendar_keeps_the_date_without_event_or_link(clock, store):
    sink = RecordingSink()
    scheduling = Scheduling(cases=CaseRepository(store), audit=AuditLog(store, clock), events=sink, clock=clock,
                            store=store, gateway=OfflineCalendar(), free_busy=None,
                            profile_for=lambda c: BOLTON, calendar_for=lambda p: WorkingCalendar(p.nation))
    case = await scheduling.cases.create(make_assigned_case(clock))
    proposals = await scheduling.proposals(case)
    assert proposals.slots and not proposals.free_busy_used
    done = await scheduling.schedule(ADELE, case.id, proposals.slots[0].start)
    assert done.session.starts_at == proposals.slots[0].start
    assert done.session.graph_event_id == "" and done.session.join_url == ""
    record = await scheduling.records.get(case.id)
    assert record.ical_uid.startswith(case.id)
    moved = await scheduling.reschedule(ADELE, case.id, proposals.slots[1].start, "Clash")
    assert moved.session.starts_at == proposals.slots[1].start
    with pytest.raises(CalendarUnavailable):
        await OfflineCalendar().send_mail(Mail(to=(), subject="", html=""))


async def test_offline_the_facilitators_own_teams_link_is_kept_and_checked(clock, store):
    """No Graph: the facilitator makes the Teams meeting and gives its link, so the invitations carry it
    and Teams' meeting-end event (matched by join URL) finds the case; a link that isn't one is refused."""
    scheduling = Scheduling(cases=CaseRepository(store), audit=AuditLog(store, clock), events=RecordingSink(),
                            clock=clock, store=store, gateway=OfflineCalendar(), free_busy=None,
                            profile_for=lambda c: BOLTON, calendar_for=lambda p: WorkingCalendar(p.nation))
    case = await scheduling.cases.create(make_assigned_case(clock))
    start = (await scheduling.proposals(case)).slots[0].start
    for bad in ("teams meeting tomorrow", "http://teams.microsoft.com/l/meetup-join/x", "https://"):
        with pytest.raises(ValidationFailed) as refused:
            await scheduling.schedule(ADELE, case.id, start, join_url=bad)
        assert [e.field for e in refused.value.errors] == ["join_url"]
    assert (await scheduling.cases.require(case.id)).state == CaseState.FACILITATORS_ASSIGNED   # nothing changed
    link = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_OFFLINE%40thread.v2/0"
    done = await scheduling.schedule(ADELE, case.id, start, join_url=f"  {link} ")
    assert done.session.join_url == link
    assert (await scheduling.meeting_for(done)).join_url == link            # the .ics carries it too


async def test_graphs_own_link_wins_over_a_typed_one(env, clock):
    scheduling, cases, _, _, gateway = env
    case = await cases.create(make_assigned_case(clock))
    start = (await scheduling.proposals(case)).slots[0].start
    done = await scheduling.schedule(ADELE, case.id, start, join_url="https://example.com/typed")
    assert done.session.join_url and done.session.join_url != "https://example.com/typed"


# --- attendance --------------------------------------------------------------------------------
async def test_answers_confirm_authority_decline_and_status(env, clock):
    scheduling, cases, audit, _, _ = env
    case = await cases.create(make_assigned_case(clock))
    with pytest.raises(DomainError) as not_open:
        await scheduling.respond(PATTI, case.id, Response.CONFIRM)          # not scheduled yet
    assert not_open.value.key == "schedule.error.not_open"
    await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    _, patti = await scheduling.respond(PATTI, case.id, Response.CONFIRM)
    assert attendance_status(patti) == AttendanceStatus.CONFIRMED
    _, patti = await scheduling.respond(PATTI, case.id, Response.AUTHORITY)
    assert attendance_status(patti) == AttendanceStatus.AUTHORITY
    with pytest.raises(ValidationFailed) as caught:
        await scheduling.respond(PATTI, case.id, Response.DECLINE, " ")
    assert field_of(caught.value) == ["decline_reason"]
    _, patti = await scheduling.respond(PATTI, case.id, Response.DECLINE, "Clinic that day",
                                        "Dr Synthetic Colleague (colleague@example.com)")
    assert attendance_status(patti) == AttendanceStatus.DECLINED
    assert patti.decline_reason == "Clinic that day" and patti.suggested_colleague.startswith("Dr Synthetic")
    with pytest.raises(Forbidden):
        await scheduling.respond(ADELE, case.id, Response.CONFIRM)
    actions = [e["what"] for e in await audit.entries(case.id) if e["action"] == "invitation.respond"]
    assert actions[:3] == ["confirm", "authority", "decline"]


async def test_the_profile_maximum_of_attendees_is_enforced(env, clock):
    scheduling, cases, _, _, _ = env
    people = [Invitee(agency=f"Agency {n}", name=f"Synthetic Person {n}", email=f"p{n}@example.com",
                      user_id=f"u-{n}") for n in range(BOLTON.max_attendees + 1)]
    case = await cases.create(make_assigned_case(clock, invitees=people))
    await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    for n in range(BOLTON.max_attendees):
        await scheduling.respond(Actor(f"u-{n}"), case.id, Response.CONFIRM)
    last = Actor(f"u-{BOLTON.max_attendees}")
    with pytest.raises(DomainError) as caught:
        await scheduling.respond(last, case.id, Response.CONFIRM)
    assert getattr(caught.value, "key", "") == "schedule.error.full"
    # someone already attending can still change to delegated authority
    await scheduling.respond(Actor("u-0"), case.id, Response.AUTHORITY)
    # after a decline there is room again
    await scheduling.respond(Actor("u-1"), case.id, Response.DECLINE, "Sick")
    _, invitee = await scheduling.respond(last, case.id, Response.CONFIRM)
    assert invitee.status == InviteStatus.CONFIRMED
