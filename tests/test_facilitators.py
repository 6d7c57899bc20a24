"""Facilitator eligibility (each independence rule), load, and the choice rules (Norfolk: two from
different agencies, one lead coordinator), as pure functions and through FacilitatorService."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.events import EventDispatcher
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.errors import Forbidden, IllegalTransition, ValidationFailed
from supervision.facilitators import (
    INACTIVE,
    INVITEE,
    NOT_TRAINED,
    PREVIOUS_INVOLVEMENT,
    REQUESTER_OR_LEAD,
    SAME_TEAM,
    FacilitatorService,
    check_choice,
    evaluate,
    same_child,
)
from supervision.lifecycle import Event, apply
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
from supervision.profile import load_preset
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Actor, FacilitatorProfile

BOLTON, NORFOLK = load_preset("bolton"), load_preset("norfolk")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fac(name: str, agency: str, team: str = "", **kw: object) -> FacilitatorProfile:
    return FacilitatorProfile(name=name, email=f"{name.split()[0].lower()}@example.com", agency=agency, team=team,
                              **kw)  # type: ignore[arg-type]


ROSTER = (
    fac("Ada Health", "Health", "Nursing"), fac("Bo Police", "Police", "PPU"), fac("Cy Health", "Health", "Midwifery"),
    fac("Di Untrained", "Housing", trained=False), fac("Ed Inactive", "Education", active=False),
    fac("Flo Invitee", "Education"), fac("Gus Requester", "Early Help"), fac("Hal Sameteam", "Education", "Year 6"),
)


def make_case(case_id: str = "c1", *, forename: str = "Zebedee", dob: date | None = date(2015, 3, 14),
              created: datetime = T0, state: CaseState = CaseState.AGREED,
              facilitators: list[FacilitatorAssignment] | None = None, invitees: list[Invitee] | None = None) -> Case:
    request = RequestDetails(
        requester=Person(name="Gus Requester", email="gus@example.com", user_id="user-gus"),
        child=ChildDetails(forename=forename, surname="Example", date_of_birth=dob),
        lead_professional=Person(name="Patti Lead", email="patti@example.com"),
        invitees=invitees if invitees is not None else [
            Invitee(agency="Primary School", name="Flo Invitee", email="flo@example.com"),
            Invitee(agency="GP", name="Gwen Doctor", email="gwen@example.com", team="Year 6")])
    return Case(id=case_id, reference=f"REF-{case_id}", profile_id="bolton", state=state, created_at=created,
                request=request, facilitators=facilitators or [])


def reasons(candidates: list, name: str) -> tuple[str, ...]:
    return next(c.reasons for c in candidates if c.facilitator.name == name)


def test_each_independence_rule_excludes_the_right_person():
    earlier = make_case("c0", created=datetime(2025, 6, 1, tzinfo=UTC), state=CaseState.CLOSED,
                        facilitators=[FacilitatorAssignment("Cy Health", "cy@example.com", "Health")], invitees=[])
    found = evaluate(BOLTON, make_case(), ROSTER, [earlier])
    assert reasons(found, "Ada Health") == () and reasons(found, "Bo Police") == ()
    assert reasons(found, "Cy Health") == (PREVIOUS_INVOLVEMENT,)
    assert reasons(found, "Di Untrained") == (NOT_TRAINED,)
    assert reasons(found, "Ed Inactive") == (INACTIVE,)
    assert reasons(found, "Flo Invitee") == (INVITEE,)
    assert reasons(found, "Gus Requester") == (REQUESTER_OR_LEAD, PREVIOUS_INVOLVEMENT)  # requested c0 too
    assert reasons(found, "Hal Sameteam") == (SAME_TEAM,)
    assert [c.facilitator.name for c in found if c.eligible] == ["Ada Health", "Bo Police"]


def test_a_different_child_or_a_later_case_is_no_previous_involvement():
    other_child = make_case("c0", forename="Yolanda", created=datetime(2025, 6, 1, tzinfo=UTC),
                            facilitators=[FacilitatorAssignment("Cy Health", "cy@example.com", "Health")])
    same_name_other_dob = make_case("c2", dob=date(2016, 1, 1), created=datetime(2025, 6, 1, tzinfo=UTC),
                                    facilitators=[FacilitatorAssignment("Cy Health", "cy@example.com", "Health")])
    found = evaluate(BOLTON, make_case(), ROSTER, [other_child, same_name_other_dob])
    assert reasons(found, "Cy Health") == ()
    assert same_child(make_case("a", forename=" zebedee "), make_case("b"))
    assert not same_child(make_case("a", dob=None), make_case("b", dob=None))


def test_involvement_as_an_invitee_in_an_earlier_case_counts():
    earlier = make_case("c0", created=datetime(2025, 6, 1, tzinfo=UTC), state=CaseState.CLOSED,
                        invitees=[Invitee(agency="Police", name="Bo Police", email="bo@example.com")])
    assert reasons(evaluate(BOLTON, make_case(), ROSTER, [earlier]), "Bo Police") == (PREVIOUS_INVOLVEMENT,)


def test_load_counts_open_cases_only_and_orders_the_least_loaded_first():
    busy = [FacilitatorAssignment("Ada Health", "ada@example.com", "Health")]
    others = [make_case("o1", forename="A", state=CaseState.SCHEDULED, facilitators=busy),
              make_case("o2", forename="B", state=CaseState.FACILITATORS_ASSIGNED, facilitators=busy),
              make_case("o3", forename="C", state=CaseState.CLOSED, facilitators=busy)]
    found = evaluate(BOLTON, make_case(), ROSTER, others)
    loads = {c.facilitator.name: c.load for c in found}
    assert loads["Ada Health"] == 2 and loads["Bo Police"] == 0
    assert [c.facilitator.name for c in found if c.eligible] == ["Bo Police", "Cy Health", "Ada Health"]


@pytest.mark.parametrize("chosen,lead,error", [
    (["ada@example.com"], "ada@example.com", "request.error.facilitator_count"),
    (["ada@example.com", "cy@example.com"], "ada@example.com", "request.error.facilitator_agencies"),
    (["ada@example.com", "bo@example.com"], "", "request.error.facilitator_lead"),
    (["ada@example.com", "bo@example.com"], "nobody@example.com", "request.error.facilitator_lead"),
    (["ada@example.com", "di@example.com"], "ada@example.com", "request.error.facilitator_not_eligible"),
    (["stranger@example.com", "bo@example.com"], "bo@example.com", "request.error.facilitator_not_eligible"),
])
def test_norfolk_choice_rules(chosen, lead, error):
    found = evaluate(NORFOLK, make_case(), ROSTER, [])
    with pytest.raises(ValidationFailed) as caught:
        check_choice(NORFOLK, found, chosen, lead)
    assert [e.key for e in caught.value.errors] == [error]


def test_norfolk_good_choice_and_bolton_one():
    found = evaluate(NORFOLK, make_case(), ROSTER, [])
    assert [c.email for c in check_choice(NORFOLK, found, [" ADA@example.com", "bo@example.com"], "bo@example.com")] \
        == ["ada@example.com", "bo@example.com"]
    assert len(check_choice(BOLTON, evaluate(BOLTON, make_case(), ROSTER, []), ["ada@example.com"], "")) == 1
    with pytest.raises(ValidationFailed):
        check_choice(BOLTON, evaluate(BOLTON, make_case(), ROSTER, []), ["ada@example.com", "bo@example.com"], "")


async def _service(clock: FixedClock) -> tuple[FacilitatorService, CaseRepository, AuditLog, EventDispatcher]:
    store = MemoryStore()
    cases, audit, events = CaseRepository(store), AuditLog(store, clock), EventDispatcher()

    async def find_user_id(email: str) -> str:
        return {"bo@example.com": "user-bo"}.get(email, "")

    service = FacilitatorService(cases=cases, audit=audit, events=events, clock=clock,
                                 profiles={"bolton": BOLTON, "norfolk": NORFOLK}, roster=lambda: ROSTER,
                                 find_user_id=find_user_id)
    return service, cases, audit, events


async def test_service_assigns_moves_the_case_and_publishes(clock: FixedClock):
    service, cases, audit, events = await _service(clock)
    case = make_case()
    apply(case, Event.SUBMIT, actor="x", clock=clock)
    apply(case, Event.AGREE, actor="x", clock=clock)
    await cases.create(case)
    coordinator = Actor("user-megan", email="megan@example.com", global_roles=frozenset({Role.COORDINATOR}))
    stored = await service.assign(coordinator, case.id, ["bo@example.com"])
    assert stored.state is CaseState.FACILITATORS_ASSIGNED
    assert [(f.email, f.user_id, f.agency) for f in stored.facilitators] == [("bo@example.com", "user-bo", "Police")]
    assert events.published[-1].kind == "facilitators.assigned"
    assert events.published[-1].data["facilitators"] == ["bo@example.com"]
    assert "Zebedee" not in str(events.published[-1].data)
    assert any(e["action"] == "facilitators.assign" for e in await audit.entries(case.id))


async def test_service_refuses_non_coordinators_and_audits(clock: FixedClock):
    service, cases, audit, _ = await _service(clock)
    case = make_case()
    apply(case, Event.SUBMIT, actor="x", clock=clock)
    await cases.create(case)
    requester = Actor("user-gus", email="gus@example.com")
    with pytest.raises(Forbidden):
        await service.assign(requester, case.id, ["bo@example.com"])
    refused = [e for e in await audit.entries(case.id) if not e["allowed"]]
    assert refused and refused[0]["actor"] == "user-gus"
    coordinator = Actor("user-megan", global_roles=frozenset({Role.COORDINATOR}))
    with pytest.raises(IllegalTransition):     # not agreed yet
        await service.assign(coordinator, case.id, ["bo@example.com"])


async def test_the_picker_reads_only_the_rosters_cases_and_still_sees_load_and_involvement(clock: FixedClock):
    """Load and earlier involvement come from the cases the roster's people are part of (the user
    index), so opening the picker does not read every case in the store."""
    service, cases, audit, _ = await _service(clock)
    earlier = make_case("c0", created=datetime(2025, 6, 1, tzinfo=UTC), state=CaseState.CLOSED,
                        facilitators=[FacilitatorAssignment(name="Ada Health", email="ada@example.com", agency="Health")])
    busy = make_case("c-busy", forename="Yolanda", state=CaseState.SCHEDULED,
                     facilitators=[FacilitatorAssignment(name="Cy Health", email="cy@example.com", agency="Health")])
    for one in (earlier, busy):
        await cases.create(one)
    for n in range(30):                                    # cases nobody on the roster is part of
        await cases.create(Case(
            id=f"other-{n:02d}", reference=f"REF-o{n}", profile_id="bolton", state=CaseState.AGREED, created_at=T0,
            request=RequestDetails(requester=Person(name="Someone Else", email=f"someone{n}@example.org"),
                                   child=ChildDetails(forename=f"Other{n}", surname="Sample"))))
    case = make_case()
    apply(case, Event.SUBMIT, actor="x", clock=clock)
    apply(case, Event.AGREE, actor="x", clock=clock)
    await cases.create(case)
    read: list[str] = []
    original = cases.get

    async def counting_get(case_id: str):
        read.append(case_id)
        return await original(case_id)

    cases.get = counting_get  # type: ignore[method-assign]
    coordinator = Actor("user-megan", email="megan@example.com", global_roles=frozenset({Role.COORDINATOR}))
    _, candidates = await service.options(coordinator, case.id)
    assert reasons(candidates, "Ada Health") == (PREVIOUS_INVOLVEMENT,)
    assert next(c.load for c in candidates if c.facilitator.name == "Cy Health") == 1
    assert not any(r.startswith("other-") for r in read), read
    entry = [e for e in await audit.entries(case.id) if e["action"] == "facilitators.options"][-1]
    assert "read the roster's" in entry["what"]
