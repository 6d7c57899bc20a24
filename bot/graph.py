"""The Microsoft Graph calendar gateway: the session as an Outlook event with a Teams meeting in the
organiser's mailbox, free/busy from ``getSchedule``, and email invitations with ``sendMail``.

Calls (all app-only, see docs/graph-permissions.md):
- ``POST /users/{organiser}/events`` with ``isOnlineMeeting`` and ``onlineMeetingProvider:
  teamsForBusiness`` (and a ``transactionId``, so a retried create never makes a second event);
- ``PATCH /users/{organiser}/events/{id}`` on reschedule;
- ``POST /users/{organiser}/events/{id}/cancel`` on cancellation (Outlook tells the attendees);
- ``POST /users/{organiser}/calendar/getSchedule`` for free/busy (windows under 42 days);
- ``POST /users/{organiser}/sendMail`` for federated invitees, with the .ics attached.

Throttling (429 with Retry-After) and 5xx or network failures are retried with bounded backoff here
(the SDK's own retry handler is switched off so that the bound is ours); a failure that remains is
raised as ``CalendarUnavailable`` for the facilitator to be told what to do next.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.attendee import Attendee as GraphAttendee
from msgraph.generated.models.attendee_type import AttendeeType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.free_busy_status import FreeBusyStatus
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import (
    GetSchedulePostRequestBody,
)
from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from msgraph_core import GraphClientFactory

from bot.config import Config, GraphSettings
from supervision.scheduling import CalendarUnavailable, EventRef, Interval, Mail, Meeting, OfflineCalendar

log = logging.getLogger(__name__)
T = TypeVar("T")
SCOPES = ["https://graph.microsoft.com/.default"]
GRAPH_TIME = "%Y-%m-%dT%H:%M:%S"
MAX_SCHEDULE_WINDOW = timedelta(days=41)       # getSchedule looks at less than 42 days at a time
RETRYABLE = {429, 500, 502, 503, 504}


def make_credential(settings: GraphSettings) -> Any:
    """Client secret, certificate, or managed identity (azure-identity, async credentials)."""
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    if settings.certificate_path:
        return CertificateCredential(settings.tenant_id, settings.client_id, settings.certificate_path)
    if settings.client_secret:
        return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret)
    if settings.managed_identity:
        return ManagedIdentityCredential(client_id=settings.client_id or None)
    raise ValueError("Graph needs a client secret, a certificate or managed identity")


def _client(settings: GraphSettings, credential: Any) -> GraphServiceClient:
    host = urlparse(settings.base_url).hostname or "graph.microsoft.com"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=SCOPES, allowed_hosts=[host])
    from msgraph.graph_request_adapter import options as graph_options

    options = dict(graph_options)
    options[RetryHandlerOption.get_key()] = RetryHandlerOption(delay=0, max_retries=0, should_retry=False)
    http = GraphClientFactory.create_with_default_middleware(options=options)
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = settings.base_url.rstrip("/")
    return GraphServiceClient(request_adapter=adapter)


def _graph_time(when: datetime) -> DateTimeTimeZone:
    return DateTimeTimeZone(date_time=when.astimezone(UTC).strftime(GRAPH_TIME), time_zone="UTC")


def _parse_graph_time(value: DateTimeTimeZone | None) -> datetime | None:
    if value is None or not value.date_time:
        return None
    text = value.date_time.rstrip("Z")
    if "." in text:
        text = text.split(".")[0]
    parsed = datetime.fromisoformat(text)
    zone = (value.time_zone or "UTC").strip()
    if zone not in ("UTC", "tzone://Microsoft/Utc", "Etc/UTC"):
        log.warning("getSchedule answered in time zone %s; treating as UTC", zone)
    return parsed.replace(tzinfo=UTC)


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not headers:
        return None
    raw = None
    try:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    if not raw:
        return None
    raw = str(raw).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class GraphCalendar:
    """CalendarGateway and FreeBusy over Microsoft Graph (app-only)."""

    online = True

    def __init__(self, settings: GraphSettings, *, credential: Any = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, max_attempts: int = 4,
                 base_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.settings = settings
        self.organiser = settings.organiser
        self.credential = credential if credential is not None else make_credential(settings)
        self.client = _client(settings, self.credential)
        self.sleep, self.max_attempts = sleep, max(1, max_attempts)
        self.base_delay, self.max_delay = base_delay, max_delay
        self.waits: list[float] = []      # the delays actually slept, for diagnostics and tests

    # --- retry ---------------------------------------------------------------------------------
    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        last_status, last_detail = 0, ""
        for attempt in range(1, self.max_attempts + 1):
            delay: float | None = None
            try:
                return await call()
            except APIError as error:
                last_status = error.response_status_code or 0
                last_detail = type(error).__name__
                if last_status not in RETRYABLE:
                    raise CalendarUnavailable(operation, last_detail, status=last_status, attempts=attempt) from None
                delay = retry_after_seconds(error.response_headers)
            except (TimeoutError, httpx.TransportError) as error:
                last_status, last_detail = 0, type(error).__name__
            if attempt == self.max_attempts:
                break
            if delay is None:
                delay = self.base_delay * 2 ** (attempt - 1)
            delay = min(delay, self.max_delay)
            log.warning("graph %s failed with status %s; retry %d in %.1fs", operation, last_status, attempt, delay)
            self.waits.append(delay)
            await self.sleep(delay)
        raise CalendarUnavailable(operation, last_detail, status=last_status, attempts=self.max_attempts)

    # --- events --------------------------------------------------------------------------------
    def _event(self, meeting: Meeting, *, create: bool) -> Event:
        event = Event(
            subject=meeting.subject,
            body=ItemBody(content_type=BodyType.Html, content=_html_paragraphs(meeting.description)),
            start=_graph_time(meeting.starts_at),
            end=_graph_time(meeting.ends_at),
            attendees=[GraphAttendee(email_address=EmailAddress(address=a.email, name=a.name or None),
                                     type=AttendeeType.Required)
                       for a in meeting.attendees if a.email.lower() != self.organiser.lower()],
            is_online_meeting=True,
            online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness,
            allow_new_time_proposals=False,
            is_reminder_on=True,
            reminder_minutes_before_start=30,
        )
        if create:
            event.transaction_id = _transaction_id(meeting)
        return event

    @staticmethod
    def _ref(created: Event | None, meeting: Meeting, event_id: str = "") -> EventRef:
        if created is None:
            return EventRef(event_id, meeting.join_url, meeting.uid)
        join = created.online_meeting.join_url if created.online_meeting else None
        return EventRef(event_id=created.id or event_id, join_url=join or created.online_meeting_url or meeting.join_url,
                        ical_uid=created.i_cal_u_id or meeting.uid)

    async def create_event(self, meeting: Meeting) -> EventRef:
        body = self._event(meeting, create=True)
        created = await self._call("create_event",
                                   lambda: self.client.users.by_user_id(self.organiser).events.post(body))
        return self._ref(created, meeting)

    async def update_event(self, event_id: str, meeting: Meeting) -> EventRef:
        body = self._event(meeting, create=False)
        users = self.client.users.by_user_id(self.organiser)
        updated = await self._call("update_event", lambda: users.events.by_event_id(event_id).patch(body))
        return self._ref(updated, meeting, event_id)

    async def cancel_event(self, event_id: str, comment: str) -> None:
        body = CancelPostRequestBody(comment=comment)
        users = self.client.users.by_user_id(self.organiser)
        await self._call("cancel_event", lambda: users.events.by_event_id(event_id).cancel.post(body))

    # --- free/busy -----------------------------------------------------------------------------
    async def find_busy(self, emails: Sequence[str], start: datetime, end: datetime) -> dict[str, list[Interval]]:
        busy: dict[str, list[Interval]] = {e: [] for e in emails}
        if not emails:
            return busy
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + MAX_SCHEDULE_WINDOW)
            body = GetSchedulePostRequestBody(schedules=list(emails), start_time=_graph_time(window_start),
                                              end_time=_graph_time(window_end), availability_view_interval=30)
            config: RequestConfiguration[Any] = RequestConfiguration()
            config.headers.add("Prefer", 'outlook.timezone="UTC"')
            schedule = self.client.users.by_user_id(self.organiser).calendar.get_schedule

            async def ask(s: Any = schedule, b: Any = body, c: Any = config) -> Any:
                return await s.post(b, request_configuration=c)

            answer = await self._call("find_busy", ask)
            for info in (answer.value if answer and answer.value else []):
                key = next((e for e in emails if e.lower() == (info.schedule_id or "").lower()), None)
                if key is None or info.error is not None:
                    continue
                for item in info.schedule_items or []:
                    if item.status in (FreeBusyStatus.Free, FreeBusyStatus.Unknown, None):
                        continue
                    item_start, item_end = _parse_graph_time(item.start), _parse_graph_time(item.end)
                    if item_start and item_end:
                        busy[key].append(Interval(item_start, item_end))
            window_start = window_end
        return busy

    # --- mail ----------------------------------------------------------------------------------
    async def send_mail(self, mail: Mail) -> None:
        message = Message(
            subject=mail.subject,
            body=ItemBody(content_type=BodyType.Html, content=mail.html),
            to_recipients=[Recipient(email_address=EmailAddress(address=a.email, name=a.name or None))
                           for a in mail.to],
            attachments=[FileAttachment(odata_type="#microsoft.graph.fileAttachment", name=a.name,
                                        content_type=a.content_type, content_bytes=a.content)
                         for a in mail.attachments] or None,
        )
        body = SendMailPostRequestBody(message=message, save_to_sent_items=True)
        users = self.client.users.by_user_id(self.organiser)
        await self._call("send_mail", lambda: users.send_mail.post(body))

    async def close(self) -> None:
        close = getattr(self.credential, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result


def _transaction_id(meeting: Meeting) -> str:
    """Stable per meeting and sequence: Graph ignores a second create with the same transactionId."""
    return hashlib.sha256(f"{meeting.uid}:{meeting.sequence}".encode()).hexdigest()[:32]


def _html_paragraphs(text: str) -> str:
    from html import escape

    return "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def calendar_gateway(config: Config) -> GraphCalendar | OfflineCalendar:
    """Graph when it is configured (GRAPH_* settings), else the embedded offline default."""
    return GraphCalendar(config.graph) if config.graph is not None else OfflineCalendar()
