"""Retention under a controlled clock: closed cases go when their profile's retention after closure
ends, never while on legal hold; everything held about them goes with them, the partnership log keeps
its figures without free text, and the deletion log holds no identifiers. As a scheduled job and as
a subject access export too."""
from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from docx import Document

from bot.app import create_app
from bot.config import Config
from documents.sar_docx import flatten, render_sar, sar_labels
from storage.memory import MemoryStore
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.errors import NotFound
from supervision.evaluation import meeting_key
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState, ChildDetails, FamilyMember, Invitee, Person, RequestDetails
from supervision.profile import Profile, load_profiles
from supervision.repository import USER_INDEX, AuditLog, CaseRepository
from supervision.retention import DELETION_LOG, Retention, add_years, closed_at

CLOSED = datetime(2026, 1, 5, 9, tzinfo=UTC)
JOIN = "https://teams.example.invalid/l/meetup-join/19%3ameeting_{}%40thread.v2/0?context=x"


def profiles() -> dict[str, Profile]:
    loaded = dict(load_profiles(()))
    loaded["short"] = dataclasses.replace(loaded["bolton"], id="short", retention_years_after_closure=2)
    return loaded


def make_case(case_id: str, reference: str, *, close: str | None, profile: str = "bolton", hold: bool = False,
              clock: FixedClock) -> Case:
    case = Case(id=case_id, reference=reference, profile_id=profile, state=CaseState.REQUESTED,
                created_at=clock.now(), legal_hold=hold,
                request=RequestDetails(
                    requester=Person(name="Alex Wilber", email="alexw@example.com", user_id="user-id-0"),
                    child=ChildDetails(forename="Zebedee", surname="Example", address="1 Synthetic Street"),
                    family=[FamilyMember(relationship="mother", name="Yolanda Example")],
                    invitees=[Invitee(agency="GP", name="Patti Fernandez", email="pattif@example.com",
                                      user_id="user-id-4")]))
    case.session.join_url = JOIN.format(case_id)
    apply(case, Event.SUBMIT, actor="user-id-0", clock=clock)
    if close == "decline":
        apply(case, Event.DECLINE, actor="user-id-1", clock=clock, reason="not suitable")
    elif close == "withdraw":
        apply(case, Event.WITHDRAW, actor="user-id-0", clock=clock)
    return case


async def seed_holdings(store: MemoryStore, case: Case) -> None:
    """What the features keep about a case, keyed as they key it."""
    await store.put("schedule", case.id, {"slots": ["2026-02-01"]})
    await store.put("evaluations", f"{case.id}:1", {"answers": {"u1": 3}})
    await store.put("chronologies", f"{case.id}|gp", {"entries": [{"what": "Zebedee seen at surgery"}]})
    await store.put("concerns", f"{case.id}:k1", {"text": "concern"})
    await store.put("action_items", f"{case.id}:a1", {"owner_email": "pattif@example.com", "what": "call"})
    owned = await store.get("action_items_by_owner", "pattif@example.com")
    await store.put("action_items_by_owner", "pattif@example.com",
                    {"cases": (owned.data["cases"] if owned else ["other-case:a9"]) + [f"{case.id}:a1"]})
    await store.put("due_work_ledger", f"{case.id}:record:x", {"case_id": case.id, "done": True})
    await store.put("meeting_index", meeting_key(case.session.join_url), {"case_id": case.id})
    await store.put("chronology_uploads", f"uploader-{case.id}", {"case_id": case.id, "agency": "GP"})
    await store.put("partnership_log", f"{case.reference}:1", {
        "reference": case.reference, "session_number": 1, "level_of_need": "Targeted Help", "agencies": ["GP"],
        "learning_points": "residual context", "other_themes": "x", "escalated_to": "y", "plan_moved_on": "z",
        "themes": ["drift"], "pre_mean": 2.0})


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(CLOSED)


@pytest.fixture
def world(clock: FixedClock) -> tuple[MemoryStore, CaseRepository, AuditLog, Retention]:
    store = MemoryStore()
    cases, audit = CaseRepository(store), AuditLog(store, clock)
    retention = Retention(store=store, cases=cases, audit=audit, clock=clock, profiles=profiles())
    cases.listeners.append(retention.remember_reference)
    return store, cases, audit, retention


def test_closure_time_and_due_date(clock: FixedClock) -> None:
    case = make_case("c1", "MAGS-BOL-260105-0001", close="decline", clock=clock)
    assert closed_at(case) == CLOSED
    case.closed_at = datetime(2026, 3, 1, tzinfo=UTC)
    assert closed_at(case) == datetime(2026, 3, 1, tzinfo=UTC)
    assert closed_at(make_case("c2", "R2", close=None, clock=clock)) is None
    assert add_years(datetime(2028, 2, 29, tzinfo=UTC), 7) == datetime(2035, 2, 28, tzinfo=UTC)
    retention = Retention(store=MemoryStore(), cases=CaseRepository(MemoryStore()), audit=AuditLog(MemoryStore(), clock),
                          clock=clock, profiles=profiles())
    assert retention.due_at(case) == datetime(2033, 3, 1, tzinfo=UTC)        # bolton: 7 years
    short = make_case("c3", "R3", close="withdraw", profile="short", clock=clock)
    assert retention.due_at(short) == datetime(2028, 1, 5, 9, tzinfo=UTC)


async def test_purge_deletes_past_retention_honours_legal_hold_and_logs_without_identifiers(
        world: tuple[MemoryStore, CaseRepository, AuditLog, Retention], clock: FixedClock) -> None:
    store, cases, audit, retention = world
    gone = await cases.create(make_case("case-gone", "MAGS-BOL-260105-0A01", close="decline", clock=clock))
    held = await cases.create(make_case("case-held", "MAGS-BOL-260105-0A02", close="decline", hold=True, clock=clock))
    still_open = await cases.create(make_case("case-open", "MAGS-BOL-260105-0A03", close=None, clock=clock))
    for case in (gone, held, still_open):
        await seed_holdings(store, case)
    await audit.record(actor="user-id-0", action="request.view", case_id=gone.id, what="full request")

    report = await retention.purge(datetime(2033, 1, 5, 8, 59, tzinfo=UTC))
    assert report.outcomes == []                                   # a minute early: nothing
    assert await cases.get(gone.id) is not None

    report = await retention.purge(datetime(2033, 1, 5, 9, 0, tzinfo=UTC), dry_run=True)
    assert [(o.reference, o.status) for o in report.outcomes] == [
        ("MAGS-BOL-260105-0A01", "would_delete"), ("MAGS-BOL-260105-0A02", "legal_hold")]
    assert report.outcomes[0].removed == 9 and report.outcomes[0].anonymised == 1
    assert await cases.get(gone.id) is not None and await retention.deletion_log() == []

    clock.set(datetime(2033, 1, 5, 9, 0, tzinfo=UTC))
    report = await retention.purge()
    assert [(o.reference, o.status) for o in report.with_status("deleted")] == [("MAGS-BOL-260105-0A01", "deleted")]
    assert [o.reference for o in report.with_status("legal_hold")] == ["MAGS-BOL-260105-0A02"]

    assert await cases.get(gone.id) is None
    for collection in ("schedule", "evaluations", "chronologies", "concerns", "action_items", "due_work_ledger",
                       "meeting_index", "chronology_uploads"):
        left = [k for k in await store.keys(collection) if gone.id in k or k == meeting_key(gone.session.join_url)]
        assert left == [], collection
        assert any(still_open.id in k or k == meeting_key(still_open.session.join_url)
                   for k in await store.keys(collection)), collection
    assert (await store.get("action_items_by_owner", "pattif@example.com")).data["cases"] == [
        "other-case:a9", f"{held.id}:a1", f"{still_open.id}:a1"]
    for key in ("alexw@example.com", "user-id-4", "pattif@example.com"):
        assert gone.id not in (await store.get(USER_INDEX, key)).data["cases"]
        assert still_open.id in (await store.get(USER_INDEX, key)).data["cases"]
    kept = (await store.get("partnership_log", f"{gone.reference}:1")).data
    assert kept["learning_points"] == kept["other_themes"] == kept["escalated_to"] == kept["plan_moved_on"] == ""
    assert kept["level_of_need"] == "Targeted Help" and kept["pre_mean"] == 2.0 and kept["themes"] == ["drift"]
    assert (await store.get("partnership_log", f"{held.reference}:1")).data["learning_points"] == "residual context"
    assert await cases.get(held.id) is not None and await cases.get(still_open.id) is not None

    log = await retention.deletion_log()
    assert log == [{"reference": "MAGS-BOL-260105-0A01", "closed_on": "2026-01-05", "due_on": "2033-01-05",
                    "deleted_on": "2033-01-05", "reason": "retention period after closure ended"}]
    text = json.dumps(log)
    for identifier in ("Zebedee", "Example", "Synthetic", "Yolanda", "alexw", gone.id):
        assert identifier not in text
    actions = {(e["action"], e["case_id"]) for e in await audit.entries()}
    assert ("retention.purge", gone.id) in actions and ("retention.held", held.id) in actions

    again = await retention.purge(datetime(2040, 1, 1, tzinfo=UTC))   # idempotent
    assert again.with_status("deleted") == [] and len(await retention.deletion_log()) == 1


async def test_purge_is_a_scheduled_job(make_config: Callable[..., Config], clock: FixedClock) -> None:
    store = MemoryStore()
    app = create_app(make_config(), clock=clock, store=store, start_background=False)
    from bot.app import PARTS

    services = app[PARTS].services
    case = await services.cases.create(make_case("case-job", "MAGS-BOL-260105-0B01", close="withdraw", clock=clock))
    await seed_holdings(store, case)
    await services.due_work.rebuild_index()
    report = await services.due_work.run_due(datetime(2033, 1, 5, 8, tzinfo=UTC))
    assert not any("retention" in key for key in report.ran)
    assert await services.cases.get(case.id) is not None
    report = await services.due_work.run_due(datetime(2033, 1, 5, 10, tzinfo=UTC))
    assert f"{case.id}:retention.purge" in report.ran
    assert await services.cases.get(case.id) is None
    assert [e["reference"] for e in [e async for e in store.read_log(DELETION_LOG)]] == ["MAGS-BOL-260105-0B01"]


async def test_legal_hold_set_after_scheduling_still_stops_the_job(
        world: tuple[MemoryStore, CaseRepository, AuditLog, Retention], clock: FixedClock) -> None:
    store, cases, audit, retention = world
    case = await cases.create(make_case("case-late-hold", "MAGS-BOL-260105-0C01", close="decline", clock=clock))
    [work] = retention.source(case)
    assert work.due_at == datetime(2033, 1, 5, 9, tzinfo=UTC)

    def hold(c: Case) -> None:
        c.legal_hold = True

    await cases.update(case.id, hold)
    assert retention.source(await cases.require(case.id)) == []
    from supervision.duework import RunContext

    await retention.handle(work, RunContext(now=datetime(2034, 1, 1, tzinfo=UTC), late=True, attempt=1))
    assert await cases.get(case.id) is not None


async def test_subject_access_export_holds_everything_and_is_audited(
        world: tuple[MemoryStore, CaseRepository, AuditLog, Retention], clock: FixedClock) -> None:
    store, cases, audit, retention = world
    case = await cases.create(make_case("case-sar", "MAGS-BOL-260105-0D01", close=None, clock=clock))
    other = await cases.create(make_case("case-other", "MAGS-BOL-260105-0D02", close=None, clock=clock))
    await seed_holdings(store, case)
    await seed_holdings(store, other)
    await audit.record(actor="user-id-0", action="request.view", case_id=case.id, what="full request")

    export = await retention.export("MAGS-BOL-260105-0D01", actor="cli:admin", why="SAR 2026/17")
    assert export["case"]["request"]["child"]["forename"] == "Zebedee"
    assert set(export["holdings"]) == {"schedule", "evaluations", "chronologies", "concerns", "action_items",
                                       "due_work_ledger", "meeting_index", "chronology_uploads", "partnership_log"}
    assert "case-other" not in json.dumps(export["holdings"])
    assert [e["action"] for e in export["audit"]] == ["request.view"]
    last = (await audit.entries(case.id))[-1]
    assert (last["action"], last["actor"], last["why"]) == ("case.export", "cli:admin", "SAR 2026/17")
    json.dumps(export)                                            # JSON-ready as it is

    labels = sar_labels(Catalogue("en"), export, "Mon 05 Jan 2026, 09:00")
    document = Document(io.BytesIO(render_sar(export, labels)))
    cells = {cell.text for table in document.tables for row in table.rows for cell in row.cells}
    assert {"request.child.forename", "Zebedee", "entries[0].what", "Zebedee seen at surgery", "request.view"} <= cells
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading") or p.style.name == "Title"]
    assert "Subject access export: MAGS-BOL-260105-0D01" in headings and "chronologies" in headings

    with pytest.raises(NotFound):
        await retention.export("MAGS-NOPE", actor="cli:admin", why="SAR")
    assert (await audit.entries())[-1]["allowed"] is False


async def test_a_case_is_found_by_reference_even_without_the_index(clock: FixedClock) -> None:
    store = MemoryStore()
    cases = CaseRepository(store)                                  # no listener: an older store
    retention = Retention(store=store, cases=cases, audit=AuditLog(store, clock), clock=clock, profiles=profiles())
    case = await cases.create(make_case("case-old", "MAGS-BOL-260105-0E01", close=None, clock=clock))
    assert (await retention.find("mags-bol-260105-0e01")).id == case.id
    assert await store.get("case_references", "MAGS-BOL-260105-0E01") is not None
    assert (await retention.find("case-old")).id == case.id and await retention.find("nothing") is None


def test_flatten_keeps_every_field() -> None:
    rows: list[tuple[str, Any]] = flatten({"a": {"b": [1, {"c": None}], "d": []}, "e": "x\x00y"})
    assert rows == [("a.b[0]", "1"), ("a.b[1].c", ""), ("a.d", ""), ("e", "xy")]
