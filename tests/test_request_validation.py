"""Validation of the request form per profile, as pure functions: dates, the child's age, emails,
choices, required fields from the profile, who may request, family told, invitee limits."""
from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from supervision.drafts import Draft
from supervision.profile import load_preset, load_profile
from supervision.requests import (
    AGENCIES,
    MAX_TEXT,
    STEPS,
    details_from,
    parse_date,
    requester_may_request,
    step_of_field,
    validate_all,
    validate_step,
)
from supervision.roles import Actor

BOLTON = load_preset("bolton")
TODAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)


def draft(values: dict[str, str] | None = None, family: list[str] | None = None,
          invitees: list[str] | None = None) -> Draft:
    return Draft(id="d1", owner_id="u1", owner_email="alexw@example.com", profile_id="bolton", step="requester",
                 created_at=NOW, updated_at=NOW, values=dict(values or {}), family_rows=list(family or []),
                 invitee_rows=list(invitees or []))


def good() -> Draft:
    values = {
        "requester.name": "Alex Wilber", "requester.email": "alexw@example.com", "requester.role": "Worker",
        "requester.address": "Faketown Council, 2 Office Way",
        "child.forename": "Zebedee", "child.surname": "Example", "child.date_of_birth": "2015-03-14",
        "level_of_need": "Early Help", "current_plan": "none", "lead_professional.name": "Patti Fernandez",
        "lead_professional.email": "pattif@example.com", "lead_professional_aware": "yes",
        "reason": "Stuck.", "trigger": "edge_of_care", "family_told": "yes",
        "invitee.r1.agency": "GP", "invitee.r1.name": "Patti Fernandez", "invitee.r1.email": "pattif@example.com",
        "invitee.r2.agency": "Police", "invitee.r2.name": "Pat Officer", "invitee.r2.email": "pat@example.com",
        "family.f1.relationship": "sibling", "family.f1.name": "Yolanda Example",
    }
    return draft(values, family=["f1"], invitees=["r1", "r2"])


def keys(errors: list) -> list[tuple[str, str]]:
    return [(e.field, e.key) for e in errors]


def test_a_good_request_passes_every_step_and_builds_the_details():
    d = good()
    assert validate_all(BOLTON, d, TODAY) == []
    details = details_from(BOLTON, d, Actor("u1", email="alexw@example.com"))
    assert details.child.date_of_birth == date(2015, 3, 14) and details.requester.user_id == "u1"
    assert details.agencies == ["GP", "Police"] and details.family[0].relationship == "sibling"
    assert details.family_told is True
    assert details.requester.address == "Faketown Council, 2 Office Way"


def test_family_members_have_the_childs_fields_and_their_other_names_are_identifiers():
    from supervision.models import identifiers_of

    d = good()
    d.values.update({"family.f1.also_known_as": "Yoyo Sample", "family.f1.gender": "Female",
                     "family.f1.ethnicity": "White British", "family.f1.disability": "None known",
                     "family.f1.date_of_birth": "2012-06-01", "family.f1.address": "1 Synthetic Street"})
    assert validate_all(BOLTON, d, TODAY) == []
    member = details_from(BOLTON, d, Actor("u1", email="alexw@example.com")).family[0]
    assert (member.name, member.also_known_as, member.gender, member.ethnicity, member.disability) == \
        ("Yolanda Example", "Yoyo Sample", "Female", "White British", "None known")
    found = identifiers_of(details_from(BOLTON, d, Actor("u1")))
    assert "Yoyo Sample" in found


@pytest.mark.parametrize("raw,expected", [
    ("2015-03-14", date(2015, 3, 14)), ("14/03/2015", date(2015, 3, 14)), ("2024-02-29", date(2024, 2, 29)),
    ("2023-02-29", None), ("31/04/2015", None), ("2015-13-01", None), ("yesterday", None), ("", None),
    ("2015-3-1", date(2015, 3, 1)), ("99999-01-01", None),
])
def test_dates_must_be_real(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize("dob,error", [
    ("2008-01-06", None),                       # 17, turns 18 tomorrow
    ("2008-01-05", "request.error.child_too_old"),   # 18 today
    ("2026-01-05", None),                       # born today
    ("2026-01-06", "request.error.dob_future"),
    ("2015-02-29", "request.error.date"),
])
def test_child_date_of_birth(dob, error):
    d = good()
    d.values["child.date_of_birth"] = dob
    errors = validate_step(BOLTON, d, "child", TODAY)
    assert keys(errors) == ([("child.date_of_birth", error)] if error else [])


def test_max_child_age_is_configurable(tmp_path: Path):
    own = tmp_path / "young.toml"
    own.write_text('extends = "bolton"\nid = "young"\n[request]\nmax_child_age_years = 16\n')
    profile = load_profile(own)
    d = good()
    d.values["child.date_of_birth"] = "2009-06-01"      # 16
    assert keys(validate_step(profile, d, "child", TODAY)) == [("child.date_of_birth", "request.error.child_too_old")]
    assert validate_step(BOLTON, d, "child", TODAY) == []


def test_required_fields_come_from_the_profile(tmp_path: Path):
    d = good()
    del d.values["child.forename"]
    assert keys(validate_step(BOLTON, d, "child", TODAY)) == [("child.forename", "request.error.required")]
    own = tmp_path / "relaxed.toml"
    own.write_text('extends = "bolton"\nid = "relaxed"\n[request]\nrequired_fields = ["child.ethnicity"]\n')
    relaxed = load_profile(own)
    assert keys(validate_step(relaxed, d, "child", TODAY)) == [("child.ethnicity", "request.error.required")]


def test_emails_choices_and_length():
    d = good()
    d.values.update({"requester.email": "alex@", "level_of_need": "Statutory", "reason": "x" * (MAX_TEXT + 1)})
    errors = validate_all(BOLTON, d, TODAY)
    assert ("requester.email", "request.error.email") in keys(errors)
    assert ("level_of_need", "request.error.choice") in keys(errors)
    assert ("reason", "request.error.too_long") in keys(errors)


def test_invitee_limits_and_duplicates():
    d = good()
    d.values["invitee.r2.agency"] = "GP"
    assert keys(validate_step(BOLTON, d, "invitees", TODAY)) == [("invitees", "request.error.min_agencies")]
    d.values["invitee.r2.email"] = "PATTIF@example.com"
    assert ("invitee.r2.email", "request.error.duplicate_email") in keys(validate_step(BOLTON, d, "invitees", TODAY))
    norfolk = load_preset("norfolk")
    many = good()
    many.invitee_rows = [f"r{n}" for n in range(11)]
    for n in range(11):
        many.values.update({f"invitee.r{n}.agency": AGENCIES[n], f"invitee.r{n}.name": f"P{n}",
                            f"invitee.r{n}.email": f"p{n}@example.com"})
    assert keys(validate_step(norfolk, many, "invitees", TODAY)) == [("invitees", "request.error.max_attendees")]
    many.invitee_rows.pop()
    assert validate_step(norfolk, many, "invitees", TODAY) == []


def test_blank_rows_are_ignored_and_a_bad_agency_is_refused():
    d = good()
    d.invitee_rows.append("r3")
    d.family_rows.append("f2")
    assert validate_all(BOLTON, d, TODAY) == []
    d.values["invitee.r3.agency"] = "Ministry of Magic"
    assert ("invitee.r3.agency", "request.error.choice") in keys(validate_step(BOLTON, d, "invitees", TODAY))
    assert ("invitee.r3.name", "request.error.required") in keys(validate_step(BOLTON, d, "invitees", TODAY))


def test_family_told_rules_per_profile(tmp_path: Path):
    d = good()
    d.values["family_told"] = "no"
    assert keys(validate_step(BOLTON, d, "voice", TODAY)) == [("family_not_told_reason", "request.error.not_told_reason")]
    d.values["family_not_told_reason"] = "It would put the child at risk."
    assert validate_step(BOLTON, d, "voice", TODAY) == []
    strict = tmp_path / "strict.toml"
    strict.write_text('extends = "bolton"\nid = "strict"\n[request]\nfamily_may_be_untold_with_reason = false\n')
    assert keys(validate_step(load_profile(strict), d, "voice", TODAY)) == [
        ("family_told", "request.error.family_must_be_told")]


def test_who_may_request(tmp_path: Path):
    cheshire = load_preset("cheshire_west")
    d = good()
    assert keys(requester_may_request(cheshire, d)) == [("lead_professional.email", "request.error.lead_professional_only")]
    d.values["lead_professional.email"] = "ALEXW@example.com"
    assert requester_may_request(cheshire, d) == []
    managers = tmp_path / "managers.toml"
    managers.write_text('extends = "bolton"\nid = "managers"\n[request]\nwho_may_request = ["team_manager"]\n')
    only_managers = load_profile(managers)
    assert keys(requester_may_request(only_managers, good())) == [("requester.role", "request.error.requester_kind")]
    d = good()
    d.values["requester.role"] = "Assistant Team-Manager"
    assert requester_may_request(only_managers, d) == []
    assert requester_may_request(BOLTON, good()) == []
    assert requester_may_request(load_preset("norfolk"), good()) == []


def test_norfolk_needs_the_accountable_manager():
    norfolk = load_preset("norfolk")
    d = good()
    d.values["level_of_need"] = "Early Help"
    errors = keys(validate_step(norfolk, d, "need", TODAY))
    assert errors == [("manager.name", "request.error.required"), ("manager.email", "request.error.required")]
    d.values.update({"manager.name": "Mo Manager", "manager.email": "mo@example.com"})
    assert validate_step(norfolk, d, "need", TODAY) == []


def test_every_field_maps_back_to_its_step():
    assert step_of_field("child.date_of_birth") == "child"
    assert step_of_field("invitee.r1.email") == "invitees" and step_of_field("invitees") == "invitees"
    assert step_of_field("family.f1.name") == "family"
    assert step_of_field("manager.email") == "need" and step_of_field("family_told") == "voice"
    assert STEPS[-1] == "review"


def test_lead_professional_aware_yes_needs_their_details():
    d = good()
    d.values.update({"lead_professional.name": "", "lead_professional.email": ""})
    profile = dataclasses.replace(BOLTON, request=dataclasses.replace(BOLTON.request, required_fields=()))
    assert keys(validate_step(profile, d, "need", TODAY)) == [
        ("lead_professional.name", "request.error.required"), ("lead_professional.email", "request.error.required")]
    d.values["lead_professional_aware"] = "not_applicable"
    assert validate_step(profile, d, "need", TODAY) == []


def test_lead_professional_not_aware_needs_a_reason():
    d = good()
    d.values["lead_professional_aware"] = "no"
    assert keys(validate_step(BOLTON, d, "need", TODAY)) == [
        ("lead_professional_unaware_reason", "request.error.required")]
    d.values["lead_professional_unaware_reason"] = "On leave until Monday; told by email."
    assert validate_step(BOLTON, d, "need", TODAY) == []
    details = details_from(BOLTON, d, Actor("u1"))
    assert details.lead_professional_unaware_reason == "On leave until Monday; told by email."
