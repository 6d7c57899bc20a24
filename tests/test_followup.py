"""The six-month follow-up: due work at the profile's interval moves the case to FOLLOW_UP_DUE and
sends the lead professional a card; recording it closes the case and adds the outcome to the log."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from cards.followup import followup_card, followup_done_card
from supervision.catalogue import Catalogue
from supervision.errors import Forbidden, ValidationFailed
from supervision.followup import FollowUp, followup_work, parse_followup
from supervision.models import CaseState
from supervision.profile import load_preset
from tests.support.harness import BotHarness
from tests.test_record_helpers import ADELE, ALEX, LYNNE, PATTI, actor, good_form, held_case

T = Catalogue("en")


@pytest.fixture
def config(make_config):
    return make_config(ADMINISTRATORS=LYNNE.email)


def test_follow_up_work_is_due_at_the_profiles_interval_on_a_working_day():
    bolton = load_preset("bolton")
    case = held_case(state=CaseState.MINUTES_DONE)
    case.follow_up_due = date(2026, 9, 5)          # a Saturday
    work = followup_work(case, bolton.calendar())
    assert [(w.kind, w.due_at.isoformat()) for w in work] == [
        ("followup.due", "2026-09-07T08:00:00+00:00"),          # Mon 7 Sep, 09:00 BST
        ("followup.reminder", "2026-09-21T08:00:00+00:00")]     # ten working days later
    case.state = CaseState.ACTIONS_DISTRIBUTED
    assert followup_work(case, bolton.calendar()) == []


def test_follow_up_answers_are_checked():
    with pytest.raises(ValidationFailed) as excinfo:
        parse_followup({"outcomes": "", "what_changed": "x", "plan_moved_on": "maybe"})
    assert [e.field for e in excinfo.value.errors] == ["outcomes", "plan_moved_on"]


def test_follow_up_cards_are_valid(validate_card):
    case = held_case(state=CaseState.FOLLOW_UP_DUE)
    validate_card(followup_card(T, case, 6))
    validate_card(followup_card(T, case, 6, values={"outcomes": "x", "child_involved": "true"}, errors=["e"],
                                banner="b"))
    done = FollowUp("c", 1, "o", "w", "partly", True, True, "", "u", datetime(2026, 9, 7, tzinfo=UTC))
    validate_card(followup_done_card(T, case, done))


async def test_six_months_on_the_lead_professional_records_the_follow_up_and_the_case_closes(
        harness: BotHarness, clock, validate_card):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case())
    for user in (ADELE, PATTI, ALEX, LYNNE):
        await harness.say(user, "hello")
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1", **good_form(held_case())})
    case = await services.cases.require("case-rec-1")
    assert case.state == CaseState.MINUTES_DONE and case.follow_up_due == date(2026, 9, 3)

    harness.connector.clear()
    clock.set(datetime(2026, 9, 2, 10, tzinfo=UTC))
    report = await services.due_work.run_due()
    assert not [k for k in report.ran if "followup" in k]
    clock.set(datetime(2026, 9, 3, 9, tzinfo=UTC))
    report = await services.due_work.run_due()
    assert "case-rec-1:followup:1" in report.ran
    case = await services.cases.require("case-rec-1")
    assert case.state == CaseState.FOLLOW_UP_DUE
    cards = [c for s in harness.connector.messages(f"personal-{PATTI.id}") for c in s.cards]
    assert any("Six-month follow-up" in json.dumps(c) for c in cards)

    status, body = await harness.execute(ALEX, "followup.submit", {"case_id": "case-rec-1", "outcomes": "x",
                                                                   "what_changed": "y", "plan_moved_on": "yes"})
    assert body["type"] == "application/vnd.microsoft.activity.message"      # Alex is not the lead professional
    status, body = await harness.execute(PATTI, "followup.submit", {"case_id": "case-rec-1", "outcomes": "",
                                                                    "what_changed": "y", "plan_moved_on": "yes"})
    assert "Outcomes for the child and family is required" in json.dumps(body["value"])
    assert '"value": "y"' in json.dumps(body["value"])       # kept
    status, body = await harness.execute(PATTI, "followup.submit", {
        "case_id": "case-rec-1", "outcomes": "Attending school most days", "what_changed": "Weekly check-ins",
        "plan_moved_on": "partly", "child_involved": "true", "family_involved": "true", "views": "Happier"})
    assert status == 200 and "The case is now closed" in json.dumps(body["value"])
    validate_card(body["value"])
    case = await services.cases.require("case-rec-1")
    assert case.state == CaseState.CLOSED and case.closed_at == clock.now()
    assert [h.event for h in case.history[-2:]] == ["follow_up_due", "record_follow_up"]
    entries = await services.features["tracker"].read(services.actor(LYNNE.id, email=LYNNE.email),
                                                      services.profile())
    assert entries[0].plan_moved_on == "partly" and entries[0].follow_up_on == date(2026, 9, 3)


async def test_only_the_lead_professional_or_a_facilitator_may_record_it(harness: BotHarness):
    services = harness.parts.services
    await services.cases.create(held_case(state=CaseState.FOLLOW_UP_DUE))
    with pytest.raises(Forbidden):
        await services.features["followup"].record(actor(ALEX), "case-rec-1", {})
    refused = [e for e in await services.audit.entries("case-rec-1") if not e["allowed"]]
    assert refused[-1]["action"] == "followup.refused"
