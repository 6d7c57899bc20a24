"""Agreed actions followed through: each has an owner and a due date; the owner marks it done (with a
note), moves the due date (with a reason) or says it cannot be done (with a reason). Reminders go
before the due date and when overdue, to the owner first and then to the facilitator.

Items live in their own collection; each open item is mirrored on the case (``Case.tracked``) so the
due-work source can compute reminders from case state alone. (Not called ``Action``: that name is the
permission enum in ``supervision.roles``.)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from supervision.calendar import WorkingCalendar
from supervision.clock import Clock, uk_datetime, uk_today
from supervision.codec import from_data, to_data
from supervision.duework import DueWork
from supervision.errors import DomainError, FieldError, Forbidden, IllegalTransition, NotFound, ValidationFailed
from supervision.models import Case, Role, Tracked
from supervision.ports import DocumentStore, DomainEvent, EventSink
from supervision.record import SessionRecord
from supervision.repository import AuditLog, CaseRepository, add_to_index
from supervision.roles import Action as Permission
from supervision.roles import Actor, authorize, case_roles

ITEMS = "action_items"
OWNER_INDEX = "action_items_by_owner"
TRACKED_KIND = "action_item"
ESCALATE_AFTER_WORKING_DAYS = 2      # overdue this long: the facilitator is told too


class ItemStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANNOT = "cannot"


class Update(StrEnum):
    DONE = "done"
    NEW_DATE = "new_date"
    CANNOT = "cannot"


@dataclass
class ItemChange:
    at: datetime
    by: str
    kind: str                  # created | done | new_date | cannot
    note: str = ""
    old_due: date | None = None
    new_due: date | None = None


@dataclass
class ActionItem:
    id: str
    case_id: str
    reference: str
    session_number: int
    description: str
    owner_email: str
    owner_name: str
    due_on: date
    created_at: datetime
    status: ItemStatus = ItemStatus.OPEN
    note: str = ""
    history: list[ItemChange] = field(default_factory=list)

    @property
    def key(self) -> str:
        return item_key(self.case_id, self.id)

    @property
    def is_open(self) -> bool:
        return self.status == ItemStatus.OPEN


def item_key(case_id: str, item_id: str) -> str:
    return f"{case_id}:{item_id}"


def mirror(item: ActionItem) -> Tracked:
    return Tracked(id=item.id, kind=TRACKED_KIND, due_on=item.due_on, since=item.history[-1].at if item.history
                   else item.created_at, owner=item.owner_email, status=item.status.value)


def _sync_tracked(case: Case, item: ActionItem) -> None:
    case.tracked = [t for t in case.tracked if not (t.kind == TRACKED_KIND and t.id == item.id)]
    case.tracked.append(mirror(item))


def is_owner(actor: Actor, item: ActionItem) -> bool:
    return bool(item.owner_email) and item.owner_email.lower() in {k.lower() for k in (actor.email, actor.user_id) if k}


class ActionItems:
    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 events: EventSink) -> None:
        self.store, self.cases, self.audit, self.clock, self.events = store, cases, audit, clock, events

    async def create_from_record(self, case: Case, record: SessionRecord, actor: Actor) -> dict[str, str]:
        """One item per agreed action (idempotent by session and row). Returns {row: item id}."""
        now = self.clock.now()
        created: dict[str, str] = {}
        items = []
        for action in record.actions:
            item_id = f"s{record.session_number}a{action.row}"
            item = ActionItem(id=item_id, case_id=case.id, reference=case.reference,
                              session_number=record.session_number, description=action.description,
                              owner_email=action.owner_email, owner_name=action.owner_name,
                              due_on=action.due_on, created_at=now,
                              history=[ItemChange(at=now, by=actor.audit_name, kind="created", new_due=action.due_on)])
            existing = await self.store.get(ITEMS, item.key)
            if existing is None:
                await self.store.put(ITEMS, item.key, to_data(item), create_only=True)
                await add_to_index(self.store, OWNER_INDEX, item.owner_email, item.key)
            else:
                item = from_data(ActionItem, existing.data)
            items.append(item)
            created[str(action.row)] = item.id

        def change(c: Case) -> None:
            for item in items:
                _sync_tracked(c, item)

        await self.cases.update(case.id, change)
        return created

    async def get(self, case_id: str, item_id: str) -> ActionItem:
        stored = await self.store.get(ITEMS, item_key(case_id, item_id))
        if stored is None:
            raise NotFound(f"no action {item_id}", key="actions.error.not_found")
        return from_data(ActionItem, stored.data)

    async def for_case(self, case_id: str) -> list[ActionItem]:
        items = []
        for key in await self.store.keys(ITEMS, f"{case_id}:"):
            stored = await self.store.get(ITEMS, key)
            if stored:
                items.append(from_data(ActionItem, stored.data))
        return sorted(items, key=lambda i: (i.session_number, i.due_on, i.id))

    async def view(self, actor: Actor, case_id: str, item_id: str) -> tuple[Case, ActionItem]:
        case = await self.cases.require(case_id)
        item = await self.get(case_id, item_id)
        await self._check(actor, case, item, "view")
        await self.audit.record(actor=actor.audit_name, action="action.view", case_id=case_id, what=item.id,
                                why="action card")
        return case, item

    async def mine(self, actor: Actor) -> list[ActionItem]:
        keys: list[str] = []
        for who in {k.lower() for k in (actor.email, actor.user_id) if k}:
            stored = await self.store.get(OWNER_INDEX, who)
            keys += stored.data.get("cases", []) if stored else []
        items = []
        for key in dict.fromkeys(keys):
            stored = await self.store.get(ITEMS, key)
            if stored:
                item = from_data(ActionItem, stored.data)
                if item.is_open and is_owner(actor, item):
                    items.append(item)
        await self.audit.record(actor=actor.audit_name, action="action.list_mine", what=f"{len(items)} open",
                                why="my actions")
        return sorted(items, key=lambda i: (i.due_on, i.reference, i.id))

    async def _check(self, actor: Actor, case: Case, item: ActionItem, what: str) -> frozenset[Role]:
        try:
            roles = authorize(actor, Permission.UPDATE_ACTION, case)
            if not is_owner(actor, item) and Role.FACILITATOR not in roles:
                raise Forbidden("not the owner", key="actions.error.not_owner")
            return roles
        except DomainError:
            await self.audit.record(actor=actor.audit_name, action=f"action.{what}.refused", case_id=case.id,
                                    what=item.id, why="not the owner or a facilitator", allowed=False)
            raise

    async def update(self, actor: Actor, case_id: str, item_id: str, kind: Update, *, note: str = "",
                     new_due: str = "") -> ActionItem:
        case = await self.cases.require(case_id)
        item = await self.get(case_id, item_id)
        await self._check(actor, case, item, kind.value)
        if not item.is_open:
            raise IllegalTransition("closed", key="actions.error.closed", status=item.status.value)
        note = note.strip()
        errors: list[FieldError] = []
        if not note:
            errors.append(FieldError("note" if kind == Update.DONE else "reason", "actions.error.note_required"))
        due: date | None = None
        if kind == Update.NEW_DATE:
            try:
                due = date.fromisoformat(new_due.strip())
                if due < uk_today(self.clock):
                    errors.append(FieldError("new_due", "actions.error.past"))
                elif due == item.due_on:
                    errors.append(FieldError("new_due", "actions.error.same_date"))
            except ValueError:
                errors.append(FieldError("new_due", "actions.error.date", value=new_due))
        if errors:
            raise ValidationFailed(errors)
        now = self.clock.now()
        change = ItemChange(at=now, by=actor.audit_name, kind=kind.value, note=note, old_due=item.due_on, new_due=due)
        item.history.append(change)
        item.note = note
        if kind == Update.DONE:
            item.status = ItemStatus.DONE
        elif kind == Update.CANNOT:
            item.status = ItemStatus.CANNOT
        elif due is not None:
            item.due_on = due
        await self.store.put(ITEMS, item.key, to_data(item))
        await self.cases.update(case_id, lambda c: _sync_tracked(c, item), audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action=f"action.{kind.value}", case_id=case_id, what=item.id, why=note[:200]))
        await self.events.publish(DomainEvent("action.updated", case_id, now, {"item": item.id, "kind": kind.value}))
        return item


def item_reminders(case: Case, calendar: WorkingCalendar, days_before: int, hour: int = 9) -> list[DueWork]:
    """For each open item mirrored on the case: before the due date (owner), the first working day
    after it (owner, overdue), and ESCALATE_AFTER_WORKING_DAYS later (the facilitator). Keys carry the
    due date, so a new due date gets fresh reminders."""
    work = []
    for tracked in case.tracked:
        if tracked.kind != TRACKED_KIND or tracked.status != ItemStatus.OPEN.value or tracked.due_on is None:
            continue
        due = tracked.due_on
        base = f"{case.id}:action:{tracked.id}:{due.isoformat()}"
        data = {"item": tracked.id, "due": due.isoformat()}
        before = calendar.subtract_working_days(due, days_before) if days_before else due
        overdue = calendar.add_working_days(due, 1)
        escalate = calendar.add_working_days(overdue, ESCALATE_AFTER_WORKING_DAYS)
        work.append(DueWork(f"{base}:before", "action.due_soon", case.id, uk_datetime(before, hour), data))
        work.append(DueWork(f"{base}:overdue", "action.overdue", case.id, uk_datetime(overdue, hour), data))
        work.append(DueWork(f"{base}:escalate", "action.overdue_facilitator", case.id,
                            uk_datetime(escalate, hour), data))
    return work


def summary_counts(items: list[ActionItem], today: date) -> Mapping[str, int]:
    return {
        "open": sum(1 for i in items if i.is_open),
        "overdue": sum(1 for i in items if i.is_open and i.due_on < today),
        "done": sum(1 for i in items if i.status == ItemStatus.DONE),
        "cannot": sum(1 for i in items if i.status == ItemStatus.CANNOT),
    }


__all__ = ["ActionItem", "ActionItems", "ItemStatus", "Update", "item_reminders", "summary_counts",
           "case_roles", "ITEMS"]
