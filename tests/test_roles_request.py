"""The role checks of the request use cases, as a matrix: every use case against every role (and a
stranger). Allowed calls succeed; refused ones raise Forbidden and leave an audit entry with
allowed=False naming the actor. The checks live in the domain, so no bot is needed."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest

from bot.events import EventDispatcher
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.drafts import DraftRepository
from supervision.errors import Forbidden
from supervision.facilitators import FacilitatorService
from supervision.lifecycle import Deadlines, Event, apply
from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    Invitee,
    Person,
    RequestDetails,
    Role,
)
from supervision.profile import load_profiles
from supervision.repository import AuditLog, CaseRepository
from supervision.requests import RequestService
from supervision.roles import Actor, FacilitatorProfile

PROFILES = load_profiles()
ACTORS = {
    "requester": Actor("u-alex", email="alexw@example.com"),
    "lead_professional": Actor("u-patti", email="pattif@example.com"),
    "manager": Actor("u-mo", email="mo.manager@example.com"),
    "coordinator": Actor("u-megan", email="meganb@example.com", global_roles=frozenset({Role.COORDINATOR})),
    "facilitator": Actor("u-isaiah", email="isaiahl@example.com", global_roles=frozenset({Role.FACILITATOR})),
    "invitee": Actor("u-sam", email="sam@example.com"),
    "administrator": Actor("u-lynne", email="lynner@example.com", global_roles=frozenset({Role.ADMINISTRATOR})),
    "stranger": Actor("u-nobody", email="nobody@example.com"),
}
ROSTER = (FacilitatorProfile("Adele Vance", "adelev@example.com", "Health"),)


def build_case(clock: FixedClock, *, to: CaseState) -> Case:
    request = RequestDetails(
        requester=Person(name="Alex Wilber", email="alexw@example.com", user_id="u-alex"),
        child=ChildDetails(forename="Zebedee", surname="Example", date_of_birth=date(2015, 3, 14)),
        lead_professional=Person(name="Patti Fernandez", email="pattif@example.com"),
        invitees=[Invitee(agency="GP", name="Sam Doctor", email="sam@example.com"),
                  Invitee(agency="Police", name="Pat Officer", email="pat@example.com")])
    manager = Person(name="Mo Manager", email="mo.manager@example.com") if to is CaseState.MANAGER_REVIEW else None
    case = Case(id="case-1", reference="MAGS-BOL-260105-AAAA", profile_id="bolton", state=CaseState.REQUESTED,
                created_at=clock.now(), request=request, manager=manager,
                # a facilitator already on the case (as after assignment), so the role exists
                facilitators=[FacilitatorAssignment("Isaiah Langer", "isaiahl@example.com", "Police")])
    path = {CaseState.MANAGER_REVIEW: [Event.SUBMIT_FOR_MANAGER], CaseState.REQUESTED: [Event.SUBMIT],
            CaseState.INFO_REQUESTED: [Event.SUBMIT, Event.REQUEST_INFO],
            CaseState.AGREED: [Event.SUBMIT, Event.AGREE]}[to]
    for event in path:
        apply(case, event, actor="setup", clock=clock)
    return case


UseCase = Callable[[RequestService, FacilitatorService, Actor], Awaitable[Any]]
USE_CASES: dict[str, tuple[CaseState, UseCase, set[str]]] = {
    "open_for_decision": (CaseState.REQUESTED, lambda r, f, a: r.open_for_decision(a, "case-1"), {"coordinator"}),
    "open_for_manager": (CaseState.MANAGER_REVIEW, lambda r, f, a: r.open_for_decision(a, "case-1"), {"manager"}),
    "view": (CaseState.REQUESTED, lambda r, f, a: r.view(a, "case-1"),
             {"requester", "lead_professional", "coordinator", "facilitator", "invitee"}),
    "agree": (CaseState.REQUESTED, lambda r, f, a: r.agree(a, "case-1"), {"coordinator"}),
    "decline": (CaseState.REQUESTED, lambda r, f, a: r.decline(a, "case-1", "not now"), {"coordinator"}),
    "ask_info": (CaseState.REQUESTED, lambda r, f, a: r.ask_for_information(a, "case-1", "which school?"),
                 {"coordinator"}),
    "provide_info": (CaseState.INFO_REQUESTED, lambda r, f, a: r.provide_information(a, "case-1", "this one"),
                     {"requester"}),
    "manager_endorse": (CaseState.MANAGER_REVIEW, lambda r, f, a: r.manager_decide(a, "case-1", endorse=True),
                        {"manager"}),
    "manager_decline": (CaseState.MANAGER_REVIEW,
                        lambda r, f, a: r.manager_decide(a, "case-1", endorse=False, reason="no"), {"manager"}),
    "assign_facilitators": (CaseState.AGREED, lambda r, f, a: f.assign(a, "case-1", ["adelev@example.com"]),
                            {"coordinator"}),
    "facilitator_options": (CaseState.AGREED, lambda r, f, a: f.options(a, "case-1"), {"coordinator"}),
}
MATRIX = [(use, role) for use in USE_CASES for role in ACTORS]


@pytest.mark.parametrize("use,role", MATRIX, ids=[f"{u}-{r}" for u, r in MATRIX])
async def test_role_matrix(use: str, role: str, clock: FixedClock) -> None:
    state, call, allowed = USE_CASES[use]
    store = MemoryStore()
    cases, audit, events = CaseRepository(store), AuditLog(store, clock), EventDispatcher()
    await cases.create(build_case(clock, to=state))
    requests = RequestService(cases=cases, drafts=DraftRepository(store, clock), audit=audit, events=events,
                              clock=clock, profiles=PROFILES, default_profile="bolton",
                              deadlines=lambda p: Deadlines(p, p.calendar()))
    facilitators = FacilitatorService(cases=cases, audit=audit, events=events, clock=clock, profiles=PROFILES,
                                      roster=lambda: ROSTER)
    actor = ACTORS[role]
    if role in allowed:
        await call(requests, facilitators, actor)
        entries = await audit.entries("case-1")
        assert entries and all(e["allowed"] for e in entries)
    else:
        with pytest.raises(Forbidden):
            await call(requests, facilitators, actor)
        refused = [e for e in await audit.entries("case-1") if not e["allowed"]]
        assert len(refused) == 1 and refused[0]["actor"] == actor.audit_name
        stored = await cases.get("case-1")
        assert stored is not None and stored.state is state and len(stored.history) == len(
            build_case(clock, to=state).history)
        assert events.published == []


def test_the_matrix_covers_every_role_and_someone_may_do_each_thing() -> None:
    assert set(ACTORS) - {"stranger"} == {r.value for r in Role}
    for use, (_, _, allowed) in USE_CASES.items():
        assert allowed and allowed <= set(ACTORS) - {"stranger"}, use
