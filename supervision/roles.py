"""Who may do what. Every use case asks ``authorize`` before acting; a refusal is audited by the caller."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from supervision.errors import Forbidden
from supervision.models import Case, Role


@dataclass(frozen=True)
class Actor:
    user_id: str
    name: str = ""
    email: str = ""
    aad_object_id: str = ""
    global_roles: frozenset[Role] = field(default_factory=frozenset)   # from configuration

    @property
    def audit_name(self) -> str:
        return self.user_id or self.email or "anonymous"


@dataclass(frozen=True)
class FacilitatorProfile:
    name: str
    email: str
    agency: str
    team: str = ""
    trained: bool = True
    active: bool = True
    user_id: str = ""


@dataclass(frozen=True)
class Directory:
    """Roles that come from configuration rather than from a case."""

    coordinators: frozenset[str] = frozenset()       # user ids or emails, lower-case
    administrators: frozenset[str] = frozenset()
    business_managers: frozenset[str] = frozenset()
    facilitators: tuple[FacilitatorProfile, ...] = ()

    def roles_for(self, user_id: str, email: str = "") -> frozenset[Role]:
        keys = {k.lower() for k in (user_id, email) if k}
        roles: set[Role] = set()
        if keys & self.coordinators:
            roles.add(Role.COORDINATOR)
        if keys & (self.administrators | self.business_managers):
            roles.add(Role.ADMINISTRATOR)
        if any(keys & {f.email.lower(), f.user_id.lower()} - {""} for f in self.facilitators):
            roles.add(Role.FACILITATOR)
        return frozenset(roles)


class Action(str, Enum):
    VIEW_CASE = "view_case"
    VIEW_IDENTIFIERS = "view_identifiers"
    PROVIDE_INFO = "provide_info"
    WITHDRAW = "withdraw"
    MANAGER_DECIDE = "manager_decide"
    AGREE = "agree"
    ASSIGN_FACILITATORS = "assign_facilitators"
    SCHEDULE = "schedule"
    RESPOND_INVITATION = "respond_invitation"
    SUBMIT_CHRONOLOGY = "submit_chronology"
    VIEW_CHRONOLOGY = "view_chronology"
    SUBMIT_EVALUATION = "submit_evaluation"
    MARK_HELD = "mark_held"
    RECORD_SESSION = "record_session"
    UPDATE_ACTION = "update_action"
    RECORD_FOLLOW_UP = "record_follow_up"
    RAISE_CONCERN = "raise_concern"
    READ_TRACKER = "read_tracker"
    READ_AUDIT = "read_audit"


R = Role
# The role matrix: which case or global roles may take each action.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW_CASE: frozenset({R.REQUESTER, R.LEAD_PROFESSIONAL, R.MANAGER, R.COORDINATOR, R.FACILITATOR, R.INVITEE}),
    Action.VIEW_IDENTIFIERS: frozenset({R.REQUESTER, R.LEAD_PROFESSIONAL, R.MANAGER, R.COORDINATOR, R.FACILITATOR, R.INVITEE}),
    Action.PROVIDE_INFO: frozenset({R.REQUESTER}),
    Action.WITHDRAW: frozenset({R.REQUESTER, R.COORDINATOR}),
    Action.MANAGER_DECIDE: frozenset({R.MANAGER}),
    Action.AGREE: frozenset({R.COORDINATOR}),
    Action.ASSIGN_FACILITATORS: frozenset({R.COORDINATOR}),
    Action.SCHEDULE: frozenset({R.FACILITATOR, R.COORDINATOR}),
    Action.RESPOND_INVITATION: frozenset({R.INVITEE}),
    Action.SUBMIT_CHRONOLOGY: frozenset({R.INVITEE, R.REQUESTER, R.LEAD_PROFESSIONAL}),
    Action.VIEW_CHRONOLOGY: frozenset({R.INVITEE, R.REQUESTER, R.LEAD_PROFESSIONAL, R.FACILITATOR, R.COORDINATOR}),
    Action.SUBMIT_EVALUATION: frozenset({R.INVITEE, R.REQUESTER, R.LEAD_PROFESSIONAL}),
    Action.MARK_HELD: frozenset({R.FACILITATOR}),
    Action.RECORD_SESSION: frozenset({R.FACILITATOR}),
    Action.UPDATE_ACTION: frozenset({R.FACILITATOR, R.INVITEE, R.REQUESTER, R.LEAD_PROFESSIONAL}),
    Action.RECORD_FOLLOW_UP: frozenset({R.LEAD_PROFESSIONAL, R.FACILITATOR}),
    Action.RAISE_CONCERN: frozenset({R.INVITEE, R.REQUESTER, R.LEAD_PROFESSIONAL, R.FACILITATOR}),
    Action.READ_TRACKER: frozenset({R.ADMINISTRATOR}),
    Action.READ_AUDIT: frozenset({R.ADMINISTRATOR}),
}
# Global roles that act on every case (others must be a member of the case).
CASE_WIDE = frozenset({R.COORDINATOR, R.ADMINISTRATOR})


def case_roles(actor: Actor, case: Case | None) -> frozenset[Role]:
    roles = set(actor.global_roles & CASE_WIDE)
    if case is None:
        return frozenset(roles | set(actor.global_roles))
    keys = {k.lower() for k in (actor.user_id, actor.email, actor.aad_object_id) if k}

    def me(user_id: str, email: str) -> bool:
        return bool(keys & ({user_id.lower(), email.lower()} - {""}))

    r = case.request
    if me(r.requester.user_id, r.requester.email):
        roles.add(R.REQUESTER)
    if me(r.lead_professional.user_id, r.lead_professional.email):
        roles.add(R.LEAD_PROFESSIONAL)
    if case.manager and me(case.manager.user_id, case.manager.email):
        roles.add(R.MANAGER)
    if any(me(f.user_id, f.email) for f in case.facilitators):
        roles.add(R.FACILITATOR)
    if any(me(i.user_id, i.email) for i in r.invitees):
        roles.add(R.INVITEE)
    return frozenset(roles)


def may(actor: Actor, action: Action, case: Case | None = None) -> bool:
    return bool(case_roles(actor, case) & PERMISSIONS[action])


def authorize(actor: Actor, action: Action, case: Case | None = None) -> frozenset[Role]:
    roles = case_roles(actor, case)
    if not roles & PERMISSIONS[action]:
        needed = ", ".join(sorted(r.value for r in PERMISSIONS[action]))
        raise Forbidden(f"{action.value} needs one of: {needed}", key="error.forbidden",
                        action=action.value, needed=needed)
    return roles
