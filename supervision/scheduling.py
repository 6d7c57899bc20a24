"""Scheduling the session and the team's answers to the invitation.

Slots are proposed before the case's deadline, on the profile's working days (nation calendar and
local closures) within its office hours, leaving out times when the facilitators or invitees are
busy where a ``FreeBusy`` port can tell. A facilitator may type another date and time; a date past
the deadline needs a recorded reason. Scheduling, rescheduling and cancelling go through the
lifecycle, are audited, publish ``session.scheduled`` / ``session.rescheduled`` /
``session.cancelled``, and create, update or cancel the calendar event through a ``CalendarGateway``
(Microsoft Graph, or the offline default that only keeps the date).

Per-feature data that is not part of the case (the iCalendar UID and sequence, the activity ids of
the cards to update in place, who was invited by email) lives in the ``schedule`` collection.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from supervision.calendar import WorkingCalendar
from supervision.catalogue import Catalogue
from supervision.clock import UK, Clock, as_utc, uk_local
from supervision.codec import from_data, to_data
from supervision.errors import DomainError, FieldError, Forbidden, NotFound, ValidationFailed, VersionConflict
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState, FacilitatorAssignment, Invitee, InviteStatus, Role
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.profile import Profile
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action, Actor, authorize

SCHEDULE_COLLECTION = "schedule"
SLOT_STEP_MINUTES = 30
MAX_PROPOSALS = 6
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A span of time, both ends aware and in UTC."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Attendee:
    name: str
    email: str


@dataclass(frozen=True)
class Meeting:
    """What the calendar needs to know. No child or family identifiers: calendars and mail leave
    personal chat, so the subject and body name the case by its reference only."""

    uid: str
    sequence: int
    subject: str
    description: str
    starts_at: datetime
    ends_at: datetime
    organiser: Attendee
    attendees: tuple[Attendee, ...]
    join_url: str = ""
    cancelled: bool = False


@dataclass(frozen=True)
class EventRef:
    event_id: str
    join_url: str = ""
    ical_uid: str = ""


@dataclass(frozen=True)
class MailAttachment:
    name: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Mail:
    to: tuple[Attendee, ...]
    subject: str
    html: str
    attachments: tuple[MailAttachment, ...] = ()


class CalendarUnavailable(DomainError):
    """The calendar service failed and kept failing after bounded retries. Nothing was changed."""

    key = "schedule.error.calendar"

    def __init__(self, operation: str, detail: str = "", *, status: int = 0, attempts: int = 1) -> None:
        super().__init__(f"{operation} failed: {detail}", operation=operation, status=status, attempts=attempts)
        self.operation, self.status, self.attempts = operation, status, attempts


@runtime_checkable
class FreeBusy(Protocol):
    async def find_busy(self, emails: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Interval]]:
        """Busy intervals per email address between ``start`` and ``end`` (UTC)."""
        ...


class CalendarGateway(Protocol):
    """Create, update and cancel the calendar event (with a Teams meeting when online), find
    free/busy and send mail. ``online`` is False for the offline default: no Teams meeting, no mail."""

    online: bool

    async def create_event(self, meeting: Meeting) -> EventRef: ...

    async def update_event(self, event_id: str, meeting: Meeting) -> EventRef: ...

    async def cancel_event(self, event_id: str, comment: str) -> None: ...

    async def send_mail(self, mail: Mail) -> None: ...


class OfflineCalendar:
    """The embedded default: keeps the date with the case and nothing else. Invitations carry an
    .ics file instead of a calendar event; email cannot be sent."""

    online = False

    async def create_event(self, meeting: Meeting) -> EventRef:
        return EventRef(event_id="", join_url="", ical_uid=meeting.uid)

    async def update_event(self, event_id: str, meeting: Meeting) -> EventRef:
        return EventRef(event_id=event_id, join_url=meeting.join_url, ical_uid=meeting.uid)

    async def cancel_event(self, event_id: str, comment: str) -> None:
        return None

    async def send_mail(self, mail: Mail) -> None:
        raise CalendarUnavailable("send_mail", "no mail service is configured (Graph is not set up)")


# --- stored per-feature data -------------------------------------------------------------------
@dataclass
class CardRef:
    user_id: str = ""
    activity_id: str = ""


@dataclass
class ScheduleRecord:
    case_id: str
    ical_uid: str = ""
    sequence: int = 0
    scheduling_cards: list[CardRef] = field(default_factory=list)
    attendance_cards: list[CardRef] = field(default_factory=list)
    invitation_cards: dict[str, CardRef] = field(default_factory=dict)   # by invitee email
    emailed: list[str] = field(default_factory=list)                      # invitee emails sent by mail
    unreached: list[str] = field(default_factory=list)                    # invitee emails we could not reach


class ScheduleRecords:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def get(self, case_id: str) -> ScheduleRecord:
        stored = await self.store.get(SCHEDULE_COLLECTION, case_id)
        return from_data(ScheduleRecord, stored.data) if stored else ScheduleRecord(case_id=case_id)

    async def update(self, case_id: str, change: Callable[[ScheduleRecord], None]) -> ScheduleRecord:
        for _ in range(20):
            stored = await self.store.get(SCHEDULE_COLLECTION, case_id)
            record = from_data(ScheduleRecord, stored.data) if stored else ScheduleRecord(case_id=case_id)
            change(record)
            try:
                if stored:
                    await self.store.put(SCHEDULE_COLLECTION, case_id, to_data(record), etag=stored.etag)
                else:
                    await self.store.put(SCHEDULE_COLLECTION, case_id, to_data(record), create_only=True)
                return record
            except VersionConflict:
                continue
        raise VersionConflict(f"schedule record {case_id} kept changing")


# --- finding a time ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Proposals:
    slots: tuple[Interval, ...]
    deadline: date | None
    free_busy_used: bool
    free_busy_failed: bool = False


def office_slots(profile: Profile, calendar: WorkingCalendar, first_day: date, last_day: date,
                 not_before: datetime) -> list[Interval]:
    """Every session-length slot on working days in [first_day, last_day] within office hours,
    starting at half-hour steps, that starts after ``not_before``."""
    t = profile.timescales
    length = timedelta(minutes=t.session_length_minutes)
    found: list[Interval] = []
    day = first_day
    while day <= last_day:
        if calendar.is_working_day(day):
            start = datetime.combine(day, time(t.office_hours_start), UK)
            close = datetime.combine(day, time(0), UK) + timedelta(hours=t.office_hours_end)
            while start + length <= close:
                utc_start = start.astimezone(UTC)
                if utc_start > not_before:
                    found.append(Interval(utc_start, utc_start + length))
                start += timedelta(minutes=SLOT_STEP_MINUTES)
        day += timedelta(days=1)
    return found


def pick_spread(slots: Sequence[Interval], count: int = MAX_PROPOSALS) -> list[Interval]:
    """Up to ``count`` slots spread over as many days as possible: the earliest free slot of each
    day first, then an afternoon slot of each day, and so on."""
    by_day: dict[date, list[Interval]] = {}
    for slot in slots:
        by_day.setdefault(uk_local(slot.start).date(), []).append(slot)
    picked: list[Interval] = []
    round_ = 0
    while len(picked) < count and any(len(v) > round_ for v in by_day.values()):
        for day in sorted(by_day):
            day_slots = by_day[day]
            if round_ == 0:
                candidate = day_slots[0]
            else:
                # later rounds: the slot furthest from those already picked that day
                taken = [s for s in picked if uk_local(s.start).date() == day]
                free = [s for s in day_slots if s not in taken and not any(s.overlaps(t) for t in taken)]
                if not free:
                    continue
                candidate = max(free, key=lambda s: min(abs((s.start - t.start).total_seconds()) for t in taken))
            if candidate not in picked:
                picked.append(candidate)
            if len(picked) >= count:
                break
        round_ += 1
    return sorted(picked, key=lambda s: s.start)


def propose(profile: Profile, calendar: WorkingCalendar, now: datetime, deadline: date | None,
            busy: Sequence[Interval] = (), count: int = MAX_PROPOSALS) -> list[Interval]:
    """Free office slots before the deadline, leaving time for chronologies where the deadline allows."""
    today = uk_local(now).date()
    last = deadline or calendar.add_working_days(today, profile.timescales.agreement_to_session_working_days)
    tomorrow = calendar.add_working_days(today, 1)
    preferred_first = calendar.add_working_days(today, profile.timescales.chronology_due_working_days_before + 1)
    for first in (preferred_first, tomorrow):
        if first > last:
            continue
        free = [s for s in office_slots(profile, calendar, first, last, now)
                if not any(s.overlaps(b) for b in busy)]
        if free:
            return pick_spread(free, count)
    return []


def parse_typed_start(date_text: str, time_text: str, *, now: datetime, calendar: WorkingCalendar,
                      date_field: str = "session_date", time_field: str = "session_time") -> datetime:
    """A date (YYYY-MM-DD) and a UK wall-clock time (HH:MM) typed in, as a UTC instant."""
    errors: list[FieldError] = []
    day: date | None = None
    clock_time: time | None = None
    try:
        day = date.fromisoformat(date_text.strip())
    except ValueError:
        errors.append(FieldError(date_field, "schedule.error.date_format"))
    raw_time = time_text.strip()
    try:
        clock_time = time.fromisoformat(raw_time[:5] if len(raw_time) >= 5 else raw_time)
    except ValueError:
        errors.append(FieldError(time_field, "schedule.error.time_format"))
    if errors:
        raise ValidationFailed(errors)
    assert day is not None and clock_time is not None
    local = datetime.combine(day, clock_time.replace(second=0, microsecond=0), UK)
    # a wall-clock time that does not exist (inside the spring-forward gap) does not round-trip
    if local.astimezone(UTC).astimezone(UK).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValidationFailed([FieldError(time_field, "schedule.error.time_gap")])
    starts = local.astimezone(UTC)
    if starts <= now:
        raise ValidationFailed([FieldError(date_field, "schedule.error.in_past")])
    if not calendar.is_working_day(day):
        raise ValidationFailed([FieldError(date_field, "schedule.error.not_working_day")])
    return starts


def parse_slot(value: str, *, now: datetime, calendar: WorkingCalendar, field_name: str = "slot") -> datetime:
    try:
        starts = datetime.fromisoformat(value)
        starts = as_utc(starts)
    except (ValueError, TypeError):
        raise ValidationFailed([FieldError(field_name, "schedule.error.slot")]) from None
    if starts <= now:
        raise ValidationFailed([FieldError(field_name, "schedule.error.in_past")])
    if not calendar.is_working_day(uk_local(starts).date()):
        raise ValidationFailed([FieldError(field_name, "schedule.error.not_working_day")])
    return starts


# --- attendance --------------------------------------------------------------------------------
class Response(StrEnum):
    CONFIRM = "confirm"
    AUTHORITY = "authority"     # confirm attendance with delegated authority from their agency
    DECLINE = "decline"


class AttendanceStatus(StrEnum):
    CONFIRMED = "confirmed"
    AUTHORITY = "authority"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    NOT_INVITED = "not_invited"


def attendance_status(invitee: Invitee) -> AttendanceStatus:
    if invitee.status == InviteStatus.CONFIRMED:
        return AttendanceStatus.AUTHORITY if invitee.delegated_authority else AttendanceStatus.CONFIRMED
    if invitee.status == InviteStatus.DECLINED:
        return AttendanceStatus.DECLINED
    if invitee.status == InviteStatus.INVITED:
        return AttendanceStatus.NO_ANSWER
    return AttendanceStatus.NOT_INVITED


def confirmed_count(case: Case) -> int:
    return sum(1 for i in case.request.invitees if i.status == InviteStatus.CONFIRMED)


def lead_facilitator(case: Case) -> FacilitatorAssignment | None:
    for facilitator in case.facilitators:
        if facilitator.lead:
            return facilitator
    return case.facilitators[0] if case.facilitators else None


def is_lead_facilitator(actor: Actor, case: Case) -> bool:
    lead = lead_facilitator(case)
    keys = {k.lower() for k in (actor.user_id, actor.email, actor.aad_object_id) if k}
    return lead is not None and bool(keys & ({lead.user_id.lower(), lead.email.lower()} - {""}))


def find_invitee(case: Case, actor: Actor) -> Invitee | None:
    keys = {k.lower() for k in (actor.user_id, actor.email, actor.aad_object_id) if k}
    for invitee in case.request.invitees:
        if keys & ({invitee.user_id.lower(), invitee.email.lower()} - {""}):
            return invitee
    return None


# --- the use cases -----------------------------------------------------------------------------
SCHEDULABLE = (CaseState.FACILITATORS_ASSIGNED,)
RESCHEDULABLE = (CaseState.SCHEDULED, CaseState.PRE_SESSION)


class Scheduling:
    def __init__(self, *, cases: CaseRepository, audit: AuditLog, events: EventSink, clock: Clock,
                 store: DocumentStore, gateway: CalendarGateway, free_busy: FreeBusy | None,
                 profile_for: Callable[[Case], Profile], calendar_for: Callable[[Profile], WorkingCalendar],
                 language: str = "en") -> None:
        self.cases, self.audit, self.events, self.clock = cases, audit, events, clock
        self.records = ScheduleRecords(store)
        self.gateway, self.free_busy = gateway, free_busy
        self.profile_for, self.calendar_for = profile_for, calendar_for
        self.t = Catalogue.for_language(language)

    # authorisation ---------------------------------------------------------------------------
    async def _authorize_lead(self, actor: Actor, case: Case, what: str) -> None:
        try:
            roles = authorize(actor, Action.SCHEDULE, case)
            if Role.COORDINATOR not in roles and not is_lead_facilitator(actor, case):
                raise Forbidden("only the lead facilitator schedules", key="schedule.error.not_lead")
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=what, case_id=case.id,
                                    what="refused", why="not the lead facilitator or a coordinator", allowed=False)
            raise

    async def open_for_scheduling(self, actor: Actor, case_id: str) -> Case:
        """The case, for the lead facilitator's scheduling card (audited read)."""
        case = await self.cases.require(case_id)
        await self._authorize_lead(actor, case, "schedule.view")
        await self.audit.record(actor=actor.audit_name, action="schedule.view", case_id=case.id,
                                what="scheduling card", why="to choose a date for the session")
        return case

    # proposals -------------------------------------------------------------------------------
    async def proposals(self, case: Case) -> Proposals:
        profile = self.profile_for(case)
        calendar = self.calendar_for(profile)
        now = self.clock.now()
        deadline = case.session_due
        busy: list[Interval] = []
        used = failed = False
        if self.free_busy is not None:
            emails = sorted({f.email for f in case.facilitators if f.email} |
                            {i.email for i in case.request.invitees if i.email and not i.federated})
            last = deadline or calendar.add_working_days(uk_local(now).date(), 15)
            window_end = datetime.combine(last + timedelta(days=1), time(0), UK).astimezone(UTC)
            if emails:
                try:
                    found = await self.free_busy.find_busy(emails, now, window_end)
                    busy = [b for intervals in found.values() for b in intervals]
                    used = True
                except CalendarUnavailable:
                    failed = True
        slots = propose(profile, calendar, now, deadline, busy)
        return Proposals(tuple(slots), deadline, used, failed)

    # scheduling ------------------------------------------------------------------------------
    def _check_late(self, case: Case, starts_at: datetime, reason: str) -> str:
        reason = reason.strip()
        if case.session_due and uk_local(starts_at).date() > case.session_due and not reason:
            raise ValidationFailed([FieldError("late_reason", "schedule.error.late_reason",
                                               due=case.session_due.strftime("%a %d %b %Y"))])
        if case.session_due and uk_local(starts_at).date() <= case.session_due:
            return ""
        return reason

    def _meeting(self, case: Case, record: ScheduleRecord, starts_at: datetime, join_url: str = "",
                 cancelled: bool = False) -> Meeting:
        profile = self.profile_for(case)
        lead = lead_facilitator(case)
        attendees = [Attendee(f.name, f.email) for f in case.facilitators if f.email]
        attendees += [Attendee(i.name, i.email) for i in case.request.invitees
                      if i.email and i.status != InviteStatus.DECLINED]
        seen: set[str] = set()
        unique = []
        for a in attendees:
            if a.email.lower() not in seen:
                seen.add(a.email.lower())
                unique.append(a)
        uid = record.ical_uid or f"{case.id}-{case.session.number}@group-supervision.invalid"
        return Meeting(
            uid=uid, sequence=record.sequence,
            subject=self.t("schedule.meeting.subject", process=profile.process_name, reference=case.reference),
            description=self.t("schedule.meeting.description", process=profile.process_name,
                               reference=case.reference),
            starts_at=starts_at, ends_at=starts_at + timedelta(minutes=profile.timescales.session_length_minutes),
            organiser=Attendee(lead.name, lead.email) if lead else Attendee("", ""),
            attendees=tuple(unique), join_url=join_url, cancelled=cancelled)

    async def schedule(self, actor: Actor, case_id: str, starts_at: datetime, reason: str = "",
                       join_url: str = "") -> Case:
        """``join_url``: offline (no Graph), the link of a Teams meeting the facilitator made, so the
        invitations carry it and Teams' meeting-end event finds the case; Graph's own link wins."""
        case = await self.cases.require(case_id)
        await self._authorize_lead(actor, case, "session.schedule")
        if case.state not in SCHEDULABLE:
            raise_illegal(case, Event.SCHEDULE)
        late_reason = self._check_late(case, starts_at, reason)
        join_url = check_join_url(join_url)
        record = await self.records.get(case_id)
        meeting = self._meeting(case, record, starts_at, join_url)
        ref = await self.gateway.create_event(meeting)      # CalendarUnavailable: nothing changed

        def change(c: Case) -> None:
            if c.state not in SCHEDULABLE:
                raise_illegal(c, Event.SCHEDULE)
            apply(c, Event.SCHEDULE, actor=actor.audit_name, clock=self.clock, reason=late_reason)
            c.session.starts_at, c.session.ends_at = meeting.starts_at, meeting.ends_at
            c.session.graph_event_id, c.session.join_url = ref.event_id, ref.join_url or join_url
            c.session.late_reason = late_reason
            for invitee in c.request.invitees:
                if invitee.status == InviteStatus.NOT_SENT:
                    invitee.status = InviteStatus.INVITED

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="session.schedule", case_id=case_id,
            what=f"session set for {starts_at.isoformat()}", why=late_reason or "within the deadline"))
        await self.records.update(case_id, lambda r: _set_uid(r, ref.ical_uid or meeting.uid, 0))
        await self._publish("session.scheduled", case, actor, late_reason)
        return case

    async def reschedule(self, actor: Actor, case_id: str, starts_at: datetime, reason: str) -> Case:
        case = await self.cases.require(case_id)
        await self._authorize_lead(actor, case, "session.reschedule")
        if case.state not in RESCHEDULABLE:
            raise_illegal(case, Event.RESCHEDULE)
        if not reason.strip():
            raise ValidationFailed([FieldError("reason", "schedule.error.reason_needed")])
        late_reason = self._check_late(case, starts_at, reason)
        record = await self.records.get(case_id)
        meeting = self._meeting(case, record, starts_at, case.session.join_url)
        meeting = _with_sequence(meeting, record.sequence + 1)
        if case.session.graph_event_id:
            ref = await self.gateway.update_event(case.session.graph_event_id, meeting)
        else:
            ref = await self.gateway.create_event(meeting) if self.gateway.online else \
                EventRef("", "", meeting.uid)

        def change(c: Case) -> None:
            if c.state not in RESCHEDULABLE:
                raise_illegal(c, Event.RESCHEDULE)
            apply(c, Event.RESCHEDULE, actor=actor.audit_name, clock=self.clock, reason=reason.strip())
            c.session.starts_at, c.session.ends_at = meeting.starts_at, meeting.ends_at
            c.session.graph_event_id = ref.event_id or c.session.graph_event_id
            c.session.join_url = ref.join_url or c.session.join_url
            c.session.late_reason = late_reason
            for invitee in c.request.invitees:      # a new date needs a new answer
                if invitee.status != InviteStatus.NOT_SENT:
                    invitee.status, invitee.responded_at = InviteStatus.INVITED, None
                    invitee.delegated_authority = False
                    invitee.decline_reason = invitee.suggested_colleague = ""

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="session.reschedule", case_id=case_id,
            what=f"session moved to {starts_at.isoformat()}", why=reason.strip()))
        await self.records.update(case_id, lambda r: _set_uid(r, r.ical_uid or ref.ical_uid or meeting.uid,
                                                              r.sequence + 1))
        await self._publish("session.rescheduled", case, actor, late_reason, reason=reason.strip())
        return case

    async def cancel(self, actor: Actor, case_id: str, reason: str) -> Case:
        case = await self.cases.require(case_id)
        await self._authorize_lead(actor, case, "session.cancel")
        if case.state not in (*SCHEDULABLE, *RESCHEDULABLE):
            raise_illegal(case, Event.CANCEL)
        if not reason.strip():
            raise ValidationFailed([FieldError("reason", "schedule.error.reason_needed")])
        if case.session.graph_event_id:
            await self.gateway.cancel_event(case.session.graph_event_id, reason.strip())

        def change(c: Case) -> None:
            apply(c, Event.CANCEL, actor=actor.audit_name, clock=self.clock, reason=reason.strip())

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="session.cancel", case_id=case_id, what="session cancelled",
            why=reason.strip()))
        await self.records.update(case_id, lambda r: _set_uid(r, r.ical_uid, r.sequence + 1))
        await self._publish("session.cancelled", case, actor, "", reason=reason.strip())
        return case

    async def meeting_for(self, case: Case) -> Meeting | None:
        """The calendar entry as it stands now (for .ics files), or None before scheduling."""
        if case.session.starts_at is None:
            return None
        record = await self.records.get(case.id)
        return self._meeting(case, record, case.session.starts_at, case.session.join_url,
                             cancelled=case.state == CaseState.CANCELLED)

    async def calendar_entry(self, actor: Actor, case_id: str) -> Meeting:
        """The .ics content for a member of the case (audited; refusals too)."""
        case = await self.cases.require(case_id)
        try:
            authorize(actor, Action.VIEW_CASE, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action="schedule.ics", case_id=case_id,
                                    what="refused", why="not a member of the case", allowed=False)
            raise
        meeting = await self.meeting_for(case)
        if meeting is None:
            raise NotFound("not scheduled", case_id=case_id)
        await self.audit.record(actor=actor.audit_name, action="schedule.ics", case_id=case_id,
                                what="calendar file", why="to add the session to a calendar")
        return meeting

    async def _publish(self, kind: str, case: Case, actor: Actor, late_reason: str, reason: str = "") -> None:
        session = case.session
        await self.events.publish(DomainEvent(
            kind=kind, case_id=case.id, at=self.clock.now(),
            data={"starts_at": session.starts_at.isoformat() if session.starts_at else "",
                  "ends_at": session.ends_at.isoformat() if session.ends_at else "",
                  "join_url": session.join_url, "late_reason": late_reason, "reason": reason,
                  "by": actor.audit_name, "by_name": actor.name},
            idempotency_key=f"{case.id}:{kind}:{case.version}"))

    # attendance ------------------------------------------------------------------------------
    async def respond(self, actor: Actor, case_id: str, response: Response, reason: str = "",
                      colleague: str = "") -> tuple[Case, Invitee]:
        case = await self.cases.require(case_id)
        try:
            authorize(actor, Action.RESPOND_INVITATION, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action="invitation.respond", case_id=case_id,
                                    what="refused", why="not an invitee", allowed=False)
            raise
        if case.state not in RESCHEDULABLE:
            raise DomainError("not open", key="schedule.error.not_open")
        reason, colleague = reason.strip(), colleague.strip()
        if response == Response.DECLINE and not reason:
            raise ValidationFailed([FieldError("decline_reason", "schedule.error.decline_reason")])
        max_attendees = self.profile_for(case).max_attendees

        def change(c: Case) -> Invitee:
            invitee = find_invitee(c, actor)
            if invitee is None:
                raise Forbidden("not an invitee", key="error.forbidden", needed="invitee")
            if response in (Response.CONFIRM, Response.AUTHORITY):
                already = invitee.status == InviteStatus.CONFIRMED
                if not already and confirmed_count(c) >= max_attendees:
                    raise DomainError("full", key="schedule.error.full", max=max_attendees)
                invitee.status = InviteStatus.CONFIRMED
                invitee.delegated_authority = response == Response.AUTHORITY or \
                    (already and invitee.delegated_authority)
                invitee.decline_reason = invitee.suggested_colleague = ""
            else:
                invitee.status = InviteStatus.DECLINED
                invitee.delegated_authority = False
                invitee.decline_reason, invitee.suggested_colleague = reason, colleague
            invitee.responded_at = self.clock.now()
            if not invitee.user_id and actor.user_id:
                invitee.user_id = actor.user_id
            return invitee

        case, invitee = await self.cases.update(case_id, change, audit=lambda case, invitee: self.audit.entry(
            actor=actor.audit_name, action="invitation.respond", case_id=case_id,
            what=response.value, why=reason))
        return case, invitee

    async def view_invitation(self, actor: Actor, case_id: str) -> Case:
        case = await self.cases.require(case_id)
        try:
            authorize(actor, Action.RESPOND_INVITATION, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action="invitation.view", case_id=case_id,
                                    what="refused", why="not an invitee", allowed=False)
            raise
        await self.audit.record(actor=actor.audit_name, action="invitation.view", case_id=case_id,
                                what="invitation", why="invitee reading the invitation")
        return case

    # delivery --------------------------------------------------------------------------------
    async def email_invitation(self, case: Case, invitee: Invitee, mail: Mail) -> None:
        """Send the invitation by mail (federated invitees); CalendarUnavailable when it cannot go."""
        await self.gateway.send_mail(mail)
        await self.records.update(case.id, lambda r: _add(r.emailed, invitee.email.lower()))
        await self.audit.record(actor="bot", action="invitation.email", case_id=case.id,
                                what=f"invitation emailed to {invitee.agency or 'an invitee'}",
                                why="invitee is outside the bot's reach in Teams")

    async def note_unreached(self, case_id: str, email: str) -> None:
        await self.records.update(case_id, lambda r: _add(r.unreached, email.lower()))


def _add(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def check_join_url(text: str) -> str:
    """A meeting link typed by the facilitator: empty, or an https address (else a field error)."""
    text = text.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in text) or len(text) > 2000:
        raise ValidationFailed([FieldError("join_url", "schedule.error.join_url")])
    return text


def _set_uid(record: ScheduleRecord, uid: str, sequence: int) -> None:
    record.ical_uid, record.sequence = uid, sequence


def _with_sequence(meeting: Meeting, sequence: int) -> Meeting:
    from dataclasses import replace

    return replace(meeting, sequence=sequence)


def raise_illegal(case: Case, event: Event) -> None:
    from supervision.errors import IllegalTransition

    raise IllegalTransition(f"cannot {event.value} a case that is {case.state.value}",
                            event=event.value, state=case.state.value)


def valid_email(value: str) -> bool:
    return bool(EMAIL.match(value.strip()))
