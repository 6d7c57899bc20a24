"""Codec benchmark: ``python -m bench codec [--quick]``

Times the per-type compiled codec (supervision/codec.py) against the generic one it replaced
(tests/support/codec_reference.py, verbatim), in the same process, on:

- the turns benchmark's case (bench/support/turns_bot.py ``make_case``), what every turn reads and writes;
- a large case: 40 invitees, 6 family members, 4 facilitators, 12 earlier session plans, 80 history
  transitions, 20 tracked items;
- a session record (``StoredRecord`` with its ``SessionRecord``: 12 agreed actions, sections, form).

``to_data`` encodes the object; ``from_data`` decodes the document as a store returns it (parsed
JSON). Both codecs' outputs are checked equal (as JSON text and as objects) before anything is timed.
Each figure is the best of several interleaved rounds (reference, compiled, json.loads, then
again), in microseconds per call; ``json.loads`` of the same document is printed for scale.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.support.turns_bot import make_case
from supervision.codec import from_data, to_data
from supervision.models import (
    Case,
    CaseState,
    FacilitatorAssignment,
    FamilyMember,
    Invitee,
    InviteStatus,
    Person,
    SessionPlan,
    Tracked,
    Transition,
)
from supervision.record import AgreedAction, RecordStatus, SessionRecord, StoredRecord
from tests.support.codec_reference import reference_from_data, reference_to_data

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def large_case() -> Case:
    case = make_case(42, NOW)
    request = case.request
    request.invitees = [Invitee(agency=f"Agency {i % 9}", name=f"Invented Person {i}", role="Practitioner",
                                email=f"invitee{i}@example.com", user_id=f"user-{i:04d}", team=f"Team {i % 5}",
                                federated=i % 7 == 0, status=list(InviteStatus)[i % 4], delegated_authority=i % 3 == 0,
                                decline_reason="Leave" if i % 11 == 0 else "",
                                responded_at=NOW + timedelta(hours=i) if i % 2 else None) for i in range(40)]
    request.family = [FamilyMember(relationship="sibling", name=f"Sibling Example {i}",
                                   date_of_birth=date(2015 + i, 1, 1), address="1 Synthetic Street") for i in range(6)]
    request.additional_information = [f"Invented note {i}" for i in range(10)]
    request.lead_professional = Person(name="Patti Example", email="lead@example.com", role="GP", user_id="user-lead")
    case.manager = Person(name="Manny Example", email="manager@example.com", user_id="user-manager")
    case.agreed_at, case.session_due, case.follow_up_due = NOW, date(2026, 2, 2), date(2026, 5, 1)
    case.facilitators = [FacilitatorAssignment(name=f"Facilitator {i}", email=f"f{i}@example.com",
                                               agency=f"Agency {i}", user_id=f"user-f{i}", lead=i == 0) for i in range(4)]
    case.previous_sessions = [SessionPlan(number=i + 1, starts_at=NOW + timedelta(days=30 * i),
                                          ends_at=NOW + timedelta(days=30 * i, hours=2), join_url="https://example.com/join",
                                          graph_event_id=f"event-{i}", held_at=NOW + timedelta(days=30 * i),
                                          recorded_at=NOW + timedelta(days=30 * i + 1),
                                          actions_distributed_at=NOW + timedelta(days=30 * i + 2),
                                          minutes_done_at=NOW + timedelta(days=30 * i + 5)) for i in range(12)]
    case.session = SessionPlan(number=13, starts_at=NOW + timedelta(days=400), ends_at=NOW + timedelta(days=400, hours=2))
    states = list(CaseState)
    case.history = [Transition(at=NOW + timedelta(hours=i), actor=f"user-{i % 40:04d}", event=f"event_{i}",
                               from_state=states[i % len(states)] if i else None,
                               to_state=states[(i + 1) % len(states)], reason="invented") for i in range(80)]
    case.tracked = [Tracked(id=f"t{i}", kind="action_item", due_on=date(2026, 3, 1) + timedelta(days=i),
                            since=NOW, owner=f"invitee{i}@example.com") for i in range(20)]
    return case


def session_record() -> StoredRecord:
    record = SessionRecord(case_id="bench-case-00042", session_number=3, reference="MAGS-BOL-260105-002A",
                           held_on=date(2026, 2, 2), facilitators="Facilitator 0, Facilitator 1",
                           attendees=[f"Invented Person {i} (Agency {i % 9})" for i in range(14)],
                           attendee_emails=[f"invitee{i}@example.com" for i in range(14)],
                           learning_points="Invented learning. " * 10, themes=["neglect", "school", "housing"],
                           sections={f"section_{i}": "Invented reflection. " * 8 for i in range(6)},
                           actions=[AgreedAction(row=i, description=f"Invented action {i}", owner_email=f"invitee{i}@example.com",
                                                 owner_name=f"Invented Person {i}", due_on=date(2026, 3, 1) + timedelta(days=i),
                                                 item_id=f"item-{i}") for i in range(12)],
                           further_sessions=True, further_sessions_when=date(2026, 5, 1), review_on=date(2026, 6, 1))
    return StoredRecord(case_id=record.case_id, session_number=3, status=RecordStatus.PUBLISHED,
                        form={f"field_{i}": f"value {i}" for i in range(30)}, record=record,
                        sent_rows={str(i): f"item-{i}" for i in range(12)}, updated_by="user-f0", updated_at=NOW,
                        actions_sent_at=NOW, published_at=NOW, document_key="records/bench-case-00042/3.docx")


def best_us(fn: Callable[[], Any], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - started) / number * 1e6


def measure(name: str, tp: type, value: Any, rounds: int, budget_us: float) -> dict[str, float]:
    doc = reference_to_data(value)
    text = json.dumps(doc)
    stored = json.loads(text)
    # the same outputs, or nothing is timed
    assert json.dumps(to_data(value)) == text and to_data(value) == doc, f"{name}: to_data differs"
    decoded = from_data(tp, stored)
    assert decoded == reference_from_data(tp, stored) == value, f"{name}: from_data differs"
    assert json.dumps(to_data(decoded)) == text, f"{name}: round trip differs"
    timings: dict[str, Callable[[], Any]] = {
        "ref to_data": lambda: reference_to_data(value), "to_data": lambda: to_data(value),
        "ref from_data": lambda: reference_from_data(tp, stored), "from_data": lambda: from_data(tp, stored),
        "json.loads": lambda: json.loads(text),
    }
    number = max(10, int(budget_us / best_us(timings["ref from_data"], 5)))   # ~budget per figure per round
    best = {k: float("inf") for k in timings}
    for _ in range(rounds):
        for key, fn in timings.items():
            best[key] = min(best[key], best_us(fn, number))
    best["bytes"] = len(text)
    return best


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rounds, budget_us = (3, 20_000.0) if quick else (7, 100_000.0)
    samples: list[tuple[str, type, Any]] = [("turns bench case", Case, make_case(7, NOW)),
                                            ("large case", Case, large_case()),
                                            ("session record", StoredRecord, session_record())]
    print(f"codec: generic (reference) vs compiled, best of {rounds} interleaved rounds "
          f"(~{budget_us / 1000:.0f} ms of calls each), us per call")
    print(f"| {'object':<17} | {'JSON bytes':>10} | {'to_data ref':>11} | {'compiled':>8} | {'x faster':>8} "
          f"| {'from_data ref':>13} | {'compiled':>8} | {'x faster':>8} | {'json.loads':>10} |")
    print("|" + "|".join("-" * w for w in (19, 12, 13, 10, 10, 15, 10, 10, 12)) + "|")
    for name, tp, value in samples:
        r = measure(name, tp, value, rounds, budget_us)
        print(f"| {name:<17} | {int(r['bytes']):>10,} | {r['ref to_data']:>11.1f} | {r['to_data']:>8.1f} "
              f"| {r['ref to_data'] / r['to_data']:>8.1f} | {r['ref from_data']:>13.1f} | {r['from_data']:>8.1f} "
              f"| {r['ref from_data'] / r['from_data']:>8.1f} | {r['json.loads']:>10.1f} |")
    return 0
