from datetime import UTC, date, datetime

import pytest

from supervision.calendar import WorkingCalendar
from supervision.clock import FixedClock
from supervision.errors import IllegalTransition
from supervision.lifecycle import TERMINAL, TRANSITIONS, Deadlines, Event, allowed_events, apply, mermaid
from supervision.models import Case, CaseState
from supervision.profile import load_preset

ROOT = __import__("pathlib").Path(__file__).parent.parent


def new_case(clock) -> Case:
    return Case(id="c1", reference="MAGS-BOL-1", profile_id="bolton", state=CaseState.REQUESTED,
                created_at=clock.now())


def test_happy_path_records_every_transition(clock: FixedClock):
    case = new_case(clock)
    path = [Event.SUBMIT, Event.AGREE, Event.ASSIGN_FACILITATORS, Event.SCHEDULE, Event.OPEN_PRE_SESSION,
            Event.MARK_HELD, Event.RECORD, Event.DISTRIBUTE_ACTIONS, Event.COMPLETE_MINUTES,
            Event.FOLLOW_UP_DUE, Event.RECORD_FOLLOW_UP]
    for event in path:
        clock.advance(hours=1)
        apply(case, event, actor="user-1", clock=clock, reason=f"because {event.value}")
    assert case.state is CaseState.CLOSED
    assert [t.event for t in case.history] == [e.value for e in path]
    assert case.history[0].from_state is None and case.history[1].from_state is CaseState.REQUESTED
    assert all(t.at.tzinfo == UTC for t in case.history)
    assert case.history[-1].reason == "because record_follow_up"


def test_illegal_transition_raises_and_changes_nothing(clock: FixedClock):
    case = new_case(clock)
    apply(case, Event.SUBMIT, actor="u", clock=clock)
    with pytest.raises(IllegalTransition):
        apply(case, Event.RECORD, actor="u", clock=clock)
    assert case.state is CaseState.REQUESTED and len(case.history) == 1


def test_terminal_states_allow_nothing():
    for state in TERMINAL:
        assert allowed_events(state) == []


def test_every_state_is_reachable_from_new():
    reachable, frontier = set(), [None]
    while frontier:
        state = frontier.pop()
        for (source, _event), target in TRANSITIONS.items():
            if source == state and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(CaseState)


def test_norfolk_manager_review_then_queue(clock: FixedClock):
    case = new_case(clock)
    apply(case, Event.SUBMIT_FOR_MANAGER, actor="u", clock=clock)
    assert case.state is CaseState.MANAGER_REVIEW
    apply(case, Event.MANAGER_ENDORSE, actor="m", clock=clock)
    assert case.state is CaseState.REQUESTED


def test_deadlines_come_from_profile_and_calendar():
    bolton = load_preset("bolton")
    d = Deadlines(bolton, WorkingCalendar(bolton.nation))
    assert d.session_due(date(2025, 12, 19)) == date(2026, 1, 14)
    assert d.pre_evaluation(date(2026, 1, 5)) == date(2025, 12, 30)
    assert d.follow_up(date(2026, 1, 14)) == date(2026, 7, 14)
    gwent = load_preset("gwent")
    g = Deadlines(gwent, WorkingCalendar(gwent.nation))
    assert g.actions_due(date(2026, 1, 9)) == date(2026, 1, 13)
    assert g.minutes_due(date(2026, 1, 9)) == date(2026, 2, 6)


def test_docs_diagram_is_current():
    doc = (ROOT / "docs" / "lifecycle.md").read_text()
    assert mermaid() in doc, "regenerate docs/lifecycle.md with: python -m supervision.lifecycle_doc"


def test_time_comes_from_the_injected_clock():
    clock = FixedClock(datetime(2030, 6, 1, 12, tzinfo=UTC))
    case = new_case(clock)
    t = apply(case, Event.SUBMIT, actor="u", clock=clock)
    assert t.at == datetime(2030, 6, 1, 12, tzinfo=UTC)
