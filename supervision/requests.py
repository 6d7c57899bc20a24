"""Requesting a session: the request form (as data), its validation per profile, drafts, the
immediate-risk gate, submission, agreement (Norfolk: the accountable manager first) and
``my sessions``.

The form is described here once (steps and fields); cards render it and this module validates
it, so the two cannot drift apart. Every use case checks the actor's role with
``supervision.roles.authorize`` and audits what it read or changed; refusals are audited too.
Events carry no child or family identifiers.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from supervision.clock import Clock, uk_local, uk_today
from supervision.drafts import Draft, DraftRepository, new_row_id
from supervision.errors import DomainError, FieldError, Forbidden, NotFound, ValidationFailed
from supervision.lifecycle import OPEN_STATES, Deadlines, Event, apply
from supervision.models import (
    Awareness,
    Case,
    CaseState,
    ChildDetails,
    FamilyMember,
    Invitee,
    Person,
    RequestDetails,
)
from supervision.ports import DomainEvent, EventSink
from supervision.profile import Profile
from supervision.repository import AuditLog, CaseRepository, new_reference
from supervision.roles import Action, Actor, authorize

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Lengths and rows are bounded so that every card stays under Teams' 28 KB card limit.
MAX_TEXT = 2000          # a free-text answer (reason, pen picture, voices, decisions)
MAX_LINE = 200           # a one-line answer (names, roles, phone numbers)
MAX_ADDRESS = 300
MAX_ROWS = 15            # family members on one request (practitioners: the profile's max_attendees)

# The agency list of the Bolton request template (Appendix 2, "Who needs to be invited?").
AGENCIES: tuple[str, ...] = (
    "Adult Social Care", "Children's Social Care", "Domestic Abuse Service", "Drugs/Alcohol Service - Adult",
    "Drugs/Alcohol Service - Child", "Early Years Setting", "Primary School", "Secondary School",
    "PRU/Alternative Provision", "Further Education", "Housing", "GP", "Mental Health Service - Adults",
    "Mental Health Service - Children", "Midwife", "Health Visitor", "Schools Nurse", "Police",
    "Youth Offending Team", "Probation Service", "Youth Services", "Voluntary/Community", "Faith Group", "Other",
)
CURRENT_PLANS = ("none", "team_around_the_family", "child_in_need", "child_protection", "looked_after", "other")
TRIGGERS = ("edge_of_care", "secure_accommodation", "exploitation_asb", "persistent_absence",
            "before_12_month_review", "debrief_significant_event", "other")
AWARENESS = tuple(a.value for a in Awareness)
YES_NO = ("yes", "no")
RELATIONSHIPS = ("mother", "father", "carer", "sibling", "other")

STEPS = ("requester", "child", "family", "need", "reason", "voice", "invitees", "review")


@dataclass(frozen=True)
class FieldSpec:
    id: str
    kind: str = "text"                 # text | multiline | date | email | choice
    choices: tuple[str, ...] = ()      # allowed values for a choice
    required: bool = False             # always required, whatever the profile says

    @property
    def max_length(self) -> int:
        if self.id.endswith("address"):
            return MAX_ADDRESS
        if self.kind == "email":
            return 254
        return MAX_TEXT if self.kind == "multiline" else MAX_LINE


FAMILY_FIELDS = (
    FieldSpec("relationship", "choice", RELATIONSHIPS, required=True), FieldSpec("name", required=True),
    FieldSpec("also_known_as"), FieldSpec("date_of_birth", "date"), FieldSpec("gender"), FieldSpec("ethnicity"), FieldSpec("disability"),
    FieldSpec("address", "multiline"),
)
INVITEE_FIELDS = (
    FieldSpec("agency", "choice", AGENCIES, required=True), FieldSpec("name", required=True), FieldSpec("role"),
    FieldSpec("email", "email", required=True), FieldSpec("team"),
)
ROW_PREFIX = {"family": "family", "invitees": "invitee"}


def step_fields(profile: Profile, step: str) -> tuple[FieldSpec, ...]:
    """The single-valued fields of a step, in the order the card shows them."""
    if step == "requester":
        return (FieldSpec("requester.name", required=True), FieldSpec("requester.role"),
                FieldSpec("requester.organisation"), FieldSpec("requester.address", "multiline"),
                FieldSpec("requester.phone"), FieldSpec("requester.email", "email", required=True))
    if step == "child":
        return (FieldSpec("child.forename"), FieldSpec("child.surname"), FieldSpec("child.also_known_as"),
                FieldSpec("child.date_of_birth", "date"), FieldSpec("child.gender"), FieldSpec("child.ethnicity"),
                FieldSpec("child.disability"), FieldSpec("child.address", "multiline"))
    if step == "need":
        fields = [FieldSpec("level_of_need", "choice", profile.request.level_of_need, required=True),
                  FieldSpec("current_plan", "choice", CURRENT_PLANS, required=True), FieldSpec("current_plan_other"),
                  FieldSpec("lead_professional.name"), FieldSpec("lead_professional.agency"),
                  FieldSpec("lead_professional.email", "email"),
                  FieldSpec("lead_professional_aware", "choice", AWARENESS, required=True),
                  FieldSpec("lead_professional_unaware_reason", "multiline")]
        if profile.request.manager_agreement_first:
            fields += [FieldSpec("manager.name", required=True), FieldSpec("manager.email", "email", required=True)]
        return tuple(fields)
    if step == "reason":
        return (FieldSpec("reason", "multiline", required=True), FieldSpec("trigger", "choice", TRIGGERS, required=True),
                FieldSpec("trigger_other"), FieldSpec("pen_picture", "multiline"))
    if step == "voice":
        return (FieldSpec("family_told", "choice", YES_NO, required=True),
                FieldSpec("family_not_told_reason", "multiline"), FieldSpec("child_voice", "multiline"),
                FieldSpec("family_voice", "multiline"), FieldSpec("agreed_to_share", "multiline"))
    return ()


def row_fields(step: str) -> tuple[FieldSpec, ...]:
    return {"family": FAMILY_FIELDS, "invitees": INVITEE_FIELDS}.get(step, ())


def rows_of(draft: Draft, step: str) -> list[str]:
    return draft.family_rows if step == "family" else draft.invitee_rows if step == "invitees" else []


def row_key(step: str, row: str, name: str) -> str:
    return f"{ROW_PREFIX[step]}.{row}.{name}"


def step_of_field(field_id: str) -> str:
    """Which step shows an input id (so an error can send the user back to it)."""
    head = field_id.split(".")[0]
    if head == "family":
        return "family"
    if head in ("invitee", "invitees"):
        return "invitees"
    for step in STEPS:
        for spec in _all_single_fields(step):
            if spec == field_id:
                return step
    return "review"


def _all_single_fields(step: str) -> tuple[str, ...]:
    return {
        "requester": ("requester.name", "requester.role", "requester.organisation", "requester.address",
                      "requester.phone", "requester.email"),
        "child": ("child.forename", "child.surname", "child.also_known_as", "child.date_of_birth", "child.gender",
                  "child.ethnicity", "child.disability", "child.address"),
        "need": ("level_of_need", "current_plan", "current_plan_other", "lead_professional.name",
                 "lead_professional.agency", "lead_professional.email", "lead_professional_aware",
                 "lead_professional_unaware_reason", "manager.name",
                 "manager.email"),
        "reason": ("reason", "trigger", "trigger_other", "pen_picture"),
        "voice": ("family_told", "family_not_told_reason", "child_voice", "family_voice", "agreed_to_share"),
    }.get(step, ())


def is_required(profile: Profile, spec: FieldSpec, field_id: str | None = None) -> bool:
    return spec.required or (field_id or spec.id) in profile.request.required_fields


def parse_date(raw: str) -> date | None:
    """A real calendar date from YYYY-MM-DD (what Input.Date sends) or DD/MM/YYYY (typed). None if not."""
    raw = raw.strip()
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", raw) or None
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", raw)
        if not match:
            return None
        day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) else ""


# --- validation -------------------------------------------------------------------------------------

def _check_value(profile: Profile, spec: FieldSpec, field_id: str, raw: str, today: date,
                 errors: list[FieldError], required: bool) -> None:
    value = raw.strip()
    if not value:
        if required:
            errors.append(FieldError(field_id, "request.error.required"))
        return
    if len(value) > spec.max_length:
        errors.append(FieldError(field_id, "request.error.too_long", max=spec.max_length))
        return
    if spec.kind == "email" and not EMAIL.match(value):
        errors.append(FieldError(field_id, "request.error.email"))
    elif spec.kind == "choice" and value not in spec.choices:
        errors.append(FieldError(field_id, "request.error.choice"))
    elif spec.kind == "date":
        day = parse_date(value)
        if day is None:
            errors.append(FieldError(field_id, "request.error.date"))
        elif day > today:
            errors.append(FieldError(field_id, "request.error.dob_future"))
        elif field_id == "child.date_of_birth" and age_on(day, today) >= profile.request.max_child_age_years:
            errors.append(FieldError(field_id, "request.error.child_too_old", max=profile.request.max_child_age_years))


def validate_step(profile: Profile, draft: Draft, step: str, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    values = draft.values
    for spec in step_fields(profile, step):
        _check_value(profile, spec, spec.id, values.get(spec.id, ""), today, errors, is_required(profile, spec))
    if step == "need":
        if values.get("current_plan", "").strip() == "other" and not values.get("current_plan_other", "").strip():
            errors.append(FieldError("current_plan_other", "request.error.required"))
        if values.get("lead_professional_aware", "").strip() == "no" and \
                not values.get("lead_professional_unaware_reason", "").strip():
            errors.append(FieldError("lead_professional_unaware_reason", "request.error.required"))
        if values.get("lead_professional_aware", "").strip() in ("yes", "no"):
            for key in ("lead_professional.name", "lead_professional.email"):
                if not values.get(key, "").strip() and not any(e.field == key for e in errors):
                    errors.append(FieldError(key, "request.error.required"))
    if step == "reason" and values.get("trigger", "").strip() == "other" and not values.get("trigger_other", "").strip():
        errors.append(FieldError("trigger_other", "request.error.required"))
    if step == "voice" and values.get("family_told", "").strip() == "no":
        if profile.request.family_told_before_request and not profile.request.family_may_be_untold_with_reason:
            errors.append(FieldError("family_told", "request.error.family_must_be_told"))
        elif not values.get("family_not_told_reason", "").strip():
            errors.append(FieldError("family_not_told_reason", "request.error.not_told_reason"))
    if step in ("family", "invitees"):
        errors += _validate_rows(profile, draft, step, today)
    return errors


def _row_filled(draft: Draft, step: str, row: str) -> bool:
    return any(draft.values.get(row_key(step, row, spec.id), "").strip() for spec in row_fields(step))


def row_errors(profile: Profile, draft: Draft, step: str, row: str, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    for spec in row_fields(step):
        key = row_key(step, row, spec.id)
        _check_value(profile, spec, key, draft.values.get(key, ""), today, errors, spec.required)
    return errors


def row_is_open(draft: Draft, step: str, row: str) -> bool:
    """Shown as inputs: being edited, or still empty. Complete rows are shown as one line (with Edit),
    which keeps a card with many rows under Teams' size limit."""
    return row in draft.open_rows or not _row_filled(draft, step, row)


def collapse_rows(profile: Profile, draft: Draft, step: str, today: date, *, keep: str = "") -> None:
    """Close every complete, valid row of the step (except ``keep``)."""
    for row in rows_of(draft, step):
        if row != keep and row in draft.open_rows and _row_filled(draft, step, row) \
                and not row_errors(profile, draft, step, row, today):
            draft.open_rows.remove(row)


def _validate_rows(profile: Profile, draft: Draft, step: str, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    filled = [row for row in rows_of(draft, step) if _row_filled(draft, step, row)]
    for row in filled:
        errors += row_errors(profile, draft, step, row, today)
    if step == "invitees":
        emails = [draft.values.get(row_key(step, r, "email"), "").strip().lower() for r in filled]
        seen: set[str] = set()
        for row, email in zip(filled, emails, strict=True):
            if email and email in seen:
                errors.append(FieldError(row_key(step, row, "email"), "request.error.duplicate_email"))
            seen.add(email)
        agencies = {draft.values.get(row_key(step, r, "agency"), "").strip() for r in filled} - {""}
        if len(agencies) < profile.request.min_agencies:
            errors.append(FieldError("invitees", "request.error.min_agencies", min=profile.request.min_agencies,
                                     count=len(agencies)))
        if len(filled) > profile.max_attendees:
            errors.append(FieldError("invitees", "request.error.max_attendees", max=profile.max_attendees,
                                     count=len(filled)))
    return errors


def requester_may_request(profile: Profile, draft: Draft) -> list[FieldError]:
    """``who_may_request``: any practitioner, or only the lead professional (Cheshire), or people in
    the named roles (safeguarding supervisor, team manager)."""
    kinds = profile.request.who_may_request
    if "any_practitioner" in kinds:
        return []
    values = draft.values
    requester = values.get("requester.email", "").strip().lower()
    lead = values.get("lead_professional.email", "").strip().lower()
    if "lead_professional" in kinds and requester and requester == lead:
        return []
    role = re.sub(r"[^a-z]+", " ", values.get("requester.role", "").lower()).strip()
    if "safeguarding_supervisor" in kinds and "safeguarding supervisor" in role:
        return []
    if "team_manager" in kinds and "team manager" in role:
        return []
    if kinds == frozenset({"lead_professional"}):
        return [FieldError("lead_professional.email", "request.error.lead_professional_only")]
    return [FieldError("requester.role", "request.error.requester_kind",
                       kinds=", ".join(sorted(kinds)))]


def validate_all(profile: Profile, draft: Draft, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    for step in STEPS:
        errors += validate_step(profile, draft, step, today)
    errors += requester_may_request(profile, draft)
    return errors


# --- building the request ---------------------------------------------------------------------------

def details_from(profile: Profile, draft: Draft, actor: Actor) -> RequestDetails:
    v = {k: s.strip() for k, s in draft.values.items()}
    family = []
    for row in draft.family_rows:
        if _row_filled(draft, "family", row):
            get = lambda name, row=row: v.get(row_key("family", row, name), "")  # noqa: E731
            family.append(FamilyMember(relationship=get("relationship"), name=get("name"),
                                       date_of_birth=parse_date(get("date_of_birth")), address=get("address"),
                                       gender=get("gender"), ethnicity=get("ethnicity"), disability=get("disability"),
                                       also_known_as=get("also_known_as")))
    invitees = []
    for row in draft.invitee_rows:
        if _row_filled(draft, "invitees", row):
            get = lambda name, row=row: v.get(row_key("invitees", row, name), "")  # noqa: E731
            invitees.append(Invitee(agency=get("agency"), name=get("name"), role=get("role"),
                                    email=get("email").lower(), team=get("team")))
    aware = v.get("lead_professional_aware", "")
    return RequestDetails(
        requester=Person(name=v.get("requester.name", ""), email=v.get("requester.email", "").lower(),
                         role=v.get("requester.role", ""), organisation=v.get("requester.organisation", ""),
                         phone=v.get("requester.phone", ""), address=v.get("requester.address", ""),
                         user_id=actor.user_id),
        child=ChildDetails(forename=v.get("child.forename", ""), surname=v.get("child.surname", ""),
                           also_known_as=v.get("child.also_known_as", ""),
                           date_of_birth=parse_date(v.get("child.date_of_birth", "")), gender=v.get("child.gender", ""),
                           ethnicity=v.get("child.ethnicity", ""), disability=v.get("child.disability", ""),
                           address=v.get("child.address", "")),
        family=family,
        level_of_need=v.get("level_of_need", ""),
        current_plan=v.get("current_plan_other", "") if v.get("current_plan") == "other" else v.get("current_plan", ""),
        lead_professional=Person(name=v.get("lead_professional.name", ""),
                                 email=v.get("lead_professional.email", "").lower(),
                                 organisation=v.get("lead_professional.agency", "")),
        lead_professional_aware=Awareness(aware) if aware in AWARENESS else Awareness.NOT_APPLICABLE,
        lead_professional_unaware_reason=v.get("lead_professional_unaware_reason", "") if aware == "no" else "",
        reason=v.get("reason", ""), trigger=v.get("trigger", ""), trigger_other=v.get("trigger_other", ""),
        pen_picture=v.get("pen_picture", ""),
        family_told=v.get("family_told", "yes") == "yes", family_not_told_reason=v.get("family_not_told_reason", ""),
        child_voice=v.get("child_voice", ""), family_voice=v.get("family_voice", ""),
        agreed_to_share=v.get("agreed_to_share", ""), invitees=invitees,
    )


# --- use cases --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RiskStop:
    route: str


@dataclass(frozen=True)
class CaseLine:
    """One line of ``my sessions``: the case, its stage and the next deadline (and what it is for)."""
    case: Case
    deadline: date | None
    deadline_kind: str


class StaleDraft(DomainError):
    key = "request.stale"


class RequestService:
    def __init__(self, *, cases: CaseRepository, drafts: DraftRepository, audit: AuditLog, events: EventSink,
                 clock: Clock, profiles: Mapping[str, Profile], default_profile: str,
                 deadlines: Callable[[Profile], Deadlines]) -> None:
        self.cases, self.drafts, self.audit, self.events = cases, drafts, audit, events
        self.clock, self.profiles, self.default_profile, self._deadlines = clock, profiles, default_profile, deadlines

    def profile(self, profile_id: str | None = None) -> Profile:
        return self.profiles.get(profile_id or self.default_profile) or self.profiles[self.default_profile]

    def deadlines(self, profile: Profile) -> Deadlines:
        return self._deadlines(profile)

    async def _authorize(self, actor: Actor, action: Action, case: Case | None, what: str) -> None:
        try:
            authorize(actor, action, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=what, case_id=case.id if case else "",
                                    what=action.value, why="role check refused", allowed=False)
            raise

    async def _publish(self, kind: str, case: Case, **data: Any) -> None:
        await self.events.publish(DomainEvent(kind=kind, case_id=case.id, at=self.clock.now(),
                                              data={"reference": case.reference, "state": case.state.value, **data},
                                              idempotency_key=f"{case.id}:{kind}:{len(case.history)}"))

    # drafts ---------------------------------------------------------------------------------------
    async def existing_draft(self, actor: Actor) -> Draft | None:
        return await self.drafts.get(actor.user_id)

    async def answer_risk(self, actor: Actor, answer: str, *, resume: bool) -> Draft | RiskStop:
        """The immediate-risk gate. Yes: stop, show the route, keep nothing identifying (any draft is
        deleted and the audit says only that a stop happened). No: the draft (resumed or new)."""
        answer = answer.strip().lower()
        if answer not in YES_NO:
            raise ValidationFailed([FieldError("immediate_risk", "request.error.required")])
        profile = self.profile()
        if answer == "yes":
            await self.drafts.delete(actor.user_id)
            await self.audit.record(actor=actor.audit_name, action="request.immediate_risk_stop",
                                    why="immediate risk of harm: child protection route shown")
            return RiskStop(route=profile.immediate_risk_route)
        existing = await self.drafts.get(actor.user_id)
        if existing is not None and resume:
            await self.audit.record(actor=actor.audit_name, action="request.draft_resumed",
                                    what=f"draft at step {existing.step}", why="the requester resumed their draft")
            return existing
        if existing is not None:
            await self.drafts.delete(actor.user_id)
        prefill = {"requester.name": actor.name, "requester.email": actor.email}
        draft = await self.drafts.new(actor.user_id, actor.email, profile.id, STEPS[0], prefill)
        await self.audit.record(actor=actor.audit_name, action="request.draft_started")
        return draft

    async def _draft(self, actor: Actor, draft_id: str) -> Draft:
        draft = await self.drafts.get(actor.user_id)
        if draft is None or draft.id != draft_id:
            raise StaleDraft("no such draft")
        return draft

    async def _save(self, actor: Actor, draft: Draft, what: str) -> Draft:
        """Keep the draft (it holds child and family identifiers, so every change is audited)."""
        saved = await self.drafts.save(draft)
        await self.audit.record(actor=actor.audit_name, action="request.draft_saved",
                                what=f"{what} (step {draft.step})", why="the requester is filling in a request")
        return saved

    def _merge(self, draft: Draft, step: str, inputs: Mapping[str, Any]) -> None:
        """Keep what the user typed on this step's card (only this step's inputs; nothing else)."""
        profile = self.profile(draft.profile_id)
        allowed = {s.id for s in step_fields(profile, step)}
        for row in rows_of(draft, step):
            allowed |= {row_key(step, row, s.id) for s in row_fields(step)}
        for key, value in inputs.items():
            if key in allowed:
                draft.values[key] = _as_text(value)

    async def save_step(self, actor: Actor, draft_id: str, step: str, inputs: Mapping[str, Any]) -> Draft:
        draft = await self._draft(actor, draft_id)
        if step in STEPS:
            self._merge(draft, step, inputs)
            draft.step = step
        return await self._save(actor, draft, "save_step")

    async def next_step(self, actor: Actor, draft_id: str, step: str,
                        inputs: Mapping[str, Any]) -> tuple[Draft, list[FieldError]]:
        """Save this step's values, check them, and move on only when they pass."""
        draft = await self._draft(actor, draft_id)
        if step not in STEPS:
            raise StaleDraft("no such step")
        self._merge(draft, step, inputs)
        profile, today = self.profile(draft.profile_id), uk_today(self.clock)
        errors = validate_step(profile, draft, step, today)
        if step == "need":
            errors += requester_may_request(profile, draft)
        if step in ROW_PREFIX:
            collapse_rows(profile, draft, step, today)
            wrong = {e.field.split(".")[1] for e in errors if e.field.count(".") == 2}
            draft.open_rows += [r for r in rows_of(draft, step) if r in wrong and r not in draft.open_rows]
        draft.step = step if errors else STEPS[min(STEPS.index(step) + 1, len(STEPS) - 1)]
        await self._save(actor, draft, "next_step")
        return draft, errors

    async def previous_step(self, actor: Actor, draft_id: str, step: str, inputs: Mapping[str, Any]) -> Draft:
        draft = await self._draft(actor, draft_id)
        if step not in STEPS:
            raise StaleDraft("no such step")
        self._merge(draft, step, inputs)
        if step in ROW_PREFIX:
            collapse_rows(self.profile(draft.profile_id), draft, step, uk_today(self.clock))
        draft.step = STEPS[max(STEPS.index(step) - 1, 0)]
        return await self._save(actor, draft, "previous_step")

    async def add_row(self, actor: Actor, draft_id: str, step: str, inputs: Mapping[str, Any]) -> Draft:
        draft = await self._draft(actor, draft_id)
        if step not in ROW_PREFIX:
            raise StaleDraft("no rows on this step")
        self._merge(draft, step, inputs)
        profile, today = self.profile(draft.profile_id), uk_today(self.clock)
        collapse_rows(profile, draft, step, today)
        rows = rows_of(draft, step)
        draft.step = step
        if any(not _row_filled(draft, step, r) for r in rows):
            return await self._save(actor, draft, "add_row")   # an empty row is already there to fill in
        limit = profile.max_attendees if step == "invitees" else MAX_ROWS
        if len(rows) >= limit:
            await self._save(actor, draft, "add_row")          # keep what was typed
            if step == "invitees":
                raise ValidationFailed([FieldError("invitees", "request.error.max_attendees", max=limit,
                                                   count=len(rows) + 1)])
            raise ValidationFailed([FieldError(step, "request.error.too_many_rows", max=limit)])
        row = new_row_id()
        rows.append(row)
        draft.open_rows.append(row)
        return await self._save(actor, draft, "add_row")

    async def edit_row(self, actor: Actor, draft_id: str, step: str, row: str, inputs: Mapping[str, Any]) -> Draft:
        """Show one complete row as inputs again."""
        draft = await self._draft(actor, draft_id)
        if step not in ROW_PREFIX:
            raise StaleDraft("no rows on this step")
        self._merge(draft, step, inputs)
        collapse_rows(self.profile(draft.profile_id), draft, step, uk_today(self.clock), keep=row)
        if row in rows_of(draft, step) and row not in draft.open_rows:
            draft.open_rows.append(row)
        draft.step = step
        return await self._save(actor, draft, "edit_row")

    async def remove_row(self, actor: Actor, draft_id: str, step: str, row: str, inputs: Mapping[str, Any]) -> Draft:
        draft = await self._draft(actor, draft_id)
        if step not in ROW_PREFIX:
            raise StaleDraft("no rows on this step")
        self._merge(draft, step, inputs)
        rows = rows_of(draft, step)
        if row in rows:
            rows.remove(row)
            if row in draft.open_rows:
                draft.open_rows.remove(row)
            prefix = f"{ROW_PREFIX[step]}.{row}."
            for key in [k for k in draft.values if k.startswith(prefix)]:
                del draft.values[key]
        draft.step = step
        return await self._save(actor, draft, "remove_row")

    async def cancel(self, actor: Actor, draft_id: str) -> None:
        await self._draft(actor, draft_id)
        await self.drafts.delete(actor.user_id)
        await self.audit.record(actor=actor.audit_name, action="request.draft_cancelled")

    async def submit(self, actor: Actor, draft_id: str) -> Case:
        """Check everything; issue a reference; create the case in the profile's first state."""
        draft = await self._draft(actor, draft_id)
        profile = self.profile(draft.profile_id)
        errors = validate_all(profile, draft, uk_today(self.clock))
        if any(e.key in ("request.error.lead_professional_only", "request.error.requester_kind") for e in errors):
            await self.audit.record(actor=actor.audit_name, action="request.submit", what="who_may_request",
                                    why="the profile does not let this requester request", allowed=False)
        if errors:
            draft.step = step_of_field(errors[0].field)
            await self._save(actor, draft, "submit refused")
            raise ValidationFailed(errors)
        if not await self.drafts.claim(actor.user_id, draft.id):
            raise StaleDraft("already submitted")
        try:
            case = await self._create_case(actor, profile, draft)
        except BaseException:
            await self.drafts.release(actor.user_id, draft.id)
            raise
        await self.drafts.delete(actor.user_id)
        await self.audit.record(actor=actor.audit_name, action="request.submit", case_id=case.id,
                                what=f"request {case.reference}", why="practitioner requested a session")
        if case.state is CaseState.MANAGER_REVIEW:
            await self._publish("request.manager_review", case)
        else:
            await self._publish("request.submitted", case)
        return case

    async def _create_case(self, actor: Actor, profile: Profile, draft: Draft) -> Case:
        now = self.clock.now()
        details = details_from(profile, draft, actor)
        manager = None
        if profile.request.manager_agreement_first:
            manager = Person(name=draft.value("manager.name").strip(), email=draft.value("manager.email").strip().lower())
        case = Case(id=secrets.token_hex(8), reference=new_reference(now, profile.id), profile_id=profile.id,
                    state=CaseState.REQUESTED, created_at=now, request=details, manager=manager)
        event = Event.SUBMIT_FOR_MANAGER if profile.request.manager_agreement_first else Event.SUBMIT
        apply(case, event, actor=actor.audit_name, clock=self.clock)
        return await self.cases.create(case)

    # reading --------------------------------------------------------------------------------------
    async def _case(self, case_id: str) -> Case:
        case = await self.cases.get(case_id)
        if case is None:
            raise NotFound("no such case", case_id=case_id)
        return case

    async def open_for_decision(self, actor: Actor, case_id: str) -> Case:
        """The full request, for whoever decides on it now: the manager (Norfolk) or a coordinator."""
        case = await self._case(case_id)
        action = Action.MANAGER_DECIDE if case.state is CaseState.MANAGER_REVIEW else Action.AGREE
        await self._authorize(actor, action, case, "request.open")
        await self.audit.record(actor=actor.audit_name, action="request.open", case_id=case.id,
                                what="full request with identifiers", why="to decide on the request")
        return case

    async def view(self, actor: Actor, case_id: str) -> Case:
        case = await self._case(case_id)
        await self._authorize(actor, Action.VIEW_IDENTIFIERS, case, "request.view")
        await self.audit.record(actor=actor.audit_name, action="request.view", case_id=case.id,
                                what="full request with identifiers", why="case member viewed the case")
        return case

    def agreement_deadline(self, case: Case) -> date:
        """The coordinators' deadline to decide: working days after the case last entered the queue."""
        entered = case.created_at
        for transition in case.history:
            if transition.to_state in (CaseState.REQUESTED, CaseState.MANAGER_REVIEW):
                entered = transition.at
        profile = self.profile(case.profile_id)
        return self.deadlines(profile).calendar.add_working_days(
            uk_local(entered).date(), profile.timescales.request_decision_working_days)

    async def my_cases(self, actor: Actor) -> list[CaseLine]:
        found: dict[str, Case] = {}
        for key in {k for k in (actor.user_id, actor.email, actor.aad_object_id) if k}:
            for case in await self.cases.for_user(key):
                found[case.id] = case
        await self.audit.record(actor=actor.audit_name, action="sessions.mine", what=f"{len(found)} cases",
                                why="the user listed their cases")
        lines = [self.line_for(case) for case in found.values()]
        return sorted(lines, key=lambda ln: (ln.case.state not in OPEN_STATES, ln.deadline or date.max,
                                             ln.case.reference))

    def line_for(self, case: Case) -> CaseLine:
        deadlines = self.deadlines(self.profile(case.profile_id))
        s = CaseState
        session_day = uk_local(case.session.starts_at).date() if case.session.starts_at else None
        held_day = uk_local(case.session.held_at).date() if case.session.held_at else None
        if case.state in (s.MANAGER_REVIEW, s.REQUESTED):
            return CaseLine(case, self.agreement_deadline(case), "decision")
        if case.state is s.INFO_REQUESTED:
            return CaseLine(case, None, "information")
        if case.state in (s.AGREED, s.FACILITATORS_ASSIGNED):
            return CaseLine(case, case.session_due, "session_due")
        if case.state in (s.SCHEDULED, s.PRE_SESSION) and session_day:
            return CaseLine(case, session_day, "session")
        if case.state in (s.HELD, s.RECORDED) and held_day:
            return CaseLine(case, deadlines.actions_due(held_day), "actions")
        if case.state is s.ACTIONS_DISTRIBUTED and held_day:
            return CaseLine(case, deadlines.minutes_due(held_day), "minutes")
        if case.state in (s.MINUTES_DONE, s.FOLLOW_UP_DUE):
            return CaseLine(case, case.follow_up_due or (deadlines.follow_up(held_day) if held_day else None),
                            "follow_up")
        return CaseLine(case, None, "none")

    # decisions ------------------------------------------------------------------------------------
    async def manager_decide(self, actor: Actor, case_id: str, *, endorse: bool, reason: str = "") -> Case:
        """Norfolk: the accountable manager agrees the case should go to joint supervision, or not."""
        reason = reason.strip()
        if not endorse and not reason:
            raise ValidationFailed([FieldError("decline_reason", "request.error.required")])
        await self._authorize(actor, Action.MANAGER_DECIDE, await self._case(case_id), "request.manager_decide")

        def change(case: Case) -> None:
            if endorse:
                apply(case, Event.MANAGER_ENDORSE, actor=actor.audit_name, clock=self.clock,
                      reason="accountable manager agreed")
            else:
                apply(case, Event.DECLINE, actor=actor.audit_name, clock=self.clock, reason=reason)
                case.decline_reason = reason

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="request.manager_decide", case_id=case.id,
            what="endorsed" if endorse else "declined",
            why="accountable manager's decision (any reason is in the case history)"))
        await self._publish("request.submitted" if endorse else "request.declined", case,
                            decided_by="manager")
        return case

    async def agree(self, actor: Actor, case_id: str) -> Case:
        """Agreement starts the clock: the session is due within the profile's working days. Where the
        accountable manager's decision is the agreement (Norfolk), the clock starts from that decision."""
        await self._authorize(actor, Action.AGREE, await self._case(case_id), "request.agree")

        def change(case: Case) -> None:
            apply(case, Event.AGREE, actor=actor.audit_name, clock=self.clock, reason="agreed")
            profile = self.profile(case.profile_id)
            start = self.clock.now()
            if profile.request.agreement_route == "accountable_manager":
                endorsed = [t.at for t in case.history if t.event == Event.MANAGER_ENDORSE.value]
                start = endorsed[-1] if endorsed else start
            case.agreed_at = start
            case.session_due = self.deadlines(profile).session_due(uk_local(start).date())

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="request.agree", case_id=case.id,
            what=f"session due {case.session_due}", why="coordinator agreed"))
        await self._publish("request.agreed", case, session_due=case.session_due.isoformat() if case.session_due else "")
        return case

    async def decline(self, actor: Actor, case_id: str, reason: str) -> Case:
        reason = reason.strip()
        if not reason:
            raise ValidationFailed([FieldError("decline_reason", "request.error.required")])
        if len(reason) > MAX_TEXT:
            raise ValidationFailed([FieldError("decline_reason", "request.error.too_long", max=MAX_TEXT)])
        await self._authorize(actor, Action.AGREE, await self._case(case_id), "request.decline")

        def change(case: Case) -> None:
            apply(case, Event.DECLINE, actor=actor.audit_name, clock=self.clock, reason=reason)
            case.decline_reason = reason

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="request.decline", case_id=case.id,
            what="declined", why="coordinator declined (the reason is in the case history)"))
        await self._publish("request.declined", case, decided_by="coordinator")
        return case

    async def ask_for_information(self, actor: Actor, case_id: str, question: str) -> Case:
        question = question.strip()
        if not question:
            raise ValidationFailed([FieldError("info_question", "request.error.required")])
        if len(question) > MAX_TEXT:
            raise ValidationFailed([FieldError("info_question", "request.error.too_long", max=MAX_TEXT)])
        await self._authorize(actor, Action.AGREE, await self._case(case_id), "request.ask_info")

        def change(case: Case) -> None:
            apply(case, Event.REQUEST_INFO, actor=actor.audit_name, clock=self.clock, reason=question)
            case.info_request = question

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="request.ask_info", case_id=case.id,
            what="more information requested", why="coordinator asked (the question is in the case history)"))
        await self._publish("request.info_requested", case)
        return case

    async def provide_information(self, actor: Actor, case_id: str, information: str) -> Case:
        information = information.strip()
        if not information:
            raise ValidationFailed([FieldError("information", "request.error.required")])
        if len(information) > MAX_TEXT:
            raise ValidationFailed([FieldError("information", "request.error.too_long", max=MAX_TEXT)])
        await self._authorize(actor, Action.PROVIDE_INFO, await self._case(case_id), "request.provide_info")

        def change(case: Case) -> None:
            apply(case, Event.PROVIDE_INFO, actor=actor.audit_name, clock=self.clock, reason="information added")
            case.request.additional_information.append(information)
            case.info_request = ""

        case, _ = await self.cases.update(case_id, change, audit=lambda case, _: self.audit.entry(
            actor=actor.audit_name, action="request.provide_info", case_id=case.id,
            what="information added", why="coordinator asked for more information"))
        await self._publish("request.info_provided", case)
        return case


def when_entered(case: Case, state: CaseState) -> datetime | None:
    found = [t.at for t in case.history if t.to_state is state]
    return found[-1] if found else None
