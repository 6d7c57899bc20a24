"""The partnership log (Bolton's anonymised tracker): one entry per recorded session with its reference,
dates, level of need, agencies, timeliness against each deadline, themes, key learning points,
escalations and pre/post evaluation scores. No child or family identifiers: entries are built from
structured fields, and every piece of free text is passed through ``redact`` against the case's
identifiers before it is stored. Only the profile's ``learning.tracker_readers`` (configured
administrators and business managers) may read it; every read and refusal is audited.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from supervision.clock import Clock, uk_local
from supervision.codec import from_data, to_data
from supervision.concerns import redact
from supervision.errors import Forbidden
from supervision.lifecycle import Deadlines
from supervision.models import Case
from supervision.ports import DocumentStore
from supervision.profile import Profile
from supervision.record import SessionRecord, on_time, record_identifiers
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action as Permission
from supervision.roles import Actor, Directory, authorize

LOG = "partnership_log"


@dataclass(frozen=True)
class Scores:
    """Evaluation means for one session (0-5 scale) and the impact (post minus pre)."""
    pre_mean: float | None
    post_mean: float | None
    impact: float | None
    responses: int = 0


ScoresFor = Callable[[Case, int], Awaitable[Scores | None]]   # (case, session number)


@dataclass
class TrackerEntry:
    reference: str
    profile_id: str
    session_number: int
    requested_on: date | None = None
    agreed_on: date | None = None
    session_due: date | None = None
    held_on: date | None = None
    session_on_time: bool | None = None
    actions_due: date | None = None
    actions_sent_on: date | None = None
    actions_on_time: bool | None = None
    minutes_due: date | None = None
    minutes_done_on: date | None = None
    minutes_on_time: bool | None = None
    level_of_need: str = ""
    agencies: list[str] = field(default_factory=list)
    attendee_count: int = 0
    themes: list[str] = field(default_factory=list)
    other_themes: str = ""
    learning_points: str = ""
    escalated: bool = False
    escalated_to: str = ""
    further_sessions: bool = False
    action_count: int = 0
    pre_mean: float | None = None
    post_mean: float | None = None
    impact: float | None = None
    evaluation_responses: int = 0
    scores_available: bool = False
    follow_up_on: date | None = None
    plan_moved_on: str = ""
    case_id: str = ""          # internal (opaque id, not exported): to refresh scores that come in later

    @property
    def key(self) -> str:
        return f"{self.reference}:{self.session_number}"


def _day(when: datetime | None) -> date | None:
    return uk_local(when).date() if when else None


def build_entry(case: Case, record: SessionRecord, profile: Profile, deadlines: Deadlines,
                scores: Scores | None) -> TrackerEntry:
    """The anonymised entry for one recorded session (pure: the tests check it for identifiers)."""
    identifiers = record_identifiers(case)

    def clean(text: str) -> str:
        return redact(text, identifiers) if identifiers else text

    session = case.session if case.session.number == record.session_number else next(
        (s for s in case.previous_sessions if s.number == record.session_number), case.session)
    held_on = record.held_on or _day(session.held_at)
    actions_due = deadlines.actions_due(held_on) if held_on else None
    minutes_due = deadlines.minutes_due(held_on) if held_on else None
    return TrackerEntry(
        reference=case.reference, profile_id=profile.id, session_number=record.session_number,
        requested_on=_day(case.created_at), agreed_on=_day(case.agreed_at), session_due=case.session_due,
        held_on=held_on,
        session_on_time=(held_on <= case.session_due) if (held_on and case.session_due) else None,
        actions_due=actions_due, actions_sent_on=_day(session.actions_distributed_at),
        actions_on_time=on_time(session.actions_distributed_at, actions_due) if actions_due else None,
        minutes_due=minutes_due, minutes_done_on=_day(session.minutes_done_at),
        minutes_on_time=on_time(session.minutes_done_at, minutes_due) if minutes_due else None,
        level_of_need=case.request.level_of_need if case.request.level_of_need in profile.request.level_of_need
        else clean(case.request.level_of_need),
        agencies=sorted({*case.request.agencies, *(f.agency for f in case.facilitators if f.agency)}),
        attendee_count=len(record.attendee_emails) + len([n for n in record.other_attendees.split(",") if n.strip()]),
        themes=[t for t in record.themes if t in profile.record.themes],
        other_themes=clean(record.other_themes), learning_points=clean(record.learning_points),
        escalated=bool(record.escalation_issues.strip()), escalated_to=clean(record.escalated_to),
        further_sessions=record.further_sessions, action_count=len(record.actions),
        pre_mean=scores.pre_mean if scores else None, post_mean=scores.post_mean if scores else None,
        impact=scores.impact if scores else None, evaluation_responses=scores.responses if scores else 0,
        scores_available=scores is not None, case_id=case.id,
    )


@dataclass(frozen=True)
class TrackerStats:
    sessions: int
    cases: int
    by_month: dict[str, int]
    by_theme: dict[str, int]
    by_level: dict[str, int]
    timeliness: dict[str, tuple[int, int]]        # deadline -> (on time, known)
    mean_pre: float | None
    mean_post: float | None
    mean_impact: float | None
    escalated: int
    further_sessions: int
    followed_up: int
    plan_moved_on: dict[str, int]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def stats(entries: list[TrackerEntry]) -> TrackerStats:
    timeliness = {}
    for name in ("session", "actions", "minutes"):
        known = [getattr(e, f"{name}_on_time") for e in entries if getattr(e, f"{name}_on_time") is not None]
        timeliness[name] = (sum(1 for v in known if v), len(known))
    return TrackerStats(
        sessions=len(entries), cases=len({e.reference for e in entries}),
        by_month=dict(sorted(Counter(e.held_on.strftime("%Y-%m") for e in entries if e.held_on).items())),
        by_theme=dict(Counter(t for e in entries for t in e.themes).most_common()),
        by_level=dict(Counter(e.level_of_need or "-" for e in entries).most_common()),
        timeliness=timeliness,
        mean_pre=_mean([e.pre_mean for e in entries if e.pre_mean is not None]),
        mean_post=_mean([e.post_mean for e in entries if e.post_mean is not None]),
        mean_impact=_mean([e.impact for e in entries if e.impact is not None]),
        escalated=sum(1 for e in entries if e.escalated),
        further_sessions=sum(1 for e in entries if e.further_sessions),
        followed_up=sum(1 for e in entries if e.follow_up_on),
        plan_moved_on=dict(Counter(e.plan_moved_on for e in entries if e.plan_moved_on)),
    )


def reader_kinds(actor: Actor, directory: Directory) -> set[str]:
    keys = {k.lower() for k in (actor.user_id, actor.email, actor.aad_object_id) if k}
    kinds = set()
    if keys & directory.administrators:
        kinds.add("administrator")
    if keys & directory.business_managers:
        kinds.add("business_manager")
    return kinds


class PartnershipLog:
    def __init__(self, *, store: DocumentStore, audit: AuditLog, clock: Clock, directory: Directory,
                 deadlines: Callable[[Profile], Deadlines], scores_for: ScoresFor | None = None,
                 cases: CaseRepository | None = None) -> None:
        self.store, self.audit, self.clock, self.directory = store, audit, clock, directory
        self.deadlines, self.scores_for, self.cases = deadlines, scores_for, cases

    async def add_session(self, case: Case, record: SessionRecord, profile: Profile) -> TrackerEntry:
        scores = await self.scores_for(case, record.session_number) if self.scores_for is not None else None
        entry = build_entry(case, record, profile, self.deadlines(profile), scores)
        await self.store.put(LOG, entry.key, to_data(entry))
        await self.audit.record(actor="system", action="tracker.add", case_id=case.id, what=entry.key,
                                why="session record published")
        return entry

    async def add_follow_up(self, case: Case, session_number: int, plan_moved_on: str, on: date) -> None:
        stored = await self.store.get(LOG, f"{case.reference}:{session_number}")
        if stored is None:
            return
        entry = from_data(TrackerEntry, stored.data)
        entry.follow_up_on, entry.plan_moved_on = on, plan_moved_on
        await self.store.put(LOG, entry.key, to_data(entry))

    async def refresh_scores(self, entry: TrackerEntry, case: Case | None) -> TrackerEntry:
        """Post-session evaluations may arrive after the record is published: take the latest."""
        if self.scores_for is None or case is None:
            return entry
        scores = await self.scores_for(case, entry.session_number)
        if scores is None:
            return entry
        fresh = (scores.pre_mean, scores.post_mean, scores.impact, scores.responses, True)
        if fresh != (entry.pre_mean, entry.post_mean, entry.impact, entry.evaluation_responses,
                     entry.scores_available):
            (entry.pre_mean, entry.post_mean, entry.impact, entry.evaluation_responses,
             entry.scores_available) = fresh
            await self.store.put(LOG, entry.key, to_data(entry))
        return entry

    async def read(self, actor: Actor, profile: Profile, why: str = "read the partnership log") -> list[TrackerEntry]:
        try:
            authorize(actor, Permission.READ_TRACKER)
            if not reader_kinds(actor, self.directory) & profile.tracker_readers:
                raise Forbidden("not a tracker reader", key="tracker.error.forbidden")
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action="tracker.refused", what=profile.id,
                                    why=why, allowed=False)
            raise Forbidden("not a tracker reader", key="tracker.error.forbidden") from None
        entries = []
        for key in await self.store.keys(LOG):
            stored = await self.store.get(LOG, key)
            if stored:
                entry = from_data(TrackerEntry, stored.data)
                if entry.profile_id == profile.id:
                    if self.cases is not None and entry.case_id:
                        entry = await self.refresh_scores(entry, await self.cases.get(entry.case_id))
                    entries.append(entry)
        await self.audit.record(actor=actor.audit_name, action="tracker.read", what=f"{len(entries)} entries",
                                why=why)
        return sorted(entries, key=lambda e: (e.held_on or date.min, e.reference, e.session_number))


COLUMNS: tuple[tuple[str, str], ...] = (
    ("reference", "Reference"), ("session_number", "Session"), ("level_of_need", "Level of need"),
    ("requested_on", "Requested"), ("agreed_on", "Agreed"), ("session_due", "Session due"),
    ("held_on", "Held"), ("session_on_time", "Session on time"), ("actions_due", "Actions due"),
    ("actions_sent_on", "Actions sent"), ("actions_on_time", "Actions on time"),
    ("minutes_due", "Minutes due"), ("minutes_done_on", "Minutes done"), ("minutes_on_time", "Minutes on time"),
    ("agencies", "Agencies"), ("attendee_count", "Attendees"), ("themes", "Themes"),
    ("other_themes", "Other themes"), ("learning_points", "Key learning points"), ("escalated", "Escalated"),
    ("escalated_to", "Escalated to"), ("further_sessions", "Further sessions"), ("action_count", "Actions"),
    ("pre_mean", "Pre-session score"), ("post_mean", "Post-session score"), ("impact", "Impact (post - pre)"),
    ("evaluation_responses", "Evaluation responses"), ("follow_up_on", "Follow-up"),
    ("plan_moved_on", "Plan moved on"),
)


def row_values(entry: TrackerEntry, yes_no: tuple[str, str] = ("Yes", "No")) -> list[object]:
    """One entry as export cells, in COLUMNS order (lists joined, booleans as yes/no words, unknown blank).
    The bot passes the words (and the headings) from the catalogue: dialogs/tracker.py export_words."""
    values: list[object] = []
    for name, _ in COLUMNS:
        value = getattr(entry, name)
        if isinstance(value, bool):
            value = yes_no[0] if value else yes_no[1]
        elif isinstance(value, list):
            value = "; ".join(value)
        elif value is None:
            value = ""
        values.append(value)
    return values


__all__ = ["LOG", "Scores", "TrackerEntry", "TrackerStats", "PartnershipLog", "build_entry", "stats",
           "reader_kinds", "COLUMNS", "row_values"]
