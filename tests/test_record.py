"""The session record: validation per profile, the identifier refusal (Argyll), publishing with the
actions and minutes deadlines under a controlled clock, reminders to the facilitator, further sessions,
and the record document."""
from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from docx import Document

from bot.events import EventDispatcher
from cards.record import full_record_card, offer_card, record_form_card, summary_card, summary_view
from documents.record_docx import render_record
from storage.memory import MemoryStore
from supervision.action_items import ActionItems
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.errors import Forbidden, ValidationFailed
from supervision.lifecycle import Deadlines
from supervision.models import CaseState, find_identifiers
from supervision.profile import load_preset
from supervision.record import RecordSessions, RecordStatus, facilitator_reminders, parse, prefill
from supervision.repository import AuditLog, CaseRepository
from tests.test_record_helpers import ADELE, ALEX, IDENTIFIERS, PATTI, actor, good_form, held_case

T = Catalogue("en")
TODAY = date(2026, 3, 4)
PROFILES = {pid: load_preset(pid) for pid in ("bolton", "gwent", "argyll_bute", "norfolk", "cheshire_west")}


def errors_of(excinfo: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e.field: e.key for e in excinfo.value.errors}


# --- validation per profile ---------------------------------------------------------------------
def test_a_complete_bolton_record_parses_with_its_actions_and_themes():
    case = held_case()
    record = parse(good_form(case), case, PROFILES["bolton"], TODAY, full=True)
    assert record.held_on == date(2026, 3, 3)
    assert [a.owner_name for a in record.actions] == [PATTI.name, ALEX.name]
    assert record.themes == ["Neglect", "Housing"]
    assert record.attendees == [f"{PATTI.name} (GP)", f"{ALEX.name} (Primary School)"]
    assert record.sections["success_measures"].startswith("Attendance")
    assert record.review_on == date(2026, 4, 14)


def test_every_section_of_the_profiles_reflective_model_is_required_in_the_full_record():
    case = held_case(profile_id="gwent")
    form = good_form(case, learning_points="x")
    with pytest.raises(ValidationFailed) as excinfo:
        parse(form, case, PROFILES["gwent"], TODAY, full=True)
    keys = errors_of(excinfo)
    # Gwent: the balancing exercise (strengths, priority risks, outstanding needs) and the rest;
    # "strengths" is shared with Bolton's mapping and was answered
    for section in ("outcomes", "priority_risks", "outstanding_needs", "safety_planning", "next_steps", "progress"):
        assert keys[f"section_{section}"] == "record.error.required"
    assert "section_strengths" not in keys
    # Bolton's sections are not asked of Gwent, and vice versa
    assert "section_known" not in keys
    gwent_form = {**form, **{f"section_{s.key}": "Discussed." for s in PROFILES["gwent"].model.sections}}
    assert parse(gwent_form, case, PROFILES["gwent"], TODAY, full=True).sections["outstanding_needs"] == "Discussed."


def test_kolb_sections_for_argyll():
    case = held_case(profile_id="argyll_bute")
    form = {**good_form(case), **{f"section_{s.key}": "Reflected." for s in PROFILES["argyll_bute"].model.sections}}
    record = parse(form, case, PROFILES["argyll_bute"], TODAY, full=True)
    assert set(record.sections) == {"concrete_experience", "reflective_observation", "abstract_conceptualisation",
                                    "active_experimentation"}


@pytest.mark.parametrize("overrides, field, key", [
    ({"held_on": "2026-03-05"}, "held_on", "record.error.future"),
    ({"held_on": "3rd March"}, "held_on", "record.error.date"),
    ({"attendees": "", "other_attendees": ""}, "attendees", "record.error.required"),
    ({"attendees": "someone@else.example"}, "attendees", "record.error.unknown_attendee"),
    ({"action_1_owner": ""}, "action_1_owner", "record.error.required"),
    ({"action_1_owner": "stranger@example.com"}, "action_1_owner", "record.error.unknown_owner"),
    ({"action_2_due": "2026-03-01"}, "action_2_due", "record.error.due_before_session"),
    ({"escalation_issues": "Drift in the plan"}, "escalated_to", "record.error.escalated_to"),
    ({"further_sessions": "yes"}, "further_sessions_when", "record.error.required"),
    ({"further_sessions": "yes", "further_sessions_when": "2026-03-02"}, "further_sessions_when",
     "record.error.after_session"),
    ({"plan_changes_shared_by": ""}, "plan_changes_shared_by", "record.error.shared_by"),
    ({"review_on": ""}, "review_on", "record.error.required"),
    ({"learning_points": ""}, "learning_points", "record.error.required"),
    ({"themes": "0,99"}, "themes", "record.error.unknown_theme"),
])
def test_bad_answers_name_their_field(overrides, field, key):
    case = held_case()
    with pytest.raises(ValidationFailed) as excinfo:
        parse(good_form(case, **overrides), case, PROFILES["bolton"], TODAY, full=True)
    assert errors_of(excinfo)[field] == key


def test_sending_actions_needs_only_the_date_attendees_and_at_least_one_complete_action():
    case = held_case()
    minimal = {"held_on": "2026-03-03", "attendees": PATTI.email, "action_1_description": "Visit",
               "action_1_owner": PATTI.email, "action_1_due": "2026-03-09"}
    record = parse(minimal, case, PROFILES["bolton"], TODAY, full=False)
    assert len(record.actions) == 1
    with pytest.raises(ValidationFailed) as excinfo:
        parse({k: v for k, v in minimal.items() if not k.startswith("action_")}, case, PROFILES["bolton"], TODAY,
              full=False)
    assert errors_of(excinfo) == {"action_1_description": "record.error.no_actions"}


# --- identifiers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, found", [
    ("learning_points", "Zebedee is rarely at school", "Zebedee"),
    ("section_concrete_experience", "Concern about Marigold Example's health", "Marigold Example"),
    ("escalation_issues", "Born 14/03/2015, so eleven now", "14/03/2015"),
    ("action_1_description", "Visit 1 Synthetic Street", "1 Synthetic Street"),
    ("other_themes", "zeb and school", "Zeb"),
    ("learning_points", "DOB 14.03.2015 noted", "14.03.2015"),
    ("learning_points", "born 14/3/2015", "14/3/2015"),
    ("learning_points", "born 14/3/15", "14/3/15"),
    ("learning_points", "mother born 01-02-1990", "01-02-1990"),
])
def test_argyll_refuses_identifiers_naming_the_field_and_what_was_found(field, value, found):
    case = held_case(profile_id="argyll_bute")
    profile = PROFILES["argyll_bute"]
    form = {**good_form(case), **{f"section_{s.key}": "Reflected." for s in profile.model.sections}, field: value}
    with pytest.raises(ValidationFailed) as excinfo:
        parse(form, case, profile, TODAY, full=True)
    errors = [e for e in excinfo.value.errors if e.key == "record.error.identifier"]
    assert [e.field for e in errors] == [field]
    assert found in errors[0].params["found"]
    message = T(errors[0].key, label="Key learning points", **errors[0].params)
    assert found in message and "Key learning points" in message


def test_bolton_allows_identifiers_in_the_record_itself():
    case = held_case()
    record = parse(good_form(case, learning_points="Zebedee is rarely at school"), case, PROFILES["bolton"], TODAY,
                   full=True)
    assert "Zebedee" in record.learning_points


def test_practitioner_words_that_merely_contain_a_name_are_not_refused():
    case = held_case(profile_id="argyll_bute")
    profile = PROFILES["argyll_bute"]
    form = {**good_form(case, learning_points="Examples of good practice; sampled records"),
            **{f"section_{s.key}": "Reflected." for s in profile.model.sections}}
    assert parse(form, case, profile, TODAY, full=True).learning_points.startswith("Examples")


# --- the use case under a controlled clock -------------------------------------------------------
@pytest.fixture
def setup():
    clock = FixedClock(datetime(2026, 3, 4, 14, 0, tzinfo=UTC))     # Wed, the day after
    store = MemoryStore()
    cases, audit, events = CaseRepository(store), AuditLog(store, clock), EventDispatcher()
    profiles = dict(PROFILES)

    def deadlines(profile):
        return Deadlines(profile, profile.calendar())

    uc = RecordSessions(store=store, cases=cases, audit=audit, clock=clock, events=events, profiles=profiles,
                        deadlines=deadlines, default_profile="bolton")
    items = ActionItems(store=store, cases=cases, audit=audit, clock=clock, events=events)
    uc.create_actions = items.create_from_record
    return uc, cases, clock, events, audit, items


async def test_publishing_records_each_deadline_timestamp_and_moves_the_case(setup):
    uc, cases, clock, events, audit, items = setup
    await cases.create(held_case())
    result = await uc.publish(actor(ADELE), "case-rec-1", good_form(held_case()))
    case = result.case
    now = clock.now()
    assert case.state == CaseState.MINUTES_DONE
    assert case.session.recorded_at == now
    assert case.session.actions_distributed_at == now
    assert case.session.minutes_done_at == now
    assert case.follow_up_due == date(2026, 9, 3)            # six months after the session
    assert [h.event for h in case.history[-3:]] == ["record", "distribute_actions", "complete_minutes"]
    assert [e.kind for e in events.published] == ["actions.distributed", "session.recorded"]
    assert sorted(events.published[0].data["items"]) == ["s1a1", "s1a2"]
    assert {t.id for t in case.tracked if t.kind == "action_item"} == {"s1a1", "s1a2"}
    stored = await uc.get_stored(case.id, 1)
    assert stored.status == RecordStatus.PUBLISHED and stored.published_at == now
    assert any(e["action"] == "record.publish" for e in await audit.entries(case.id))


async def test_actions_first_then_the_minutes_at_their_own_times(setup):
    uc, cases, clock, events, audit, items = setup
    await cases.create(held_case())
    form = good_form(held_case())
    first = await uc.send_actions(actor(ADELE), "case-rec-1", {k: v for k, v in form.items() if k != "learning_points"})
    sent_at = clock.now()
    assert first.case.state == CaseState.ACTIONS_DISTRIBUTED
    assert first.case.session.actions_distributed_at == sent_at and first.case.session.minutes_done_at is None
    clock.advance(days=13)          # Tue 17 Mar
    second = await uc.publish(actor(ADELE), "case-rec-1", form)
    assert second.case.session.actions_distributed_at == sent_at        # unchanged
    assert second.case.session.minutes_done_at == clock.now()
    assert second.new_item_ids == []                                     # the actions went once
    assert len(await items.for_case("case-rec-1")) == 2


async def test_a_refused_submission_keeps_everything_typed(setup):
    uc, cases, clock, *_ = setup
    await cases.create(held_case(profile_id="argyll_bute"))
    form = {**good_form(held_case(profile_id="argyll_bute")), "learning_points": "Zebedee's voice was missing"}
    with pytest.raises(ValidationFailed):
        await uc.publish(actor(ADELE), "case-rec-1", form)
    stored = await uc.get_stored("case-rec-1", 1)
    assert stored.form["learning_points"] == "Zebedee's voice was missing"
    assert stored.form["action_2_description"] == "Share attendance figures weekly"
    assert stored.status == RecordStatus.DRAFT
    assert (await cases.require("case-rec-1")).state == CaseState.HELD


async def test_only_the_cases_facilitator_may_record_and_refusals_are_audited(setup):
    uc, cases, clock, events, audit, _ = setup
    await cases.create(held_case())
    with pytest.raises(Forbidden):
        await uc.open(actor(PATTI), "case-rec-1")
    refused = [e for e in await audit.entries("case-rec-1") if not e["allowed"]]
    assert refused and refused[0]["action"] == "record.refused" and refused[0]["actor"] == PATTI.id


async def test_a_further_session_starts_a_new_session_on_the_same_case(setup):
    uc, cases, clock, events, *_ = setup
    await cases.create(held_case(profile_id="norfolk"))
    profile = PROFILES["norfolk"]
    form = {**good_form(held_case()), **{f"section_{s.key}": "Felt stuck." for s in profile.model.sections},
            "further_sessions": "yes", "further_sessions_when": "2026-04-07"}
    result = await uc.publish(actor(ADELE), "case-rec-1", form)
    case = result.case
    assert result.further_session_started
    assert case.state == CaseState.FACILITATORS_ASSIGNED
    assert case.session.number == 2 and case.session.held_at is None
    assert [s.number for s in case.previous_sessions] == [1]
    assert case.previous_sessions[0].minutes_done_at == clock.now()
    assert case.follow_up_due is None
    assert events.published[-1].kind == "facilitators.assigned"


def test_facilitator_reminders_until_done_across_a_bank_holiday():
    profile = PROFILES["bolton"]
    deadlines = Deadlines(profile, profile.calendar())
    # held Thu 2 Apr 2026; Good Friday 3 Apr and Easter Monday 6 Apr are bank holidays in England
    case = held_case(held_at=datetime(2026, 4, 2, 13, 0, tzinfo=UTC))
    work = facilitator_reminders(case, deadlines, datetime(2026, 4, 2, 15, 0, tzinfo=UTC))
    actions = sorted((w.due_at, w.data["stage"]) for w in work if w.kind == "record.actions_reminder")
    # two working days after Thu 2 Apr: Tue 7 and Wed 8 Apr; reminder the day before, then on the day
    assert [(d.date().isoformat(), s) for d, s in actions] == [("2026-04-07", "before"), ("2026-04-08", "due")]
    assert actions[0][0].hour == 8       # 09:00 BST is 08:00 UTC
    later = facilitator_reminders(case, deadlines, datetime(2026, 4, 13, 12, 0, tzinfo=UTC))
    overdue = [w for w in later if w.data["stage"] == "overdue" and w.kind == "record.actions_reminder"]
    # the latest overdue day (today) and the next working day's, which keeps the case in the due index
    assert [w.key for w in overdue] == ["case-rec-1:record:actions:1:2026-04-13", "case-rec-1:record:actions:1:2026-04-14"]
    case.session.actions_distributed_at = datetime(2026, 4, 8, 9, tzinfo=UTC)
    done = facilitator_reminders(case, deadlines, datetime(2026, 4, 13, 12, 0, tzinfo=UTC))
    assert {w.kind for w in done} == {"record.minutes_reminder"}
    minutes = [w for w in done if w.data["stage"] == "due"][0]
    # 20 working days after Thu 2 Apr, skipping Good Friday, Easter Monday and the early May bank holiday (4 May)
    assert minutes.data["due"] == "2026-05-05"


# --- cards and the document ----------------------------------------------------------------------
def test_record_cards_are_valid_and_the_summary_has_no_identifiers(validate_card):
    case = held_case()
    profile = PROFILES["bolton"]
    form = good_form(case, learning_points="Zebedee Example of 1 Synthetic Street, born 14/03/2015")
    record = parse(form, case, profile, TODAY, full=True)
    for card in (record_form_card(T, case, profile, prefill(case, profile), {}, (TODAY, TODAY)),
                 record_form_card(T, case, profile, form, {"1": "s1a1"}, None, ["An error"]),
                 record_form_card(T, case, profile, form, {"1": "s1a1"}, None, ["An error"], step=2),
                 full_record_card(T, case, profile, record, "https://example.com/x"), offer_card(T, case)):
        validate_card(card)
    summary = summary_card(T, summary_view(case, record, profile))
    validate_card(summary)
    assert find_identifiers(str(summary), IDENTIFIERS) == []
    assert case.reference in str(summary)


def test_prefill_takes_confirmed_attendance_and_the_facilitators():
    case = held_case()
    form = prefill(case, PROFILES["bolton"])
    assert form["attendees"].split(",") == [PATTI.email, ALEX.email]       # Nestor declined
    assert form["facilitators"] == ADELE.name and form["held_on"] == "2026-03-03"


def test_the_record_document_reads_back():
    from dialogs.record import record_document

    case = held_case()
    profile = PROFILES["bolton"]
    record = parse(good_form(case), case, profile, TODAY, full=True)
    content = render_record(record_document(T, case, profile, record))
    doc = Document(io.BytesIO(content))
    paragraphs = "\n".join(p.text for p in doc.paragraphs)
    cells = [c.text for table in doc.tables for row in table.rows for c in row.cells]
    assert f"Session record: {case.reference}" in paragraphs
    assert "Child: Zebedee Example, born Sat 14 Mar 2015" in paragraphs     # Bolton: for the child's file
    for section in profile.model.sections:
        assert section.title in paragraphs
    assert "Arrange a joint home visit" in cells and PATTI.name in cells and "Tue 10 Mar 2026" in cells
    assert record.learning_points in cells


def test_the_argyll_document_carries_no_identifiers():
    from dialogs.record import record_document

    case = held_case(profile_id="argyll_bute")
    profile = PROFILES["argyll_bute"]
    form = {**good_form(case), **{f"section_{s.key}": "Reflected." for s in profile.model.sections}}
    record = parse(form, case, profile, TODAY, full=True)
    doc = Document(io.BytesIO(render_record(record_document(T, case, profile, record))))
    text = "\n".join([p.text for p in doc.paragraphs] + [c.text for t in doc.tables for r in t.rows for c in r.cells])
    assert find_identifiers(text, IDENTIFIERS) == []
    assert "Kolb" in text


def test_every_record_form_button_sends_what_was_typed():
    """associatedInputs "none" would make Teams drop every input: the form's buttons must not say it."""
    case = held_case()
    for step, expected in ((1, {"record.next", "record.save"}),
                           (2, {"record.publish", "record.send_actions", "record.add_action", "record.back",
                                "record.save"})):
        card = record_form_card(T, case, PROFILES["bolton"], prefill(case, PROFILES["bolton"]), {}, None, step=step)
        verbs = {a["data"]["verb"]: a for a in card["actions"]}
        assert set(verbs) == expected
        assert all(a.get("associatedInputs", "auto") == "auto" for a in verbs.values())
        assert all(a["data"]["phase"] == str(step) for a in verbs.values())


def test_the_two_parts_hold_every_field_once():
    def card_inputs(node):
        if isinstance(node, dict):
            found = [node] if str(node.get("type", "")).startswith("Input.") else []
            return found + [i for v in node.values() for i in card_inputs(v)]
        if isinstance(node, list):
            return [i for v in node for i in card_inputs(v)]
        return []

    case = held_case()
    profile = PROFILES["gwent"]
    one = {i["id"] for i in card_inputs(record_form_card(T, case, profile, {}, {}, None, step=1))}
    two = {i["id"] for i in card_inputs(record_form_card(T, case, profile, {}, {}, None, step=2))}
    assert not one & two
    assert {f"section_{s.key}" for s in profile.model.sections} <= one
    assert {"held_on", "attendees", "learning_points", "themes"} <= one
    assert {"action_1_description", "action_1_owner", "action_1_due", "escalated_to", "review_on",
            "further_sessions", "plan_changes_shared_by"} <= two


def test_a_long_record_stays_inside_teams_message_size():
    import json as json_

    for pid, profile in PROFILES.items():
        case = held_case(profile_id=pid)
        form = {**good_form(case), "action_rows": "10", "learning_points": "l" * 3000}
        for row in range(1, 11):
            form |= {f"action_{row}_description": "d" * 300, f"action_{row}_owner": PATTI.email,
                     f"action_{row}_due": "2026-03-20"}
        form |= {f"section_{s.key}": "s" * 2000 for s in profile.model.sections}
        for step in (1, 2):
            size = len(json_.dumps(record_form_card(T, case, profile, form, {}, (TODAY, TODAY), ["e"] * 5, step)))
            assert size < 24_000, (pid, step, size)      # Teams refuses messages over about 28 KB


def test_argyll_follows_its_appendix_1_template_without_a_meeting_identifier():
    argyll, bolton = PROFILES["argyll_bute"], PROFILES["bolton"]
    case = held_case(profile_id="argyll_bute")
    form = {**good_form(case, meeting_identifier=""), **{f"section_{s.key}": "Reflected." for s in argyll.model.sections}}
    assert parse(form, case, argyll, TODAY, full=True).meeting_identifier == ""
    with pytest.raises(ValidationFailed) as excinfo:
        parse(good_form(held_case(), meeting_identifier=""), held_case(), bolton, TODAY, full=True)
    assert errors_of(excinfo) == {"meeting_identifier": "record.error.required"}
    ids = {i.get("id") for i in record_form_card(T, case, argyll, form, {}, None)["body"] if isinstance(i, dict)}
    assert "meeting_identifier" not in ids and "learning_points" in ids


def test_the_case_picker_and_reminder_cards_are_valid(validate_card):
    from cards.record import pick_case_card, published_card, reminder_card

    cases = [held_case("case-rec-1"), held_case("case-rec-2")]
    picker = pick_case_card(T, cases)
    validate_card(picker)
    assert [a["data"]["case_id"] for a in picker["actions"]] == ["case-rec-1", "case-rec-2"]
    for what, stage in (("actions", "before"), ("minutes", "overdue")):
        validate_card(reminder_card(T, cases[0], what, stage, TODAY, late="This message is late"))
    validate_card(published_card(T, cases[0], full=True, action_count=2, attendees=3, summary_posted=False,
                                 further=True, document_url="https://example.com/d",
                                 timeliness=[("actions", TODAY, False)], learning_goes_to="the group"))


def test_a_practitioner_who_shares_the_familys_surname_can_still_be_named():
    from supervision.models import FacilitatorAssignment

    profile = PROFILES["argyll_bute"]
    case = held_case(profile_id="argyll_bute")
    case.facilitators.append(FacilitatorAssignment(name="Ida Example", email="ida@example.com", agency="Police"))
    form = {**good_form(case, facilitators="Adele Vance, Ida Example",
                        learning_points="Ida Example shared the police view"),
            **{f"section_{s.key}": "Reflected." for s in profile.model.sections}}
    assert parse(form, case, profile, TODAY, full=True).facilitators == "Adele Vance, Ida Example"
    with pytest.raises(ValidationFailed) as excinfo:
        parse({**form, "learning_points": "Ida Example met the Example family"}, case, profile, TODAY, full=True)
    assert errors_of(excinfo) == {"learning_points": "record.error.identifier"}


def test_the_record_document_says_when_no_evaluations_came_back():
    from dialogs.record import record_document
    from supervision.evaluation import SessionImpact

    case = held_case()
    profile = PROFILES["bolton"]
    record = parse(good_form(case), case, profile, TODAY, full=True)
    doc = Document(io.BytesIO(render_record(record_document(T, case, profile, record,
                                                            SessionImpact(case.id, 1, (), expected=3)))))
    paragraphs = "\n".join(p.text for p in doc.paragraphs)
    assert "Pre- and post-session evaluation" in paragraphs
    assert "No pre- or post-session evaluations were returned." in paragraphs
    assert not any(t.rows[0].cells[0].text == "Attendee" for t in doc.tables)
    without = Document(io.BytesIO(render_record(record_document(T, case, profile, record))))
    assert "Pre- and post-session evaluation" not in "\n".join(p.text for p in without.paragraphs)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
def test_each_profiles_model_sections_are_asked_and_kept(profile_id):
    """Every preset: the full record asks each section of its own model (Signs of Safety's worries,
    what is working well, what needs to happen in Norfolk; Kolb in Argyll; Gwent's balancing...)."""
    profile = PROFILES[profile_id]
    case = held_case(profile_id=profile_id)
    blank = {k: v for k, v in good_form(case).items() if not k.startswith("section_")}
    with pytest.raises(ValidationFailed) as excinfo:
        parse(blank, case, profile, TODAY, full=True)
    missing = {f for f, key in errors_of(excinfo).items() if key == "record.error.required" and f.startswith("section_")}
    assert missing == {f"section_{s.key}" for s in profile.model.sections}
    filled = {**blank, **{f"section_{s.key}": f"Reflected on {s.key}." for s in profile.model.sections}}
    record = parse(filled, case, profile, TODAY, full=True)
    assert record.sections == {s.key: f"Reflected on {s.key}." for s in profile.model.sections}


def test_norfolk_asks_the_signs_of_safety_questions():
    keys = {s.key for s in PROFILES["norfolk"].model.sections}
    assert {"worries", "working_well", "needs_to_happen"} <= keys
