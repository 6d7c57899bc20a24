"""Pre- and post-session evaluations: the rules, the impact figures, the cards, and the whole flow
through the bot (Action.Execute answers replace the card; the facilitators' card updates in place;
the session held by the facilitator or by the Teams meeting-end event sends the post-session form)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import create_app
from bot.config import Config
from bot.features import core_feature
from bot.handler import MEETING_END
from cards.evaluation import closed_card, evaluation_form, received_card, status_card
from dialogs import evaluation as evaluation_feature
from dialogs import meeting as meeting_feature
from storage.memory import MemoryStore
from supervision.calendar import WorkingCalendar
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.errors import Forbidden, ValidationFailed
from supervision.evaluation import (
    EvaluationClosed,
    EvaluationResponse,
    Evaluations,
    Phase,
    SessionEvaluations,
    attendees,
    evaluation_work,
    impact_of,
    mark_session_held,
    meeting_key,
    session_impact,
    validate,
)
from supervision.lifecycle import Deadlines, Event, apply
from supervision.models import CaseState, InviteStatus
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Actor
from tests.support.harness import BotHarness, User
from tests.test_scheduler_cases import (
    FAC_USER,
    JOIN_URL,
    PRE_DUE,
    SESSION_START,
    ScriptedConnector,
    scheduled_case,
)

PATTI = User(id="user-id-4", name="Patti Fernandez", email="pattif@example.com")
ALEX = User(id="user-id-0", name="Alex Wilber", email="alexw@example.com")
ISAIAH = User(id="user-id-3", name="Isaiah Langer", email="isaiahl@example.com")
T = Catalogue("en")


def deadlines(config: Config) -> Deadlines:
    profile = config.profiles["bolton"]
    return Deadlines(profile, WorkingCalendar(profile.nation))


class Events:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)


# --- rules ---------------------------------------------------------------------------------------------
def test_a_score_is_a_whole_number_from_0_to_5_and_texts_are_bounded():
    assert validate(Phase.PRE, {"score": "0", "why": " fine "}) == {"score": 0, "why": "fine"}
    assert validate(Phase.POST, {"score": 5})["score"] == 5
    for bad, key in (("", "evaluation.error_score_missing"), ("6", "evaluation.error_score_range"),
                     ("2.5", "evaluation.error_score_range"), ("-1", "evaluation.error_score_range"),
                     ("three", "evaluation.error_score_range")):
        with pytest.raises(ValidationFailed) as raised:
            validate(Phase.PRE, {"score": bad})
        assert [(e.field, e.key) for e in raised.value.errors] == [("score", key)], bad
    with pytest.raises(ValidationFailed) as raised:
        validate(Phase.POST, {"score": "3", "learning": "x" * 4001})
    assert [e.field for e in raised.value.errors] == ["learning"]


def test_attendees_are_the_team_around_the_child_once_each_without_facilitators_or_decliners():
    case = scheduled_case(attendees=[("user-id-4", "Patti Fernandez", "pattif@example.com", "GP"),
                                     ("user-id-5", "Lynne Robbins", "lynner@example.com", "Housing"),
                                     ("user-id-0", "Alex Wilber", "alexw@example.com", "School")])
    case.request.invitees[1].status = InviteStatus.DECLINED
    case.request.invitees.append(case.request.invitees[0])                 # listed twice
    assert [a.name for a in attendees(case)] == ["Patti Fernandez", "Alex Wilber"]
    case.facilitators[0].email = "pattif@example.com"                        # a facilitator never evaluates
    assert [a.name for a in attendees(case)] == ["Alex Wilber"]


def test_impact_is_post_minus_pre_per_attendee_and_for_the_session():
    case = scheduled_case()
    doc = SessionEvaluations(case.id, 1)
    for phase, key, score in (("pre", "pattif@example.com", 2), ("post", "pattif@example.com", 4),
                              ("pre", "alexw@example.com", 3)):
        doc.responses[f"{phase}:{key}"] = EvaluationResponse(key, "n", "GP", Phase(phase), score)
    impact = impact_of(case, doc)
    rows = {a.key: (a.pre, a.post, a.change) for a in impact.attendees}
    assert rows == {"pattif@example.com": (2, 4, 2), "alexw@example.com": (3, None, None)}
    assert (impact.mean_pre, impact.mean_post, impact.mean_change) == (2.5, 4.0, 2.0)
    assert (impact.pre_count, impact.post_count, impact.expected) == (2, 1, 2)
    anonymous = impact.anonymised()
    assert anonymous["change_by_agency"] == {"GP": 2.0} and anonymous["both_count"] == 1
    assert "Patti" not in str(anonymous) and "pattif" not in str(anonymous)


def test_pre_session_work_follows_the_profile_and_short_notice_is_not_late(config):
    d = deadlines(config)
    work = {w.kind: w for w in evaluation_work(scheduled_case(), d)}
    assert work["evaluation.pre.open"].due_at == PRE_DUE
    assert work["evaluation.pre.open"].expires_at == SESSION_START
    # scheduled on the Monday for the Wednesday: ask at once, and no separate reminder that soon after
    monday = datetime(2026, 4, 6, 13, 0, tzinfo=UTC)
    short = {w.kind: w for w in evaluation_work(scheduled_case(scheduled_at=monday), d)}
    assert short["evaluation.pre.open"].due_at == monday
    assert short["evaluation.pre.reminder"].due_at == datetime(2026, 4, 7, 8, 0, tzinfo=UTC)
    late_tuesday = datetime(2026, 4, 7, 7, 0, tzinfo=UTC)
    shorter = {w.kind for w in evaluation_work(scheduled_case(scheduled_at=late_tuesday), d)}
    assert shorter == {"evaluation.pre.open", "evaluation.held.check"}
    # a quarter of an hour after the session's planned end, if nobody has marked it held
    assert work["evaluation.held.check"].due_at == SESSION_START + timedelta(minutes=90 + 15)


def test_once_held_only_the_post_session_evaluation_is_due(config, clock):
    case = scheduled_case()
    held = SESSION_START + timedelta(minutes=95)
    clock.set(held)
    apply(case, Event.MARK_HELD, actor="x", clock=clock)
    case.session.held_at = held
    work = evaluation_work(case, deadlines(config))
    assert [(w.kind, w.due_at) for w in work] == [("evaluation.post.open", held)]
    case.state = CaseState.MINUTES_DONE
    assert evaluation_work(case, deadlines(config)) == []


def test_a_meeting_is_recognised_whatever_the_encoding_of_its_join_url():
    decoded = "https://teams.microsoft.com/l/meetup-join/19:meeting_ZXhhbXBsZQ@thread.v2/0?context={}"
    upper = JOIN_URL.replace("%3a", "%3A").replace("%40", "%40")
    assert meeting_key(JOIN_URL) == meeting_key(decoded) == meeting_key(upper) == meeting_key(JOIN_URL + "&x=1")
    assert meeting_key(JOIN_URL) != meeting_key(JOIN_URL.replace("ZXhhbXBsZQ", "b3RoZXI"))


# --- use cases -------------------------------------------------------------------------------------------
@pytest.fixture
async def domain(store: MemoryStore, clock: FixedClock) -> Any:
    cases = CaseRepository(store)
    case = await cases.create(scheduled_case())
    audit = AuditLog(store, clock)
    events = Events()
    clock.set(PRE_DUE)
    return cases, audit, events, Evaluations(store=store, cases=cases, audit=audit, clock=clock), case


def actor(user: User) -> Actor:
    return Actor(user_id=user.id, name=user.name, email=user.email)


async def test_one_answer_per_attendee_per_phase_editable_until_the_phase_closes(domain, clock, store):
    cases, audit, events, evaluations, case = domain
    _, first = await evaluations.submit(actor(PATTI), case.id, 1, Phase.PRE, {"score": "2", "why": "Drift"})
    clock.advance(hours=2)
    _, again = await evaluations.submit(actor(PATTI), case.id, 1, Phase.PRE, {"score": "3", "why": "Better"})
    assert (again.score, again.edits, again.submitted_at, again.updated_at) == (3, 1, first.submitted_at, clock.now())
    doc = await evaluations.docs.get(case.id, 1)
    assert list(doc.responses) == ["pre:pattif@example.com"]
    with pytest.raises(EvaluationClosed):
        await evaluations.submit(actor(PATTI), case.id, 1, Phase.POST, {"score": "3"})   # not held yet
    await mark_session_held(cases=cases, audit=audit, events=events, clock=clock, case_id=case.id,
                            actor=actor(FAC_USER), source="facilitator")
    with pytest.raises(EvaluationClosed):
        await evaluations.submit(actor(PATTI), case.id, 1, Phase.PRE, {"score": "4"})
    await evaluations.submit(actor(PATTI), case.id, 1, Phase.POST, {"score": "5", "worked_well": "Mapping"})
    impact = await session_impact(store, case.id)
    assert [(a.name, a.pre, a.post, a.change) for a in impact.attendees] == [
        ("Patti Fernandez", 3, 5, 2), ("Alex Wilber", None, None, None)]
    entries = await audit.entries(case.id)
    submits = [e for e in entries if e["action"] == "evaluation.submit"]
    assert [e["allowed"] for e in submits] == [True, True, False, False, True]
    assert all("Drift" not in e["what"] for e in entries)          # answers are not copied into the audit


async def test_only_attendees_answer_and_only_facilitators_see_who_has(domain):
    _, audit, _, evaluations, case = domain
    with pytest.raises(Forbidden):
        await evaluations.submit(actor(ISAIAH), case.id, 1, Phase.PRE, {"score": "2"})
    with pytest.raises(Forbidden):
        await evaluations.status(actor(PATTI), case.id)
    status = await evaluations.status(actor(FAC_USER), case.id)
    assert [r.attendee.name for r in status.rows] == ["Patti Fernandez", "Alex Wilber"]
    refused = [e for e in await audit.entries(case.id) if not e["allowed"]]
    assert {e["action"] for e in refused} == {"evaluation.submit", "evaluation.status"}


async def test_marking_held_needs_a_facilitator_and_happens_once(domain, clock):
    cases, audit, events, _, case = domain
    with pytest.raises(Forbidden):
        await mark_session_held(cases=cases, audit=audit, events=events, clock=clock, case_id=case.id,
                                actor=actor(PATTI), source="facilitator")
    held, changed = await mark_session_held(cases=cases, audit=audit, events=events, clock=clock,
                                            case_id=case.id, actor=actor(FAC_USER), source="facilitator")
    assert changed and held.state == CaseState.HELD and held.session.held_at == clock.now()
    assert held.history[-1].event == "mark_held"
    _, again = await mark_session_held(cases=cases, audit=audit, events=events, clock=clock, case_id=case.id,
                                       actor=None, source="meeting_end")
    assert not again
    assert [(e.kind, e.data["source"]) for e in events.published] == [("session.held", "facilitator")]
    held_records = [e for e in await audit.entries(case.id) if e["action"] == "session.mark_held" and e["allowed"]]
    assert [e["why"] for e in held_records] == ["facilitator"]     # written with the change, once


# --- cards -----------------------------------------------------------------------------------------------
async def test_every_evaluation_card_is_valid_adaptive_card_1_5(domain, validate_card):
    _, _, _, evaluations, case = domain
    response = EvaluationResponse("pattif@example.com", "Patti Fernandez", "GP", Phase.POST, 4,
                                  worked_well="Mapping", submitted_at=PRE_DUE, updated_at=PRE_DUE, edits=1)
    cards = [evaluation_form(T, case, Phase.PRE), evaluation_form(T, case, Phase.POST, response=response),
             evaluation_form(T, case, Phase.PRE, late="This message is late", reminder=True,
                             errors=["Please choose a score"], values={"score": "", "why": "kept"}),
             received_card(T, case, Phase.POST, response), closed_card(T, case, Phase.PRE), closed_card(T, None, None),
             status_card(T, await evaluations.status_of(case), now=PRE_DUE)]
    for card in cards:
        validate_card(card)
    form = cards[0]
    score = next(b for b in form["body"] if b.get("id") == "score")
    assert [c["value"] for c in score["choices"]] == ["0", "1", "2", "3", "4", "5"]
    assert score["isRequired"] and score["errorMessage"] and score["label"].startswith("How are you feeling")
    assert form["actions"][0]["type"] == "Action.Execute" and form["actions"][0]["verb"] == "evaluation.submit"
    post_inputs = [b["id"] for b in cards[1]["body"] if b.get("type", "").startswith("Input.")]
    assert post_inputs == ["score", "worked_well", "better", "learning", "other"]
    kept = next(b for b in cards[2]["body"] if b.get("id") == "why")
    assert kept["value"] == "kept"


# --- through the bot ---------------------------------------------------------------------------------------
@pytest.fixture
async def bot(config: Config, clock: FixedClock, store: MemoryStore) -> AsyncIterator[BotHarness]:
    app = create_app(config, clock=clock, store=store, start_background=False,
                     features=[core_feature, evaluation_feature.register, meeting_feature.register])
    h = await BotHarness(app=app, connector=ScriptedConnector()).start()
    for user in (FAC_USER, PATTI, ALEX):
        await h.say(user, "help")
    h.connector.clear()
    yield h
    await h.stop()


def _text(card: dict[str, Any]) -> str:
    return str(card)


async def test_evaluations_end_to_end_through_the_bot(bot, clock, validate_card):
    services = bot.parts.services
    connector: ScriptedConnector = bot.connector
    case = await services.cases.create(scheduled_case())
    clock.set(PRE_DUE)
    await services.due_work.run_due()
    assert (await services.cases.require(case.id)).state == CaseState.PRE_SESSION
    pre = connector.cards_to(PATTI.id)
    assert len(pre) == 1 and len(connector.cards_to(ALEX.id)) == 1
    validate_card(pre[0])
    status_cards = connector.cards_to(FAC_USER.id)
    assert len(status_cards) == 1 and "Pre-session: 0 of 2 answered" in _text(status_cards[0])

    ids = {"case_id": case.id, "session": "1", "phase": "pre"}
    code, body = await bot.execute(PATTI, "evaluation.submit", {**ids, "score": "", "why": "Keep this"})
    assert code == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Please choose a score from 0 to 5 (score)" in _text(body["value"]) and "Keep this" in _text(body["value"])
    validate_card(body["value"])

    code, body = await bot.execute(PATTI, "evaluation.submit", {**ids, "score": "2", "why": "Plans drift"})
    assert code == 200 and "Thank you: your answers are in" in _text(body["value"])
    validate_card(body["value"])
    updates = connector.cards_to(FAC_USER.id, method="PUT")
    assert updates and "Pre-session: 1 of 2 answered" in _text(updates[-1])
    assert "Patti Fernandez (GP)" in _text(updates[-1]) and "answered (2)" in _text(updates[-1])

    code, body = await bot.execute(PATTI, "evaluation.edit", ids)
    assert "Plans drift" in _text(body["value"]) and "Update my answers" in _text(body["value"])
    code, body = await bot.execute(ISAIAH, "evaluation.submit", {**ids, "score": "1"})
    assert "You can't do that" in _text(body["value"])

    clock.set(SESSION_START + timedelta(minutes=92))
    code, body = await bot.execute(FAC_USER, "session.mark_held", {"case_id": case.id, "session": "1"})
    assert code == 200 and "marked held" in _text(body["value"])
    validate_card(body["value"])
    held = await services.cases.require(case.id)
    assert held.state == CaseState.HELD and held.session.held_at == clock.now()
    post = [c for c in connector.cards_to(PATTI.id) if "Post-session views" in _text(c)]
    assert len(post) == 1 and len([c for c in connector.cards_to(ALEX.id) if "Post-session" in _text(c)]) == 1

    code, body = await bot.execute(PATTI, "evaluation.submit", {**ids, "score": "3"})
    assert "This evaluation has closed" in _text(body["value"])
    post_ids = {**ids, "phase": "post"}
    code, body = await bot.execute(PATTI, "evaluation.submit", {**post_ids, "score": "4", "worked_well": "Mapping",
                                                                "better": "More time", "learning": "Ask the school",
                                                                "other": ""})
    assert "Your post-session views" in _text(body["value"])
    final = connector.cards_to(FAC_USER.id, method="PUT")[-1]
    assert "+2" in _text(final) and "Post-session: 1 of 2 answered" in _text(final)
    impact = await session_impact(services.store, case.id)
    assert impact.mean_change == 2.0
    sends = [e["action"] for e in await services.audit.entries(case.id) if e["actor"] == "scheduler"]
    assert sends == ["evaluation.pre.send", "evaluation.post.send"]
    # the post-session forms went once, and only once, however often the work is run again
    clock.advance(days=1)
    await services.due_work.run_due()
    assert len([c for c in connector.cards_to(PATTI.id) if "Post-session views" in _text(c)]) == 1


async def test_when_nobody_marks_the_session_held_the_facilitators_are_asked_once(bot, clock, validate_card):
    """Without "held" the post-session evaluation never goes: a quarter of an hour after the planned end,
    each facilitator is asked once, with the button that marks it held."""
    services = bot.parts.services
    connector: ScriptedConnector = bot.connector
    case = await services.cases.create(scheduled_case())
    clock.set(PRE_DUE)
    await services.due_work.run_due()
    ends = SESSION_START + timedelta(minutes=90)
    key = f"{case.id}:s1:evaluation.held.check"
    assert key not in (await services.due_work.run_due(ends + timedelta(minutes=14))).ran
    assert key in (await services.due_work.run_due(ends + timedelta(minutes=15))).ran
    asked = [c for c in connector.cards_to(FAC_USER.id) if "Was the session held?" in _text(c)]
    assert len(asked) == 1
    validate_card(asked[0])
    assert "has not been marked held" in _text(asked[0]) and "late" not in _text(asked[0])
    assert not [c for c in connector.cards_to(PATTI.id) if "Was the session held?" in _text(c)]   # facilitators only
    button = next(a for a in asked[0]["actions"] if a["type"] == "Action.Execute")
    clock.set(ends + timedelta(minutes=20))
    code, body = await bot.execute(FAC_USER, button["verb"], button["data"])
    assert code == 200 and "marked held" in _text(body["value"])
    assert len([c for c in connector.cards_to(PATTI.id) if "Post-session views" in _text(c)]) == 1
    assert key not in (await services.due_work.run_due(ends + timedelta(days=1))).ran
    assert len([c for c in connector.cards_to(FAC_USER.id) if "Was the session held?" in _text(c)]) == 1


async def test_the_meeting_end_event_marks_the_session_held_and_sends_the_post_session_form(bot, clock):
    services = bot.parts.services
    connector: ScriptedConnector = bot.connector
    case = await services.cases.create(scheduled_case())
    clock.set(SESSION_START + timedelta(hours=2))
    end = (SESSION_START + timedelta(minutes=90)).isoformat().replace("+00:00", "Z")
    value = {"Id": "MCMxOTptZWV0aW5n", "Title": "Group supervision", "EndTime": end,
             "JoinUrl": JOIN_URL.replace("%3a", "%3A")}
    meeting_chat = {"conversation_type": "groupChat", "conversation_id": "19:meeting_ZXhhbXBsZQ@thread.v2"}
    chat = meeting_chat["conversation_id"]
    heard: list[Any] = []

    async def listen(event: Any) -> None:
        heard.append(event)

    services.events.on("session.held", listen)
    replies = [s for s in await bot.event(FAC_USER, MEETING_END, value, **meeting_chat) if s.conversation_id == chat]
    held = await services.cases.require(case.id)
    assert held.state == CaseState.HELD
    # the meeting chat it ended in travels with the event (the record offer and summary go there)
    assert [(e.data["source"], e.data["conversation_id"]) for e in heard] == [("meeting_end", chat)]
    assert heard[0].data["service_url"]
    assert held.session.held_at == SESSION_START + timedelta(minutes=90)
    assert [r.text for r in replies] == [f"The session for case {case.reference} has ended. Each attendee has "
                                         "been sent the post-session evaluation in a personal chat."]
    assert all(name not in replies[0].text for name in ("Patti", "Alex", "Synthetic"))
    assert len([c for c in connector.cards_to(PATTI.id) if "Post-session views" in _text(c)]) == 1
    again = [s for s in await bot.event(FAC_USER, MEETING_END, value, **meeting_chat) if s.conversation_id == chat]
    assert "already marked held" in again[0].text
    assert len([c for c in connector.cards_to(PATTI.id) if "Post-session views" in _text(c)]) == 1
    other = await bot.event(FAC_USER, MEETING_END, {**value, "JoinUrl": "https://teams.microsoft.com/l/meetup-join/x"},
                            **meeting_chat)
    assert other == []
