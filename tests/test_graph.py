"""The Graph gateway against the loopback Graph server: documented call shapes, the Teams meeting,
free/busy, mail with the .ics, bounded retries of 429 (Retry-After) and 5xx, and the scheduling use
cases end to end over Graph."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from bot.config import GraphSettings
from bot.graph import GraphCalendar, make_credential, retry_after_seconds
from documents.ics import meeting_ics
from storage.memory import MemoryStore
from supervision.calendar import WorkingCalendar
from supervision.clock import FixedClock
from supervision.profile import load_preset
from supervision.repository import AuditLog, CaseRepository
from supervision.scheduling import (
    Attendee,
    CalendarUnavailable,
    Mail,
    MailAttachment,
    Meeting,
    Scheduling,
)
from tests.support.graph_server import GraphServer, StaticToken, attachment_bytes
from tests.test_schedule_domain import ADELE, RecordingSink, make_assigned_case

ORGANISER = "adelev@example.com"


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    server = GraphServer(organiser=ORGANISER)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def gateway(graph: GraphServer, sleep: FakeSleep) -> GraphCalendar:
    settings = GraphSettings(tenant_id="00000000-0000-0000-0000-00000000000a", client_id="client",
                             client_secret="synthetic-secret", organiser=ORGANISER, base_url=graph.url)
    return GraphCalendar(settings, credential=StaticToken(), sleep=sleep, max_attempts=4, base_delay=1.0,
                         max_delay=30.0)


def meeting(**changes) -> Meeting:
    base = dict(uid="case-1-1@group-supervision.invalid", sequence=0,
                subject="Multi-Agency Supervision and Mapping: MAGS-BOL-260105-AB12",
                description="A reflective session.\n\nBring your chronology.",
                starts_at=datetime(2026, 1, 20, 10, tzinfo=UTC), ends_at=datetime(2026, 1, 20, 11, 30, tzinfo=UTC),
                organiser=Attendee("Adele Vance", ORGANISER),
                attendees=(Attendee("Adele Vance", ORGANISER), Attendee("Patti Fernandez", "pattif@example.com"),
                           Attendee("Quentin Placeholder", "quentin@other-tenant.example.org")))
    base.update(changes)
    return Meeting(**base)


async def test_create_posts_a_teams_meeting_event_in_the_organiser_mailbox(graph, gateway):
    ref = await gateway.create_event(meeting())
    assert graph.violations == []
    (call,) = graph.calls_to("create")
    assert call.method == "POST" and call.path == f"/v1.0/users/{ORGANISER}/events" and call.query == {}
    body = call.body
    assert body["isOnlineMeeting"] is True and body["onlineMeetingProvider"] == "teamsForBusiness"
    assert body["start"] == {"dateTime": "2026-01-20T10:00:00", "timeZone": "UTC"}
    assert body["end"] == {"dateTime": "2026-01-20T11:30:00", "timeZone": "UTC"}
    assert [a["emailAddress"]["address"] for a in body["attendees"]] == \
        ["pattif@example.com", "quentin@other-tenant.example.org"]          # the organiser is not an attendee
    assert all(a["type"] == "required" for a in body["attendees"])
    assert body["body"]["contentType"] == "html" and "<p>Bring your chronology.</p>" in body["body"]["content"]
    assert len(body["transactionId"]) == 32
    assert ref.event_id in graph.events and ref.join_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert ref.ical_uid == graph.events[ref.event_id]["iCalUId"]


async def test_update_patches_the_event_and_cancel_posts_cancel_with_the_comment(graph, gateway):
    ref = await gateway.create_event(meeting())
    later = datetime(2026, 1, 22, 13, tzinfo=UTC)
    updated = await gateway.update_event(ref.event_id, meeting(starts_at=later, ends_at=later + timedelta(minutes=90),
                                                               sequence=1))
    (patch,) = graph.calls_to("update")
    assert patch.method == "PATCH" and patch.path == f"/v1.0/users/{ORGANISER}/events/{ref.event_id}"
    assert patch.body["start"]["dateTime"] == "2026-01-22T13:00:00" and "transactionId" not in patch.body
    assert updated.join_url == ref.join_url
    await gateway.cancel_event(ref.event_id, "The family moved away")
    (cancel,) = graph.calls_to("cancel")
    assert cancel.path == f"/v1.0/users/{ORGANISER}/events/{ref.event_id}/cancel"
    assert {k.lower(): v for k, v in cancel.body.items()} == {"comment": "The family moved away"}
    assert graph.events[ref.event_id]["isCancelled"] is True
    assert graph.violations == []


async def test_free_busy_uses_get_schedule_in_windows_under_42_days(graph, gateway):
    graph.busy["pattif@example.com"] = [(datetime(2026, 1, 20, 9), datetime(2026, 1, 20, 10)),
                                        (datetime(2026, 2, 20, 9), datetime(2026, 2, 20, 12))]
    found = await gateway.find_busy(["pattif@example.com", "adelev@example.com"],
                                    datetime(2026, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    calls = graph.calls_to("schedule")
    assert len(calls) == 2 and graph.violations == []
    assert all(c.path == f"/v1.0/users/{ORGANISER}/calendar/getSchedule" for c in calls)
    assert all(c.headers.get("prefer") == 'outlook.timezone="UTC"' for c in calls)
    assert {k.lower(): v for k, v in calls[0].body.items()}["schedules"] == ["pattif@example.com",
                                                                              "adelev@example.com"]
    assert [(i.start.hour, i.end.hour, i.start.month) for i in found["pattif@example.com"]] == [(9, 10, 1), (9, 12, 2)]
    assert found["adelev@example.com"] == []
    assert found["pattif@example.com"][0].start.tzinfo is not None


async def test_send_mail_attaches_the_ics_as_a_file_attachment(graph, gateway):
    ics = meeting_ics(meeting(), stamp=datetime(2026, 1, 6, tzinfo=UTC))
    await gateway.send_mail(Mail(to=(Attendee("Quentin Placeholder", "quentin@other-tenant.example.org"),),
                                 subject="Invitation", html="<p>Hello</p>",
                                 attachments=(MailAttachment("session.ics", "text/calendar", ics),)))
    (call,) = graph.calls_to("mail")
    assert call.path == f"/v1.0/users/{ORGANISER}/sendMail" and graph.violations == []
    (message,) = graph.mail
    assert message["toRecipients"][0]["emailAddress"]["address"] == "quentin@other-tenant.example.org"
    parsed = icalendar.Calendar.from_ical(attachment_bytes(message))
    assert str(parsed.walk("VEVENT")[0]["UID"]) == "case-1-1@group-supervision.invalid"


async def test_429_waits_as_long_as_retry_after_says_then_succeeds(graph, gateway, sleep):
    graph.fail_next("create", 429, retry_after="7")
    ref = await gateway.create_event(meeting())
    assert sleep.waits == [7.0]
    creates = graph.calls_to("create")
    assert len(creates) == 2 and len(graph.events) == 1 and ref.event_id
    assert creates[0].body["transactionId"] == creates[1].body["transactionId"]     # a retry is the same create


async def test_503_is_retried_with_exponential_backoff_and_gives_up_with_a_clear_error(graph, gateway, sleep):
    graph.fail_next("update", 503, times=10)
    ref = await gateway.create_event(meeting())
    with pytest.raises(CalendarUnavailable) as caught:
        await gateway.update_event(ref.event_id, meeting())
    assert caught.value.status == 503 and caught.value.attempts == 4 and caught.value.operation == "update_event"
    assert sleep.waits == [1.0, 2.0, 4.0]
    assert len(graph.calls_to("update")) == 4


async def test_retry_after_is_capped_and_client_errors_are_not_retried(graph, gateway, sleep):
    graph.fail_next("schedule", 429, retry_after="3600")
    await gateway.find_busy(["pattif@example.com"], datetime(2026, 1, 6, tzinfo=UTC), datetime(2026, 1, 9, tzinfo=UTC))
    assert sleep.waits == [30.0]
    graph.fail_next("mail", 403)
    with pytest.raises(CalendarUnavailable) as caught:
        await gateway.send_mail(Mail(to=(Attendee("Q", "q@other.example.org"),), subject="s", html="<p>h</p>"))
    assert caught.value.status == 403 and caught.value.attempts == 1 and len(graph.calls_to("mail")) == 1


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "12"}, now) == 12.0
    assert retry_after_seconds({"Retry-After": "Tue, 06 Jan 2026 12:00:30 GMT"}, now) == 30.0
    assert retry_after_seconds({"Retry-After": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


async def test_scheduling_over_graph_keeps_event_id_and_join_url_with_the_case(graph, gateway):
    clock = FixedClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    store = MemoryStore()
    scheduling = Scheduling(cases=CaseRepository(store), audit=AuditLog(store, clock), events=RecordingSink(),
                            clock=clock, store=store, gateway=gateway, free_busy=gateway,
                            profile_for=lambda c: load_preset(c.profile_id),
                            calendar_for=lambda p: WorkingCalendar(p.nation))
    case = await scheduling.cases.create(make_assigned_case(clock))
    graph.busy["isaiahl@example.com"] = [(datetime(2026, 1, 13, 0), datetime(2026, 1, 14, 0))]
    proposals = await scheduling.proposals(case)
    assert proposals.free_busy_used and proposals.slots
    assert all(s.start.date() != datetime(2026, 1, 13).date() for s in proposals.slots)
    done = await scheduling.schedule(ADELE, case.id, proposals.slots[0].start)
    assert done.session.graph_event_id in graph.events
    assert done.session.join_url == graph.events[done.session.graph_event_id]["onlineMeeting"]["joinUrl"]
    moved = await scheduling.reschedule(ADELE, case.id, proposals.slots[1].start, "Clash with a conference")
    assert graph.events[moved.session.graph_event_id]["start"]["dateTime"] == \
        proposals.slots[1].start.strftime("%Y-%m-%dT%H:%M:%S")
    await scheduling.cancel(ADELE, case.id, "No longer needed")
    assert graph.events[moved.session.graph_event_id]["isCancelled"] is True
    assert graph.violations == []


async def test_a_remaining_failure_changes_nothing_in_the_case(graph, gateway):
    clock = FixedClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    store = MemoryStore()
    scheduling = Scheduling(cases=CaseRepository(store), audit=AuditLog(store, clock), events=RecordingSink(),
                            clock=clock, store=store, gateway=gateway, free_busy=gateway,
                            profile_for=lambda c: load_preset(c.profile_id),
                            calendar_for=lambda p: WorkingCalendar(p.nation))
    case = await scheduling.cases.create(make_assigned_case(clock))
    graph.fail_next("create", 500, times=4)
    with pytest.raises(CalendarUnavailable):
        await scheduling.schedule(ADELE, case.id, datetime(2026, 1, 20, 10, tzinfo=UTC))
    assert (await scheduling.cases.require(case.id)).session.starts_at is None and graph.events == {}


def test_credentials_for_secret_certificate_and_managed_identity(tmp_path: Path):
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    base = dict(tenant_id="00000000-0000-0000-0000-00000000000a", client_id="00000000-0000-0000-0000-00000000000b",
                organiser=ORGANISER)
    assert isinstance(make_credential(GraphSettings(**base, client_secret="s")), ClientSecretCredential)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "synthetic")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime(2026, 1, 1)).not_valid_after(datetime(2027, 1, 1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "graph.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    assert isinstance(make_credential(GraphSettings(**base, certificate_path=str(pem))), CertificateCredential)
    assert isinstance(make_credential(GraphSettings(**base, managed_identity=True)), ManagedIdentityCredential)
    with pytest.raises(ValueError):
        make_credential(GraphSettings(**base))
