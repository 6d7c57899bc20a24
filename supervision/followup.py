"""The follow-up at the profile's interval (Bolton: six months after the session) with the lead
professional, the child (where appropriate) and the family: outcomes, what changed, whether the
child's plan moved on. Recording it closes the case."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supervision.calendar import WorkingCalendar
from supervision.clock import Clock, uk_datetime
from supervision.codec import from_data, to_data
from supervision.duework import DueWork
from supervision.errors import DomainError, FieldError, IllegalTransition, ValidationFailed
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action as Permission
from supervision.roles import Actor, authorize

FOLLOW_UPS = "follow_ups"
PLAN_MOVED_ON = ("yes", "partly", "no")
REMIND_AFTER_WORKING_DAYS = 10


@dataclass
class FollowUp:
    case_id: str
    session_number: int
    outcomes: str
    what_changed: str
    plan_moved_on: str               # yes | partly | no
    child_involved: bool
    family_involved: bool
    views: str
    recorded_by: str
    recorded_at: datetime


def followup_work(case: Case, calendar: WorkingCalendar, hour: int = 9) -> list[DueWork]:
    """The follow-up card on the due date; one reminder if it has not been recorded ten working days on."""
    if case.follow_up_due is None or case.state not in (CaseState.MINUTES_DONE, CaseState.FOLLOW_UP_DUE):
        return []
    due = case.follow_up_due
    session = case.session.number
    data = {"session": session, "due": due.isoformat()}
    reminder = calendar.add_working_days(calendar.next_working_day(due), REMIND_AFTER_WORKING_DAYS)
    return [DueWork(f"{case.id}:followup:{session}", "followup.due", case.id,
                    uk_datetime(calendar.next_working_day(due), hour), data),
            DueWork(f"{case.id}:followup:{session}:reminder", "followup.reminder", case.id,
                    uk_datetime(reminder, hour), data)]


def parse_followup(inputs: Mapping[str, Any]) -> dict[str, str]:
    form = {k: str(inputs.get(k, "") or "").strip() for k in
            ("outcomes", "what_changed", "plan_moved_on", "child_involved", "family_involved", "views")}
    errors = [FieldError(name, "followup.error.required") for name in ("outcomes", "what_changed") if not form[name]]
    if form["plan_moved_on"] not in PLAN_MOVED_ON:
        errors.append(FieldError("plan_moved_on", "followup.error.required"))
    if errors:
        raise ValidationFailed(errors)
    return form


FollowUpListener = Callable[[Case, FollowUp], Awaitable[None]]


class FollowUps:
    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 events: EventSink) -> None:
        self.store, self.cases, self.audit, self.clock, self.events = store, cases, audit, clock, events
        self.on_recorded: FollowUpListener | None = None   # the partnership log adds the outcome

    async def mark_due(self, case_id: str) -> Case:
        """FOLLOW_UP_DUE, when the time comes (idempotent)."""
        def change(c: Case) -> None:
            if c.state == CaseState.MINUTES_DONE:
                apply(c, Event.FOLLOW_UP_DUE, actor="scheduler", clock=self.clock, reason="follow-up due")

        case, _ = await self.cases.update(case_id, change)
        return case

    async def open(self, actor: Actor, case_id: str) -> Case:
        case = await self.cases.require(case_id)
        await self._authorize(actor, case)
        if case.state not in (CaseState.MINUTES_DONE, CaseState.FOLLOW_UP_DUE):
            raise IllegalTransition("not due", key="followup.error.not_due", state=case.state.value)
        await self.audit.record(actor=actor.audit_name, action="followup.open", case_id=case.id,
                                what="follow-up card", why="record the follow-up")
        return case

    async def _authorize(self, actor: Actor, case: Case) -> None:
        try:
            authorize(actor, Permission.RECORD_FOLLOW_UP, case)
        except DomainError:
            await self.audit.record(actor=actor.audit_name, action="followup.refused", case_id=case.id,
                                    what="follow-up", why="not the lead professional or a facilitator",
                                    allowed=False)
            raise

    async def get(self, case_id: str, session_number: int) -> FollowUp | None:
        stored = await self.store.get(FOLLOW_UPS, f"{case_id}:{session_number}")
        return from_data(FollowUp, stored.data) if stored else None

    async def record(self, actor: Actor, case_id: str, inputs: Mapping[str, Any]) -> tuple[Case, FollowUp]:
        case = await self.open(actor, case_id)
        form = parse_followup(inputs)
        now = self.clock.now()
        follow_up = FollowUp(case_id=case.id, session_number=case.session.number, outcomes=form["outcomes"],
                             what_changed=form["what_changed"], plan_moved_on=form["plan_moved_on"],
                             child_involved=form["child_involved"] == "true",
                             family_involved=form["family_involved"] == "true", views=form["views"],
                             recorded_by=actor.audit_name, recorded_at=now)
        await self.store.put(FOLLOW_UPS, f"{case.id}:{case.session.number}", to_data(follow_up))

        def change(c: Case) -> None:
            c.closed_at = now
            apply(c, Event.RECORD_FOLLOW_UP, actor=actor.audit_name, clock=self.clock,
                  reason=f"follow-up recorded; plan moved on: {follow_up.plan_moved_on}")

        case, _ = await self.cases.update(case.id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="followup.record", case_id=case.id,
            what=f"plan moved on: {follow_up.plan_moved_on}", why="six-month follow-up"))
        if self.on_recorded is not None:
            await self.on_recorded(case, follow_up)
        await self.events.publish(DomainEvent("case.closed", case.id, now, {"reason": "follow_up_recorded"},
                                              idempotency_key=f"{case.id}:closed"))
        return case, follow_up
