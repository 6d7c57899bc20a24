"""Agreed actions: the lifecycle (done with a note, new due date with a reason, cannot do it with a
reason), who may update, ``my actions``, reminders before due and overdue (owner, then facilitator),
the owner's card replaced in place (Action.Execute) and the facilitator's board updated in place."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.events import EventDispatcher
from cards.action_items import action_card, answered_card, board_card, my_actions_card
from storage.memory import MemoryStore
from supervision.action_items import ActionItems, ItemStatus, Update, item_reminders
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.errors import Forbidden, IllegalTransition, ValidationFailed
from supervision.profile import load_preset
from supervision.record import parse
from supervision.repository import AuditLog, CaseRepository
from tests.support.cards import of_type
from tests.support.harness import BotHarness
from tests.test_record_helpers import ADELE, ALEX, NESTOR, PATTI, actor, good_form, held_case

T = Catalogue("en")
BOLTON = load_preset("bolton")


@pytest.fixture
async def items_setup():
    clock = FixedClock(datetime(2026, 3, 4, 10, tzinfo=UTC))
    store = MemoryStore()
    cases, audit, events = CaseRepository(store), AuditLog(store, clock), EventDispatcher()
    items = ActionItems(store=store, cases=cases, audit=audit, clock=clock, events=events)
    case = held_case()
    await cases.create(case)
    record = parse(good_form(case), case, BOLTON, date(2026, 3, 4), full=True)
    created = await items.create_from_record(case, record, actor(ADELE))
    return items, cases, clock, audit, events, created


async def test_items_are_created_once_per_row_and_mirrored_on_the_case(items_setup):
    items, cases, clock, audit, events, created = items_setup
    assert created == {"1": "s1a1", "2": "s1a2"}
    case = await cases.require("case-rec-1")
    again = await items.create_from_record(case, parse(good_form(case), case, BOLTON, date(2026, 3, 4), full=True),
                                           actor(ADELE))
    assert again == created
    assert len(await items.for_case("case-rec-1")) == 2
    case = await cases.require("case-rec-1")
    assert sorted((t.id, t.owner, t.due_on.isoformat()) for t in case.tracked) == [
        ("s1a1", PATTI.email, "2026-03-10"), ("s1a2", ALEX.email, "2026-03-17")]


async def test_done_needs_a_note_and_then_closes_the_item(items_setup):
    items, cases, clock, audit, events, _ = items_setup
    with pytest.raises(ValidationFailed) as excinfo:
        await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.DONE, note="  ")
    assert excinfo.value.errors[0].field == "note"
    item = await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.DONE, note="Visited with school on Monday")
    assert item.status == ItemStatus.DONE and item.note == "Visited with school on Monday"
    assert [h.kind for h in item.history] == ["created", "done"]
    assert item.history[-1].at == clock.now() and item.history[-1].by == PATTI.id
    case = await cases.require("case-rec-1")
    assert [t.status for t in case.tracked if t.id == "s1a1"] == ["done"]
    with pytest.raises(IllegalTransition):
        await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.CANNOT, note="changed my mind")
    assert events.published[-1].kind == "action.updated"


async def test_a_new_due_date_needs_a_reason_and_a_real_future_date(items_setup):
    items, cases, clock, *_ = items_setup
    cases_ = [("2026-13-01", "actions.error.date"), ("2026-03-01", "actions.error.past"),
              ("2026-03-10", "actions.error.same_date")]
    for value, key in cases_:
        with pytest.raises(ValidationFailed) as excinfo:
            await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.NEW_DATE, note="Clinic moved", new_due=value)
        assert [(e.field, e.key) for e in excinfo.value.errors] == [("new_due", key)]
    with pytest.raises(ValidationFailed) as excinfo:
        await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.NEW_DATE, note="", new_due="2026-03-20")
    assert [e.field for e in excinfo.value.errors] == ["reason"]
    item = await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.NEW_DATE, note="Clinic moved",
                              new_due="2026-03-20")
    assert item.status == ItemStatus.OPEN and item.due_on == date(2026, 3, 20)
    assert item.history[-1].old_due == date(2026, 3, 10)
    case = await cases.require("case-rec-1")
    assert [t.due_on for t in case.tracked if t.id == "s1a1"] == [date(2026, 3, 20)]


async def test_cannot_do_it_with_a_reason(items_setup):
    items, *_ = items_setup
    item = await items.update(actor(ALEX), "case-rec-1", "s1a2", Update.CANNOT, note="No access to the figures")
    assert item.status == ItemStatus.CANNOT


async def test_only_the_owner_or_a_facilitator_may_update_and_refusals_are_audited(items_setup):
    items, cases, clock, audit, *_ = items_setup
    with pytest.raises(Forbidden):
        await items.update(actor(ALEX), "case-rec-1", "s1a1", Update.DONE, note="not mine")
    with pytest.raises(Forbidden):
        await items.update(actor(NESTOR), "case-rec-1", "s1a1", Update.DONE, note="invited but declined")
    refused = [e for e in await audit.entries("case-rec-1") if not e["allowed"]]
    assert [e["actor"] for e in refused] == [ALEX.id, NESTOR.id]
    item = await items.update(actor(ADELE), "case-rec-1", "s1a1", Update.DONE, note="Confirmed at core group")
    assert item.status == ItemStatus.DONE


async def test_my_actions_lists_open_items_soonest_first(items_setup):
    items, *_ = items_setup
    assert [i.id for i in await items.mine(actor(PATTI))] == ["s1a1"]
    await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.DONE, note="Done")
    assert await items.mine(actor(PATTI)) == []
    assert [i.id for i in await items.mine(actor(ALEX))] == ["s1a2"]


async def test_reminders_before_due_then_overdue_to_the_owner_then_the_facilitator(items_setup):
    items, cases, *_ = items_setup
    case = await cases.require("case-rec-1")
    work = {w.key: w for w in item_reminders(case, BOLTON.calendar(), days_before=1)}
    due = {k: (w.kind, w.due_at.isoformat()) for k, w in work.items() if ":s1a1:" in k}
    # due Tue 10 Mar: the day before (Mon 9), overdue Wed 11, the facilitator two working days later (Fri 13)
    assert due == {
        "case-rec-1:action:s1a1:2026-03-10:before": ("action.due_soon", "2026-03-09T09:00:00+00:00"),
        "case-rec-1:action:s1a1:2026-03-10:overdue": ("action.overdue", "2026-03-11T09:00:00+00:00"),
        "case-rec-1:action:s1a1:2026-03-10:escalate": ("action.overdue_facilitator", "2026-03-13T09:00:00+00:00"),
    }
    await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.NEW_DATE, note="Moved", new_due="2026-03-24")
    case = await cases.require("case-rec-1")
    keys = {w.key for w in item_reminders(case, BOLTON.calendar(), days_before=1)}
    assert "case-rec-1:action:s1a1:2026-03-24:before" in keys and not any("s1a1:2026-03-10" in k for k in keys)
    await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.DONE, note="Done")
    case = await cases.require("case-rec-1")
    assert not any(":s1a1:" in w.key for w in item_reminders(case, BOLTON.calendar(), days_before=1))


async def test_action_cards_are_valid(items_setup, validate_card):
    items, *_ = items_setup
    today = date(2026, 3, 12)
    all_items = await items.for_case("case-rec-1")
    for card in (action_card(T, all_items[0], today), action_card(T, all_items[0], today, banner="Overdue",
                                                                 errors=["x"], values={"done_note": "n"}),
                 my_actions_card(T, all_items, today), my_actions_card(T, [], today),
                 board_card(T, "REF", all_items, today)):
        validate_card(card)
    assert "Overdue" in json.dumps(board_card(T, "REF", all_items, today))
    done = await items.update(actor(PATTI), "case-rec-1", "s1a1", Update.DONE, note="Done")
    answered = answered_card(T, done, today)
    validate_card(answered)
    assert "actions" not in answered


# --- through the bot ----------------------------------------------------------------------------
async def test_owner_marks_done_in_place_and_the_board_updates_in_place(harness: BotHarness, clock, validate_card):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case())
    for user in (ADELE, PATTI, ALEX):
        await harness.say(user, "hello")
    await harness.submit(ADELE, {"verb": "record.send_actions", "case_id": "case-rec-1", **good_form(held_case())})
    boards = [s for s in harness.connector.sent if s.conversation_id == f"personal-{ADELE.id}"
              and any("Actions for" in json.dumps(c) for c in s.cards)]
    assert len(boards) == 1
    board_id = boards[0].activity_id

    status, body = await harness.execute(PATTI, "actions.done", {"case_id": "case-rec-1", "item_id": "s1a1",
                                                                 "done_note": ""})
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Note: please add a note or reason." in json.dumps(body["value"])
    # a date in the past: the field is named and the reason typed is still in the card
    status, body = await harness.execute(PATTI, "actions.new_date", {"case_id": "case-rec-1", "item_id": "s1a1",
                                                                     "new_due": "2026-03-01",
                                                                     "new_due_reason": "Clinic moved to Thursday"})
    validate_card(body["value"])
    shown = json.dumps(body["value"])
    assert "New due date can't be in the past." in shown
    reason = [n for n in of_type(body["value"], "Input.") if n.get("id") == "new_due_reason"]
    assert reason and reason[0]["value"] == "Clinic moved to Thursday"
    status, body = await harness.execute(PATTI, "actions.done", {"case_id": "case-rec-1", "item_id": "s1a1",
                                                                 "done_note": "Visited on Monday"})
    assert status == 200 and "Marked done" in json.dumps(body["value"])
    updates = [s for s in harness.connector.sent if s.method == "PUT" and s.activity_id == board_id]
    assert updates and "1 done" in json.dumps(updates[-1].body)

    status, body = await harness.execute(ALEX, "actions.done", {"case_id": "case-rec-1", "item_id": "s1a1",
                                                                "done_note": "not mine"})
    assert body["type"] == "application/vnd.microsoft.activity.message"

    # the facilitator moves Alex's due date: Alex's first card shows it, in place
    alex_cards = [s for s in harness.connector.sent if s.conversation_id == f"personal-{ALEX.id}"
                  and any("Share attendance figures weekly" in json.dumps(c) for c in s.cards)]
    first_card_id = alex_cards[0].activity_id
    await harness.parts.services.features["action_items"].update(
        actor(ADELE), "case-rec-1", "s1a2", Update.NEW_DATE, note="School asked for more time", new_due="2026-03-18")
    updates = [s for s in harness.connector.sent if s.method == "PUT" and s.activity_id == first_card_id]
    assert updates and "due date has been changed" in json.dumps(updates[-1].body)

    replies = await harness.say(ALEX, "my actions")
    mine = json.dumps(replies[-1].cards[0])
    assert "Share attendance figures weekly" in mine and "Arrange a joint home visit" not in mine
    replies = await harness.submit(PATTI, {"verb": "actions.mine"})
    assert "no open actions" in json.dumps(replies[-1].cards[0])

    # reminders: Alex's action is now due Wed 18 Mar; the day before, then overdue, then the facilitator
    harness.connector.clear()
    clock.set(datetime(2026, 3, 17, 10, tzinfo=UTC))
    report = await services.due_work.run_due()
    assert "case-rec-1:action:s1a2:2026-03-18:before" in report.ran
    assert not [k for k in report.ran if "2026-03-17" in k]          # the old date's reminders are gone
    to_alex = [c for s in harness.connector.messages(f"personal-{ALEX.id}") for c in s.cards]
    assert any("due by Wed 18 Mar 2026" in json.dumps(c) for c in to_alex)
    clock.set(datetime(2026, 3, 23, 10, tzinfo=UTC) + timedelta(days=0))
    report = await services.due_work.run_due()
    assert {"case-rec-1:action:s1a2:2026-03-18:overdue", "case-rec-1:action:s1a2:2026-03-18:escalate"} <= set(report.ran)
    to_adele = [c for s in harness.connector.messages(f"personal-{ADELE.id}") for c in s.cards]
    notices = [c for c in to_adele if "Overdue action" in json.dumps(c) and ALEX.name in json.dumps(c)]
    assert notices
    validate_card(notices[0])
