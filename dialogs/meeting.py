"""Teams meeting events. On ``application/vnd.microsoft.meetingEnd`` for a session's meeting (its
JoinUrl matches ``case.session.join_url``) the case moves to HELD and ``session.held`` is published,
so the post-session evaluation goes out (dialogs/evaluation.py) and the record can start.

botbuilder 4.17.1 loses the event's fields on typed deserialisation, so the raw ``activity.value``
dict is read here: ``{Id, Title, JoinUrl, EndTime}``.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from botbuilder.dialogs import Dialog

from bot.handler import MEETING_END
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from supervision.clock import as_utc
from supervision.errors import DomainError
from supervision.evaluation import MeetingIndex, mark_session_held

log = logging.getLogger(__name__)


def _field(value: Any, name: str) -> str:
    if not isinstance(value, dict):
        return ""
    found = value.get(name, value.get(name[:1].lower() + name[1:], ""))
    return found if isinstance(found, str) else ""


def parse_end_time(text: str, now: datetime) -> datetime:
    """The meeting's EndTime (UTC), or now when missing, unreadable or in the future."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return now
    if when.tzinfo is None:
        return now
    when = as_utc(when)
    return when if when <= now else now


def register(router: Router, services: Services) -> list[Dialog]:
    index = MeetingIndex(services.store, services.cases)
    listeners = getattr(services.cases, "listeners", None)
    if isinstance(listeners, list):
        listeners.append(index.index_case)
    services.features["meetings"] = index

    async def meeting_end(turn: Turn) -> None:
        value = turn.activity.value
        join_url = _field(value, "JoinUrl")
        case = await index.find(join_url)
        if case is None:
            log.info("meeting end for a meeting that is not a session")
            return
        held_at = parse_end_time(_field(value, "EndTime"), services.clock.now())
        try:
            case, changed = await mark_session_held(cases=services.cases, audit=services.audit, events=services.events,
                                                    clock=services.clock, case_id=case.id, actor=None,
                                                    source="meeting_end", held_at=held_at,
                                                    where={"conversation_id": turn.activity.conversation.id,
                                                           "service_url": turn.activity.service_url or ""})
        except DomainError as error:   # e.g. the case was cancelled: nothing to do for a meeting event
            log.info("meeting end for case %s not applied: %s", case.id, type(error).__name__)
            return
        # The meeting chat is a group conversation: the reference only, never identifiers.
        key = "meeting_end.held" if changed else "meeting_end.already"
        await turn.send_text(turn.t(key, reference=case.reference))

    router.event(MEETING_END, meeting_end)
    return []
