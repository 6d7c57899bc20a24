"""Synthetic scheduled cases for the scheduler, proactive and evaluation tests (and the bench).

The session is on Wednesday 8 April 2026 at 10:00 UK time (BST): three working days before it
crosses Easter (Good Friday 3 April and Easter Monday 6 April are English bank holidays) and a
weekend, so the pre-session evaluation is due on Wednesday 1 April and the reminder on Tuesday 7 April.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from supervision.clock import FixedClock, uk_datetime
from supervision.lifecycle import Event, apply
from supervision.models import (
    Case,
    CaseState,
    FacilitatorAssignment,
    Invitee,
    InviteStatus,
    Person,
    RequestDetails,
)
from tests.support.connector import FakeConnector
from tests.support.harness import User

SESSION_START = uk_datetime(datetime(2026, 4, 8).date(), 10)          # 09:00 UTC
PRE_DUE = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)                       # Wed 1 Apr 09:00 BST
REMINDER_DUE = datetime(2026, 4, 7, 8, 0, tzinfo=UTC)                  # Tue 7 Apr 09:00 BST
SCHEDULED_AT = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZXhhbXBsZQ%40thread.v2/0?context=%7b%22Tid%22%3a%221%22%7d"

FACILITATOR = ("user-id-2", "Adele Vance", "adelev@example.com", "Health")
FAC_USER = User(id="user-id-2", name="Adele Vance", email="adelev@example.com")
ATTENDEES = [("user-id-4", "Patti Fernandez", "pattif@example.com", "GP"),
             ("user-id-0", "Alex Wilber", "alexw@example.com", "School")]


def scheduled_case(case_id: str = "case-eval-1", *, starts_at: datetime = SESSION_START,
                   scheduled_at: datetime = SCHEDULED_AT, join_url: str = JOIN_URL,
                   facilitator: tuple[str, str, str, str] = FACILITATOR,
                   attendees: list[tuple[str, str, str, str]] | None = None,
                   with_user_ids: bool = True, profile_id: str = "bolton") -> Case:
    """A case moved through the real lifecycle to SCHEDULED (no child identifiers needed here)."""
    people = ATTENDEES if attendees is None else attendees
    clock = FixedClock(scheduled_at - timedelta(days=10))
    lead_id, lead_name, lead_email, lead_agency = people[0]
    req_id, req_name, req_email, req_agency = people[-1]
    request = RequestDetails(
        requester=Person(name=req_name, email=req_email, organisation=req_agency,
                         user_id=req_id if with_user_ids else ""),
        lead_professional=Person(name=lead_name, email=lead_email, organisation=lead_agency,
                                 user_id=lead_id if with_user_ids else ""),
        reason="Synthetic reason", level_of_need="Early Help",
        invitees=[Invitee(agency=agency, name=name, email=email, user_id=uid if with_user_ids else "",
                          status=InviteStatus.CONFIRMED) for uid, name, email, agency in people])
    case = Case(id=case_id, reference=f"MAGS-BOL-260316-{case_id[-4:].upper()}", profile_id=profile_id,
                state=CaseState.REQUESTED, created_at=clock.now(), request=request)
    apply(case, Event.SUBMIT, actor=req_email, clock=clock)
    clock.advance(days=1)
    apply(case, Event.AGREE, actor="coordinator", clock=clock)
    case.agreed_at = clock.now()
    clock.advance(days=1)
    fid, fname, femail, fagency = facilitator
    case.facilitators = [FacilitatorAssignment(name=fname, email=femail, agency=fagency,
                                               user_id=fid if with_user_ids else "", lead=True)]
    apply(case, Event.ASSIGN_FACILITATORS, actor="coordinator", clock=clock)
    clock.set(scheduled_at)
    apply(case, Event.SCHEDULE, actor=femail, clock=clock)
    case.session.starts_at = starts_at
    case.session.ends_at = starts_at + timedelta(minutes=90)
    case.session.join_url = join_url
    return case


def test_the_synthetic_case_is_scheduled_through_the_lifecycle():
    case = scheduled_case()
    assert case.state == CaseState.SCHEDULED
    assert [t.event for t in case.history] == ["submit", "agree", "assign_facilitators", "schedule"]
    assert SESSION_START == datetime(2026, 4, 8, 9, 0, tzinfo=UTC)


@dataclass
class ScriptedConnector(FakeConnector):
    """The loopback connector with one personal conversation per user (``a:personal-<user id>``) and
    scripted failures: ``script["post:<conversation>"]`` or ``script["create:<user id>"]`` is a list of
    (status, retry_after or None) answered, in order, before the request succeeds."""

    script: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)
    attempts: list[tuple[str, str, int]] = field(default_factory=list)

    def _scripted(self, key: str) -> web.Response | None:
        queue = self.script.get(key)
        if not queue:
            return None
        status, retry_after = queue.pop(0)
        self.attempts.append(("scripted", key, status))
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response({"error": {"code": "Scripted", "message": f"scripted {status}"}},
                                 status=status, headers=headers)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = (body.get("members") or [{}])[0].get("id", "")
        failure = self._scripted(f"create:{user}")
        if failure is not None:
            return failure
        self.created.append(body)
        self.attempts.append(("create", user, 200))
        return web.json_response({"id": f"a:personal-{user}", "activityId": "", "serviceUrl": self.url})

    async def _post(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        failure = self._scripted(f"post:{cid}")
        if failure is not None:
            return failure
        self.attempts.append(("post", cid, 200))
        return await super()._post(request)

    def cards_to(self, user_id: str, *, method: str = "POST") -> list[dict[str, Any]]:
        return [card for sent in self.sent if sent.conversation_id in _personal(user_id)
                and sent.method == method for card in sent.cards]

    def texts_to(self, user_id: str) -> list[str]:
        return [sent.text for sent in self.sent if sent.conversation_id in _personal(user_id)
                and sent.method == "POST" and sent.text]


def _personal(user_id: str) -> tuple[str, str]:
    """The bot-created 1:1 conversation, or the one the harness uses when the user spoke first."""
    return f"a:personal-{user_id}", f"personal-{user_id}"
