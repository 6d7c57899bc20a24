"""Concerns and complaints about a session: first to the facilitator (the profile's complaints.first_to),
then to the profile's named lead if not resolved within ``concern_escalation_working_days``."""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from supervision.calendar import WorkingCalendar
from supervision.clock import Clock, uk_datetime, uk_local
from supervision.codec import from_data, to_data
from supervision.duework import DueWork
from supervision.errors import DomainError, FieldError, Forbidden, IllegalTransition, NotFound, ValidationFailed
from supervision.models import Case, Role, Tracked, find_identifiers
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.record import record_identifiers
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action as Permission
from supervision.roles import Actor, authorize, case_roles

CONCERNS = "concerns"
TRACKED_KIND = "concern"
KINDS = ("concern", "complaint")
MAX_TEXT = 4000
CalendarFor = Callable[[Case], WorkingCalendar]
DaysFor = Callable[[Case], int]


class ConcernStatus(StrEnum):
    OPEN = "open"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


@dataclass
class Concern:
    id: str
    case_id: str
    reference: str
    kind: str
    text: str
    raised_by: str
    raised_by_name: str
    raised_at: datetime
    escalate_on: date
    status: ConcernStatus = ConcernStatus.OPEN
    escalated_at: datetime | None = None
    resolution: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None


def redact(text: str, identifiers: list[str], mask: str = "[removed]") -> str:
    """``text`` with every child or family identifier found in it replaced by ``mask``."""
    for ident in find_identifiers(text, identifiers):
        text = re.sub(r"(?<![\w])" + re.escape(ident) + r"(?![\w])", mask, text, flags=re.IGNORECASE)
    return text


class Concerns:
    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 events: EventSink, calendar_for: CalendarFor, escalation_days_for: DaysFor) -> None:
        self.store, self.cases, self.audit, self.clock, self.events = store, cases, audit, clock, events
        self.calendar_for, self.escalation_days_for = calendar_for, escalation_days_for

    async def cases_for(self, actor: Actor) -> list[Case]:
        """The cases this person may raise a concern about."""
        found: dict[str, Case] = {}
        for key in {k for k in (actor.user_id, actor.email, actor.aad_object_id) if k}:
            for case in await self.cases.for_user(key):
                if case_roles(actor, case) & {Role.INVITEE, Role.REQUESTER, Role.LEAD_PROFESSIONAL, Role.FACILITATOR}:
                    found[case.id] = case
        await self.audit.record(actor=actor.audit_name, action="concern.list_cases",
                                what=f"{len(found)} case reference(s)", why="raise a concern")
        return sorted(found.values(), key=lambda c: c.reference)

    async def raise_(self, actor: Actor, case_id: str, kind: str, text: str) -> tuple[Case, Concern]:
        case = await self.cases.require(case_id)
        try:
            authorize(actor, Permission.RAISE_CONCERN, case)
        except DomainError:
            await self.audit.record(actor=actor.audit_name, action="concern.refused", case_id=case.id,
                                    what="raise a concern", why="not a participant", allowed=False)
            raise
        errors = []
        if kind not in KINDS:
            errors.append(FieldError("kind", "concern.error.kind"))
        text = text.strip()
        if not text:
            errors.append(FieldError("text", "concern.error.required"))
        elif len(text) > MAX_TEXT:
            errors.append(FieldError("text", "concern.error.too_long", limit=MAX_TEXT))
        if errors:
            raise ValidationFailed(errors)
        now = self.clock.now()
        calendar = self.calendar_for(case)
        escalate_on = calendar.add_working_days(uk_local(now).date(), self.escalation_days_for(case))
        concern = Concern(id=secrets.token_hex(4), case_id=case.id, reference=case.reference, kind=kind, text=text,
                          raised_by=(actor.email or actor.user_id).lower(), raised_by_name=actor.name,
                          raised_at=now, escalate_on=escalate_on)
        await self.store.put(CONCERNS, f"{case.id}:{concern.id}", to_data(concern), create_only=True)

        def change(c: Case) -> None:
            c.tracked.append(Tracked(id=concern.id, kind=TRACKED_KIND, due_on=escalate_on, since=now,
                                     owner="facilitator", status=ConcernStatus.OPEN.value))

        case, _ = await self.cases.update(case.id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="concern.raise", case_id=case.id,
            what=f"{kind} {concern.id}", why="raised about a session"))
        await self.events.publish(DomainEvent("concern.raised", case.id, now, {"concern": concern.id}))
        return case, concern

    async def get(self, case_id: str, concern_id: str) -> Concern:
        stored = await self.store.get(CONCERNS, f"{case_id}:{concern_id}")
        if stored is None:
            raise NotFound("no such concern", key="concern.error.not_found")
        return from_data(Concern, stored.data)

    async def resolve(self, actor: Actor, case_id: str, concern_id: str, note: str, *,
                      named_lead_email: str = "") -> Concern:
        """The facilitator (or, once escalated, the named lead) records how it was resolved."""
        case = await self.cases.require(case_id)
        concern = await self.get(case_id, concern_id)
        keys = {k.lower() for k in (actor.email, actor.user_id) if k}
        is_lead = bool(named_lead_email) and named_lead_email.lower() in keys
        if Role.FACILITATOR not in case_roles(actor, case) and not is_lead:
            await self.audit.record(actor=actor.audit_name, action="concern.resolve.refused", case_id=case.id,
                                    what=concern.id, why="not the facilitator or the named lead", allowed=False)
            raise Forbidden("not the facilitator", key="concern.error.not_facilitator")
        if concern.status == ConcernStatus.RESOLVED:
            raise IllegalTransition("resolved", key="concern.error.resolved")
        if not note.strip():
            raise ValidationFailed([FieldError("resolution", "concern.error.required")])
        concern.status, concern.resolution = ConcernStatus.RESOLVED, note.strip()
        concern.resolved_by, concern.resolved_at = actor.audit_name, self.clock.now()
        await self.store.put(CONCERNS, f"{case.id}:{concern.id}", to_data(concern))
        await self._set_tracked(case.id, concern)
        await self.audit.record(actor=actor.audit_name, action="concern.resolve", case_id=case.id,
                                what=concern.id, why="resolved")
        return concern

    async def escalate(self, case_id: str, concern_id: str) -> Concern | None:
        """Past the escalation date and still open: mark escalated (the edge tells the named lead)."""
        concern = await self.get(case_id, concern_id)
        if concern.status != ConcernStatus.OPEN:
            return None
        concern.status, concern.escalated_at = ConcernStatus.ESCALATED, self.clock.now()
        await self.store.put(CONCERNS, f"{case_id}:{concern.id}", to_data(concern))
        await self._set_tracked(case_id, concern)
        await self.audit.record(actor="scheduler", action="concern.escalate", case_id=case_id, what=concern.id,
                                why="not resolved within the profile's working days")
        return concern

    async def _set_tracked(self, case_id: str, concern: Concern) -> None:
        def change(c: Case) -> None:
            for tracked in c.tracked:
                if tracked.kind == TRACKED_KIND and tracked.id == concern.id:
                    tracked.status = concern.status.value

        await self.cases.update(case_id, change)

    def lead_copy(self, case: Case, concern: Concern) -> str:
        """The concern's text as the named lead (not a case member) sees it: identifiers removed."""
        return redact(concern.text, record_identifiers(case))


def concern_work(case: Case, hour: int = 9) -> list[DueWork]:
    return [DueWork(f"{case.id}:concern:{t.id}:escalate", "concern.escalate", case.id,
                    uk_datetime(t.due_on, hour), {"concern": t.id})
            for t in case.tracked
            if t.kind == TRACKED_KIND and t.status == ConcernStatus.OPEN.value and t.due_on is not None]

