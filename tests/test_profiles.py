from pathlib import Path

import pytest

from supervision.calendar import Nation
from supervision.profile import PRESET_IDS, ProfileError, load_preset, load_profile, load_profiles


def test_all_five_presets_load_with_their_procedures_rules():
    profiles = load_profiles()
    assert set(PRESET_IDS) <= set(profiles)
    cheshire, gwent, norfolk, bolton, argyll = (profiles[p] for p in PRESET_IDS)
    assert cheshire.request.who_may_request == {"lead_professional"}
    assert cheshire.model.id == "seven_stages" and len(cheshire.model.sections) == 7
    assert gwent.nation is Nation.WALES and "cy" in gwent.languages
    assert gwent.timescales.actions_within_working_days == 2
    assert gwent.timescales.minutes_within_working_days == 20
    assert gwent.chronology_merged_by == "social_worker"
    assert norfolk.facilitation.count == 2 and norfolk.facilitation.different_agencies
    assert norfolk.request.manager_agreement_first and norfolk.max_attendees == 10
    assert norfolk.timescales.agreement_to_session_working_days == 15
    assert bolton.request.level_of_need == ("Universal", "Preventative", "Early Help", "Targeted Help", "Statutory Help")
    assert bolton.timescales.pre_evaluation_working_days_before == 3
    assert bolton.timescales.follow_up_months == 6
    assert bolton.tracker_readers == {"business_manager", "administrator"}
    assert argyll.nation is Nation.SCOTLAND
    assert argyll.record.child_identifiers_allowed is False
    assert [s.key for s in argyll.model.sections] == [
        "concrete_experience", "reflective_observation", "abstract_conceptualisation", "active_experimentation"]
    assert "What is your contingency plan?" in argyll.model.sections[3].questions
    for profile in profiles.values():
        assert profile.immediate_risk_route and profile.model.sections


def test_a_partnership_file_extends_a_preset(tmp_path: Path):
    own = tmp_path / "my_partnership.toml"
    own.write_text('extends = "bolton"\nid = "mine"\nname = "My Partnership"\n[attendance]\nmax_attendees = 6\n')
    profile = load_profile(own)
    assert profile.id == "mine" and profile.max_attendees == 6
    assert profile.model.id == "bolton_mapping"
    assert load_profiles((own,))["mine"].name == "My Partnership"


@pytest.mark.parametrize("body,key,reason", [
    ('extends = "bolton"\n[timescales]\nagreement_to_session_working_days = "soon"\n',
     "timescales.agreement_to_session_working_days", "whole number"),
    ('extends = "bolton"\nnation = "france"\n', "nation", "must be one of"),
    ('extends = "bolton"\n[facilitation]\ncount = 1\ndifferent_agencies = true\n', "facilitation.different_agencies", "count = 2"),
    ('extends = "nowhere"\n', "extends", "no profile"),
    ('extends = "bolton"\n[request]\nwho_may_request = ["anyone"]\n', "request.who_may_request", "unknown"),
    ('extends = "bolton"\n[model]\nsections = [{key = "a", title = ""}]\n', "model.sections[0].title", "must not be empty"),
    ('this is = not toml', "(syntax)", ""),
])
def test_an_invalid_file_names_file_key_and_reason(tmp_path: Path, body, key, reason):
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    with pytest.raises(ProfileError) as caught:
        load_profile(bad)
    assert caught.value.file.endswith("bad.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_defaults_are_documented_and_inherited():
    defaults = load_preset("cheshire_west")
    assert defaults.timescales.agreement_to_session_working_days == 15   # procedure silent: default
    text = (Path(__file__).parent.parent / "supervision" / "profiles" / "defaults.toml").read_text()
    assert "Documented defaults" in text
