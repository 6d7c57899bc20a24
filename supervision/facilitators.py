"""Facilitators: who may facilitate a case (independence rules of the profile), their current load,
and assigning them (Norfolk: two from different agencies, one the lead coordinator)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from supervision.clock import Clock
from supervision.errors import FieldError, Forbidden, NotFound, ValidationFailed
from supervision.lifecycle import OPEN_STATES, Event, apply
from supervision.models import Case, FacilitatorAssignment
from supervision.ports import DomainEvent, EventSink
from supervision.profile import Profile
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action, Actor, FacilitatorProfile, authorize

# Why a facilitator is not eligible (catalogue keys under request.facilitators.why).
NOT_TRAINED = "not_trained"
INACTIVE = "inactive"
INVITEE = "invitee"
REQUESTER_OR_LEAD = "requester_or_lead"
SAME_TEAM = "same_team"
PREVIOUS_INVOLVEMENT = "previous_involvement"


@dataclass(frozen=True)
class Candidate:
    facilitator: FacilitatorProfile
    load: int                          # open cases this facilitator is assigned to now
    reasons: tuple[str, ...] = ()      # empty: eligible

    @property
    def eligible(self) -> bool:
        return not self.reasons

    @property
    def email(self) -> str:
        return self.facilitator.email.lower()


def same_child(a: Case, b: Case) -> bool:
    """The same child in two cases: same forename, surname and date of birth (names case-insensitive)."""
    ca, cb = a.request.child, b.request.child

    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    return (bool(ca.date_of_birth) and ca.date_of_birth == cb.date_of_birth
            and norm(ca.forename) == norm(cb.forename) and norm(ca.surname) == norm(cb.surname)
            and bool(norm(ca.forename) or norm(ca.surname)))


def evaluate(profile: Profile, case: Case, roster: Iterable[FacilitatorProfile], all_cases: Iterable[Case]) -> list[Candidate]:
    """Every facilitator on the roster with their load and the reasons (if any) they may not facilitate."""
    others = [c for c in all_cases if c.id != case.id]
    rules = profile.facilitation.independence
    roster = list(roster)
    r = case.request
    invitee_emails = {i.email.lower() for i in r.invitees if i.email}
    teams = {i.team.strip().lower() for i in r.invitees if i.team.strip()}
    teams |= {f.team.strip().lower() for f in roster if f.email.lower() in invitee_emails and f.team.strip()}
    requester_lead = {e.lower() for e in (r.requester.email, r.lead_professional.email) if e}
    requester_lead |= {u.lower() for u in (r.requester.user_id, r.lead_professional.user_id) if u}
    earlier = [c for c in others if same_child(c, case) and c.created_at <= case.created_at]
    result = []
    for f in roster:
        keys = {k.lower() for k in (f.email, f.user_id) if k}
        reasons = []
        if not f.trained:
            reasons.append(NOT_TRAINED)
        if not f.active:
            reasons.append(INACTIVE)
        if "not_an_invitee" in rules and keys & invitee_emails:
            reasons.append(INVITEE)
        if "not_requester_or_lead_professional" in rules and keys & requester_lead:
            reasons.append(REQUESTER_OR_LEAD)
        if "not_in_attendee_line_management" in rules and f.team.strip() and f.team.strip().lower() in teams:
            reasons.append(SAME_TEAM)
        if "no_previous_involvement" in rules and any(keys & (c.member_emails() | {i.lower() for i in c.member_ids()})
                                                      for c in earlier):
            reasons.append(PREVIOUS_INVOLVEMENT)
        load = sum(1 for c in others if c.state in OPEN_STATES and any(a.email.lower() in keys for a in c.facilitators))
        result.append(Candidate(facilitator=f, load=load, reasons=tuple(reasons)))
    return sorted(result, key=lambda c: (not c.eligible, c.load, c.facilitator.name.lower()))


def check_choice(profile: Profile, candidates: list[Candidate], chosen: list[str], lead: str) -> list[Candidate]:
    """The chosen facilitators (emails), or ValidationFailed naming the field."""
    by_email = {c.email: c for c in candidates}
    chosen = list(dict.fromkeys(e.strip().lower() for e in chosen if e.strip()))
    count = profile.facilitation.count
    errors: list[FieldError] = []
    picked = []
    for email in chosen:
        candidate = by_email.get(email)
        if candidate is None or not candidate.eligible:
            errors.append(FieldError("facilitators", "request.error.facilitator_not_eligible"))
        else:
            picked.append(candidate)
    if not errors and len(picked) != count:
        errors.append(FieldError("facilitators", "request.error.facilitator_count", count=count))
    if not errors and profile.facilitation.different_agencies:
        agencies = {c.facilitator.agency.strip().lower() for c in picked}
        if len(agencies) < len(picked):
            errors.append(FieldError("facilitators", "request.error.facilitator_agencies"))
    if not errors and profile.facilitation.lead_coordinator and lead.strip().lower() not in {c.email for c in picked}:
        errors.append(FieldError("lead", "request.error.facilitator_lead"))
    if errors:
        raise ValidationFailed(errors)
    return picked


class FacilitatorService:
    def __init__(self, *, cases: CaseRepository, audit: AuditLog, events: EventSink, clock: Clock,
                 profiles: Mapping[str, Profile], roster: Callable[[], Iterable[FacilitatorProfile]],
                 find_user_id: Callable[[str], Awaitable[str]] | None = None) -> None:
        self.cases, self.audit, self.events, self.clock = cases, audit, events, clock
        self.profiles = profiles
        self.roster = roster
        self.find_user_id = find_user_id

    def _profile(self, case: Case) -> Profile:
        return self.profiles[case.profile_id]

    async def _authorize(self, actor: Actor, case: Case, what: str) -> None:
        try:
            authorize(actor, Action.ASSIGN_FACILITATORS, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=what, case_id=case.id,
                                    what=Action.ASSIGN_FACILITATORS.value, why="role check refused", allowed=False)
            raise

    async def _roster_cases(self, roster: list[FacilitatorProfile]) -> list[Case]:
        """The cases anyone on the roster is part of (through the user index): all that their load
        and earlier involvement depend on, without reading every case in the store."""
        found: dict[str, Case] = {}
        for facilitator in roster:
            for key in sorted({k.lower() for k in (facilitator.email, facilitator.user_id) if k}):
                for case in await self.cases.for_user(key):
                    found[case.id] = case
        return list(found.values())

    async def options(self, actor: Actor, case_id: str) -> tuple[Case, list[Candidate]]:
        case = await self.cases.get(case_id)
        if case is None:
            raise NotFound("no such case", case_id=case_id)
        await self._authorize(actor, case, "facilitators.options")
        roster = list(self.roster())
        others = await self._roster_cases(roster)
        candidates = evaluate(self._profile(case), case, roster, others)
        await self.audit.record(actor=actor.audit_name, action="facilitators.options", case_id=case.id,
                                what=f"{sum(c.eligible for c in candidates)} eligible; read the roster's "
                                     f"{len(others)} cases for load and earlier involvement",
                                why="choosing facilitators")
        return case, candidates

    async def assign(self, actor: Actor, case_id: str, chosen: list[str], lead: str = "") -> Case:
        case, candidates = await self.options(actor, case_id)
        profile = self._profile(case)
        picked = check_choice(profile, candidates, chosen, lead)
        lead_email = lead.strip().lower() if profile.facilitation.lead_coordinator else ""
        assignments = []
        for c in picked:
            user_id = c.facilitator.user_id
            if not user_id and self.find_user_id is not None:
                user_id = await self.find_user_id(c.email)
            assignments.append(FacilitatorAssignment(name=c.facilitator.name, email=c.email,
                                                     agency=c.facilitator.agency, user_id=user_id,
                                                     lead=c.email == lead_email))

        def change(stored: Case) -> None:
            apply(stored, Event.ASSIGN_FACILITATORS, actor=actor.audit_name, clock=self.clock,
                  reason=", ".join(a.name for a in assignments))
            stored.facilitators = assignments

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="facilitators.assign", case_id=case.id,
            what=", ".join(a.email for a in assignments), why="coordinator assigned facilitators"))
        await self.events.publish(DomainEvent(
            kind="facilitators.assigned", case_id=case.id, at=self.clock.now(),
            data={"reference": case.reference, "state": case.state.value,
                  "facilitators": [a.email for a in assignments], "lead": lead_email},
            idempotency_key=f"{case.id}:facilitators.assigned:{len(case.history)}"))
        return case
