"""Domain entities. Plain dataclasses; ``supervision.codec`` turns them into stored documents.

Child and family identifiers live only in ``RequestDetails.child`` and ``RequestDetails.family``;
``identifiers_of`` lists them so that any text leaving personal chat can be checked against them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum


class CaseState(str, Enum):
    MANAGER_REVIEW = "manager_review"          # Norfolk: the accountable manager agrees first
    REQUESTED = "requested"                    # in the coordinators' queue
    INFO_REQUESTED = "info_requested"          # back with the requester for more information
    AGREED = "agreed"                          # the clock starts
    DECLINED = "declined"
    FACILITATORS_ASSIGNED = "facilitators_assigned"
    SCHEDULED = "scheduled"
    PRE_SESSION = "pre_session"                # pre-session evaluation open, pack out
    HELD = "held"
    RECORDED = "recorded"
    ACTIONS_DISTRIBUTED = "actions_distributed"
    MINUTES_DONE = "minutes_done"
    FOLLOW_UP_DUE = "follow_up_due"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"


class Role(str, Enum):
    REQUESTER = "requester"
    LEAD_PROFESSIONAL = "lead_professional"
    MANAGER = "manager"
    COORDINATOR = "coordinator"
    FACILITATOR = "facilitator"
    INVITEE = "invitee"
    ADMINISTRATOR = "administrator"


class Awareness(str, Enum):
    YES = "yes"
    NO = "no"
    NOT_APPLICABLE = "not_applicable"


class InviteStatus(str, Enum):
    NOT_SENT = "not_sent"
    INVITED = "invited"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


@dataclass
class Person:
    name: str = ""
    email: str = ""
    role: str = ""
    organisation: str = ""
    phone: str = ""
    address: str = ""          # a practitioner's work address (the request template asks for it)
    user_id: str = ""          # Teams/AAD object id, when known
    team: str = ""             # line-management team, for facilitator independence


@dataclass
class ChildDetails:
    forename: str = ""
    surname: str = ""
    also_known_as: str = ""
    date_of_birth: date | None = None
    gender: str = ""
    ethnicity: str = ""
    disability: str = ""
    address: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.forename} {self.surname}".strip()


@dataclass
class FamilyMember:
    relationship: str = ""      # mother, father, carer, sibling, other
    name: str = ""
    date_of_birth: date | None = None
    address: str = ""
    gender: str = ""
    ethnicity: str = ""
    disability: str = ""
    also_known_as: str = ""


@dataclass
class Invitee:
    agency: str = ""
    name: str = ""
    role: str = ""
    email: str = ""
    user_id: str = ""
    team: str = ""
    federated: bool = False     # in another tenant: invited by email
    status: InviteStatus = InviteStatus.NOT_SENT
    delegated_authority: bool = False
    decline_reason: str = ""
    suggested_colleague: str = ""
    responded_at: datetime | None = None


@dataclass
class RequestDetails:
    requester: Person = field(default_factory=Person)
    child: ChildDetails = field(default_factory=ChildDetails)
    family: list[FamilyMember] = field(default_factory=list)
    level_of_need: str = ""
    current_plan: str = ""
    lead_professional: Person = field(default_factory=Person)
    lead_professional_aware: Awareness = Awareness.YES
    lead_professional_unaware_reason: str = ""   # Bolton template: "If no", why not
    reason: str = ""
    trigger: str = ""
    trigger_other: str = ""
    pen_picture: str = ""
    family_told: bool = True
    family_not_told_reason: str = ""
    child_voice: str = ""
    family_voice: str = ""
    agreed_to_share: str = ""
    invitees: list[Invitee] = field(default_factory=list)
    additional_information: list[str] = field(default_factory=list)

    @property
    def agencies(self) -> list[str]:
        return sorted({i.agency for i in self.invitees if i.agency})


@dataclass
class FacilitatorAssignment:
    name: str
    email: str
    agency: str
    user_id: str = ""
    lead: bool = False


@dataclass
class SessionPlan:
    number: int = 1
    starts_at: datetime | None = None      # UTC
    ends_at: datetime | None = None        # UTC
    join_url: str = ""
    graph_event_id: str = ""
    late_reason: str = ""                  # why a date past the deadline was chosen
    held_at: datetime | None = None
    recorded_at: datetime | None = None
    actions_distributed_at: datetime | None = None
    minutes_done_at: datetime | None = None


@dataclass
class Tracked:
    """A dated item a feature keeps in its own collection (an action item, a concern), mirrored on
    the case so that due work can be computed from case state alone (due-work sources are synchronous)."""
    id: str
    kind: str                              # e.g. "action_item", "concern"
    due_on: date | None = None
    since: datetime | None = None          # UTC: when it was raised or last changed
    owner: str = ""                        # e-mail or Teams user id of whoever must act
    status: str = "open"                   # open | done | closed ...


@dataclass
class Transition:
    at: datetime
    actor: str
    event: str
    from_state: CaseState | None
    to_state: CaseState
    reason: str = ""


@dataclass
class Case:
    id: str
    reference: str
    profile_id: str
    state: CaseState
    created_at: datetime
    request: RequestDetails = field(default_factory=RequestDetails)
    manager: Person | None = None
    agreed_at: datetime | None = None
    session_due: date | None = None        # agreement + the profile's working days
    decline_reason: str = ""
    info_request: str = ""
    facilitators: list[FacilitatorAssignment] = field(default_factory=list)
    session: SessionPlan = field(default_factory=SessionPlan)
    previous_sessions: list[SessionPlan] = field(default_factory=list)
    follow_up_due: date | None = None
    closed_at: datetime | None = None
    legal_hold: bool = False
    tracked: list[Tracked] = field(default_factory=list)
    history: list[Transition] = field(default_factory=list)
    version: int = 0

    def member_ids(self) -> set[str]:
        """Teams user ids of everyone who may see this case's identifiers in personal chat."""
        r = self.request
        ids = {r.requester.user_id, r.lead_professional.user_id}
        ids |= {f.user_id for f in self.facilitators}
        ids |= {i.user_id for i in r.invitees}
        if self.manager:
            ids.add(self.manager.user_id)
        return {i for i in ids if i}

    def member_emails(self) -> set[str]:
        r = self.request
        emails = {r.requester.email, r.lead_professional.email}
        emails |= {f.email for f in self.facilitators}
        emails |= {i.email for i in r.invitees}
        if self.manager:
            emails.add(self.manager.email)
        return {e.lower() for e in emails if e}


def identifiers_of(request: RequestDetails) -> list[str]:
    """Every child and family identifier worth searching text for: names (and their parts),
    dates of birth in the usual written forms, and addresses."""
    found: list[str] = []
    child = request.child
    people: list[tuple[str, date | None, str]] = [(child.full_name, child.date_of_birth, child.address)]
    people += [(m.name, m.date_of_birth, m.address) for m in request.family]
    names = [child.forename, child.surname, child.also_known_as, *(m.also_known_as for m in request.family)]
    for name, dob, address in people:
        names.append(name)
        names.extend(name.split())
        if dob:
            found.extend({dob.isoformat(), dob.strftime("%d/%m/%Y"), dob.strftime("%-d %B %Y"),
                          dob.strftime("%d %B %Y"), dob.strftime("%-d %b %Y")})
        if address.strip():
            found.append(address.strip())
            first_line = address.split(",")[0].strip()
            if len(first_line) >= 6:
                found.append(first_line)
    found.extend(n.strip() for n in names if len(n.strip()) >= 3)
    return sorted(set(found), key=len, reverse=True)


def find_identifiers(text: str, identifiers: list[str]) -> list[str]:
    """The identifiers that appear in ``text`` (case-insensitive, whole words for names)."""
    import re

    hits = []
    lowered = text.lower()
    for ident in identifiers:
        pattern = r"(?<![\w])" + re.escape(ident.lower()) + r"(?![\w])"
        if re.search(pattern, lowered):
            hits.append(ident)
    return hits
