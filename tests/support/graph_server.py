"""A loopback server that plays Microsoft Graph for the calendar gateway.

Each call's method, path, query and body are checked against Graph's documented shapes (v1.0:
user-post-events, event-update, event-cancel, calendar-getschedule, user-sendmail). A call that
does not match is answered 400 with a Graph error body *and* recorded in ``violations``, so a test
can assert there were none. ``fail_next`` queues 429 (with Retry-After) or 5xx answers to test
retries. Events live in memory, with a Teams join URL and an iCalUId, as Graph returns them.
"""
from __future__ import annotations

import base64
import binascii
import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)
GRAPH_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# event properties a client may write (v1.0 event resource, writable ones)
EVENT_WRITABLE = {
    "subject", "body", "start", "end", "attendees", "isOnlineMeeting", "onlineMeetingProvider",
    "allowNewTimeProposals", "isReminderOn", "reminderMinutesBeforeStart", "transactionId", "location",
    "locations", "importance", "sensitivity", "showAs", "categories", "responseRequested", "isAllDay",
    "hideAttendees", "recurrence", "@odata.type",
}
ATTENDEE_TYPES = {"required", "optional", "resource"}
PROVIDERS = {"teamsForBusiness", "skypeForBusiness", "skypeForConsumer", "unknown"}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


def _lower_first(data: Any) -> Any:
    """Action parameters are matched case-insensitively by Graph (the SDK writes ``Schedules``,
    ``Comment``, ``Message``); compare them in camelCase."""
    if isinstance(data, dict):
        return {(k[:1].lower() + k[1:] if not k.startswith("@") else k): v for k, v in data.items()}
    return data


@dataclass
class GraphServer:
    organiser: str = "organiser@example.com"
    token: str = "test-graph-token"
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    mail: list[dict[str, Any]] = field(default_factory=list)
    busy: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    failures: list[tuple[str, Failure]] = field(default_factory=list)
    transactions: dict[str, str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    runner: web.AppRunner | None = None
    url: str = ""

    # --- life ----------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1.0/users/{user}/events", self._create)
        app.router.add_patch("/v1.0/users/{user}/events/{event_id}", self._update)
        app.router.add_post("/v1.0/users/{user}/events/{event_id}/cancel", self._cancel)
        app.router.add_post("/v1.0/users/{user}/calendar/getSchedule", self._schedule)
        app.router.add_post("/v1.0/users/{user}/sendMail", self._send_mail)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1.0"
        return self.url

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def fail_next(self, operation: str, status: int, *, retry_after: str | None = None, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (create, update, cancel, schedule, mail, or *) fail."""
        for _ in range(times):
            self.failures.append((operation, Failure(status, retry_after)))

    def calls_to(self, operation: str) -> list[Call]:
        return [c for c in self.calls if _operation(c.method, c.path) == operation]

    # --- checks --------------------------------------------------------------------------------
    def _bad(self, message: str) -> web.Response:
        self.violations.append(message)
        return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return self._bad(f"{request.method} {request.path}: body is not JSON")
        call = Call(request.method, request.path, dict(request.query),
                    {k.lower(): v for k, v in request.headers.items()}, body)
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.violations.append(f"{request.method} {request.path}: no bearer token")
            return web.json_response({"error": {"code": "InvalidAuthenticationToken", "message": "no token"}},
                                     status=401)
        if request.query:
            return self._bad(f"{request.method} {request.path}: unexpected query {dict(request.query)}")
        if body is not None and "application/json" not in request.headers.get("Content-Type", ""):
            return self._bad(f"{request.method} {request.path}: Content-Type is not application/json")
        if request.match_info.get("user", "").lower() != self.organiser.lower():
            return self._bad(f"{request.path}: calls must use the organiser mailbox {self.organiser}")
        operation = _operation(request.method, request.path)
        for index, (target, failure) in enumerate(self.failures):
            if target in (operation, "*"):
                del self.failures[index]
                headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                code = "TooManyRequests" if failure.status == 429 else "ServiceUnavailable"
                return web.json_response({"error": {"code": code, "message": "try later"}},
                                         status=failure.status, headers=headers)
        request[JSON_BODY] = body
        response: web.StreamResponse = await handler(request)
        return response

    def _check_datetime(self, where: str, value: Any) -> str | None:
        if not isinstance(value, dict) or set(value) - {"dateTime", "timeZone"}:
            return f"{where} must be a dateTimeTimeZone, got {value!r}"
        if not isinstance(value.get("dateTime"), str) or not GRAPH_DATETIME.match(value["dateTime"]):
            return f"{where}.dateTime must be yyyy-MM-ddTHH:mm:ss, got {value.get('dateTime')!r}"
        if not isinstance(value.get("timeZone"), str) or not value["timeZone"]:
            return f"{where}.timeZone is required"
        return None

    def _check_email(self, where: str, value: Any) -> str | None:
        if not isinstance(value, dict) or not EMAIL.match(str(value.get("address", ""))):
            return f"{where} must be an emailAddress with an address, got {value!r}"
        if set(value) - {"address", "name"}:
            return f"{where} has unknown keys {sorted(set(value) - {'address', 'name'})}"
        return None

    def _check_event(self, body: Any, *, create: bool) -> str | None:
        if not isinstance(body, dict):
            return "event body must be an object"
        unknown = set(body) - EVENT_WRITABLE
        if unknown:
            return f"event has properties Graph does not accept: {sorted(unknown)}"
        if create:
            for key in ("subject", "start", "end"):
                if key not in body:
                    return f"event needs {key}"
            if body.get("isOnlineMeeting") is not True or body.get("onlineMeetingProvider") != "teamsForBusiness":
                return "event must set isOnlineMeeting true and onlineMeetingProvider teamsForBusiness"
        if "onlineMeetingProvider" in body and body["onlineMeetingProvider"] not in PROVIDERS:
            return f"unknown onlineMeetingProvider {body['onlineMeetingProvider']!r}"
        for key in ("start", "end"):
            if key in body and (problem := self._check_datetime(key, body[key])):
                return problem
        if "start" in body and "end" in body and body["start"]["dateTime"] >= body["end"]["dateTime"]:
            return "event must end after it starts"
        if "body" in body:
            item = body["body"]
            if not isinstance(item, dict) or item.get("contentType") not in ("html", "text") \
                    or not isinstance(item.get("content"), str):
                return f"event body must be an itemBody, got {item!r}"
        for index, attendee in enumerate(body.get("attendees") or []):
            if attendee.get("type") not in ATTENDEE_TYPES:
                return f"attendees[{index}].type must be one of {sorted(ATTENDEE_TYPES)}"
            if problem := self._check_email(f"attendees[{index}].emailAddress", attendee.get("emailAddress")):
                return problem
        return None

    # --- handlers ------------------------------------------------------------------------------
    def _answer_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/events/$entity", **event}

    async def _create(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        if problem := self._check_event(body, create=True):
            return self._bad(f"POST events: {problem}")
        transaction = body.get("transactionId")
        if transaction and transaction in self.transactions:      # Graph: same transactionId, same event
            return web.json_response(self._answer_event(self.events[self.transactions[transaction]]), status=201)
        number = next(self._ids)
        event_id = f"AAMkAGraphEvent{number}="
        event = {**body, "id": event_id, "iCalUId": f"040000008200E00074C5B7101A82E008000000{number:08d}",
                 "isCancelled": False,
                 "onlineMeeting": {"joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{number}%40thread.v2/0"}}
        self.events[event_id] = event
        if transaction:
            self.transactions[transaction] = event_id
        return web.json_response(self._answer_event(event), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        if event_id not in self.events:
            return web.json_response({"error": {"code": "ErrorItemNotFound", "message": "not found"}}, status=404)
        body = request[JSON_BODY]
        if problem := self._check_event(body, create=False):
            return self._bad(f"PATCH event: {problem}")
        if "transactionId" in body:
            return self._bad("PATCH event: transactionId is only for create")
        self.events[event_id].update(body)
        return web.json_response(self._answer_event(self.events[event_id]))

    async def _cancel(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        if event_id not in self.events:
            return web.json_response({"error": {"code": "ErrorItemNotFound", "message": "not found"}}, status=404)
        body = _lower_first(request[JSON_BODY])
        if body is not None and (not isinstance(body, dict) or set(body) - {"comment"}
                                 or not isinstance(body.get("comment", ""), str)):
            return self._bad(f"POST cancel: body must be {{comment}}, got {body!r}")
        self.events[event_id]["isCancelled"] = True
        self.events[event_id]["cancelComment"] = (body or {}).get("comment", "")
        return web.Response(status=202)

    async def _schedule(self, request: web.Request) -> web.Response:
        body = _lower_first(request[JSON_BODY])
        if not isinstance(body, dict) or set(body) - {"schedules", "startTime", "endTime", "availabilityViewInterval"}:
            return self._bad(f"getSchedule: unexpected body {body!r}")
        schedules = body.get("schedules")
        if not isinstance(schedules, list) or not schedules or not all(EMAIL.match(str(s)) for s in schedules):
            return self._bad("getSchedule: schedules must be a non-empty list of addresses")
        for key in ("startTime", "endTime"):
            if problem := self._check_datetime(key, body.get(key)):
                return self._bad(f"getSchedule: {problem}")
        start = datetime.fromisoformat(body["startTime"]["dateTime"].split(".")[0])
        end = datetime.fromisoformat(body["endTime"]["dateTime"].split(".")[0])
        if body["startTime"]["timeZone"] != "UTC" or body["endTime"]["timeZone"] != "UTC":
            return self._bad("getSchedule: this server expects UTC request times")
        if not timedelta(0) < end - start < timedelta(days=42):
            return self._bad("getSchedule: the period must be positive and less than 42 days")
        interval = body.get("availabilityViewInterval", 30)
        if not isinstance(interval, int) or not 5 <= interval <= 1440:
            return self._bad("getSchedule: availabilityViewInterval must be 5 to 1440 minutes")
        prefer = request.headers.get("Prefer", "")
        value = []
        for address in schedules:
            items = [{"isPrivate": False, "status": "busy", "subject": "Busy",
                      "start": {"dateTime": s.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
                      "end": {"dateTime": e.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}}
                     for s, e in self.busy.get(address.lower(), [])
                     if s.replace(tzinfo=None) < end and e.replace(tzinfo=None) > start]
            value.append({"scheduleId": address, "availabilityView": "", "scheduleItems": items,
                          "workingHours": {}})
        headers = {"Preference-Applied": prefer} if prefer else {}
        return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection("
                                                    "microsoft.graph.scheduleInformation)", "value": value},
                                 headers=headers)

    async def _send_mail(self, request: web.Request) -> web.Response:
        body = _lower_first(request[JSON_BODY])
        if not isinstance(body, dict) or set(body) - {"message", "saveToSentItems"}:
            return self._bad(f"sendMail: unexpected body keys {sorted(body) if isinstance(body, dict) else body}")
        message = body.get("message")
        if not isinstance(message, dict):
            return self._bad("sendMail: message is required")
        if not isinstance(message.get("subject"), str) or not message["subject"]:
            return self._bad("sendMail: message.subject is required")
        item = message.get("body") or {}
        if item.get("contentType") not in ("html", "text") or not isinstance(item.get("content"), str):
            return self._bad("sendMail: message.body must be an itemBody")
        recipients = message.get("toRecipients")
        if not isinstance(recipients, list) or not recipients:
            return self._bad("sendMail: message.toRecipients is required")
        for index, recipient in enumerate(recipients):
            if problem := self._check_email(f"toRecipients[{index}].emailAddress", recipient.get("emailAddress")):
                return self._bad(f"sendMail: {problem}")
        for index, attachment in enumerate(message.get("attachments") or []):
            if attachment.get("@odata.type") != "#microsoft.graph.fileAttachment":
                return self._bad(f"sendMail: attachments[{index}] must be a #microsoft.graph.fileAttachment")
            if not attachment.get("name") or not attachment.get("contentType"):
                return self._bad(f"sendMail: attachments[{index}] needs name and contentType")
            try:
                base64.b64decode(attachment.get("contentBytes", ""), validate=True)
            except (binascii.Error, ValueError):
                return self._bad(f"sendMail: attachments[{index}].contentBytes is not base64")
        self.mail.append(message)
        return web.Response(status=202)


def _operation(method: str, path: str) -> str:
    if path.endswith("/cancel"):
        return "cancel"
    if path.endswith("/calendar/getSchedule"):
        return "schedule"
    if path.endswith("/sendMail"):
        return "mail"
    if method == "PATCH":
        return "update"
    if method == "POST" and path.endswith("/events"):
        return "create"
    return "other"


def attachment_bytes(message: dict[str, Any], index: int = 0) -> bytes:
    return base64.b64decode(message["attachments"][index]["contentBytes"])


class StaticToken:
    """Any object with ``async get_token`` serves as the azure-identity credential in tests."""

    def __init__(self, token: str = "test-graph-token") -> None:
        self.token, self.requests = token, 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.requests += 1
        return AccessToken(self.token, 4_102_444_800)    # 2100-01-01

    async def close(self) -> None:
        return None
