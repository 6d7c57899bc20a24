"""Shared builders for the record, actions, follow-up, concerns and tracker tests: a held case with
obviously synthetic child and family details, and the people of the Playground in their roles."""
from __future__ import annotations

from datetime import UTC, date, datetime

from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    FamilyMember,
    Invitee,
    InviteStatus,
    Person,
    RequestDetails,
    SessionPlan,
    Transition,
    identifiers_of,
)
from supervision.roles import Actor
from tests.support.harness import User

ADELE = User("user-id-2", "Adele Vance", email="adelev@example.com")       # facilitator (Health)
PATTI = User("user-id-4", "Patti Fernandez", email="pattif@example.com")  # lead professional, GP
ALEX = User("user-id-0", "Alex Wilber", email="alexw@example.com")        # requester, school
LYNNE = User("user-id-5", "Lynne Robbins", email="lynner@example.com")    # administrator
MEGAN = User("user-id-1", "Megan Bowen", email="meganb@example.com")      # coordinator
NESTOR = User("user-id-9", "Nestor Wilke", email="nestorw@example.com")   # invited, declined

HELD_AT = datetime(2026, 3, 3, 11, 30, tzinfo=UTC)    # Tue 3 Mar 2026


def actor(user: User) -> Actor:
    return Actor(user_id=user.id, name=user.name, email=user.email)


def held_case(case_id: str = "case-rec-1", profile_id: str = "bolton", *, held_at: datetime = HELD_AT,
              state: CaseState = CaseState.HELD) -> Case:
    request = RequestDetails(
        requester=Person(name=ALEX.name, email=ALEX.email, user_id=ALEX.id, organisation="Synthetic Primary"),
        child=ChildDetails(forename="Zebedee", surname="Example", also_known_as="Zeb", date_of_birth=date(2015, 3, 14),
                           address="1 Synthetic Street, Faketown, FK1 1AA"),
        family=[FamilyMember(relationship="mother", name="Marigold Example", date_of_birth=date(1990, 2, 1),
                             address="1 Synthetic Street, Faketown, FK1 1AA"),
                FamilyMember(relationship="father", name="Quentin Sample", address="9 Imaginary Road, Faketown")],
        level_of_need="Targeted Help",
        lead_professional=Person(name=PATTI.name, email=PATTI.email, user_id=PATTI.id, organisation="GP"),
        reason="Synthetic reason",
        invitees=[
            Invitee(agency="GP", name=PATTI.name, email=PATTI.email, user_id=PATTI.id, status=InviteStatus.CONFIRMED,
                    delegated_authority=True),
            Invitee(agency="Primary School", name=ALEX.name, email=ALEX.email, user_id=ALEX.id,
                    status=InviteStatus.CONFIRMED, delegated_authority=True),
            Invitee(agency="Housing", name=NESTOR.name, email=NESTOR.email, user_id=NESTOR.id,
                    status=InviteStatus.DECLINED),
        ],
    )
    case = Case(id=case_id, reference=f"MAGS-{profile_id[:3].upper()}-260303-{case_id[-4:].upper()}",
                profile_id=profile_id, state=state, created_at=datetime(2026, 2, 2, 10, tzinfo=UTC),
                request=request, agreed_at=datetime(2026, 2, 4, 10, tzinfo=UTC), session_due=date(2026, 2, 25),
                facilitators=[FacilitatorAssignment(name=ADELE.name, email=ADELE.email, agency="Health",
                                                    user_id=ADELE.id, lead=True)],
                session=SessionPlan(number=1, starts_at=held_at.replace(hour=10), held_at=held_at))
    case.history.append(Transition(at=held_at, actor="teams", event="mark_held", from_state=CaseState.PRE_SESSION,
                                   to_state=state))
    return case


IDENTIFIERS = identifiers_of(held_case().request)


def good_form(case: Case, **overrides: str) -> dict[str, str]:
    """A complete Bolton record with two actions."""
    form = {
        "meeting_identifier": f"{case.reference}/1", "held_on": "2026-03-03", "facilitators": ADELE.name,
        "attendees": f"{PATTI.email},{ALEX.email}", "other_attendees": "", "lead_professional": PATTI.name,
        "learning_points": "Agencies were each holding part of the picture; school attendance is the early signal.",
        "themes": "0,6", "other_themes": "Transitions",
        "section_known": "Daily routine is known to school and GP.", "section_not_known": "Evenings at home.",
        "section_strengths": "Warm relationship with the mother's partner.", "section_concerns": "Missed appointments.",
        "section_hypotheses": "Caring responsibilities at home.", "section_change": "Joint visit by school and GP.",
        "section_success_measures": "Attendance above 90% by the review.",
        "action_1_description": "Arrange a joint home visit", "action_1_owner": PATTI.email, "action_1_due": "2026-03-10",
        "action_2_description": "Share attendance figures weekly", "action_2_owner": ALEX.email,
        "action_2_due": "2026-03-17",
        "escalation_issues": "", "escalated_to": "", "further_sessions": "no", "further_sessions_when": "",
        "plan_changes": "Add a weekly check-in to the plan", "plan_changes_shared_by": PATTI.name,
        "review_on": "2026-04-14",
    }
    form.update(overrides)
    return form
