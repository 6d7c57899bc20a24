"""The EventSink the use cases publish to: each event kind has handlers that render cards and send them."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from supervision.ports import DomainEvent

log = logging.getLogger(__name__)
EventRenderer = Callable[[DomainEvent], Awaitable[None]]


class EventDispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, list[EventRenderer]] = {}
        self.published: list[DomainEvent] = []   # kept for the turn's diagnostics and tests
        self.keep = 200

    def on(self, kind: str, handler: EventRenderer) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def publish(self, event: DomainEvent) -> None:
        self.published.append(event)
        del self.published[:-self.keep]
        for handler in self._handlers.get(event.kind, []):
            try:
                await handler(event)
            except Exception as error:  # one failing notification must not undo the use case
                log.error("notification %s for case %s failed: %s", event.kind, event.case_id,
                          type(error).__name__)
