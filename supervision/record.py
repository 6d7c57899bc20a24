"""The session record (Bolton Appendix 4, Argyll Appendix 1, Gwent's balancing exercise, Norfolk's
further-sessions rule): a draft the facilitator fills in, validated per profile, then published.

The draft is kept as the raw form values the facilitator typed (``RecordForm``), so a refused
submission loses nothing: the card is re-sent from the same values. Publishing parses the form into a
typed ``SessionRecord``. Two publishing steps serve the two deadlines: ``send_actions`` (the actions
go out, within ``actions_within_working_days``) and ``publish`` (the full record, the minutes, within
``minutes_within_working_days``); ``publish`` also sends the actions if that was not done first.

Where the profile forbids identifiers in the record (Argyll), any free text holding the child's or a
family member's name, date of birth or address is refused, naming the field and what was found.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from supervision.calendar import WorkingCalendar
from supervision.clock import Clock, uk_datetime, uk_local, uk_today
from supervision.codec import from_data, to_data
from supervision.duework import DueWork
from supervision.errors import DomainError, FieldError, IllegalTransition, ValidationFailed
from supervision.lifecycle import Deadlines, Event, apply
from supervision.models import Case, CaseState, InviteStatus, SessionPlan, Tracked, find_identifiers, identifiers_of
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.profile import Profile
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action as Permission
from supervision.roles import Actor, authorize

RECORDS = "session_records"
RecordForm = dict[str, str]
ACTION_ROW = re.compile(r"^action_(\d{1,2})_(description|owner|due)$")
MAX_ACTION_ROWS = 40
# Free-text inputs checked for identifiers (action descriptions and model sections are added per form).
FREE_TEXT = ("meeting_identifier", "facilitators", "other_attendees", "learning_points", "other_themes",
             "escalation_issues", "escalated_to", "lead_professional", "plan_changes",
             "plan_changes_shared_by")
RECORDABLE_STATES = (CaseState.HELD, CaseState.RECORDED, CaseState.ACTIONS_DISTRIBUTED)


class RecordStatus(StrEnum):
    DRAFT = "draft"
    ACTIONS_SENT = "actions_sent"
    PUBLISHED = "published"


@dataclass
class AgreedAction:
    row: int
    description: str
    owner_email: str
    owner_name: str
    due_on: date
    item_id: str = ""


@dataclass
class SessionRecord:
    case_id: str
    session_number: int
    reference: str = ""
    meeting_identifier: str = ""
    held_on: date | None = None
    facilitators: str = ""
    attendees: list[str] = field(default_factory=list)          # "Name (Agency)" of selected attendees
    attendee_emails: list[str] = field(default_factory=list)
    other_attendees: str = ""
    learning_points: str = ""
    themes: list[str] = field(default_factory=list)
    other_themes: str = ""
    sections: dict[str, str] = field(default_factory=dict)     # reflective model section key -> text
    actions: list[AgreedAction] = field(default_factory=list)
    escalation_issues: str = ""
    escalated_to: str = ""
    lead_professional: str = ""
    further_sessions: bool = False
    further_sessions_when: date | None = None
    plan_changes: str = ""
    plan_changes_shared_by: str = ""
    review_on: date | None = None


@dataclass
class StoredRecord:
    """What the ``session_records`` collection holds for one session of one case."""
    case_id: str
    session_number: int
    status: RecordStatus = RecordStatus.DRAFT
    form: dict[str, str] = field(default_factory=dict)
    record: SessionRecord | None = None
    sent_rows: dict[str, str] = field(default_factory=dict)      # action row -> action item id
    summary_conversation_id: str = ""                          # meeting chat or channel for the summary
    summary_service_url: str = ""
    summary_posted_to: str = ""                                # where the summary went, once posted
    updated_by: str = ""
    updated_at: datetime | None = None
    actions_sent_at: datetime | None = None
    published_at: datetime | None = None
    document_key: str = ""


def record_key(case_id: str, session_number: int) -> str:
    return f"{case_id}:{session_number}"


_MEETING_THREAD = re.compile(r"19:meeting_[A-Za-z0-9_\-]+@thread\.v2")


def meeting_chat_id(join_url: str) -> str:
    """The Teams meeting chat's conversation id, which a Teams join URL carries
    (``.../meetup-join/19%3ameeting_<id>%40thread.v2/...``); "" when the URL has none."""
    from urllib.parse import unquote

    found = _MEETING_THREAD.search(unquote(unquote(join_url or "")))
    return found.group(0) if found else ""


# --- the form ----------------------------------------------------------------------------------
def shows(profile: Profile, section: str) -> bool:
    """Whether the profile's record template has this section."""
    return section in profile.record.sections


def attendee_choices(case: Case) -> list[tuple[str, str]]:
    """(title, email) of everyone who was invited; the record's attendees are chosen from these."""
    choices = []
    for invitee in case.request.invitees:
        if invitee.email:
            label = f"{invitee.name} ({invitee.agency})" if invitee.agency else invitee.name
            choices.append((label, invitee.email.lower()))
    return choices


def owner_choices(case: Case) -> list[tuple[str, str]]:
    """(name, email) of who may own an action: attendees, facilitators and the lead professional."""
    seen: dict[str, str] = {}
    for invitee in case.request.invitees:
        if invitee.email:
            seen.setdefault(invitee.email.lower(), invitee.name or invitee.email)
    for facilitator in case.facilitators:
        if facilitator.email:
            seen.setdefault(facilitator.email.lower(), facilitator.name or facilitator.email)
    lead = case.request.lead_professional
    if lead.email:
        seen.setdefault(lead.email.lower(), lead.name or lead.email)
    return [(name, email) for email, name in seen.items()]


def prefill(case: Case, profile: Profile) -> RecordForm:
    """The first draft: what the bot already knows (confirmed attendance, facilitators, dates)."""
    held = uk_local(case.session.held_at).date() if case.session.held_at else (
        uk_local(case.session.starts_at).date() if case.session.starts_at else None)
    confirmed = [i.email.lower() for i in case.request.invitees
                 if i.email and i.status == InviteStatus.CONFIRMED]
    form: RecordForm = {
        "meeting_identifier": f"{case.reference}/{case.session.number}",
        "held_on": held.isoformat() if held else "",
        "facilitators": ", ".join(f.name for f in case.facilitators),
        "attendees": ",".join(confirmed),
        "lead_professional": case.request.lead_professional.name,
        "further_sessions": "no",
    }
    return form


def action_rows(form: Mapping[str, str]) -> list[int]:
    """The action row numbers present in the form (at least the ones with any content)."""
    rows = {int(m.group(1)) for key in form if (m := ACTION_ROW.match(key))}
    count = form.get("action_rows", "")
    if count.isdigit():
        rows |= set(range(1, min(int(count), MAX_ACTION_ROWS) + 1))
    return sorted(r for r in rows if 1 <= r <= MAX_ACTION_ROWS)


def clean_form(inputs: Mapping[str, Any], profile: Profile) -> RecordForm:
    """Only the inputs the record card has, as text (unknown keys from a tampered card are dropped)."""
    allowed = {"meeting_identifier", "held_on", "facilitators", "attendees", "other_attendees",
               "learning_points", "themes", "other_themes", "escalation_issues", "escalated_to",
               "lead_professional", "further_sessions", "further_sessions_when", "plan_changes",
               "plan_changes_shared_by", "review_on", "action_rows"}
    allowed |= {f"section_{s.key}" for s in profile.model.sections}
    form: RecordForm = {}
    for key, value in inputs.items():
        if key in allowed or ACTION_ROW.match(key):
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (int, float)):
                value = str(value)
            if isinstance(value, str):
                form[key] = value.strip()
    return form


def _date(form: Mapping[str, str], name: str, errors: list[FieldError], *, required: bool) -> date | None:
    raw = form.get(name, "").strip()
    if not raw:
        if required:
            errors.append(FieldError(name, "record.error.required"))
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(FieldError(name, "record.error.date", value=raw))
        return None


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def record_identifiers(case: Case) -> list[str]:
    """``identifiers_of`` plus the other ways people write a date of birth (3/7/2015, 03.07.2015,
    03-07-2015, 3/7/15, July 3, 2015)."""
    found = set(identifiers_of(case.request))
    births = [case.request.child.date_of_birth, *(m.date_of_birth for m in case.request.family)]
    for born in (b for b in births if b):
        found |= {f"{born.day}/{born.month}/{born.year}", born.strftime("%d.%m.%Y"), born.strftime("%d-%m-%Y"),
                  f"{born.day}.{born.month}.{born.year}", f"{born.day}/{born.month}/{born:%y}",
                  born.strftime("%d/%m/%y"), f"{born:%B} {born.day}, {born.year}"}
    return sorted(found, key=len, reverse=True)


def check_identifiers(form: Mapping[str, str], case: Case, profile: Profile) -> list[FieldError]:
    """Where the profile forbids identifiers in the record: every free-text field that holds one."""
    if profile.record.child_identifiers_allowed:
        return []
    identifiers = record_identifiers(case)
    if not identifiers:
        return []
    fields = list(FREE_TEXT) + [f"section_{s.key}" for s in profile.model.sections]
    fields += [k for k in sorted(form) if (m := ACTION_ROW.match(k)) and m.group(2) == "description"]
    # a practitioner who shares a name with the family may still be named: their full name is not an identifier
    r = case.request
    practitioners = {n.strip() for n in [r.requester.name, r.lead_professional.name, *(i.name for i in r.invitees),
                                         *(f.name for f in case.facilitators)] if len(n.strip().split()) >= 2}
    practitioners -= {r.child.full_name, *(m.name for m in r.family)}
    errors = []
    for name in fields:
        value = form.get(name, "")
        for person in sorted(practitioners, key=len, reverse=True):
            value = re.sub(r"(?<![\w])" + re.escape(person) + r"(?![\w])", " ", value, flags=re.IGNORECASE)
        hits = find_identifiers(value, identifiers)
        if hits:
            errors.append(FieldError(name, "record.error.identifier", found=", ".join(hits)))
    return errors


def parse(form: Mapping[str, str], case: Case, profile: Profile, today: date, *,
          full: bool, sent_rows: Mapping[str, str] | None = None) -> SessionRecord:
    """The typed record, or ValidationFailed listing every field that needs attention.

    ``full``: the whole record (the minutes); otherwise only what sending the actions needs.
    """
    errors: list[FieldError] = list(check_identifiers(form, case, profile))
    sent_rows = sent_rows or {}
    held_on = _date(form, "held_on", errors, required=True)
    if held_on and held_on > today:
        errors.append(FieldError("held_on", "record.error.future"))
    invited = dict((email, title) for title, email in attendee_choices(case))
    chosen = [e.lower() for e in _split(form.get("attendees", ""))]
    unknown = [e for e in chosen if e not in invited]
    if unknown:
        errors.append(FieldError("attendees", "record.error.unknown_attendee", value=", ".join(unknown)))
    if not chosen and not form.get("other_attendees", "").strip():
        errors.append(FieldError("attendees", "record.error.required"))
    owners = dict((email, name) for name, email in owner_choices(case))
    actions: list[AgreedAction] = []
    for row in action_rows(form):
        description = form.get(f"action_{row}_description", "").strip()
        owner = form.get(f"action_{row}_owner", "").strip().lower()
        raw_due = form.get(f"action_{row}_due", "").strip()
        if not (description or owner or raw_due):
            continue
        if not description:
            errors.append(FieldError(f"action_{row}_description", "record.error.required"))
        if not owner:
            errors.append(FieldError(f"action_{row}_owner", "record.error.required"))
        elif owner not in owners:
            errors.append(FieldError(f"action_{row}_owner", "record.error.unknown_owner", value=owner))
        due = _date(form, f"action_{row}_due", errors, required=True)
        if due and held_on and due < held_on:
            errors.append(FieldError(f"action_{row}_due", "record.error.due_before_session"))
        if description and owner in owners and due:
            actions.append(AgreedAction(row=row, description=description, owner_email=owner,
                                        owner_name=owners[owner], due_on=due,
                                        item_id=sent_rows.get(str(row), "")))
    if not full and not actions and not sent_rows:
        errors.append(FieldError("action_1_description", "record.error.no_actions"))
    themes_all = profile.record.themes
    themes = []
    for value in _split(form.get("themes", "")):
        if value.isdigit() and int(value) < len(themes_all):
            themes.append(themes_all[int(value)])
        else:
            errors.append(FieldError("themes", "record.error.unknown_theme", value=value))
    record = SessionRecord(
        case_id=case.id, session_number=case.session.number, reference=case.reference,
        meeting_identifier=form.get("meeting_identifier", ""), held_on=held_on,
        facilitators=form.get("facilitators", ""),
        attendees=[invited[e] for e in chosen if e in invited], attendee_emails=[e for e in chosen if e in invited],
        other_attendees=form.get("other_attendees", ""), learning_points=form.get("learning_points", ""),
        themes=themes, other_themes=form.get("other_themes", ""),
        sections={s.key: form.get(f"section_{s.key}", "") for s in profile.model.sections},
        actions=actions, escalation_issues=form.get("escalation_issues", ""),
        escalated_to=form.get("escalated_to", ""), lead_professional=form.get("lead_professional", ""),
        further_sessions=form.get("further_sessions", "") == "yes",
        plan_changes=form.get("plan_changes", ""), plan_changes_shared_by=form.get("plan_changes_shared_by", ""),
    )
    if full:
        if shows(profile, "meeting_identifier") and not record.meeting_identifier:
            errors.append(FieldError("meeting_identifier", "record.error.required"))
        if not record.facilitators:
            errors.append(FieldError("facilitators", "record.error.required"))
        if shows(profile, "key_learning_points") and not record.learning_points:
            errors.append(FieldError("learning_points", "record.error.required"))
        for section in profile.model.sections:
            if not record.sections.get(section.key):
                errors.append(FieldError(f"section_{section.key}", "record.error.required"))
        if record.escalation_issues and not record.escalated_to:
            errors.append(FieldError("escalated_to", "record.error.escalated_to"))
        if shows(profile, "lead_professional") and not record.lead_professional:
            errors.append(FieldError("lead_professional", "record.error.required"))
        if shows(profile, "further_sessions"):
            answer = form.get("further_sessions", "")
            if answer not in ("yes", "no"):
                errors.append(FieldError("further_sessions", "record.error.required"))
            if answer == "yes":
                record.further_sessions_when = _date(form, "further_sessions_when", errors, required=True)
                if record.further_sessions_when and held_on and record.further_sessions_when <= held_on:
                    errors.append(FieldError("further_sessions_when", "record.error.after_session"))
        if record.plan_changes and not record.plan_changes_shared_by:
            errors.append(FieldError("plan_changes_shared_by", "record.error.shared_by"))
        if shows(profile, "review_date"):
            record.review_on = _date(form, "review_on", errors, required=True)
            if record.review_on and held_on and record.review_on <= held_on:
                errors.append(FieldError("review_on", "record.error.after_session"))
    if errors:
        raise ValidationFailed(errors)
    return record


# --- deadlines and due work --------------------------------------------------------------------
@dataclass(frozen=True)
class RecordDeadlines:
    held_on: date
    actions_due: date
    minutes_due: date


def record_deadlines(case: Case, deadlines: Deadlines) -> RecordDeadlines | None:
    if case.session.held_at is None:
        return None
    held_on = uk_local(case.session.held_at).date()
    return RecordDeadlines(held_on, deadlines.actions_due(held_on), deadlines.minutes_due(held_on))


def on_time(done_at: datetime | None, due: date) -> bool | None:
    """Whether something done at ``done_at`` (UTC) met a deadline of the end of ``due`` (UK day)."""
    if done_at is None:
        return None
    return uk_local(done_at).date() <= due


def _last_working_day_on_or_before(calendar: WorkingCalendar, day: date) -> date:
    while not calendar.is_working_day(day):
        day = date.fromordinal(day.toordinal() - 1)
    return day


def facilitator_reminders(case: Case, deadlines: Deadlines, now: datetime, hour: int = 9) -> list[DueWork]:
    """Reminders to the facilitator until the actions and the minutes are out: one working day
    before each deadline, on the day, and then every working day it is overdue. Once the deadline
    has come, only the latest overdue reminder (so a catch-up after downtime sends one, not a
    backlog) and the next working day's are offered: the next one keeps the case in the due index."""
    marks = record_deadlines(case, deadlines)
    if marks is None:
        return []
    calendar = deadlines.calendar
    today = uk_local(now).date()
    work: list[DueWork] = []
    session = case.session.number
    for what, due, done_at in (("actions", marks.actions_due, case.session.actions_distributed_at),
                               ("minutes", marks.minutes_due, case.session.minutes_done_at)):
        if done_at is not None:
            continue
        days = [calendar.subtract_working_days(due, 1), due]
        if today > due:
            days.append(_last_working_day_on_or_before(calendar, today))
        if today >= due:
            days.append(calendar.add_working_days(today, 1))
        for day in dict.fromkeys(days):
            if day <= marks.held_on:
                continue
            stage = "before" if day < due else ("due" if day == due else "overdue")
            work.append(DueWork(key=f"{case.id}:record:{what}:{session}:{day.isoformat()}",
                                kind=f"record.{what}_reminder", case_id=case.id,
                                due_at=uk_datetime(day, hour),
                                data={"session": session, "due": due.isoformat(), "stage": stage}))
    return work


REVIEW_KIND = "record_review"      # Case.tracked: the review date agreed in a published record


def review_tracked(session: int, review_on: date, now: datetime) -> Tracked:
    return Tracked(id=f"review-s{session}", kind=REVIEW_KIND, due_on=review_on, since=now)


def review_work(case: Case, calendar: WorkingCalendar, hour: int = 9) -> list[DueWork]:
    """The facilitators are reminded on the review date agreed in the record (the working day
    before, when it is not a working day), once; after downtime the reminder comes late, once."""
    work = []
    for tracked in case.tracked:
        if tracked.kind != REVIEW_KIND or tracked.status != "open" or tracked.due_on is None:
            continue
        day = _last_working_day_on_or_before(calendar, tracked.due_on)
        work.append(DueWork(key=f"{case.id}:record:review:{tracked.id}:{tracked.due_on.isoformat()}",
                            kind="record.review_due", case_id=case.id, due_at=uk_datetime(day, hour),
                            data={"item": tracked.id, "due": tracked.due_on.isoformat()}))
    return work


# --- the use case ------------------------------------------------------------------------------
@dataclass
class PublishResult:
    case: Case
    stored: StoredRecord
    record: SessionRecord
    new_item_ids: list[str]
    full: bool
    further_session_started: bool = False


ActionCreator = Callable[[Case, SessionRecord, Actor], Awaitable[dict[str, str]]]
TrackerWriter = Callable[[Case, SessionRecord, Profile], Awaitable[None]]


class RecordSessions:
    """Open, save, send actions and publish a session record. Refusals are audited."""

    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 events: EventSink, profiles: Mapping[str, Profile],
                 deadlines: Callable[[Profile], Deadlines], default_profile: str) -> None:
        self.store, self.cases, self.audit, self.clock, self.events = store, cases, audit, clock, events
        self.profiles, self.deadlines, self.default_profile = profiles, deadlines, default_profile
        self.create_actions: ActionCreator | None = None   # set by the action items feature
        self.write_tracker: TrackerWriter | None = None    # set by the partnership log feature

    def profile_of(self, case: Case) -> Profile:
        return self.profiles.get(case.profile_id) or self.profiles[self.default_profile]

    async def _authorize(self, actor: Actor, case: Case, what: str) -> None:
        try:
            authorize(actor, Permission.RECORD_SESSION, case)
        except DomainError:
            await self.audit.record(actor=actor.audit_name, action="record.refused", case_id=case.id,
                                    what=what, why="not a facilitator of this case", allowed=False)
            raise

    async def get_stored(self, case_id: str, session_number: int) -> StoredRecord | None:
        stored = await self.store.get(RECORDS, record_key(case_id, session_number))
        return from_data(StoredRecord, stored.data) if stored else None

    async def _put(self, doc: StoredRecord) -> None:
        await self.store.put(RECORDS, record_key(doc.case_id, doc.session_number), to_data(doc))

    async def open(self, actor: Actor, case_id: str) -> tuple[Case, StoredRecord]:
        """The facilitator's draft (prefilled the first time)."""
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, "open the session record")
        if case.state not in RECORDABLE_STATES:
            raise IllegalTransition(f"cannot record a case that is {case.state.value}",
                                    key="record.error.not_held", state=case.state.value)
        doc = await self.get_stored(case.id, case.session.number)
        if doc is None:
            doc = StoredRecord(case_id=case.id, session_number=case.session.number,
                               form=prefill(case, self.profile_of(case)),
                               updated_by=actor.audit_name, updated_at=self.clock.now())
            await self._put(doc)
        await self.audit.record(actor=actor.audit_name, action="record.open", case_id=case.id,
                                what=f"session {case.session.number} record draft", why="record the session")
        return case, doc

    async def summary_posted(self, case_id: str, session_number: int, conversation_id: str) -> None:
        doc = await self.get_stored(case_id, session_number)
        if doc is not None:
            doc.summary_posted_to = conversation_id
            await self._put(doc)

    async def remember_summary_target(self, case_id: str, conversation_id: str, service_url: str = "") -> None:
        """Where the summary card goes: the meeting chat or channel the session was held from."""
        case = await self.cases.require(case_id)
        doc = await self.get_stored(case.id, case.session.number) or StoredRecord(
            case_id=case.id, session_number=case.session.number, form=prefill(case, self.profile_of(case)))
        if doc.summary_conversation_id != conversation_id:
            doc.summary_conversation_id, doc.summary_service_url = conversation_id, service_url
            await self._put(doc)

    async def save(self, actor: Actor, case_id: str, inputs: Mapping[str, Any], *,
                   add_row: bool = False) -> tuple[Case, StoredRecord]:
        case, doc = await self.open(actor, case_id)
        form = {**doc.form, **clean_form(inputs, self.profile_of(case))}
        if add_row:
            rows = action_rows(form)
            form["action_rows"] = str(min(max(rows + [0]) + 1, MAX_ACTION_ROWS))
        doc.form, doc.updated_by, doc.updated_at = form, actor.audit_name, self.clock.now()
        await self._put(doc)
        await self.audit.record(actor=actor.audit_name, action="record.save", case_id=case.id,
                                what=f"session {case.session.number} record draft", why="draft saved")
        return case, doc

    async def send_actions(self, actor: Actor, case_id: str, inputs: Mapping[str, Any]) -> PublishResult:
        return await self._publish(actor, case_id, inputs, full=False)

    async def publish(self, actor: Actor, case_id: str, inputs: Mapping[str, Any]) -> PublishResult:
        return await self._publish(actor, case_id, inputs, full=True)

    async def _publish(self, actor: Actor, case_id: str, inputs: Mapping[str, Any], *, full: bool) -> PublishResult:
        case, doc = await self.save(actor, case_id, inputs)
        profile = self.profile_of(case)
        if doc.status == RecordStatus.PUBLISHED:
            raise IllegalTransition("already published", key="record.error.already_published")
        try:
            record = parse(doc.form, case, profile, uk_today(self.clock), full=full, sent_rows=doc.sent_rows)
        except ValidationFailed as failed:
            await self.audit.record(actor=actor.audit_name, action="record.refused", case_id=case.id,
                                    what=", ".join(e.field for e in failed.errors),
                                    why="validation" if not any(e.key == "record.error.identifier"
                                                                for e in failed.errors) else "identifiers in the record",
                                    allowed=False)
            raise
        new_rows = [a for a in record.actions if not a.item_id]
        created: dict[str, str] = {}
        if new_rows and self.create_actions is not None:
            created = await self.create_actions(case, dataclasses.replace(record, actions=new_rows), actor)
        for action in record.actions:
            if not action.item_id and str(action.row) in created:
                action.item_id = created[str(action.row)]
        now = self.clock.now()
        deadlines = self.deadlines(profile)

        def change(c: Case) -> bool:
            if c.state == CaseState.HELD:
                c.session.recorded_at = now
                apply(c, Event.RECORD, actor=actor.audit_name, clock=self.clock, reason="session recorded")
            if c.state == CaseState.RECORDED:
                c.session.actions_distributed_at = now
                apply(c, Event.DISTRIBUTE_ACTIONS, actor=actor.audit_name, clock=self.clock,
                      reason=f"{len(record.actions)} action(s) sent")
            started = False
            if full and c.state == CaseState.ACTIONS_DISTRIBUTED:
                c.session.minutes_done_at = now
                held_on = record.held_on or uk_local(now).date()
                c.follow_up_due = deadlines.follow_up(held_on)
                if record.review_on is not None:
                    review = review_tracked(c.session.number, record.review_on, now)
                    c.tracked = [t for t in c.tracked if not (t.kind == REVIEW_KIND and t.id == review.id)] + [review]
                apply(c, Event.COMPLETE_MINUTES, actor=actor.audit_name, clock=self.clock,
                      reason="record published")
                if record.further_sessions:
                    c.previous_sessions.append(c.session)
                    c.session = SessionPlan(number=c.session.number + 1)
                    c.follow_up_due = None
                    apply(c, Event.FURTHER_SESSION, actor=actor.audit_name, clock=self.clock,
                          reason=f"further session agreed for {record.further_sessions_when}")
                    started = True
            return started

        case, started = await self.cases.update(case.id, change)
        doc.sent_rows.update(created)
        doc.record = record
        if doc.actions_sent_at is None:
            doc.actions_sent_at = now
        doc.status = RecordStatus.PUBLISHED if full else RecordStatus.ACTIONS_SENT
        if full:
            doc.published_at = now
        await self._put(doc)
        await self.audit.record(actor=actor.audit_name, action="record.publish" if full else "record.send_actions",
                                case_id=case.id, what=f"session {record.session_number}: "
                                f"{len(record.actions)} action(s)", why="record shared with attendees")
        if full and self.write_tracker is not None:
            await self.write_tracker(case, record, profile)
        session = record.session_number
        if created:
            await self.events.publish(DomainEvent("actions.distributed", case.id, now,
                                                  {"session": session, "items": sorted(created.values())},
                                                  idempotency_key=f"{case.id}:actions:{session}:{len(doc.sent_rows)}"))
        if full:
            await self.events.publish(DomainEvent("session.recorded", case.id, now, {"session": session},
                                                  idempotency_key=f"{case.id}:recorded:{session}"))
            if started:
                await self.events.publish(DomainEvent("facilitators.assigned", case.id, now,
                                                      {"further_session": True, "session": session + 1}))
        return PublishResult(case=case, stored=doc, record=record, new_item_ids=sorted(created.values()),
                             full=full, further_session_started=started)
