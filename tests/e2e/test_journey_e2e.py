"""One case through the whole procedure, through the Microsoft 365 Agents Playground, as the real
users would do it: nothing is seeded into the store; the bot runs its background scheduler
(SCHEDULER_INTERVAL_SECONDS=1) and its clock is moved only where the procedure waits for a date
(TEST_CLOCK_FILE, bot/clock_file.py: honoured only in anonymous local mode).

Alex requests (every step, three agencies, Patti the lead professional and GP among the invitees);
the coordinators' channel gets a card with no identifiers; Megan asks for more information, Alex
adds it, Megan agrees and assigns Adele; Adele schedules the first proposed time (giving the Teams
link she made, as the offline default lets her); Patti confirms attendance with delegated authority and submits her
chronology; at three working days before the session the pre-session evaluation goes out and Patti
answers; the Teams meeting-end event arrives (a custom activity in the meeting chat); the
post-session evaluation goes out and Patti answers; Adele records the session from the team's
channel with an action for Patti; the summary reaches that channel; Patti marks the action done; at
six months Patti records the follow-up and the case closes; Lynne reads the tracker and downloads
the CSV; Alex is refused the tracker. Nothing identifying leaves personal chat, and `my sessions`
shows the case closed."""
from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock_file import set_test_clock
from bot.handler import MEETING_END
from supervision.calendar import WorkingCalendar
from supervision.catalogue import Catalogue
from supervision.clock import uk_datetime, uk_local
from supervision.lifecycle import Deadlines
from supervision.profile import load_preset
from tests.e2e.playground import (
    GENERAL_CHANNEL,
    BotMessage,
    PlaygroundClient,
    Stack,
    assert_no_identifiers_shared,
    card_actions,
    card_inputs,
)
from tests.support.cards import of_type

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")
B = "request.button."
BOLTON = load_preset("bolton")
DEADLINES = Deadlines(BOLTON, WorkingCalendar(BOLTON.nation))
# synthetic identifiers only this test uses
CHILD = {"child.forename": "Juniper", "child.surname": "Journeytest", "child.also_known_as": "Juni J",
         "child.date_of_birth": "2013-05-17", "child.gender": "Female", "child.ethnicity": "White British",
         "child.address": "12 Makebelieve Row, Fabletown"}
MOTHER = "Marigold Journeytest"
IDENTIFIERS = ["Juniper", "Journeytest", "Juni J", "Marigold", "12 Makebelieve Row", "Fabletown",
               "2013-05-17", "17/05/2013", "17 May 2013", "1982-02-14", "14/02/1982"]
JOIN_URL = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_Sm91cm5leVRlc3Q%40thread.v2/0"
            "?context=%7b%22Tid%22%3a%22synthetic%22%7d")


@pytest.fixture(scope="module")
def journey_stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="e2e-journey-"))
    stack = Stack({"SCHEDULER_INTERVAL_SECONDS": "1", "TEST_CLOCK_FILE": str(workdir / "clock")},
                  workdir=workdir).start()
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def client(journey_stack: Stack) -> AsyncIterator[PlaygroundClient]:
    async with journey_stack.client() as playground:
        yield playground


def move_clock(stack: Stack, when: datetime) -> None:
    """From now on the bot's clock reads ``when`` (and runs on from there)."""
    set_test_clock(Path(stack.env["TEST_CLOCK_FILE"]), when)


def facts(message: BotMessage) -> dict[str, str]:
    return {f["title"]: f["value"] for node in of_type(message.card or {}, "FactSet") for f in node.get("facts", [])}


def leaked(message: BotMessage) -> list[str]:
    blob = json.dumps(message.activity, ensure_ascii=False).lower()
    return [i for i in IDENTIFIERS if i.lower() in blob]


def verb_data(message: BotMessage, verb: str) -> dict[str, Any]:
    found = [a for a in card_actions(message.card or {}) if (a.get("data") or {}).get("verb") == verb]
    assert found, f"no {verb} button in {[a.get('title') for a in card_actions(message.card or {})]}"
    return dict(found[0]["data"])


async def test_a_case_through_the_whole_procedure(client: PlaygroundClient, journey_stack: Stack,
                                                  validate_card: Callable[[dict[str, Any]], None]) -> None:
    stack = journey_stack
    alex, megan, adele, patti = [await client.personal_chat(who) for who in ("alex", "megan", "adele", "patti")]

    async def press(message: BotMessage, title: str, inputs: dict[str, Any] | None = None, *, user: str,
                    expect: str, where: str | None = None) -> BotMessage:
        """Press a button (Action.Submit) and wait for the card or message that shows ``expect``."""
        said = await client.press(message, title, inputs or {}, user=user)
        conversation = where or message.conversation_id
        return await client.wait_for(lambda m: m.kind == "send" and conversation in (m.conversation_id, m.channel)
                                     and expect in m.all_text, after=said.mark, timeout=15)

    # --- 1. Alex requests, every step ----------------------------------------------------------------
    risk = await client.ask("request", user="alex")
    step = await press(risk, T(B + "continue"), {"immediate_risk": "no"}, user="alex", expect="Step 1 of 8")
    step = await press(step, T(B + "next"), {"requester.role": "Attendance officer",
                                              "requester.organisation": "Fabletown Primary"},
                       user="alex", expect="Step 2 of 8")
    step = await press(step, T(B + "next"), CHILD, user="alex", expect="Step 3 of 8")
    step = await press(step, T(B + "add_family"), user="alex", expect="Step 3 of 8")
    row = next(i["id"].split(".")[1] for i in card_inputs(step.card or {}) if i["id"].startswith("family."))
    step = await press(step, T(B + "next"), {
        f"family.{row}.relationship": "mother", f"family.{row}.name": MOTHER,
        f"family.{row}.date_of_birth": "1982-02-14", f"family.{row}.address": CHILD["child.address"]},
        user="alex", expect="Step 4 of 8")
    step = await press(step, T(B + "next"), {
        "level_of_need": "Targeted Help", "current_plan": "child_in_need", "lead_professional.name": "Patti Fernandez",
        "lead_professional.agency": "GP", "lead_professional.email": "pattif@example.com",
        "lead_professional_aware": "yes"}, user="alex", expect="Step 5 of 8")
    step = await press(step, T(B + "next"), {
        "reason": "Attendance has fallen and the plan is stuck.", "trigger": "persistent_absence",
        "pen_picture": "Juni lives with her mother and two cats."}, user="alex", expect="Step 6 of 8")
    step = await press(step, T(B + "next"), {
        "family_told": "yes", "child_voice": "Juni says school is too loud.", "agreed_to_share": "All of it."},
        user="alex", expect="Step 7 of 8")
    invitees = [("GP", "Patti Fernandez", "pattif@example.com"),
                ("Primary School", "Alex Wilber", "alexw@example.com"),
                ("Housing", "Hattie Housing-Example", "hattie.housing@example.com")]

    def rows_typed(card: BotMessage, people: list[tuple[str, str, str]]) -> dict[str, str]:
        rows = list(dict.fromkeys(i["id"].split(".")[1] for i in card_inputs(card.card or {})
                                  if i["id"].startswith("invitee.")))
        assert len(rows) == len(people), rows
        return {f"invitee.{r}.{k}": v for r, (agency, name, email) in zip(rows, people, strict=True)
                for k, v in (("agency", agency), ("name", name), ("email", email))}

    step = await press(step, T(B + "add_invitee"), rows_typed(step, invitees[:2]), user="alex",
                       expect="Step 7 of 8")
    typed = rows_typed(step, invitees[2:])
    review = await press(step, T(B + "next"), typed, user="alex", expect="Step 8 of 8")
    summary = await press(review, T(B + "submit"), user="alex", expect="Sent to the coordinators")
    reference = facts(summary)[T("request.summary.reference")]

    # --- 2. the coordinators' channel: the reference, no identifiers ---------------------------------
    posted = await client.wait_for_card(GENERAL_CHANNEL, reference)          # a fresh stack: the only case
    validate_card(posted.card)
    assert "GP, Housing, Primary School" in posted.all_text or "GP, Primary School, Housing" in posted.all_text, posted.all_text
    assert leaked(posted) == []

    # --- 3. Megan asks for more information; Alex adds it; Megan agrees and assigns Adele -------------
    said = await client.press(posted, T(B + "open"), user="megan")
    decision = await client.wait_for_card(megan, T("request.decision.title", reference=reference), after=said.mark)
    asked = await press(decision, T(B + "send_question"), {"info_question": "Who picks Juni up from school?"},
                        user="megan", expect="Who picks Juni up from school?", where=alex)
    await press(asked, T(B + "add_info"), {"information": "Her grandmother, on Tuesdays."}, user="alex",
                expect=T("request.decision.info_sent", reference=reference))
    said = await client.press(posted, T(B + "open"), user="megan")
    decision = await client.wait_for_card(megan, "Her grandmother, on Tuesdays.", after=said.mark)
    said = await client.press(decision, T(B + "agree"), user="megan")
    picker = await client.wait_for_card(megan, T("request.facilitators.title", reference=reference), after=said.mark)
    await client.wait_for_card(alex, T("request.decision.agreed_title", reference=reference), after=said.mark)
    said = await client.press(picker, T(B + "assign"), {"facilitators": "adelev@example.com"}, user="megan")
    await client.wait_for_card(adele, T("request.facilitators.assigned_title", reference=reference), after=said.mark)

    # --- 4. Adele schedules the first proposed time, giving the Teams meeting she made ----------------------
    scheduling = await client.wait_for_card(adele, T("schedule.title"), after=said.mark)
    validate_card(scheduling.card)
    first = next(i for i in card_inputs(scheduling.card or {}) if i["id"] == "slot")["value"]
    answer = await client.press(scheduling, T("schedule.button_schedule"), {"join_url": JOIN_URL}, user="adele")
    assert T("schedule.scheduled_title") in str(answer["value"]), answer
    starts = datetime.fromisoformat(first)
    session_day = uk_local(starts).date()
    ends = starts + timedelta(minutes=BOLTON.timescales.session_length_minutes)

    # --- 5. Patti confirms attendance with delegated authority -----------------------------------------
    invitation = await client.wait_for_card(patti, T("schedule.invite.title", process=BOLTON.process_name),
                                            after=said.mark, timeout=15)
    assert JOIN_URL in [a.get("url") for a in card_actions(invitation.card or {})]
    mark = client.mark()
    answered = await client.press(invitation, T("schedule.invite.button_authority"), user="patti")
    assert T("schedule.invite.answered_authority") in str(answered["value"])
    await client.wait_for(lambda m: m.kind == "update" and m.conversation_id == adele
                          and T("schedule.attendance.authority") in m.all_text, after=mark)

    # --- 6. Patti submits her chronology -----------------------------------------------------------------
    listing = await client.ask("chronology", user="patti")
    said = await client.submit(verb_data(listing, "chronology.open"), reply_to=listing, user="patti")
    editor = await client.wait_for_card(patti, T("chronology.no_entries"), after=said.mark)
    said = await client.submit({**verb_data(editor, "chronology.add"), "when": (session_day - timedelta(days=60)).isoformat(),
                                "what": "Missed two GP appointments", "impact": "Asthma unmanaged",
                                "kind": "worry", "source": ""}, reply_to=editor, user="patti")
    added = await client.wait_for_card(patti, "Missed two GP appointments", after=said.mark)
    said = await client.submit(verb_data(added, "chronology.submit"), reply_to=added, user="patti")
    await client.wait_for_card(patti, T("chronology.status_submitted", count=1), after=said.mark)

    # --- 7. the pre-session evaluation goes out at its time (3 working days before); Patti answers -------
    pre_due = uk_datetime(DEADLINES.pre_evaluation(session_day), BOLTON.timescales.office_hours_start)
    assert pre_due > datetime.now(UTC)                                        # it waits for its date
    await client.quiet(1.5)                                                   # a scheduler pass or more
    assert not [m for m in client.messages(patti) if T("evaluation.pre_title") in m.all_text]   # not before
    mark = client.mark()
    move_clock(stack, pre_due + timedelta(minutes=5))
    pre = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == patti
                                and T("evaluation.pre_title") in m.all_text, after=mark, timeout=20)
    assert "late" not in pre.all_text
    answered = await client.press(pre, T("evaluation.submit"), {"score": "2", "why": "Nobody owns the plan"},
                                  user="patti")
    assert T("evaluation.received_title") in str(answered["value"])

    # --- 8. the meeting ends: Teams' event in the meeting chat --------------------------------------------
    move_clock(stack, ends + timedelta(minutes=2))
    mark = await client.custom_activity({"type": "event", "name": MEETING_END, "value": {
        "Id": "MCMxOTptZWV0aW5nX2pvdXJuZXk=", "Title": f"Group supervision {reference}", "JoinUrl": JOIN_URL,
        "EndTime": ends.isoformat().replace("+00:00", "Z")}}, user="adele", conversation="group")
    ended = await client.wait_for(lambda m: m.conversation_id == stack.group_chat_id and "has ended" in m.all_text,
                                  after=mark, timeout=15)
    assert reference in ended.all_text
    offer = await client.wait_for_card(stack.group_chat_id, T("record.offer.title"), after=mark)
    assert reference in offer.all_text

    # --- 9. the post-session evaluation goes out; Patti answers ------------------------------------------
    post = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == patti
                                 and T("evaluation.post_title") in m.all_text, after=mark, timeout=20)
    answered = await client.press(post, T("evaluation.submit"), {
        "score": "4", "worked_well": "The mapping", "better": "More time", "learning": "Ask the school nurse",
        "other": ""}, user="patti")
    assert T("evaluation.received_title") in str(answered["value"])

    # --- 10. Adele records the session from the team's channel, with an action for Patti --------------------
    said = await client.say("record session", user="adele", conversation="channel")
    assert (await client.reply(said)).text == T("record.sent_privately")
    thread = said.conversation_id
    form = await client.wait_for_card(adele, T("record.form.title", reference=reference), after=said.mark)
    validate_card(form.card)
    assert "Patti Fernandez (GP)" in form.all_text
    sections = {f"section_{key}": f"Reflection on {key}." for key in
                ("known", "not_known", "strengths", "concerns", "hypotheses", "change", "success_measures")}
    pressed = await client.press(form, T("record.form.next"), {
        "learning_points": "Each agency saw a different part of the week.", "themes": "5", **sections}, user="adele")
    second = await client.wait_for_card(adele, T("record.form.step_2"), after=pressed.mark)
    held_on = uk_local(ends).date()
    pressed = await client.press(second, T("record.form.publish"), {
        "action_1_description": "Book a joint review with the school nurse", "action_1_owner": "pattif@example.com",
        "action_1_due": (held_on + timedelta(days=14)).isoformat(), "plan_changes": "Add a weekly check-in",
        "plan_changes_shared_by": "Patti Fernandez", "review_on": (held_on + timedelta(days=42)).isoformat()},
        user="adele")
    await client.wait_for_card(adele, T("record.done.title", reference=reference), after=pressed.mark)

    # --- 11. the summary reaches the channel, with no identifiers ----------------------------------------
    channel_summary = await client.wait_for_card(thread, T("record.summary.title", reference=reference),
                                                 after=pressed.mark)
    validate_card(channel_summary.card)
    assert "Adele Vance" in channel_summary.all_text and leaked(channel_summary) == []

    # --- 12. Patti marks her action done ------------------------------------------------------------------
    action = await client.wait_for_card(patti, "Book a joint review with the school nurse", after=pressed.mark)
    body = await client.press(action, T("actions.card.confirm_done"), {"done_note": "Booked for Thursday"},
                              user="patti")
    assert T("actions.card.answered_done") in str(body["value"])

    # --- 13. six months on, Patti (lead professional) records the follow-up; the case closes -------------
    follow_up_day = DEADLINES.calendar.next_working_day(DEADLINES.follow_up(held_on))
    mark = client.mark()
    move_clock(stack, uk_datetime(follow_up_day, 9) + timedelta(minutes=5))
    card = await client.wait_for(lambda m: m.kind == "send" and m.conversation_id == patti
                                 and T("followup.card.title", reference=reference) in m.all_text,
                                 after=mark, timeout=20)
    validate_card(card.card)
    body = await client.press(card, T("followup.card.submit"), {
        "outcomes": "Attendance is back to 94%.", "what_changed": "A morning routine with the school",
        "plan_moved_on": "yes", "child_involved": "true", "family_involved": "true",
        "views": "Happier mornings."}, user="patti")
    assert T("followup.done.title", reference=reference) in str(body["value"]), body

    # --- 14. Lynne reads the tracker and exports the CSV; Alex is refused ---------------------------------
    tracker = await client.ask("tracker", user="lynne")
    validate_card(tracker.card)
    assert T("tracker.card.title", name=BOLTON.name) in tracker.all_text
    csv_url = next(a["url"] for a in card_actions(tracker.card or {}) if a.get("title") == T("tracker.card.csv"))
    async with aiohttp.ClientSession() as http, http.get(csv_url) as response:
        assert response.status == 200
        exported = (await response.read()).decode("utf-8-sig")
    assert [i for i in IDENTIFIERS if i.lower() in exported.lower()] == []
    (row,) = [r for r in csv.DictReader(io.StringIO(exported)) if r["Reference"] == reference]
    assert (float(row["Pre-session score"]), float(row["Post-session score"]), float(row["Impact (post - pre)"])) \
        == (2.0, 4.0, 2.0)                                        # Patti's answers, before and after
    assert row["Session on time"] == "Yes" and row["Actions"] == "1" and row["Follow-up"]
    refused = await client.ask("tracker", user="alex")
    assert refused.text == T("tracker.refused")

    # --- 15. nothing identifying left personal chat; the case is closed -------------------------------------
    assert assert_no_identifiers_shared(stack, IDENTIFIERS) >= 4
    mine = await client.ask("my sessions", user="alex")
    assert reference in mine.all_text and T("states.closed") in mine.all_text
    assert stack.errors_logged() == []
