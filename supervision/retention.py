"""Retention and subject access: what is held about a case, when it must go, and taking it away.

* A case is due for deletion ``retention.years_after_closure`` (per profile) after it closed (the
  time it entered a terminal state: closed, declined, cancelled or withdrawn). A case under
  ``legal_hold`` is never purged.
* ``Retention.purge`` deletes everything held about each due case (the case document, each
  feature's records, index entries) and anonymises what the partnership keeps for learning (the
  partnership log entry loses its free text and keeps its figures). A deletion log records the
  reference, the dates and the reason only: no identifiers. The case document goes last, so a purge
  cut short is finished by the next run.
* As a scheduled job: ``source`` gives each closed case one ``retention.purge`` due work at its
  deletion date (registered with ``include_closed=True``) and ``handle`` purges it.
* ``Retention.export`` gathers everything held about one case for a subject access request (JSON;
  ``documents/sar_docx.py`` renders it as DOCX).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from supervision.clock import Clock, as_utc, uk_local
from supervision.codec import from_data, to_data
from supervision.duework import DueWork, RunContext
from supervision.errors import NotFound, VersionConflict
from supervision.evaluation import meeting_key
from supervision.lifecycle import TERMINAL
from supervision.models import Case
from supervision.ports import DocumentStore
from supervision.profile import Profile
from supervision.repository import CASES, USER_INDEX, AuditLog, CaseRepository

DELETION_LOG = "retention_deletions"
REFERENCES = "case_references"
PURGE_KIND = "retention.purge"
SYSTEM_ACTOR = "system:retention"
DEFAULT_REASON = "retention period after closure ended"

# Each feature's records about a case: (collection, how a document belongs to the case).
#   "key": the document key is the case id; "prefix": keys start with "<case id>:" or "<case id>|";
#   "field": the document's "case_id" field (the collection is scanned: only small collections).
#   or a function from the case to the keys (the meeting index is keyed by the join URL).
def _meeting_keys(case: Case) -> list[str]:
    urls = [s.join_url for s in [case.session, *case.previous_sessions] if s.join_url]
    return sorted({meeting_key(url) for url in urls})


Holding = tuple[str, "str | Callable[[Case], list[str]]"]
HOLDINGS: tuple[Holding, ...] = (
    ("schedule", "key"), ("chronology_merges", "key"), ("due_work_done", "key"),
    ("evaluations", "prefix"), ("session_records", "prefix"), ("follow_ups", "prefix"),
    ("chronologies", "prefix"), ("chronology_asks", "prefix"), ("concerns", "prefix"),
    ("action_items", "prefix"), ("due_work_sends", "prefix"), ("due_work_ledger", "prefix"),
    ("meeting_index", _meeting_keys), ("chronology_uploads", "field"),
)
PARTNERSHIP_LOG = "partnership_log"          # keyed "<reference>:<session>"; kept, anonymised
PARTNERSHIP_FREE_TEXT = ("learning_points", "other_themes", "escalated_to", "plan_moved_on")
OWNER_INDEX = "action_items_by_owner"        # owner email -> action item keys "<case id>:<item>"


def add_years(when: datetime, years: int) -> datetime:
    try:
        return when.replace(year=when.year + years)
    except ValueError:                       # 29 February in a year that has none
        return when.replace(year=when.year + years, day=28)


def closed_at(case: Case) -> datetime | None:
    """When the case reached its terminal state, or None while it is open."""
    if case.state not in TERMINAL:
        return None
    if case.closed_at is not None:
        return case.closed_at
    for transition in reversed(case.history):
        if transition.to_state == case.state:
            return transition.at
    return case.created_at


@dataclass(frozen=True)
class PurgeOutcome:
    case_id: str
    reference: str
    closed_on: date
    due_on: date
    status: str                  # deleted | would_delete | legal_hold | not_due
    removed: int = 0             # documents deleted (index entries not counted)
    anonymised: int = 0          # documents kept with their free text removed


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    outcomes: list[PurgeOutcome] = field(default_factory=list)

    def with_status(self, status: str) -> list[PurgeOutcome]:
        return [o for o in self.outcomes if o.status == status]


class Retention:
    def __init__(self, *, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 profiles: Mapping[str, Profile], holdings: tuple[Holding, ...] = HOLDINGS) -> None:
        self.store, self.cases, self.audit, self.clock = store, cases, audit, clock
        self.profiles, self.holdings = profiles, holdings

    # --- when -------------------------------------------------------------------------------------
    def due_at(self, case: Case) -> datetime | None:
        closed = closed_at(case)
        profile = self.profiles.get(case.profile_id)
        if closed is None or profile is None:
            return None
        return add_years(as_utc(closed), profile.retention_years_after_closure)

    def source(self, case: Case) -> list[DueWork]:
        """Due-work source (register with include_closed=True): one purge per closed case."""
        due = self.due_at(case)
        if due is None or case.legal_hold:
            return []
        return [DueWork(key=f"{case.id}:{PURGE_KIND}", kind=PURGE_KIND, case_id=case.id, due_at=due)]

    async def handle(self, work: DueWork, ctx: RunContext) -> None:
        """Due-work handler: purge the case if it is still due (a hold may have been set since)."""
        await self.purge_case(work.case_id, ctx.now, reason=DEFAULT_REASON, actor=SYSTEM_ACTOR)

    # --- finding ----------------------------------------------------------------------------------
    async def remember_reference(self, case: Case) -> None:
        """Listener for CaseRepository: keep reference -> case id, so a case is found by reference."""
        if await self.store.get(REFERENCES, case.reference) is None:
            try:
                await self.store.put(REFERENCES, case.reference, {"case_id": case.id}, create_only=True)
            except VersionConflict:
                pass

    async def find(self, reference_or_id: str) -> Case | None:
        """A case by its reference (or its internal id). Falls back to a scan for cases older than
        the reference index, and indexes what it finds."""
        wanted = reference_or_id.strip()
        if not wanted:
            return None
        stored = await self.store.get(REFERENCES, wanted)
        if stored is not None:
            case = await self.cases.get(str(stored.data["case_id"]))
            if case is not None:
                return case
        case = await self.cases.get(wanted)
        if case is not None:
            return case
        for case_id in await self.cases.ids():
            case = await self.cases.get(case_id)
            if case is not None and case.reference.lower() == wanted.lower():
                await self.remember_reference(case)
                return case
        return None

    async def _documents(self, case: Case) -> dict[str, dict[str, Any]]:
        """Everything held about the case, by collection: {collection: {key: data}}."""
        found: dict[str, dict[str, Any]] = {}
        for collection, how in self.holdings:
            if callable(how):
                keys = how(case)
            elif how == "key":
                keys = [case.id]
            elif how == "prefix":
                keys = await self.store.keys(collection, f"{case.id}:") + await self.store.keys(collection, f"{case.id}|")
            else:
                keys = await self.store.keys(collection)
            for key in keys:
                stored = await self.store.get(collection, key)
                if stored is None:
                    continue
                if (how == "field" or callable(how)) and stored.data.get("case_id") != case.id:
                    continue
                found.setdefault(collection, {})[key] = stored.data
        for key in await self.store.keys(PARTNERSHIP_LOG, f"{case.reference}:"):
            stored = await self.store.get(PARTNERSHIP_LOG, key)
            if stored is not None:
                found.setdefault(PARTNERSHIP_LOG, {})[key] = stored.data
        return found

    # --- purging ----------------------------------------------------------------------------------
    async def purge(self, now: datetime | None = None, *, dry_run: bool = False, reason: str = DEFAULT_REASON,
                    actor: str = SYSTEM_ACTOR) -> PurgeReport:
        """Purge every closed case past retention (or, dry run, say which would go)."""
        now = as_utc(now or self.clock.now())
        report = PurgeReport(now=now, dry_run=dry_run)
        for case_id in await self.cases.ids():
            case = await self.cases.get(case_id)
            if case is None or self.due_at(case) is None:
                continue
            outcome = await self.purge_case(case_id, now, dry_run=dry_run, reason=reason, actor=actor)
            if outcome is not None and outcome.status != "not_due":
                report.outcomes.append(outcome)
        return report

    async def purge_case(self, case_id: str, now: datetime, *, dry_run: bool = False,
                         reason: str = DEFAULT_REASON, actor: str = SYSTEM_ACTOR) -> PurgeOutcome | None:
        case = await self.cases.get(case_id)
        due = self.due_at(case) if case is not None else None
        if case is None or due is None:
            return None
        closed = closed_at(case)
        assert closed is not None
        closed_on, due_on = uk_local(closed).date(), uk_local(due).date()
        if due > now:
            return PurgeOutcome(case.id, case.reference, closed_on, due_on, status="not_due")
        if case.legal_hold:
            if not dry_run:
                await self.audit.record(actor=actor, action="retention.held", case_id=case.id,
                                        what="purge withheld", why="legal hold")
            return PurgeOutcome(case.id, case.reference, closed_on, due_on, status="legal_hold")
        documents = await self._documents(case)
        removed = sum(len(v) for c, v in documents.items() if c != PARTNERSHIP_LOG) + 1
        anonymised = len(documents.get(PARTNERSHIP_LOG, {}))
        if dry_run:
            return PurgeOutcome(case.id, case.reference, closed_on, due_on, status="would_delete", removed=removed, anonymised=anonymised)

        for collection, docs in documents.items():
            for key, data in docs.items():
                if collection == PARTNERSHIP_LOG:
                    await self.store.put(collection, key, {**data, **{f: "" for f in PARTNERSHIP_FREE_TEXT if f in data}})
                else:
                    await self.store.delete(collection, key)
        for key in {k.lower() for k in case.member_ids() | case.member_emails()}:
            await _remove_from_index(self.store, USER_INDEX, key, lambda v: v == case.id)
        owners = {str(d.get("owner_email", "")).lower() for d in documents.get("action_items", {}).values()}
        for owner in owners - {""}:
            await _remove_from_index(self.store, OWNER_INDEX, owner, lambda v: v.startswith(f"{case.id}:"))
        # The deletion log is written before the case document goes: if the run stops in between, the
        # next run purges the case again (and logs it again) rather than losing the record of it.
        await self.store.append(DELETION_LOG, {
            "reference": case.reference, "closed_on": closed_on.isoformat(),
            "due_on": due_on.isoformat(), "deleted_on": uk_local(now).date().isoformat(),
            "reason": reason})
        await self.audit.record(actor=actor, action="retention.purge", case_id=case.id,
                                what=f"{removed} documents deleted, {anonymised} anonymised", why=reason)
        await self.store.delete(REFERENCES, case.reference)
        await self.store.delete(CASES, case.id)
        return PurgeOutcome(case.id, case.reference, closed_on, due_on, status="deleted", removed=removed, anonymised=anonymised)

    async def deletion_log(self) -> list[dict[str, Any]]:
        return [entry async for entry in self.store.read_log(DELETION_LOG)]

    # --- subject access ---------------------------------------------------------------------------
    async def export(self, reference_or_id: str, *, actor: str, why: str) -> dict[str, Any]:
        """Everything held about one case, as plain data (JSON-ready). Audited."""
        case = await self.find(reference_or_id)
        if case is None:
            await self.audit.record(actor=actor, action="case.export", what=f"no case {reference_or_id}",
                                    why=why, allowed=False)
            raise NotFound(f"no case {reference_or_id}", case_id=reference_or_id)
        documents = await self._documents(case)
        audit_entries = await self.audit.entries(case.id)
        await self.audit.record(actor=actor, action="case.export", case_id=case.id,
                                what="subject access export (JSON and DOCX)", why=why)
        return {
            "reference": case.reference, "case_id": case.id, "exported_at": self.clock.now().isoformat(),
            "exported_by": actor, "why": why,
            "case": to_data(case),
            "holdings": documents,
            "audit": audit_entries,
            "deletion_due": (self.due_at(case).isoformat() if self.due_at(case) else None),  # type: ignore[union-attr]
        }


async def _remove_from_index(store: DocumentStore, collection: str, key: str,
                             belongs: Callable[[str], bool]) -> None:
    for _ in range(20):
        stored = await store.get(collection, key)
        if stored is None:
            return
        values = list(stored.data.get("cases", []))
        kept = [v for v in values if not belongs(v)]
        if kept == values:
            return
        try:
            if kept:
                await store.put(collection, key, {**stored.data, "cases": kept}, etag=stored.etag)
            else:
                await store.delete(collection, key, etag=stored.etag)
            return
        except VersionConflict:
            continue


def case_from_export(export: dict[str, Any]) -> Case:
    return from_data(Case, export["case"])
