"""Concerns and complaints: raised by a participant, sent to the facilitator, escalated to the named lead
(CONCERNS_LEAD_EMAIL) with identifiers removed if not resolved within the profile's working days."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from bot.config import ConfigError
from cards.concerns import concern_card, concern_form, concern_raised_card
from supervision.catalogue import Catalogue
from supervision.concerns import ConcernStatus, concern_work, redact
from supervision.errors import Forbidden
from supervision.models import find_identifiers
from supervision.profile import load_preset
from tests.support.harness import BotHarness, User
from tests.test_record_helpers import ADELE, ALEX, IDENTIFIERS, MEGAN, PATTI, actor, held_case

T = Catalogue("en")
LEAD = User("user-id-7", "Named Lead", email="lead@example.com")
BOLTON = load_preset("bolton")


@pytest.fixture
def config(make_config):
    return make_config(CONCERNS_LEAD_EMAIL=LEAD.email)


def test_the_named_lead_setting_is_validated(make_config):
    assert make_config(CONCERNS_LEAD_EMAIL="Lead@Example.com").concerns_lead_email == "lead@example.com"
    with pytest.raises(ConfigError) as excinfo:
        make_config(CONCERNS_LEAD_EMAIL="not an email")
    assert excinfo.value.setting == "CONCERNS_LEAD_EMAIL"


def test_redact_removes_every_identifier():
    text = "Zebedee Example (born 14/03/2015) at 1 Synthetic Street; Marigold was upset. Examples abound."
    cleaned = redact(text, IDENTIFIERS)
    assert find_identifiers(cleaned, IDENTIFIERS) == []
    assert "Examples abound" in cleaned and "[removed]" in cleaned


def test_concern_cards_are_valid(validate_card):
    case = held_case()
    validate_card(concern_form(T, [case], BOLTON))
    validate_card(concern_form(T, [case, held_case("case-rec-2")], BOLTON, values={"text": "x"}, errors=["e"]))


async def test_a_concern_goes_to_the_facilitator_then_escalates_to_the_named_lead(harness: BotHarness, clock,
                                                                                  validate_card):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))          # Wed
    await services.cases.create(held_case())
    for user in (ADELE, ALEX, LEAD):
        await harness.say(user, "hello")
    replies = await harness.say(ALEX, "raise a concern")
    form = replies[-1].cards[0]
    validate_card(form)
    assert "case-rec-1" in json.dumps(form)

    replies = await harness.submit(ALEX, {"verb": "concern.submit", "case_id_choice": "case-rec-1", "kind": "",
                                          "text": "Zebedee's school view was cut short"})
    assert "choose concern or complaint" in json.dumps(replies[-1].cards[0])
    assert "Zebedee's school view was cut short" in json.dumps(replies[-1].cards[0])     # kept

    harness.connector.clear()
    replies = await harness.submit(ALEX, {"verb": "concern.submit", "case_id_choice": "case-rec-1",
                                          "kind": "complaint", "text": "Zebedee's school view was cut short"})
    received = replies[0].cards[0]
    validate_card(received)
    assert "Wed 11 Mar 2026" in json.dumps(received)     # five working days on
    to_adele = [c for s in harness.connector.messages(f"personal-{ADELE.id}") for c in s.cards]
    assert any("Zebedee's school view" in json.dumps(c) for c in to_adele)
    for c in to_adele:
        validate_card(c)
    case = await services.cases.require("case-rec-1")
    [tracked] = [t for t in case.tracked if t.kind == "concern"]
    assert tracked.due_on == date(2026, 3, 11)
    assert [w.kind for w in concern_work(case)] == ["concern.escalate"]

    harness.connector.clear()
    clock.set(datetime(2026, 3, 10, 12, tzinfo=UTC))
    assert not [k for k in (await services.due_work.run_due()).ran if "concern" in k]
    clock.set(datetime(2026, 3, 11, 9, 30, tzinfo=UTC))
    report = await services.due_work.run_due()
    assert f"case-rec-1:concern:{tracked.id}:escalate" in report.ran
    to_lead = [c for s in harness.connector.messages(f"personal-{LEAD.id}") for c in s.cards]
    assert len(to_lead) == 1 and "not resolved in time" in json.dumps(to_lead[0])
    assert find_identifiers(json.dumps(to_lead[0]), IDENTIFIERS) == []      # not a case member: redacted
    concern = await services.features["concerns"].get("case-rec-1", tracked.id)
    assert concern.status == ConcernStatus.ESCALATED

    # the named lead resolves it (Action.Execute, card replaced in place)
    status, body = await harness.execute(LEAD, "concern.resolve", {"case_id": "case-rec-1", "item_id": tracked.id,
                                                                   "resolution": "Spoke with the facilitator"})
    assert status == 200 and "Resolution: Spoke with the facilitator" in json.dumps(body["value"])
    assert find_identifiers(json.dumps(body["value"]), IDENTIFIERS) == []


async def test_resolved_in_time_means_no_escalation(harness: BotHarness, clock):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case())
    concerns = services.features["concerns"]
    case, concern = await concerns.raise_(actor(PATTI), "case-rec-1", "concern", "The session overran")
    with pytest.raises(Forbidden):
        await concerns.resolve(actor(ALEX), "case-rec-1", concern.id, "not mine to resolve")
    await concerns.resolve(actor(ADELE), "case-rec-1", concern.id, "Agreed a shorter agenda")
    case = await services.cases.require("case-rec-1")
    assert concern_work(case) == []
    clock.set(datetime(2026, 3, 20, 10, tzinfo=UTC))
    assert not [k for k in (await services.due_work.run_due()).ran if "concern" in k]


async def test_someone_outside_the_case_cannot_raise_one(harness: BotHarness):
    services = harness.parts.services
    await services.cases.create(held_case())
    with pytest.raises(Forbidden):
        await services.features["concerns"].raise_(actor(MEGAN), "case-rec-1", "concern", "x")
    refused = [e for e in await services.audit.entries("case-rec-1") if not e["allowed"]]
    assert refused[-1]["action"] == "concern.refused"
    replies = await harness.say(MEGAN, "raise a concern")
    assert "not a participant" in replies[-1].text


def test_raised_card_names_who_handles_it(validate_card):
    from supervision.concerns import Concern

    concern = Concern("c1", "case-rec-1", "REF", "concern", "text", "a@b.c", "A", datetime(2026, 3, 4, tzinfo=UTC),
                      date(2026, 3, 11))
    card = concern_raised_card(T, concern, BOLTON)
    validate_card(card)
    assert "the partnership business manager" in json.dumps(card)
    validate_card(concern_card(T, held_case(), concern, "text"))


async def test_a_complaint_after_the_case_closed_still_escalates(harness: BotHarness, clock):
    from supervision.models import CaseState

    services = harness.parts.services
    clock.set(datetime(2026, 9, 7, 10, tzinfo=UTC))
    await services.cases.create(held_case(state=CaseState.FOLLOW_UP_DUE))
    for user in (ADELE, PATTI, LEAD):
        await harness.say(user, "hello")
    case, concern = await services.features["concerns"].raise_(actor(PATTI), "case-rec-1", "complaint",
                                                                "The follow-up was never explained")
    await services.features["followup"].record(actor(PATTI), "case-rec-1", {
        "outcomes": "Settled", "what_changed": "Attendance", "plan_moved_on": "yes"})
    assert (await services.cases.require("case-rec-1")).state == CaseState.CLOSED
    clock.set(datetime(2026, 9, 14, 10, tzinfo=UTC))           # five working days on
    report = await services.due_work.run_due()
    assert f"case-rec-1:concern:{concern.id}:escalate" in report.ran
    assert [c for s in harness.connector.messages(f"personal-{LEAD.id}") for c in s.cards]
