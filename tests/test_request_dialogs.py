"""The request conversation through the real app over HTTP (loopback connector): every branch of the
form, the immediate-risk gate, drafts surviving a restart, submission, the coordinators' channel,
decisions, the Norfolk manager, facilitator assignment and ``my sessions``."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.config import Config
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from supervision.models import CaseState, find_identifiers, identifiers_of
from tests.support.cards import card_elements
from tests.support.connector import FakeConnector, Sent
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex", "alexw@example.com")
MEGAN = User("user-id-1", "Megan Bowen", "aad-megan", "meganb@example.com")
ADELE = User("user-id-2", "Adele Vance", "aad-adele", "adelev@example.com")
ISAIAH = User("user-id-3", "Isaiah Langer", "aad-isaiah", "isaiahl@example.com")
PATTI = User("user-id-4", "Patti Fernandez", "aad-patti", "pattif@example.com")
LYNNE = User("user-id-5", "Lynne Robbins", "aad-lynne", "lynner@example.com")
CHANNEL = "19:coordinators@thread.tacv2"

ROSTER = """
[[facilitator]]
name = "Adele Vance"
email = "adelev@example.com"
agency = "Health"
team = "Health safeguarding"

[[facilitator]]
name = "Isaiah Langer"
email = "isaiahl@example.com"
agency = "Police"
team = "Public protection"

[[facilitator]]
name = "Nadia Untrained"
email = "nadia@example.com"
agency = "Housing"
trained = false

[[facilitator]]
name = "Otto Inactive"
email = "otto@example.com"
agency = "Education"
active = false

[[facilitator]]
name = "Gerry Sameteam"
email = "gerry@example.com"
agency = "Education"
team = "School nursing"
"""

CHILD = {"child.forename": "Zebedee", "child.surname": "Example", "child.also_known_as": "Zeb",
         "child.date_of_birth": "2015-03-14", "child.gender": "Male", "child.ethnicity": "White British",
         "child.disability": "None known", "child.address": "1 Synthetic Street, Faketown"}
FAMILY = {"relationship": "mother", "name": "Mabel Example", "date_of_birth": "1990-07-02",
          "address": "1 Synthetic Street, Faketown"}


def step_values(lead_email: str = "pattif@example.com") -> dict[str, dict[str, str]]:
    return {
        "requester": {"requester.name": "Alex Wilber", "requester.role": "Family support worker",
                      "requester.organisation": "Faketown Early Help", "requester.phone": "01234 567890",
                      "requester.email": "alexw@example.com"},
        "child": dict(CHILD),
        "need": {"level_of_need": "Targeted Help", "current_plan": "child_in_need",
                 "lead_professional.name": "Patti Fernandez", "lead_professional.agency": "GP",
                 "lead_professional.email": lead_email, "lead_professional_aware": "yes",
                 "manager.name": "Lynne Robbins", "manager.email": "lynner@example.com"},
        "reason": {"reason": "Drift in the plan; agencies see the risks differently.", "trigger": "persistent_absence",
                   "pen_picture": "Zebedee lives with his mother Mabel; close to his grandmother."},
        "voice": {"family_told": "yes", "child_voice": "Zeb says school is hard.",
                  "family_voice": "Mabel wants help with mornings.", "agreed_to_share": "Everything in this request."},
    }


# --- helpers --------------------------------------------------------------------------------------

def cards_of(sent: list[Sent]) -> list[dict[str, Any]]:
    return [c for s in sent for c in s.cards]


def walk(node: Any) -> list[dict[str, Any]]:
    return list(card_elements(node))


def action_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    for node in walk(card):
        if node.get("type") in ("Action.Submit", "Action.Execute") and node.get("data", {}).get("verb") == verb:
            return dict(node["data"])
    raise AssertionError(f"no {verb} action on the card")


def input_ids(card: dict[str, Any]) -> list[str]:
    return [n["id"] for n in walk(card) if str(n.get("type", "")).startswith("Input.")]


def row_ids(card: dict[str, Any], prefix: str) -> list[str]:
    rows: list[str] = []
    for input_id in input_ids(card):
        parts = input_id.split(".")
        if parts[0] == prefix and len(parts) == 3 and parts[1] not in rows:
            rows.append(parts[1])
    return rows


def text_of(sent: list[Sent]) -> str:
    return "\n".join(s.text for s in sent) + "\n".join(str(c) for c in cards_of(sent))


@dataclasses.dataclass
class Bot:
    harness: BotHarness
    clock: FixedClock
    store: MemoryStore

    @property
    def connector(self) -> FakeConnector:
        return self.harness.connector

    @property
    def services(self) -> Any:
        return self.harness.parts.services

    async def say(self, user: User, text: str) -> list[Sent]:
        return await self.harness.say(user, text)

    async def press(self, user: User, card: dict[str, Any], verb: str, **inputs: Any) -> list[Sent]:
        return await self.harness.submit(user, {**action_data(card, verb), **inputs})

    def channel_posts(self) -> list[Sent]:
        return [s for s in self.connector.sent if s.conversation_id == CHANNEL]

    def to_user(self, user: User) -> list[Sent]:
        return [s for s in self.connector.sent if s.conversation_id in (f"personal-{user.id}",)
                or s.body.get("recipient", {}).get("id") == user.id]


async def make_bot(make_config: Callable[..., Config], clock: FixedClock, store: MemoryStore, tmp_path: Path,
                   **env: str) -> Bot:
    roster = tmp_path / "facilitators.toml"
    roster.write_text(ROSTER)
    settings = {"COORDINATORS": "meganb@example.com", "ADMINISTRATORS": "lynner@example.com",
                "FACILITATORS_FILE": str(roster), "COORDINATOR_CONVERSATION_ID": CHANNEL, **env}
    config = make_config(**settings)
    app = create_app(config, clock=clock, store=store, start_background=False)
    harness = await BotHarness(app=app, connector=FakeConnector()).start()
    services = harness.parts.services
    services.config = dataclasses.replace(config, coordinator_service_url=harness.connector.url)
    bot = Bot(harness, clock, store)
    for user in (ALEX, MEGAN, ADELE, ISAIAH, PATTI, LYNNE):   # everyone has talked to the bot once
        await bot.say(user, "help")
    bot.connector.clear()
    return bot


@pytest.fixture
async def bot(make_config, clock, store, tmp_path) -> AsyncIterator[Bot]:
    b = await make_bot(make_config, clock, store, tmp_path)
    yield b
    await b.harness.stop()


async def begin(bot: Bot, user: User = ALEX) -> dict[str, Any]:
    """`request`, answer No to immediate risk: the first step's card."""
    replies = await bot.say(user, "request")
    risk = cards_of(replies)[-1]
    replies = await bot.press(user, risk, "request.risk", immediate_risk="no")
    return cards_of(replies)[-1]


async def fill(bot: Bot, user: User = ALEX, values: dict[str, dict[str, str]] | None = None,
               invitees: list[dict[str, str]] | None = None, family: bool = True) -> dict[str, Any]:
    """Walk every step with good answers; return the review card."""
    values = values or step_values()
    card = await begin(bot, user)
    for step in ("requester", "child"):
        card = cards_of(await bot.press(user, card, "request.next", **values[step]))[-1]
    if family:
        card = cards_of(await bot.press(user, card, "request.row.add"))[-1]
        row = row_ids(card, "family")[0]
        fields = {f"family.{row}.{k}": v for k, v in FAMILY.items()}
        card = cards_of(await bot.press(user, card, "request.next", **fields))[-1]
    else:
        card = cards_of(await bot.press(user, card, "request.next"))[-1]
    for step in ("need", "reason", "voice"):
        card = cards_of(await bot.press(user, card, "request.next", **values[step]))[-1]
    invitees = invitees if invitees is not None else [
        {"agency": "GP", "name": "Patti Fernandez", "role": "GP", "email": "pattif@example.com"},
        {"agency": "Primary School", "name": "Sam Teacher", "role": "Head teacher", "email": "sam@example.com",
         "team": "School nursing"},
    ]
    card, fields = await fill_rows(bot, user, card, "invitee", invitees)
    return cards_of(await bot.press(user, card, "request.next", **fields))[-1]


async def fill_rows(bot: Bot, user: User, card: dict[str, Any], prefix: str,
                    rows: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Type ``rows`` into the open rows of a family or invitee step, adding rows as a person would
    (Add carries what was typed; complete rows then show as one line). Returns the card and the
    inputs still to be sent with the next button."""
    used: list[str] = []
    fields: dict[str, str] = {}
    for values in rows:
        free = [r for r in row_ids(card, prefix) if r not in used]
        if not free:
            card = cards_of(await bot.press(user, card, "request.row.add", **fields))[-1]
            fields = {}
            free = [r for r in row_ids(card, prefix) if r not in used]
        used.append(free[0])
        fields.update({f"{prefix}.{free[0]}.{k}": v for k, v in values.items()})
    return card, fields


async def submit_request(bot: Bot, user: User = ALEX, **kw: Any) -> tuple[Any, dict[str, Any]]:
    review = await fill(bot, user, **kw)
    replies = await bot.press(user, review, "request.submit")
    summary = cards_of(replies)[-1]
    event = [e for e in bot.services.events.published if e.kind in ("request.submitted", "request.manager_review")][-1]
    case = await bot.services.cases.get(event.case_id)
    assert case is not None and case.reference in str(summary)
    return case, summary


def assert_no_identifiers_in_channel(bot: Bot, cases: list[Any]) -> None:
    idents = sorted({i for c in cases for i in identifiers_of(c.request)}, key=len, reverse=True)
    assert idents, "the test case has identifiers to look for"
    for sent in bot.channel_posts():
        hits = find_identifiers(str(sent.body), idents)
        assert hits == [], f"identifiers in a channel post: {hits}"


# --- tests ----------------------------------------------------------------------------------------

async def test_request_starts_with_the_immediate_risk_question(bot: Bot, validate_card):
    replies = await bot.say(ALEX, "request")
    card = cards_of(replies)[-1]
    validate_card(card)
    assert input_ids(card) == ["immediate_risk"]
    assert "immediate risk" in str(card)


async def test_help_button_sends_the_request_start_verb(bot: Bot):
    replies = await bot.harness.submit(ALEX, {"verb": "request.start"})
    assert input_ids(cards_of(replies)[-1]) == ["immediate_risk"]


async def test_immediate_risk_yes_stops_shows_the_route_and_keeps_nothing(bot: Bot, validate_card):
    card = await begin(bot)                              # a draft exists now
    await bot.press(ALEX, card, "request.next", **step_values()["requester"])
    replies = await bot.say(ALEX, "request")             # draft found: carry on
    found = cards_of(replies)[-1]
    risk = cards_of(await bot.press(ALEX, found, "request.resume"))[-1]
    replies = await bot.press(ALEX, risk, "request.risk", immediate_risk="yes")
    stop = cards_of(replies)[-1]
    validate_card(stop)
    assert bot.services.profile().immediate_risk_route in str(stop)
    assert await bot.services.store.get("request_drafts", ALEX.id) is None
    assert await bot.services.cases.ids() == []
    audit = await bot.services.audit.entries()
    stops = [e for e in audit if e["action"] == "request.immediate_risk_stop"]
    assert len(stops) == 1 and stops[0]["case_id"] == "" and stops[0]["what"] == ""
    assert "Zebedee" not in str(audit) and "Alex Wilber" not in str(audit)


async def test_risk_question_unanswered_is_asked_again_naming_the_field(bot: Bot):
    risk = cards_of(await bot.say(ALEX, "request"))[-1]
    replies = await bot.press(ALEX, risk, "request.risk")
    assert "Immediate risk of harm: this is required." in replies[0].text
    assert input_ids(cards_of(replies)[-1]) == ["immediate_risk"]


async def test_requester_is_prefilled_from_the_teams_profile(bot: Bot, validate_card):
    card = await begin(bot)
    validate_card(card)
    inputs = {n["id"]: n.get("value", "") for n in walk(card) if str(n.get("type", "")).startswith("Input.")}
    assert inputs["requester.name"] == "Alex Wilber"
    assert inputs["requester.email"] == "alexw@example.com"


async def test_bad_input_names_each_field_and_keeps_the_values(bot: Bot, validate_card):
    card = await begin(bot)
    card = cards_of(await bot.press(ALEX, card, "request.next", **step_values()["requester"]))[-1]
    bad = {**CHILD, "child.date_of_birth": "2015-02-30", "child.forename": "Zebedee"}
    replies = await bot.press(ALEX, card, "request.next", **bad)
    again = cards_of(replies)[-1]
    validate_card(again)
    assert "Child's date of birth: give a real date" in str(again)
    values = {n["id"]: n.get("value", "") for n in walk(again) if str(n.get("type", "")).startswith("Input.")}
    assert values["child.forename"] == "Zebedee" and values["child.address"] == CHILD["child.address"]
    future = cards_of(await bot.press(ALEX, again, "request.next", **{**CHILD, "child.date_of_birth": "2030-01-01"}))[-1]
    assert "date of birth must be in the past" in str(future)
    old = cards_of(await bot.press(ALEX, future, "request.next", **{**CHILD, "child.date_of_birth": "2001-01-01"}))[-1]
    assert "the child must be under 18" in str(old)
    typed = cards_of(await bot.press(ALEX, old, "request.next", **{**CHILD, "child.date_of_birth": "14/03/2015"}))[-1]
    assert "Step 3 of 8" in str(typed)


async def test_required_fields_and_emails_on_the_need_step(bot: Bot):
    values = step_values()
    card = await begin(bot)
    for step in ("requester", "child"):
        card = cards_of(await bot.press(ALEX, card, "request.next", **values[step]))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.next"))[-1]           # no family: allowed
    bad = {**values["need"], "level_of_need": "", "lead_professional.email": "patti at example", "current_plan": "other"}
    card = cards_of(await bot.press(ALEX, card, "request.next", **bad))[-1]
    shown = str(card)
    assert "Current level of need: this is required." in shown
    assert "Lead professional's email: give a well-formed email address" in shown
    assert "Other plan (describe): this is required." in shown
    forged = {**values["need"], "level_of_need": "Not a level"}
    card = cards_of(await bot.press(ALEX, card, "request.next", **forged))[-1]
    assert "Current level of need: choose one of the options." in str(card)


async def test_invitees_need_two_agencies_and_no_more_than_the_profile_allows(bot: Bot, validate_card):
    same_agency = [{"agency": "GP", "name": "Patti Fernandez", "email": "pattif@example.com"},
                   {"agency": "GP", "name": "Gwen Doctor", "email": "gwen@example.com"}]
    card = await fill(bot, invitees=same_agency)
    assert "Invitees: invite practitioners from at least 2 different agencies (now 1)" in str(card)
    assert "Step 7 of 8" in str(card)
    assert row_ids(card, "invitee") == []                 # both rows complete: one line each, with Edit
    assert "GP: Patti Fernandez, pattif@example.com" in str(card)
    more = [{"agency": "Police" if n % 2 else "Housing", "name": f"P{n}", "email": f"p{n}@example.com"}
            for n in range(10)]
    card, fields = await fill_rows(bot, ALEX, card, "invitee", more)
    validate_card(card)
    replies = await bot.press(ALEX, card, "request.row.add", **fields)     # a 13th person
    card = cards_of(replies)[-1]
    assert "Invitees: no more than 12 people may be invited (now 13)" in str(card)
    assert "P9" in str(card)                              # what was typed is kept
    card = cards_of(await bot.press(ALEX, card, "request.next"))[-1]
    assert "Step 8 of 8" in str(card)


async def test_a_complete_row_can_be_edited_again(bot: Bot):
    card = await fill(bot, invitees=[{"agency": "GP", "name": "Patti Fernandez", "email": "pattif@example.com"},
                                     {"agency": "Police", "name": "Pat Officer", "email": "pat@example.com"}])
    back = cards_of(await bot.press(ALEX, card, "request.back"))[-1]
    assert "Step 7 of 8" in str(back) and row_ids(back, "invitee") == []
    edit = [n["data"] for n in walk(back) if n.get("data", {}).get("verb") == "request.row.edit"][1]
    card = cards_of(await bot.harness.submit(ALEX, edit))[-1]
    assert row_ids(card, "invitee") == [edit["item_id"]]
    key = f"invitee.{edit['item_id']}.email"
    card = cards_of(await bot.press(ALEX, card, "request.next", **{key: "pat.officer@example.com"}))[-1]
    assert "Step 8 of 8" in str(card) and "pat.officer@example.com" in str(card)


async def test_incomplete_invitee_row_and_bad_email_are_named(bot: Bot):
    card = await fill(bot, invitees=[{"agency": "GP", "name": "Patti Fernandez", "email": "pattif@"},
                                     {"agency": "Police", "name": ""}])
    shown = str(card)
    assert "Practitioner 1: Email: give a well-formed email address" in shown
    assert "Practitioner 2: Practitioner's name: this is required." in shown


async def test_family_not_told_needs_a_reason(bot: Bot):
    values = step_values()
    values["voice"] = {"family_told": "no"}
    card = await begin(bot)
    for step in ("requester", "child"):
        card = cards_of(await bot.press(ALEX, card, "request.next", **values[step]))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.next"))[-1]
    for step in ("need", "reason", "voice"):
        card = cards_of(await bot.press(ALEX, card, "request.next", **values[step]))[-1]
    assert "Why has the family not been told?: say why the family has not been told." in str(card)
    card = cards_of(await bot.press(ALEX, card, "request.next", family_told="no",
                                    family_not_told_reason="Telling them now would put the child at risk."))[-1]
    assert "Step 7 of 8" in str(card)


async def test_back_keeps_values_and_family_rows_add_and_remove(bot: Bot, validate_card):
    card = await begin(bot)
    card = cards_of(await bot.press(ALEX, card, "request.next", **step_values()["requester"]))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.next", **CHILD))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.row.add"))[-1]
    (first,) = row_ids(card, "family")
    again = cards_of(await bot.press(ALEX, card, "request.row.add"))[-1]
    assert row_ids(again, "family") == [first]            # an empty row is there already: no second one
    card = cards_of(await bot.press(ALEX, again, "request.row.add", **{f"family.{first}.relationship": "mother",
                                                                       f"family.{first}.name": "Mabel Example"}))[-1]
    validate_card(card)
    (second,) = row_ids(card, "family")                   # the first is complete: shown as one line
    assert second != first and "Mother: Mabel Example" in str(card)
    card = cards_of(await bot.press(ALEX, card, "request.row.add", **{f"family.{second}.name": "Half Done"}))[-1]
    opened = row_ids(card, "family")                      # incomplete (no relationship): stays open
    assert opened[0] == second and len(opened) == 2       # ... and a new empty row
    remove = [n["data"] for n in walk(card) if n.get("data", {}).get("verb") == "request.row.remove"
              and n["data"].get("item_id") == second][0]
    card = cards_of(await bot.harness.submit(ALEX, remove))[-1]
    assert row_ids(card, "family") == opened[1:] and "Half Done" not in str(card)
    assert "Mabel Example" in str(card)
    back = cards_of(await bot.press(ALEX, card, "request.back"))[-1]
    assert "Step 2 of 8" in str(back) and "Zebedee" in str(back)


async def test_save_and_leave_survives_a_restart_then_resume(make_config, clock, tmp_path, validate_card):
    from storage.tinydb_store import TinyDBStore

    disk = TinyDBStore(tmp_path / "data-restart")
    first = await make_bot(make_config, clock, disk, tmp_path)   # type: ignore[arg-type]
    card = await begin(first)
    card = cards_of(await first.press(ALEX, card, "request.next", **step_values()["requester"]))[-1]
    replies = await first.press(ALEX, card, "request.save", **{"child.forename": "Zebedee"})
    assert "saved" in replies[-1].text
    await first.harness.stop()
    await disk.close()

    again = TinyDBStore(tmp_path / "data-restart")
    second = await make_bot(make_config, clock, again, tmp_path)  # type: ignore[arg-type]
    try:
        found = cards_of(await second.say(ALEX, "request"))[-1]
        validate_card(found)
        risk = cards_of(await second.press(ALEX, found, "request.resume"))[-1]
        card = cards_of(await second.press(ALEX, risk, "request.risk", immediate_risk="no"))[-1]
        assert "Step 2 of 8" in str(card)
        values = {n["id"]: n.get("value", "") for n in walk(card) if str(n.get("type", "")).startswith("Input.")}
        assert values["child.forename"] == "Zebedee"
        # the draft holds identifiers: each change and the read on resuming are audited, naming no one
        audit = await second.services.audit.entries()
        saved = [e["what"] for e in audit if e["action"] == "request.draft_saved"]
        assert saved == ["next_step (step child)", "save_step (step child)"]
        assert [e["action"] for e in audit][-1] == "request.draft_resumed"
        assert "Zebedee" not in str(audit)
    finally:
        await second.harness.stop()
        await again.close()


async def test_start_again_and_cancel_delete_the_draft(bot: Bot):
    card = await begin(bot)
    old_id = action_data(card, "request.next")["draft_id"]
    found = cards_of(await bot.say(ALEX, "request"))[-1]
    risk = cards_of(await bot.press(ALEX, found, "request.restart"))[-1]
    card = cards_of(await bot.press(ALEX, risk, "request.risk", immediate_risk="no"))[-1]
    assert action_data(card, "request.next")["draft_id"] != old_id
    stale = await bot.harness.submit(ALEX, {"verb": "request.next", "draft_id": old_id, "phase": "requester"})
    assert "out of date" in stale[-1].text
    replies = await bot.press(ALEX, card, "request.cancel")
    assert "deleted" in replies[-1].text
    assert await bot.services.store.get("request_drafts", ALEX.id) is None


async def test_submit_issues_a_reference_and_posts_no_identifiers_to_the_channel(bot: Bot, validate_card):
    review = await fill(bot)
    validate_card(review)
    assert "Zebedee" in str(review) and "Mabel Example" in str(review)
    replies = await bot.press(ALEX, review, "request.submit")
    summary = cards_of(replies)[-1]
    validate_card(summary)
    case = await bot.services.cases.get((await bot.services.cases.ids())[0])
    assert case.state is CaseState.REQUESTED and case.reference.startswith("MAGS-BOL-")
    assert case.reference in str(summary) and "Decision due by" in str(summary)
    assert case.request.child.forename == "Zebedee" and case.request.family[0].name == "Mabel Example"
    assert case.request.agencies == ["GP", "Primary School"]
    posts = bot.channel_posts()
    assert len(posts) == 1
    channel = posts[0].cards[0]
    validate_card(channel)
    shown = str(channel)
    for needed in (case.reference, "Targeted Help", "GP, Primary School", "Persistent absence", "Mon 12 Jan 2026"):
        assert needed in shown
    assert_no_identifiers_in_channel(bot, [case])
    assert [e.kind for e in bot.services.events.published] == ["request.submitted"]
    assert await bot.services.store.get("request_drafts", ALEX.id) is None


async def open_in_channel(bot: Bot, user: User, case: Any) -> list[Sent]:
    channel_card = [c for s in bot.channel_posts() for c in s.cards if case.reference in str(c)][-1]
    return await bot.harness.submit(user, action_data(channel_card, "request.open"),
                                    conversation_type="channel", conversation_id=CHANNEL)


def personal_cards(bot: Bot, user: User, after: int = 0) -> list[dict[str, Any]]:
    """Cards the bot sent to the user's personal chat (replies or proactive)."""
    out = []
    for sent in bot.connector.sent[after:]:
        if sent.conversation_id == f"personal-{user.id}" or \
                (sent.body.get("conversation", {}).get("conversationType") in (None, "personal")
                 and sent.body.get("recipient", {}).get("id") == user.id):
            out.extend(sent.cards)
    return out


def card_with(cards: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The last of ``cards`` that shows ``text`` (other features may send their own cards too)."""
    found = [c for c in cards if text in str(c)]
    assert found, f"no card with {text!r} among {len(cards)}"
    return found[-1]


async def test_only_a_coordinator_opens_the_full_request_and_in_personal_chat(bot: Bot, validate_card):
    case, _ = await submit_request(bot)
    mark = len(bot.connector.sent)
    replies = await open_in_channel(bot, MEGAN, case)
    assert replies[-1].text == f"I've sent you the full request {case.reference} in our personal chat."
    assert replies[-1].conversation_id == CHANNEL
    opened = personal_cards(bot, MEGAN, mark)
    assert opened and "Zebedee" in str(opened[-1]) and "Agree" in str(opened[-1])
    validate_card(opened[-1])
    assert_no_identifiers_in_channel(bot, [case])
    for stranger in (ADELE, LYNNE):
        mark = len(bot.connector.sent)
        replies = await open_in_channel(bot, stranger, case)
        assert "You can't do that" in replies[-1].text and "coordinator" in replies[-1].text
        assert personal_cards(bot, stranger, mark) == []
    refusals = [e for e in await bot.services.audit.entries(case.id) if not e["allowed"]]
    assert {e["actor"] for e in refusals} == {ADELE.id, LYNNE.id}
    assert all(e["action"] == "request.open" for e in refusals)


async def test_ask_for_more_information_then_the_requester_adds_it_and_it_returns_to_the_queue(bot: Bot,
                                                                                                validate_card):
    case, _ = await submit_request(bot)
    await open_in_channel(bot, MEGAN, case)
    decision = card_with(personal_cards(bot, MEGAN), "Decide on request")
    mark = len(bot.connector.sent)
    replies = await bot.press(MEGAN, decision, "request.ask_info")
    assert "What more information is needed: this is required." in replies[-1].text
    replies = await bot.press(MEGAN, decision, "request.ask_info", info_question="Which school does Zebedee attend now?")
    assert replies[-1].text == f"Your question has been sent to the requester of {case.reference}."
    asked = card_with(personal_cards(bot, ALEX, mark), "More information is needed")
    validate_card(asked)
    assert "Which school does Zebedee attend now?" in str(asked)
    stored = await bot.services.cases.get(case.id)
    assert stored.state is CaseState.INFO_REQUESTED
    replies = await bot.press(ALEX, asked, "request.provide_info", information="Faketown Primary since September.")
    assert "back with the coordinators" in replies[-1].text
    stored = await bot.services.cases.get(case.id)
    assert stored.state is CaseState.REQUESTED
    assert stored.request.additional_information == ["Faketown Primary since September."]
    assert [t.event for t in stored.history] == ["submit", "request_info", "provide_info"]
    assert stored.history[1].reason == "Which school does Zebedee attend now?"
    back = bot.channel_posts()[-1]
    assert "back in the queue" in str(back.body)
    # the requester cannot decide, and a second answer is refused by the lifecycle
    replies = await bot.press(ALEX, asked, "request.provide_info", information="again")
    assert "can't be done now" in replies[-1].text
    assert_no_identifiers_in_channel(bot, [stored])
    audit = str(await bot.services.audit.entries())
    assert find_identifiers(audit, identifiers_of(stored.request)) == []


async def test_decline_needs_a_reason_and_tells_the_requester(bot: Bot, validate_card):
    case, _ = await submit_request(bot)
    await open_in_channel(bot, MEGAN, case)
    decision = card_with(personal_cards(bot, MEGAN), "Decide on request")
    replies = await bot.press(MEGAN, decision, "request.decline", decline_reason="  ")
    assert "Reason for declining: this is required." in replies[-1].text
    mark = len(bot.connector.sent)
    await bot.press(MEGAN, decision, "request.decline", decline_reason="A core group meets next week; use it.")
    told = card_with(personal_cards(bot, ALEX, mark), "was not agreed")
    validate_card(told)
    assert "was not agreed" in str(told) and "A core group meets next week" in str(told)
    stored = await bot.services.cases.get(case.id)
    assert stored.state is CaseState.DECLINED and stored.history[-1].reason.startswith("A core group")
    assert_no_identifiers_in_channel(bot, [stored])


async def test_agree_starts_the_clock_and_facilitators_are_assigned(bot: Bot, validate_card):
    case, _ = await submit_request(bot)
    await open_in_channel(bot, MEGAN, case)
    decision = card_with(personal_cards(bot, MEGAN), "Decide on request")
    mark = len(bot.connector.sent)
    replies = await bot.press(MEGAN, decision, "request.agree")
    stored = await bot.services.cases.get(case.id)
    assert stored.state is CaseState.AGREED and stored.agreed_at == bot.clock.now()
    # Mon 5 Jan 2026 + 15 working days (England) = Mon 26 Jan 2026
    assert str(stored.session_due) == "2026-01-26"
    picker = cards_of(replies)[-1]
    validate_card(picker)
    shown = str(picker)
    assert "Session due by" in shown and "Mon 26 Jan 2026" in shown
    choice = [n for n in walk(picker) if n.get("id") == "facilitators"][0]
    assert [c["value"] for c in choice["choices"]] == ["adelev@example.com", "isaiahl@example.com"]
    assert "0 open cases" in choice["choices"][0]["title"]
    assert "Nadia Untrained (Housing): not trained" in shown
    assert "Otto Inactive (Education): not active" in shown
    assert "Gerry Sameteam (Education): in the same team as an invitee" in shown
    told = card_with(personal_cards(bot, ALEX, mark), "is agreed")
    assert "is agreed" in str(told) and "Mon 26 Jan 2026" in str(told)
    agreed_post = bot.channel_posts()[-1]
    assert "agreed" in str(agreed_post.body) and "Session due by" in str(agreed_post.body)
    assert "Mon 26 Jan 2026" in str(agreed_post.body)
    replies = await bot.press(MEGAN, picker, "request.facilitators.assign", facilitators="otto@example.com")
    assert "choose only eligible facilitators" in str(cards_of(replies)[-1])
    mark = len(bot.connector.sent)
    replies = await bot.press(MEGAN, picker, "request.facilitators.assign", facilitators="adelev@example.com")
    assert replies[-1].text == f"Facilitators assigned to {case.reference}: Adele Vance."
    stored = await bot.services.cases.get(case.id)
    assert stored.state is CaseState.FACILITATORS_ASSIGNED
    assert [(f.email, f.user_id) for f in stored.facilitators] == [("adelev@example.com", ADELE.id)]
    adele_card = card_with(personal_cards(bot, ADELE, mark), "You are facilitating")
    validate_card(adele_card)
    assert "You are facilitating" in str(adele_card) and "Zebedee" in str(adele_card)
    assert "Mon 26 Jan 2026" in str(adele_card)
    assigned = [e for e in bot.services.events.published if e.kind == "facilitators.assigned"]
    assert assigned and assigned[-1].data["facilitators"] == ["adelev@example.com"]
    assert [e.kind for e in bot.services.events.published] == [
        "request.submitted", "request.agreed", "facilitators.assigned"]
    assert_no_identifiers_in_channel(bot, [stored])


async def test_my_sessions_lists_stage_and_next_deadline(bot: Bot, validate_card):
    replies = await bot.say(ALEX, "my sessions")
    assert "not part of any case" in str(cards_of(replies)[-1])
    case, _ = await submit_request(bot)
    for user, part in ((ALEX, "requester"), (PATTI, "lead professional, invitee")):
        card = cards_of(await bot.say(user, "my sessions"))[-1]
        validate_card(card)
        shown = str(card)
        assert case.reference in shown and "waiting for agreement" in shown
        assert "Decision due by" in shown and "Mon 12 Jan 2026" in shown
        assert part in shown
    card = cards_of(await bot.harness.submit(ADELE, {"verb": "sessions.mine"}))[-1]
    assert case.reference not in str(card)
    await bot.services.features["requests"].agree(bot.services.actor(MEGAN.id, email=MEGAN.email), case.id)
    card = cards_of(await bot.say(ALEX, "my sessions"))[-1]
    assert "Session due by" in str(card) and "Mon 26 Jan 2026" in str(card)
    view = cards_of(await bot.press(ALEX, card, "request.view"))[-1]
    validate_card(view)
    assert "Zebedee" in str(view) and "Mon 26 Jan 2026" in str(view)


async def test_my_sessions_in_a_channel_is_refused_politely(bot: Bot):
    replies = await bot.harness.submit(ALEX, {"verb": "sessions.mine"}, conversation_type="channel",
                                       conversation_id=CHANNEL)
    assert "personal chat" in replies[-1].text and not replies[-1].cards


async def test_request_in_a_channel_points_to_personal_chat(bot: Bot):
    replies = await bot.harness.submit(ALEX, {"verb": "request.start"}, conversation_type="channel",
                                       conversation_id=CHANNEL)
    assert "personal chat" in replies[-1].text and not replies[-1].cards


async def test_norfolk_the_accountable_manager_decides_first_then_two_facilitators(make_config, clock, store, tmp_path,
                                                                                   validate_card):
    bot = await make_bot(make_config, clock, store, tmp_path, DEFAULT_PROFILE="norfolk")
    try:
        values = step_values()
        values["need"]["level_of_need"] = "Child in Need"
        mark = len(bot.connector.sent)
        case, summary = await submit_request(bot, values=values)
        assert case.state is CaseState.MANAGER_REVIEW and case.manager.email == "lynner@example.com"
        assert "Sent to the accountable manager, Lynne Robbins" in str(summary)
        assert bot.channel_posts() == []                        # nothing for coordinators yet
        manager = card_with(personal_cards(bot, LYNNE, mark), "your agreement is needed")
        validate_card(manager)
        assert "your agreement is needed" in str(manager) and "Zebedee" in str(manager)
        # the coordinator cannot decide for the manager
        replies = await bot.press(MEGAN, manager, "request.manager.endorse")
        assert "You can't do that" in replies[-1].text
        clock.advance(days=1)                                   # Tue 6 Jan: the manager agrees
        replies = await bot.press(LYNNE, manager, "request.manager.endorse")
        assert "has gone to the coordinators" in replies[-1].text
        stored = await bot.services.cases.get(case.id)
        assert stored.state is CaseState.REQUESTED
        posts = bot.channel_posts()
        assert len(posts) == 1 and "The accountable manager agreed" in str(posts[0].body)
        card_with(personal_cards(bot, ALEX), "The accountable manager agreed request")
        clock.advance(days=2)                                   # Thu 8 Jan: the coordinator agrees
        await open_in_channel(bot, MEGAN, stored)
        decision = card_with(personal_cards(bot, MEGAN), "Decide on request")
        picker = cards_of(await bot.press(MEGAN, decision, "request.agree"))[-1]
        stored = await bot.services.cases.get(case.id)
        # Norfolk: 15 working days from the accountable lead's decision (Tue 6 Jan) = Tue 27 Jan
        assert str(stored.session_due) == "2026-01-27"
        validate_card(picker)
        assert [n["id"] for n in walk(picker) if n.get("id") in ("facilitators", "lead")] == ["facilitators", "lead"]
        one = cards_of(await bot.press(MEGAN, picker, "request.facilitators.assign", facilitators="adelev@example.com",
                                       lead="adelev@example.com"))[-1]
        assert "Facilitators: choose 2." in str(one)
        no_lead = cards_of(await bot.press(MEGAN, picker, "request.facilitators.assign",
                                           facilitators="adelev@example.com,isaiahl@example.com"))[-1]
        assert "Lead coordinator: mark one of the chosen facilitators as lead coordinator." in str(no_lead)
        replies = await bot.press(MEGAN, picker, "request.facilitators.assign",
                                  facilitators="adelev@example.com,isaiahl@example.com", lead="isaiahl@example.com")
        assert "Adele Vance, Isaiah Langer" in replies[-1].text
        stored = await bot.services.cases.get(case.id)
        assert [(f.email, f.lead) for f in stored.facilitators] == [("adelev@example.com", False),
                                                                    ("isaiahl@example.com", True)]
        assert "You are the lead coordinator." in str(card_with(personal_cards(bot, ISAIAH), "You are facilitating"))
        assert "You are the lead coordinator." not in str(card_with(personal_cards(bot, ADELE), "You are facilitating"))
        assert_no_identifiers_in_channel(bot, [stored])
    finally:
        await bot.harness.stop()


async def test_norfolk_manager_may_decline_with_a_reason(make_config, clock, store, tmp_path):
    bot = await make_bot(make_config, clock, store, tmp_path, DEFAULT_PROFILE="norfolk")
    try:
        values = step_values()
        values["need"]["level_of_need"] = "Child in Need"
        case, _ = await submit_request(bot, values=values)
        manager = card_with(personal_cards(bot, LYNNE), "your agreement is needed")
        replies = await bot.press(LYNNE, manager, "request.manager.decline")
        assert "Reason for declining: this is required." in replies[-1].text
        await bot.press(LYNNE, manager, "request.manager.decline", decline_reason="Single-agency supervision first.")
        stored = await bot.services.cases.get(case.id)
        assert stored.state is CaseState.DECLINED and stored.decline_reason == "Single-agency supervision first."
        card_with(personal_cards(bot, ALEX), "Single-agency supervision first.")
        assert bot.channel_posts() == []
    finally:
        await bot.harness.stop()


async def test_cheshire_only_the_lead_professional_may_request(make_config, clock, store, tmp_path):
    bot = await make_bot(make_config, clock, store, tmp_path, DEFAULT_PROFILE="cheshire_west")
    try:
        values = step_values()
        values["need"]["level_of_need"] = "Child in Need"
        card = await begin(bot)
        for step in ("requester", "child"):
            card = cards_of(await bot.press(ALEX, card, "request.next", **values[step]))[-1]
        card = cards_of(await bot.press(ALEX, card, "request.next"))[-1]
        card = cards_of(await bot.press(ALEX, card, "request.next", **values["need"]))[-1]
        assert "Step 4 of 8" in str(card)
        assert "the lead professional makes the request" in str(card)
        values = step_values(lead_email="alexw@example.com")
        values["need"]["level_of_need"] = "Child in Need"
        card = cards_of(await bot.press(ALEX, card, "request.next", **values["need"]))[-1]
        assert "Step 5 of 8" in str(card)
    finally:
        await bot.harness.stop()


async def test_too_many_rows_is_refused_with_the_values_kept(bot: Bot):
    card = await begin(bot)
    card = cards_of(await bot.press(ALEX, card, "request.next", **step_values()["requester"]))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.next", **CHILD))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.row.add"))[-1]
    members = [{"relationship": "sibling", "name": f"Sibling {n}"} for n in range(15)]
    card, fields = await fill_rows(bot, ALEX, card, "family", members)
    card = cards_of(await bot.press(ALEX, card, "request.row.add", **fields))[-1]
    assert "Family members: no more than 15 rows." in str(card)
    assert "Sibling 14" in str(card)
    draft = await bot.services.features["requests"].existing_draft(bot.services.actor(ALEX.id))
    assert len(draft.family_rows) == 15 and draft.value(f"family.{draft.family_rows[-1]}.name") == "Sibling 14"


async def test_open_says_so_when_the_coordinator_cannot_be_reached_in_personal_chat(bot: Bot):
    case, _ = await submit_request(bot)

    async def unreachable(*args: Any, **kwargs: Any) -> str:
        raise LookupError("no conversation")

    bot.services.proactive.send_to_user = unreachable
    replies = await open_in_channel(bot, MEGAN, case)
    assert "couldn't reach you in a personal chat" in replies[-1].text
    assert_no_identifiers_in_channel(bot, [case])


async def test_a_double_submit_makes_one_case(bot: Bot):
    import asyncio

    review = await fill(bot)
    data = action_data(review, "request.submit")
    results = await asyncio.gather(bot.harness.submit(ALEX, data), bot.harness.submit(ALEX, data))
    assert len(await bot.services.cases.ids()) == 1
    texts = [s.text for replies in results for s in replies]
    assert any("out of date" in t for t in texts)
    summaries = [s for s in bot.connector.sent if "Sent to the coordinators" in str(s.cards)]
    assert len(summaries) == 1
    assert len(bot.channel_posts()) == 1


async def test_no_step_of_a_draft_is_shown_outside_personal_chat(bot: Bot):
    """A draft holds the child's and family's details: every draft verb sent from a channel or group
    chat (say a crafted payload with the requester's real draft id) is refused there, shows nothing
    of the draft, and changes nothing."""
    card = await begin(bot)
    values = step_values()
    card = cards_of(await bot.press(ALEX, card, "request.next", **values["requester"]))[-1]
    card = cards_of(await bot.press(ALEX, card, "request.next", **values["child"]))[-1]
    draft_id = action_data(card, "request.next")["draft_id"]
    before = await bot.services.features["requests"].existing_draft(bot.services.actor(ALEX.id))
    for kind, where in (("channel", CHANNEL), ("groupChat", "19:group@thread.v2")):
        for verb, extra in (("request.next", {"phase": "family"}), ("request.back", {"phase": "family"}),
                            ("request.save", {"phase": "family"}), ("request.row.add", {"phase": "family"}),
                            ("request.row.edit", {"phase": "family", "item_id": "x"}),
                            ("request.row.remove", {"phase": "family", "item_id": "x"}),
                            ("request.resume", {}), ("request.restart", {}), ("request.cancel", {}),
                            ("request.start", {}), ("request.risk", {"immediate_risk": "no", "phase": "resume"})):
            replies = await bot.harness.submit(ALEX, {"verb": verb, "draft_id": draft_id, **extra},
                                               conversation_type=kind, conversation_id=where)
            shown = json.dumps([s.body for s in replies], ensure_ascii=False)
            assert replies and "personal chat" in shown, (kind, verb, shown)
            assert "Zebedee" not in shown and "Synthetic Street" not in shown, (kind, verb)
    after = await bot.services.features["requests"].existing_draft(bot.services.actor(ALEX.id))
    assert after is not None and after.id == before.id and after.values == before.values
