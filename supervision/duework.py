"""Time-driven work, computed from stored case state, run once each (idempotency keys).

Each feature registers a ``DueWorkSource`` (what should happen for a case, and when) and a handler
per ``kind``. ``DueWorkRunner.run_due(now)`` finds work whose time has come, skips keys already
done, runs the handler and records the key. Because work is derived from case state, it survives
restarts; a key is claimed before sending and confirmed after, so a crash between the two is found
and the handler is told (``attempt > 1``) so it can check before sending again.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from supervision.clock import Clock
from supervision.errors import VersionConflict
from supervision.lifecycle import OPEN_STATES
from supervision.models import Case
from supervision.ports import DocumentStore
from supervision.repository import CaseRepository

log = logging.getLogger(__name__)
LEDGER = "due_work_ledger"
LATE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class DueWork:
    key: str                   # idempotency key: unique per piece of work, e.g. "c1:pre_eval:1"
    kind: str                  # handler name, e.g. "evaluation.pre.open"
    case_id: str
    due_at: datetime           # UTC
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    now: datetime
    late: bool                 # past due by more than LATE_AFTER: the message should say it is late
    attempt: int               # >1 when an earlier run claimed it and may or may not have sent


class DueWorkSource(Protocol):
    def __call__(self, case: Case) -> list[DueWork]: ...


DueWorkHandler = Callable[[DueWork, RunContext], Awaitable[None]]


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


class DueWorkRunner:
    def __init__(self, cases: CaseRepository, store: DocumentStore, clock: Clock) -> None:
        self.cases, self.store, self.clock = cases, store, clock
        self.sources: list[Callable[[Case], list[DueWork]]] = []
        self.handlers: dict[str, DueWorkHandler] = {}

    def add_source(self, source: Callable[[Case], list[DueWork]]) -> None:
        self.sources.append(source)

    def on(self, kind: str, handler: DueWorkHandler) -> None:
        if kind in self.handlers:
            raise ValueError(f"due-work kind {kind!r} registered twice")
        self.handlers[kind] = handler

    def work_for(self, case: Case) -> list[DueWork]:
        found: list[DueWork] = []
        for source in self.sources:
            found.extend(source(case))
        return found

    async def run_due(self, now: datetime | None = None) -> RunReport:
        now = now or self.clock.now()
        report = RunReport()
        for case_id in await self.cases.ids():
            case = await self.cases.get(case_id)
            if case is None or case.state not in OPEN_STATES:
                continue
            for work in sorted(self.work_for(case), key=lambda w: w.due_at):
                if work.due_at > now:
                    continue
                await self._run_one(work, now, report)
        return report

    async def _run_one(self, work: DueWork, now: datetime, report: RunReport) -> None:
        handler = self.handlers.get(work.kind)
        if handler is None:
            return
        stored = await self.store.get(LEDGER, work.key)
        if stored and stored.data.get("done"):
            report.skipped += 1
            return
        attempt = int(stored.data.get("attempt", 0)) + 1 if stored else 1
        claim = {"kind": work.kind, "case_id": work.case_id, "attempt": attempt, "done": False,
                 "claimed_at": now.isoformat()}
        try:
            if stored:
                await self.store.put(LEDGER, work.key, claim, etag=stored.etag)
            else:
                await self.store.put(LEDGER, work.key, claim, create_only=True)
        except VersionConflict:
            report.skipped += 1          # another runner has it
            return
        try:
            await handler(work, RunContext(now=now, late=now - work.due_at > LATE_AFTER, attempt=attempt))
        except Exception as error:
            log.error("due work %s failed: %s", work.kind, type(error).__name__)
            report.failed.append(work.key)
            return
        await self.store.put(LEDGER, work.key, {**claim, "done": True, "done_at": now.isoformat()})
        report.ran.append(work.key)
