"""Every request card, for every profile, validates against the Adaptive Card 1.5 schema; the
channel card carries no child or family identifier whatever the free text says; the session-due
date shows on every card that shows an agreed case."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cards.request import (
    agreed_for_coordinator_card,
    case_card,
    channel_card,
    channel_note_card,
    decided_card,
    decision_card,
    draft_found_card,
    facilitator_assigned_card,
    facilitator_picker_card,
    info_request_card,
    manager_card,
    requester_summary_card,
    risk_card,
    risk_stop_card,
    step_card,
)
from cards.sessions import sessions_card
from supervision.catalogue import Catalogue
from supervision.drafts import Draft
from supervision.errors import FieldError
from supervision.facilitators import NOT_TRAINED, Candidate
from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    FamilyMember,
    Invitee,
    Person,
    RequestDetails,
    Role,
    find_identifiers,
    identifiers_of,
)
from supervision.profile import PRESET_IDS, load_preset
from supervision.requests import STEPS, CaseLine
from supervision.roles import FacilitatorProfile

T = Catalogue("en")
NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


def sample_case(state: CaseState = CaseState.REQUESTED) -> Case:
    request = RequestDetails(
        requester=Person(name="Alex Wilber", email="alexw@example.com", role="Worker"),
        child=ChildDetails(forename="Zebedee", surname="Example", also_known_as="Zeb", date_of_birth=date(2015, 3, 14),
                           address="1 Synthetic Street, Faketown"),
        family=[FamilyMember(relationship="mother", name="Mabel Example", date_of_birth=date(1990, 7, 2),
                             address="1 Synthetic Street, Faketown", also_known_as="Mab Sample", gender="Female",
                             ethnicity="Synthetic Ethnicity", disability="Synthetic Disability")],
        level_of_need="Early Help", current_plan="child_in_need",
        lead_professional=Person(name="Patti Fernandez", email="pattif@example.com", organisation="GP"),
        reason="Zebedee Example is stuck.", trigger="other", trigger_other="Zebedee's move to 1 Synthetic Street",
        pen_picture="Mabel Example and Zeb.", family_told=False, family_not_told_reason="Risk to Zebedee.",
        invitees=[Invitee(agency="GP", name="Patti Fernandez", email="pattif@example.com"),
                  Invitee(agency="Police", name="Pat Officer", email="pat@example.com")],
        additional_information=["Zebedee attends Faketown Primary."])
    case = Case(id="c1", reference="MAGS-BOL-260105-ABCD", profile_id="bolton", state=state, created_at=NOW,
                request=request, manager=Person(name="Mo Manager", email="mo@example.com"),
                info_request="Which school?")
    if state in (CaseState.AGREED, CaseState.FACILITATORS_ASSIGNED):
        case.agreed_at, case.session_due = NOW, date(2026, 1, 26)
        case.facilitators = [FacilitatorAssignment("Adele Vance", "adelev@example.com", "Health", lead=True)]
    return case


def sample_draft(profile_id: str) -> Draft:
    return Draft(id="d1", owner_id="u1", owner_email="alexw@example.com", profile_id=profile_id, step="child",
                 created_at=NOW, updated_at=NOW, values={"child.forename": "Zebedee", "child.date_of_birth": "2015-03-14",
                                                         "family.f1.name": "Mabel Example", "trigger": "other",
                                                         "invitee.r1.agency": "GP", "level_of_need": "nonsense"},
                 family_rows=["f1"], invitee_rows=["r1", "r2"])


@pytest.mark.parametrize("profile_id", PRESET_IDS)
def test_every_step_card_validates_for_every_profile(profile_id, validate_card):
    profile = load_preset(profile_id)
    draft = sample_draft(profile_id)
    errors = [FieldError("child.date_of_birth", "request.error.date"), FieldError("family.f1.name", "request.error.required"),
              FieldError("invitees", "request.error.min_agencies", min=2, count=1)]
    for step in STEPS:
        plain = step_card(T, profile, draft, step)
        validate_card(plain)
        with_errors = step_card(T, profile, draft, step, errors)
        validate_card(with_errors)
        assert "Child's date of birth: give a real date" in str(with_errors)
        assert "Family member 1: Name: this is required." in str(with_errors)
    need = str(step_card(T, profile, draft, "need"))
    for level in profile.request.level_of_need:
        assert level in need
    assert ("Accountable manager" in need) == profile.request.manager_agreement_first


def test_the_gate_drafts_and_stop_cards_validate(validate_card):
    for built in (risk_card(T), risk_card(T, resume=True), risk_stop_card(T, load_preset("norfolk")),
                  draft_found_card(T, sample_draft("bolton"))):
        validate_card(built)
    assert "Section 47" in str(risk_stop_card(T, load_preset("norfolk")))


@pytest.mark.parametrize("state", [CaseState.REQUESTED, CaseState.MANAGER_REVIEW, CaseState.AGREED,
                                   CaseState.FACILITATORS_ASSIGNED, CaseState.DECLINED])
def test_case_cards_validate(state, validate_card):
    case = sample_case(state)
    due = date(2026, 1, 12)
    built = [requester_summary_card(T, case, due), case_card(T, case, due), decision_card(T, case, due),
             manager_card(T, case, due), info_request_card(T, case), decided_card(T, case, "agreed"),
             decided_card(T, case, "declined"), decided_card(T, case, "manager_agreed", due),
             agreed_for_coordinator_card(T, case), facilitator_assigned_card(T, case, "adelev@example.com"),
             channel_card(T, case, due), channel_note_card(T, "x")]
    for one in built:
        validate_card(one)
    if case.session_due:       # every card that shows an agreed case shows when the session is due
        for one in built[:-1]:
            assert "Mon 26 Jan 2026" in str(one), one


def test_channel_card_has_no_identifiers_even_when_free_text_has_them():
    case = sample_case()
    shown = str(channel_card(T, case, date(2026, 1, 12), T("request.channel.manager_agreed")))
    assert find_identifiers(shown, identifiers_of(case.request)) == []
    for needed in ("MAGS-BOL-260105-ABCD", "Early Help", "GP, Police", "Other", "Mon 12 Jan 2026"):
        assert needed in shown
    # the personal-chat cards do show them, and every field of a family member
    full = str(decision_card(T, case, date(2026, 1, 12)))
    assert "Zebedee" in full
    for field_value in ("Mabel Example (Mab Sample)", "Female", "Synthetic Ethnicity", "Synthetic Disability"):
        assert field_value in full


def test_picker_cards_validate_for_one_and_two_facilitators(validate_card):
    case = sample_case(CaseState.AGREED)
    ada = FacilitatorProfile("Ada Health", "ada@example.com", "Health")
    di = FacilitatorProfile("Di Untrained", "di@example.com", "Housing", trained=False)
    candidates = [Candidate(ada, 2), Candidate(di, 0, (NOT_TRAINED,))]
    for profile_id in ("bolton", "norfolk"):
        profile = load_preset(profile_id)
        card = facilitator_picker_card(T, profile, case, candidates,
                                       [FieldError("facilitators", "request.error.facilitator_count", count=2)])
        validate_card(card)
        assert "Ada Health, Health: 2 open cases" in str(card) and "Di Untrained (Housing): not trained" in str(card)
        lead_inputs = [i for i in card["body"] if isinstance(i, dict) and i.get("id") == "lead"]
        assert bool(lead_inputs) == (profile_id == "norfolk")
    none = facilitator_picker_card(T, load_preset("bolton"), case, [Candidate(di, 0, (NOT_TRAINED,))])
    validate_card(none)
    assert T("request.facilitators.none_eligible") in str(none) and "actions" not in none


def test_sessions_cards_validate(validate_card):
    validate_card(sessions_card(T, []))
    case = sample_case(CaseState.AGREED)
    lines = [(CaseLine(case, date(2026, 1, 26), "session_due"), frozenset({Role.REQUESTER, Role.INVITEE})),
             (CaseLine(sample_case(), None, "information"), frozenset({Role.LEAD_PROFESSIONAL}))]
    card = sessions_card(T, lines)
    validate_card(card)
    assert "Session due by" in str(card) and "Mon 26 Jan 2026" in str(card) and "requester, invitee" in str(card)


def _longest(spec) -> str:
    if spec.kind == "choice":
        return max(spec.choices, key=len)
    if spec.kind == "date":
        return "2015-03-14"
    return "x" * spec.max_length


@pytest.mark.parametrize("profile_id", ["bolton", "norfolk"])
def test_cards_stay_under_the_teams_size_limit_with_every_answer_at_its_longest(profile_id):
    """Teams refuses a card message over about 28 KB. Every answer at its maximum length, the most
    rows allowed: complete rows show as one line and long texts are shortened on summary cards."""
    import json

    from supervision.requests import MAX_ROWS, row_fields, row_key, step_fields

    profile = load_preset(profile_id)
    draft = Draft(id="d" * 16, owner_id="u1", owner_email="alexw@example.com", profile_id=profile_id, step="family",
                  created_at=NOW, updated_at=NOW, family_rows=[f"f{n:05d}" for n in range(MAX_ROWS)],
                  invitee_rows=[f"i{n:05d}" for n in range(profile.max_attendees)])
    for step in STEPS:
        for spec in step_fields(profile, step):
            draft.values[spec.id] = _longest(spec)
    for step, rows in (("family", draft.family_rows), ("invitees", draft.invitee_rows)):
        for row in rows:
            for spec in row_fields(step):
                draft.values[row_key(step, row, spec.id)] = _longest(spec)
    sizes = {step: len(json.dumps(step_card(T, profile, draft, step)).encode()) for step in STEPS}
    assert max(sizes.values()) < 28_000, sizes

    case = sample_case(CaseState.AGREED)
    r = case.request
    r.reason = r.pen_picture = r.child_voice = r.family_voice = r.agreed_to_share = "y" * 2000
    r.family_not_told_reason = r.lead_professional_unaware_reason = case.info_request = "z" * 2000
    r.additional_information = ["w" * 2000] * 3
    r.invitees = r.invitees * 6
    r.family = r.family * MAX_ROWS
    due = date(2026, 1, 12)
    for built in (decision_card(T, case, due), manager_card(T, case, due), case_card(T, case, due),
                  requester_summary_card(T, case, due), facilitator_assigned_card(T, case, "adelev@example.com")):
        assert len(json.dumps(built).encode()) < 28_000
    assert "y" * 2000 in str(decision_card(T, sample_case_with_reason("y" * 2000), due))   # in full when it fits


def sample_case_with_reason(reason: str) -> Case:
    case = sample_case()
    case.request.reason = reason
    return case
