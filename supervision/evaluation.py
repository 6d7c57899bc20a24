"""Pre- and post-session evaluations (Bolton Appendix 6, the Multi-agency Supervision Feedback Tool).

* **Pre-session** (the profile's ``pre_evaluation_working_days_before``, 3 working days before; a
  reminder to those who have not answered ``evaluation_reminder_working_days_before``): "How are you
  feeling about the impact and effectiveness of current multi-agency planning and interventions?"
  0 (not at all effective) to 5 (very effective), and why.
* **Post-session** (when the session is held: the Teams meeting-end event or the facilitator): the
  likely impact and effectiveness moving forward (0-5); what worked well; what would have made the
  session better; learning points taken away; any other feedback.

One response per attendee per phase, editable while the phase is open: the pre phase until the
session is held, the post phase until the minutes are done (the session closes). Responses live in
their own collection (``evaluations``), one document per case session.

For other features
------------------
``await session_impact(store, case_id, session=None) -> SessionImpact`` gives the pre and post
scores and the impact (post minus pre) per attendee and for the session (mean of the changes of
attendees who answered both; means of all pre and of all post scores; counts). The session record
uses ``SessionImpact.attendees`` (names, agencies); the partnership log must use
``SessionImpact.anonymised()`` (counts, means and per-agency changes; no names, no free text).
Callers audit their own reads.

``mark_session_held(...)`` moves a case to HELD (lifecycle MARK_HELD; ``case.session.held_at``),
audits it and publishes ``session.held``; the post-session evaluation is due work keyed on held_at.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from supervision.clock import Clock, uk_datetime, uk_local
from supervision.codec import from_data, to_data
from supervision.duework import DueWork
from supervision.errors import DomainError, FieldError, Forbidden, ValidationFailed, VersionConflict
from supervision.lifecycle import Deadlines, Event, apply
from supervision.models import Case, CaseState, InviteStatus, Role
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action, Actor, authorize

EVALUATIONS = "evaluations"
MEETINGS = "meeting_index"
SCORES = tuple(range(0, 6))
MAX_TEXT = 4000
PRE_FIELDS = ("why",)
POST_FIELDS = ("worked_well", "better", "learning", "other")
KIND_PRE = "evaluation.pre.open"
KIND_REMINDER = "evaluation.pre.reminder"
KIND_POST = "evaluation.post.open"
KIND_HELD_CHECK = "evaluation.held.check"     # the session's end has passed and nobody has marked it held
HELD_CHECK_AFTER = timedelta(minutes=15)      # time for Teams' meeting-end event to arrive first
S = CaseState
PRE_OPEN_STATES = frozenset({S.SCHEDULED, S.PRE_SESSION})
POST_OPEN_STATES = frozenset({S.HELD, S.RECORDED, S.ACTIONS_DISTRIBUTED})


class Phase(StrEnum):
    PRE = "pre"
    POST = "post"


class EvaluationClosed(DomainError):
    key = "evaluation.closed"


# --- values ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attendee:
    """Someone asked to evaluate: an invitee who has not declined, the requester, the lead professional."""

    key: str            # lower-case email, else Teams user id: one response per key per phase
    name: str
    email: str = ""
    user_id: str = ""
    agency: str = ""


@dataclass
class EvaluationResponse:
    respondent: str
    name: str
    agency: str
    phase: Phase
    score: int
    why: str = ""
    worked_well: str = ""
    better: str = ""
    learning: str = ""
    other: str = ""
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    edits: int = 0


@dataclass
class CardRef:
    """A card we sent, to update in place (opaque ids from the edge)."""

    user_id: str
    activity_id: str
    conversation_id: str = ""
    sent_at: datetime | None = None


@dataclass
class SessionEvaluations:
    case_id: str
    session: int
    responses: dict[str, EvaluationResponse] = field(default_factory=dict)   # "<phase>:<respondent>"
    cards: dict[str, CardRef] = field(default_factory=dict)                  # "<phase>:<key>", "status:<key>"

    def response(self, phase: Phase, respondent: str) -> EvaluationResponse | None:
        return self.responses.get(f"{phase.value}:{respondent}")


@dataclass(frozen=True)
class AttendeeImpact:
    key: str
    name: str
    agency: str
    pre: int | None
    post: int | None

    @property
    def change(self) -> int | None:
        return self.post - self.pre if self.pre is not None and self.post is not None else None


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


@dataclass(frozen=True)
class SessionImpact:
    case_id: str
    session: int
    attendees: tuple[AttendeeImpact, ...]
    expected: int                     # attendees asked

    @property
    def pre_count(self) -> int:
        return sum(1 for a in self.attendees if a.pre is not None)

    @property
    def post_count(self) -> int:
        return sum(1 for a in self.attendees if a.post is not None)

    @property
    def mean_pre(self) -> float | None:
        return _mean([a.pre for a in self.attendees if a.pre is not None])

    @property
    def mean_post(self) -> float | None:
        return _mean([a.post for a in self.attendees if a.post is not None])

    @property
    def mean_change(self) -> float | None:
        """Impact for the session: the mean of post minus pre over attendees who answered both."""
        return _mean([a.change for a in self.attendees if a.change is not None])

    def anonymised(self) -> dict[str, Any]:
        """For the partnership log: no names, no free text."""
        by_agency: dict[str, list[int]] = {}
        for a in self.attendees:
            if a.change is not None:
                by_agency.setdefault(a.agency or "unknown", []).append(a.change)
        return {"expected": self.expected, "pre_count": self.pre_count, "post_count": self.post_count,
                "both_count": sum(1 for a in self.attendees if a.change is not None),
                "mean_pre": self.mean_pre, "mean_post": self.mean_post, "mean_change": self.mean_change,
                "change_by_agency": {k: _mean(v) for k, v in sorted(by_agency.items())}}


# --- rules -------------------------------------------------------------------------------------------
def attendees(case: Case) -> list[Attendee]:
    """Who is asked to evaluate, in a stable order, each once (matched by email, else user id)."""
    found: dict[str, Attendee] = {}
    r = case.request

    def add(name: str, email: str, user_id: str, agency: str) -> None:
        key = (email or user_id).strip().lower()
        if not key or key in found:
            return
        if any(key == (f.email or f.user_id).lower() for f in case.facilitators):
            return
        found[key] = Attendee(key=key, name=name, email=email.lower(), user_id=user_id, agency=agency)

    for invitee in r.invitees:
        if invitee.status != InviteStatus.DECLINED:
            add(invitee.name, invitee.email, invitee.user_id, invitee.agency)
    add(r.lead_professional.name, r.lead_professional.email, r.lead_professional.user_id,
        r.lead_professional.organisation)
    add(r.requester.name, r.requester.email, r.requester.user_id, r.requester.organisation)
    return list(found.values())


def attendee_for(case: Case, actor: Actor) -> Attendee | None:
    keys = {k.lower() for k in (actor.email, actor.user_id, actor.aad_object_id) if k}
    for attendee in attendees(case):
        if keys & ({attendee.email, attendee.user_id.lower()} - {""}):
            return attendee
    return None


def phase_open(case: Case, phase: Phase) -> bool:
    if phase == Phase.PRE:
        return case.state in PRE_OPEN_STATES and case.session.held_at is None
    return case.state in POST_OPEN_STATES and case.session.held_at is not None


def validate(phase: Phase, inputs: dict[str, Any]) -> dict[str, Any]:
    """The answers, checked: a whole-number score 0-5 and texts of reasonable length."""
    errors: list[FieldError] = []
    raw = inputs.get("score", "")
    score: int | None = None
    text = str(raw).strip() if raw is not None else ""
    if text == "":
        errors.append(FieldError("score", "evaluation.error_score_missing"))
    else:
        try:
            score = int(float(text)) if float(text).is_integer() else None
        except ValueError:
            score = None
        if score is None or score not in SCORES:
            errors.append(FieldError("score", "evaluation.error_score_range"))
    values: dict[str, Any] = {"score": score}
    for name in (PRE_FIELDS if phase == Phase.PRE else POST_FIELDS):
        value = inputs.get(name, "")
        value = value.strip() if isinstance(value, str) else ""
        if len(value) > MAX_TEXT:
            errors.append(FieldError(name, "evaluation.error_too_long", limit=MAX_TEXT))
        values[name] = value
    if errors:
        raise ValidationFailed(errors)
    return values


def scheduled_at(case: Case) -> datetime | None:
    """When the current session date was set (the last schedule or reschedule)."""
    for transition in reversed(case.history):
        if transition.event in (Event.SCHEDULE.value, Event.RESCHEDULE.value):
            return transition.at
    return None


def evaluation_work(case: Case, deadlines: Deadlines) -> list[DueWork]:
    """The evaluation jobs for a case, from its stored state (a due-work source)."""
    session = case.session
    work: list[DueWork] = []
    n = session.number
    base = f"{case.id}:s{n}:evaluation"
    hour = deadlines.profile.timescales.office_hours_start
    if session.starts_at is not None and session.held_at is None and case.state in PRE_OPEN_STATES:
        day = uk_local(session.starts_at).date()
        known = scheduled_at(case)
        pre_due = uk_datetime(deadlines.pre_evaluation(day), hour)
        if known is not None and known > pre_due:
            pre_due = known              # scheduled at short notice: ask at once, not "late"
        data = {"session": n, "starts_at": session.starts_at.isoformat()}
        work.append(DueWork(f"{base}.pre", KIND_PRE, case.id, pre_due, data, expires_at=session.starts_at))
        reminder_due = uk_datetime(deadlines.evaluation_reminder(day), hour)
        if reminder_due >= pre_due + timedelta(hours=4) and reminder_due < session.starts_at:
            work.append(DueWork(f"{base}.pre.reminder", KIND_REMINDER, case.id, reminder_due, data,
                                expires_at=session.starts_at))
        if session.ends_at is not None:
            # without "held" the post-session evaluation never goes: ask the facilitators once
            work.append(DueWork(f"{base}.held.check", KIND_HELD_CHECK, case.id, session.ends_at + HELD_CHECK_AFTER,
                                data))
    if session.held_at is not None and case.state in POST_OPEN_STATES:
        work.append(DueWork(f"{base}.post", KIND_POST, case.id, session.held_at, {"session": n}))
    return work


def evaluation_source(deadlines_for: Callable[[str], Deadlines]) -> Callable[[Case], list[DueWork]]:
    def evaluation_source(case: Case) -> list[DueWork]:
        return evaluation_work(case, deadlines_for(case.profile_id))

    return evaluation_source


# --- storage ------------------------------------------------------------------------------------------
def _doc_key(case_id: str, session: int) -> str:
    return f"{case_id}:{session}"


class EvaluationStore:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def get(self, case_id: str, session: int) -> SessionEvaluations:
        stored = await self.store.get(EVALUATIONS, _doc_key(case_id, session))
        if stored is None:
            return SessionEvaluations(case_id=case_id, session=session)
        return from_data(SessionEvaluations, stored.data)

    async def update(self, case_id: str, session: int,
                     change: Callable[[SessionEvaluations], Any]) -> tuple[SessionEvaluations, Any]:
        key = _doc_key(case_id, session)
        for _ in range(30):
            stored = await self.store.get(EVALUATIONS, key)
            doc = from_data(SessionEvaluations, stored.data) if stored else SessionEvaluations(case_id, session)
            result = change(doc)
            try:
                if stored:
                    await self.store.put(EVALUATIONS, key, to_data(doc), etag=stored.etag)
                else:
                    await self.store.put(EVALUATIONS, key, to_data(doc), create_only=True)
                return doc, result
            except VersionConflict:
                continue
        raise VersionConflict(f"evaluations for {case_id} kept changing")


def impact_of(case: Case, doc: SessionEvaluations) -> SessionImpact:
    people = attendees(case)
    known = {a.key for a in people}
    rows = []
    for a in people:
        pre, post = doc.response(Phase.PRE, a.key), doc.response(Phase.POST, a.key)
        rows.append(AttendeeImpact(a.key, a.name, a.agency, pre.score if pre else None, post.score if post else None))
    # answers from people no longer on the list (e.g. declined later) still count
    extra: dict[str, dict[str, EvaluationResponse]] = {}
    for response in doc.responses.values():
        if response.respondent not in known:
            extra.setdefault(response.respondent, {})[response.phase.value] = response
    for key, answers in sorted(extra.items()):
        first = next(iter(answers.values()))
        rows.append(AttendeeImpact(key, first.name, first.agency,
                                   answers["pre"].score if "pre" in answers else None,
                                   answers["post"].score if "post" in answers else None))
    return SessionImpact(case.id, doc.session, tuple(rows), expected=len(people))


async def session_impact(store: DocumentStore, case_id: str, session: int | None = None) -> SessionImpact:
    """Pre, post and impact (post minus pre) per attendee and for the session. See the module doc."""
    case = await CaseRepository(store).require(case_id)
    number = session if session is not None else case.session.number
    doc = await EvaluationStore(store).get(case_id, number)
    return impact_of(case, doc)


@dataclass(frozen=True)
class AttendeeStatus:
    attendee: Attendee
    pre: EvaluationResponse | None
    post: EvaluationResponse | None


@dataclass(frozen=True)
class EvaluationStatus:
    case: Case
    rows: tuple[AttendeeStatus, ...]
    impact: SessionImpact

    @property
    def pre_answered(self) -> int:
        return sum(1 for r in self.rows if r.pre is not None)

    @property
    def post_answered(self) -> int:
        return sum(1 for r in self.rows if r.post is not None)


# --- use cases -------------------------------------------------------------------------------------------
class Evaluations:
    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 events: EventSink | None = None) -> None:
        self.docs = EvaluationStore(store)
        self.cases, self.audit, self.clock, self.events = cases, audit, clock, events

    async def _case(self, actor: Actor, case_id: str, action: Action, what: str) -> Case:
        case = await self.cases.require(case_id)
        try:
            authorize(actor, action, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=what, case_id=case_id,
                                    what="refused", why="role", allowed=False)
            raise
        return case

    async def _attendee(self, actor: Actor, case_id: str, what: str) -> tuple[Case, Attendee]:
        case = await self._case(actor, case_id, Action.SUBMIT_EVALUATION, what)
        attendee = attendee_for(case, actor)
        if attendee is None:
            await self.audit.record(actor=actor.audit_name, action=what, case_id=case_id,
                                    what="refused", why="not an attendee", allowed=False)
            raise Forbidden("not an attendee", key="evaluation.not_attendee")
        return case, attendee

    async def my_response(self, actor: Actor, case_id: str, phase: Phase) -> tuple[Case, Attendee, EvaluationResponse | None]:
        """The attendee's own answers (to edit them); audited as a read."""
        case, attendee = await self._attendee(actor, case_id, "evaluation.view")
        doc = await self.docs.get(case_id, case.session.number)
        await self.audit.record(actor=actor.audit_name, action="evaluation.view", case_id=case_id,
                                what=f"own {phase.value}-session evaluation", why="edit")
        return case, attendee, doc.response(phase, attendee.key)

    async def submit(self, actor: Actor, case_id: str, session: int, phase: Phase,
                     inputs: dict[str, Any]) -> tuple[Case, EvaluationResponse]:
        case, attendee = await self._attendee(actor, case_id, "evaluation.submit")
        if session != case.session.number or not phase_open(case, phase):
            await self.audit.record(actor=actor.audit_name, action="evaluation.submit", case_id=case_id,
                                    what=f"{phase.value} session {session}", why="closed", allowed=False)
            raise EvaluationClosed("evaluation closed", phase=phase.value)
        values = validate(phase, inputs)
        now = self.clock.now()

        def change(doc: SessionEvaluations) -> EvaluationResponse:
            previous = doc.response(phase, attendee.key)
            response = EvaluationResponse(
                respondent=attendee.key, name=attendee.name, agency=attendee.agency, phase=phase,
                submitted_at=previous.submitted_at if previous else now, updated_at=now,
                edits=previous.edits + 1 if previous else 0, **values)
            doc.responses[f"{phase.value}:{attendee.key}"] = response
            return response

        _, response = await self.docs.update(case_id, session, change)
        await self.audit.record(actor=actor.audit_name, action="evaluation.submit", case_id=case_id,
                                what=f"{phase.value}-session evaluation, session {session}"
                                     + (" (edited)" if response.edits else ""), why="attendee")
        return case, response

    async def status(self, actor: Actor, case_id: str) -> EvaluationStatus:
        """Who has and has not answered, with scores and impact: facilitators and coordinators."""
        case = await self.cases.require(case_id)
        if not (actor_is_facilitator(actor, case) or _coordinator(actor, case)):
            await self.audit.record(actor=actor.audit_name, action="evaluation.status", case_id=case_id,
                                    what="refused", why="not a facilitator", allowed=False)
            raise Forbidden("facilitators only", key="evaluation.facilitators_only")
        await self.audit.record(actor=actor.audit_name, action="evaluation.status", case_id=case_id,
                                what="evaluation status", why="facilitator")
        return await self.status_of(case)

    async def status_of(self, case: Case) -> EvaluationStatus:
        """The same, for the edge when it updates a facilitator's card (no actor)."""
        doc = await self.docs.get(case.id, case.session.number)
        rows = tuple(AttendeeStatus(a, doc.response(Phase.PRE, a.key), doc.response(Phase.POST, a.key))
                     for a in attendees(case))
        return EvaluationStatus(case, rows, impact_of(case, doc))

    async def record_card(self, case_id: str, session: int, slot: str, ref: CardRef) -> None:
        def change(doc: SessionEvaluations) -> None:
            doc.cards[slot] = ref

        await self.docs.update(case_id, session, change)

    async def cards(self, case_id: str, session: int) -> dict[str, CardRef]:
        return (await self.docs.get(case_id, session)).cards


def actor_is_facilitator(actor: Actor, case: Case) -> bool:
    keys = {k.lower() for k in (actor.email, actor.user_id, actor.aad_object_id) if k}
    return any(keys & ({f.email.lower(), f.user_id.lower()} - {""}) for f in case.facilitators)


def _coordinator(actor: Actor, case: Case) -> bool:
    return Role.COORDINATOR in actor.global_roles


# --- the session is held ------------------------------------------------------------------------------------
async def mark_session_held(*, cases: CaseRepository, audit: AuditLog, events: EventSink, clock: Clock,
                            case_id: str, actor: Actor | None, source: str,
                            held_at: datetime | None = None,
                            where: Mapping[str, str] | None = None) -> tuple[Case, bool]:
    """HELD via lifecycle MARK_HELD, ``held_at`` set, ``session.held`` published. Returns (case, changed).

    ``where``: the conversation the session ended in (``conversation_id``, ``service_url``: the meeting
    chat of a meeting-end event), carried in the event so the record offer and summary can go there.

    ``actor`` None: the Teams meeting-end event (no person; audited as ``teams``). A facilitator must
    hold the MARK_HELD permission. Marking an already-held session again changes nothing.
    """
    case = await cases.require(case_id)
    who = actor.audit_name if actor else "teams"
    if actor is not None:
        try:
            authorize(actor, Action.MARK_HELD, case)
        except Forbidden:
            await audit.record(actor=who, action="session.mark_held", case_id=case_id, what="refused",
                               why="role", allowed=False)
            raise
    when = held_at or clock.now()

    def change(c: Case) -> bool:
        if c.session.held_at is not None:
            return False
        apply(c, Event.MARK_HELD, actor=who, clock=clock, reason=source)
        c.session.held_at = when
        return True

    case, changed = await cases.update(case_id, change, audit=lambda case, changed: audit.entry(
        actor=who, action="session.mark_held", case_id=case_id, what=f"session {case.session.number} held",
        why=source) if changed else None)
    if changed:
        await events.publish(DomainEvent("session.held", case_id, when,
                                         {**(where or {}), "session": case.session.number, "source": source},
                                         idempotency_key=f"{case_id}:s{case.session.number}:held"))
    return case, changed


# --- meetings: the Teams meeting-end event names the meeting by its join URL ----------------------------------
def meeting_key(join_url: str) -> str:
    """The same meeting whatever the URL's encoding or query string: its decoded path, lower-case."""
    text = join_url.strip()
    for _ in range(3):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = text.split("?", 1)[0].split("#", 1)[0].rstrip("/").lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class MeetingIndex:
    """join URL -> case id, kept on every case change (a CaseRepository listener)."""

    def __init__(self, store: DocumentStore, cases: CaseRepository) -> None:
        self.store, self.cases = store, cases

    async def index_case(self, case: Case) -> None:
        if not case.session.join_url:
            return
        key = meeting_key(case.session.join_url)
        stored = await self.store.get(MEETINGS, key)
        if stored is None or stored.data.get("case_id") != case.id:
            await self.store.put(MEETINGS, key, {"case_id": case.id})

    async def find(self, join_url: str) -> Case | None:
        if not join_url:
            return None
        key = meeting_key(join_url)
        stored = await self.store.get(MEETINGS, key)
        if stored is not None:
            case = await self.cases.get(stored.data["case_id"])
            if case is not None and case.session.join_url and meeting_key(case.session.join_url) == key:
                return case
        # not indexed (a case written before the index existed): look through the cases once
        for case_id in await self.cases.ids():
            case = await self.cases.get(case_id)
            if case is not None and case.session.join_url and meeting_key(case.session.join_url) == key:
                await self.store.put(MEETINGS, key, {"case_id": case.id})
                return case
        return None


__all__ = ["Phase", "Attendee", "EvaluationResponse", "SessionEvaluations", "SessionImpact", "AttendeeImpact",
           "Evaluations", "EvaluationClosed", "attendees", "phase_open", "validate", "evaluation_work",
           "evaluation_source", "session_impact", "impact_of", "mark_session_held", "MeetingIndex",
           "meeting_key"]
