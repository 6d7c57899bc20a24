"""The audit log: reads of case data are recorded as well as changes (through the use cases), and the
log is readable and exportable (CSV, JSON) by administrators only; refusals are recorded too."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest

from bot.app import create_app
from bot.config import Config
from storage.memory import MemoryStore
from supervision.audit import AuditFilter, AuditReader, to_csv
from supervision.clock import FixedClock
from supervision.errors import FieldError, Forbidden
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState, ChildDetails, Person, RequestDetails, Role
from supervision.repository import AuditLog
from supervision.roles import Actor
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", email="alexw@example.com")
MEGAN = User("user-id-1", "Megan Bowen", email="meganb@example.com")
LYNNE = User("user-id-5", "Lynne Robbins", email="lynner@example.com")
ADMIN = Actor(user_id="user-id-5", email="lynner@example.com", global_roles=frozenset({Role.ADMINISTRATOR}))
PRACTITIONER = Actor(user_id="user-id-0", email="alexw@example.com")


def requested_case(clock: FixedClock, case_id: str = "case-audit-0001") -> Case:
    case = Case(id=case_id, reference="MAGS-BOL-260105-A0D1", profile_id="bolton", state=CaseState.REQUESTED,
                created_at=clock.now(),
                request=RequestDetails(requester=Person(name="Alex Wilber", email=ALEX.email, user_id=ALEX.id),
                                       child=ChildDetails(forename="Zebedee", surname="Example")))
    apply(case, Event.SUBMIT, actor=ALEX.id, clock=clock, reason="submitted")
    return case


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FixedClock) -> AsyncIterator[BotHarness]:
    config = make_config(COORDINATORS=MEGAN.email, ADMINISTRATORS=LYNNE.email)
    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False)
    harness = await BotHarness(app=app, connector=FakeConnector()).start()
    yield harness
    await harness.stop()


async def test_reads_are_audited_as_well_as_changes(bot: BotHarness, clock: FixedClock) -> None:
    services = bot.parts.services
    case = await services.cases.create(requested_case(clock))
    requests = services.features["requests"]
    alex = services.actor(ALEX.id, ALEX.name, email=ALEX.email)
    megan = services.actor(MEGAN.id, MEGAN.name, email=MEGAN.email)

    seen = await requests.view(alex, case.id)                      # a read of case data
    assert seen.request.child.forename == "Zebedee"
    clock.advance(minutes=5)
    await requests.agree(megan, case.id)                           # a change
    with pytest.raises(Forbidden):
        await requests.agree(alex, case.id)                        # a refusal

    entries = await services.audit.entries(case.id)
    by_action = {(e["action"], e["actor"], e["allowed"]) for e in entries}
    assert ("request.view", ALEX.id, True) in by_action
    assert ("request.agree", MEGAN.id, True) in by_action
    assert ("request.agree", ALEX.id, False) in by_action
    view = next(e for e in entries if e["action"] == "request.view")
    assert view["at"] == "2026-01-05T09:00:00+00:00" and view["why"] and view["what"]
    assert "Zebedee" not in json.dumps(entries)                    # the log names no child


async def test_only_administrators_read_the_log_and_refusals_are_recorded(clock: FixedClock) -> None:
    audit = AuditLog(MemoryStore(), clock)
    reader = AuditReader(audit, clock)
    await audit.record(actor="u1", action="request.view", case_id="c1", what="full request", why="member")
    await audit.record(actor="u2", action="request.agree", case_id="c2", what="agreed", why="coordinator")

    with pytest.raises(Forbidden):
        await reader.read(PRACTITIONER)
    with pytest.raises(Forbidden):
        await reader.export(PRACTITIONER, "csv")
    refusals = [e for e in await audit.entries() if not e["allowed"]]
    assert [(e["actor"], e["action"]) for e in refusals] == [("user-id-0", "audit.read"), ("user-id-0", "audit.export")]

    entries = await reader.read(ADMIN, AuditFilter(case_id="c1"))
    assert [e["action"] for e in entries] == ["request.view"]
    last = (await audit.entries())[-1]
    assert (last["actor"], last["action"], last["allowed"]) == ("user-id-5", "audit.read", True)
    assert "1 entries" in last["what"]


async def test_filters_by_actor_and_time(clock: FixedClock) -> None:
    audit = AuditLog(MemoryStore(), clock)
    reader = AuditReader(audit, clock)
    for hour in range(4):
        await audit.record(actor=f"u{hour % 2}", action="request.view", case_id="c1")
        clock.advance(hours=1)
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    found = await reader.read(ADMIN, AuditFilter(actor="U1", since=start, until=start + timedelta(hours=2)))
    assert [(e["actor"], e["at"]) for e in found] == [("u1", "2026-01-05T10:00:00+00:00")]


async def test_exports_csv_and_json(clock: FixedClock) -> None:
    audit = AuditLog(MemoryStore(), clock)
    reader = AuditReader(audit, clock)
    await audit.record(actor="u1", action="request.view", case_id="c1", what="=HYPERLINK(\"x\")", why="a, \"quoted\" why")
    await audit.record(actor="u2", action="request.agree", case_id="c1", allowed=False)

    exported = await reader.export(ADMIN, "csv")
    assert exported.content_type == "text/csv" and exported.filename.endswith(".csv") and exported.count == 2
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == ["at", "actor", "action", "case_id", "what", "why", "allowed", "id"]
    assert rows[1][1:6] == ["u1", "request.view", "c1", "'=HYPERLINK(\"x\")", "a, \"quoted\" why"]
    assert rows[2][6] == "False"

    exported = await reader.export(ADMIN, "json", AuditFilter(case_id="c1"))
    document = json.loads(exported.content)
    assert document["count"] == 2 and document["exported_by"] == "user-id-5" and document["filter"] == "case=c1"
    assert [e["actor"] for e in document["entries"]] == ["u1", "u2"]
    with pytest.raises(FieldError) as bad:
        await reader.export(ADMIN, "xml")
    assert bad.value.field == "format"
    exports = [e for e in await audit.entries() if e["action"] == "audit.export"]
    assert len(exports) == 2 and all(e["allowed"] for e in exports)


def test_csv_of_no_entries_is_just_the_header() -> None:
    assert to_csv([]).decode("utf-8-sig").strip() == "at,actor,action,case_id,what,why,allowed,id"


# --- through the bot ------------------------------------------------------------------------------
def cards_of(replies: list[Any]) -> list[dict[str, Any]]:
    return [c for r in replies for c in r.cards]


async def test_audit_log_command_for_an_administrator(bot: BotHarness, clock: FixedClock, validate_card: Any) -> None:
    services = bot.parts.services
    case = await services.cases.create(requested_case(clock))
    await services.features["requests"].view(services.actor(ALEX.id, email=ALEX.email), case.id)

    replies = await bot.say(LYNNE, "audit log")
    card = cards_of(replies)[-1]
    validate_card(card)
    shown = json.dumps(card)
    assert "request.view" in shown and case.reference in shown          # the case shown by its reference
    links = [a["url"] for a in card["actions"] if a["type"] == "Action.OpenUrl"]
    assert len(links) == 2
    assert bot.client is not None
    response = await bot.client.get(urlparse(links[0]).path)
    assert response.status == 200
    body = (await response.read()).decode("utf-8-sig")
    assert "request.view" in body and "audit.read" in body
    actions = [e["action"] for e in await services.audit.entries()]
    assert actions.count("audit.read") == 1 and "audit.export" in actions and "download" in actions

    replies = await bot.submit(LYNNE, {"verb": "audit.filter", "audit_case": case.reference, "audit_actor": "",
                                       "audit_since": "2026-01-05", "audit_until": ""})
    card = cards_of(replies)[-1]
    validate_card(card)
    assert "case=" + case.id in json.dumps(card)


async def test_bad_filter_names_the_field_and_keeps_the_values(bot: BotHarness, validate_card: Any) -> None:
    replies = await bot.submit(LYNNE, {"verb": "audit.filter", "audit_case": "MAGS-NOPE", "audit_actor": "u9",
                                       "audit_since": "2026-02-10", "audit_until": "2026-02-01"})
    card = cards_of(replies)[-1]
    validate_card(card)
    shown = json.dumps(card)
    assert "Case reference or id: No case has that reference." in shown
    assert "Up to and including (date): The start date must not be after the end date." in shown
    inputs = {b["id"]: b.get("value") for b in card["body"] if b.get("id")}
    assert inputs == {"audit_case": "MAGS-NOPE", "audit_actor": "u9", "audit_since": "2026-02-10",
                      "audit_until": "2026-02-01"}


async def test_others_are_refused_and_the_refusal_is_audited(bot: BotHarness) -> None:
    replies = await bot.say(ALEX, "audit log")
    assert replies[-1].text == "The audit log is readable only by the partnership's administrators. Your attempt has been recorded."
    assert not cards_of(replies)
    refused = [e for e in await bot.parts.services.audit.entries() if e["action"] == "audit.read"]
    assert [(e["actor"], e["allowed"]) for e in refused] == [(ALEX.id, False)]


async def test_audit_log_works_only_in_personal_chat(bot: BotHarness) -> None:
    replies = await bot.say(LYNNE, "audit log", conversation_type="groupChat", conversation_id="19:group@thread.v2")
    assert "personal chat" in replies[-1].text


async def test_a_refused_reader_learns_nothing_from_the_case_filter(bot: BotHarness, clock: FixedClock) -> None:
    """The case filter is looked up only for administrators: to anyone else a real reference and an
    unknown one get the same refusal (no "no such case" oracle), and the refusal is audited."""
    case = await bot.parts.services.cases.create(requested_case(clock))
    answers = []
    for wanted in (case.reference, "MAGS-NOPE-000000-0000"):
        replies = await bot.submit(ALEX, {"verb": "audit.filter", "audit_case": wanted})
        assert not cards_of(replies)
        answers.append(replies[-1].text)
    assert answers[0] == answers[1] and "administrators" in answers[0]
    refused = [e for e in await bot.parts.services.audit.entries() if e["action"] == "audit.read"]
    assert [(e["actor"], e["allowed"]) for e in refused] == [(ALEX.id, False), (ALEX.id, False)]


async def test_a_case_change_and_its_audit_record_are_written_together_and_a_retry_writes_one(clock: FixedClock) -> None:
    """CaseRepository.update(audit=...): the record goes into the case's write (the store's with_log), so
    a change is never durable without its record; a conflict retried on fresh state records once."""
    from supervision.errors import VersionConflict
    from supervision.repository import AUDIT_LOG, CaseRepository

    class OneConflict(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.conflicts = 1
            self.with_logs: list[Any] = []

        async def put(self, collection: str, key: str, data: dict[str, Any], **kw: Any) -> str:
            if kw.get("with_log") is not None:
                self.with_logs.append(kw["with_log"])
                if self.conflicts:
                    self.conflicts -= 1
                    raise VersionConflict("someone else wrote it first")
            return await super().put(collection, key, data, **kw)

    store = OneConflict()
    cases, audit = CaseRepository(store), AuditLog(store, clock)
    await cases.create(requested_case(clock))
    case, result = await cases.update("case-audit-0001", lambda c: "changed", audit=lambda c, r: audit.entry(
        actor="user-id-0", action="request.agree", case_id=c.id, what=f"{r} to version {c.version}", why="test"))
    assert result == "changed" and case.version == 2
    assert len(store.with_logs) == 2 and all(log == AUDIT_LOG for log, _ in store.with_logs)
    entries = await audit.entries("case-audit-0001")
    assert [(e["action"], e["what"]) for e in entries] == [("request.agree", "changed to version 2")]
