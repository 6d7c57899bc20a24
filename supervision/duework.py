"""Time-driven work, computed from stored case state, run once each (idempotency keys).

How a feature uses it
---------------------
* ``runner.add_source(fn)``: ``fn(case) -> list[DueWork]`` says what should happen for a case and
  when (UTC), computed from the stored case alone (pure and fast: it runs on every case change).
  Sources see open cases only unless added with ``include_closed=True`` (retention).
* ``runner.on(kind, handler)``: ``await handler(work, ctx)`` does it. ``ctx`` is a ``RunContext``:
  ``now``, ``late`` (past due by more than ``LATE_AFTER``: the message must say it is late; see
  ``late_text``), ``attempt`` (> 1 when an earlier run claimed the work and may have sent part of it).
* Sending to several people: wrap each send in ``await ctx.once(sub_key, send, recipient=name)``.
  The sub-key (e.g. ``"to:patti@example.com"``) is claimed in the store before sending and confirmed
  with the outgoing activity id after, so a re-run after a crash never sends it twice: a sub-key
  found claimed but unconfirmed is *not* sent again; it is reported (``on_problem``) so that a person
  can check. A ``PermanentDeliveryFailure`` (bot not installed for that user, conversation gone) is
  recorded, reported to the case's facilitator by the edge, and never retried.

How it stays fast
-----------------
A due index (collection ``due_work_index``, ``INDEX_SHARDS`` documents) keeps each case's next due
time. It is updated whenever the case changes (``CaseRepository`` listeners) and after each run, so
a pass reads the index shards and loads only the cases with something due. ``rebuild_index`` scans
every case (at start-up and now and then, in case a write bypassed the repository).

Ledgers
-------
``due_work_ledger``: one document per work key (claim, attempt, done; a claim older than
``CLAIM_TIMEOUT`` and not done was lost in a crash and is taken over with ``attempt + 1``; a failed
run is retried with backoff, up to ``MAX_ATTEMPTS``). ``due_work_sends``: one per work key, the
state of each sub-key's send (sending, sent + activity id, failed, undeliverable, unconfirmed).
``due_work_done``: per case, the keys finished, so re-indexing a changed case needs no per-key reads.

The one gap left by design: a send claimed and then interrupted by a crash before its answer was
recorded cannot be told apart from one that went, so it is never repeated (nothing goes twice) and
the facilitator is told to check with that person instead.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from supervision.clock import Clock, as_utc, format_uk_datetime
from supervision.errors import VersionConflict
from supervision.lifecycle import OPEN_STATES
from supervision.models import Case
from supervision.ports import DocumentStore
from supervision.repository import CaseRepository

log = logging.getLogger(__name__)
LEDGER = "due_work_ledger"
SENDS = "due_work_sends"
DONE = "due_work_done"
INDEX = "due_work_index"
INDEX_META = "due_work_index_meta"
INDEX_SHARDS = 64
LATE_AFTER = timedelta(hours=1)
CLAIM_TIMEOUT = timedelta(minutes=10)     # a claim older than this, not confirmed, was lost in a crash
MAX_ATTEMPTS = 8                          # transient failures: retried with backoff, then given up
CONCURRENCY = 32                          # cases run at once in a pass


@dataclass(frozen=True)
class DueWork:
    key: str                   # idempotency key: unique per piece of work, e.g. "c1:s1:evaluation.pre"
    kind: str                  # handler name, e.g. "evaluation.pre.open"
    case_id: str
    due_at: datetime           # UTC
    data: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None    # past this it is pointless: recorded as expired, not run


class Delivery(StrEnum):
    SENT = "sent"                      # sent now
    ALREADY_SENT = "already_sent"      # an earlier run sent it (confirmed): not sent again
    UNCONFIRMED = "unconfirmed"        # an earlier run crashed between sending and recording: not sent again
    UNDELIVERABLE = "undeliverable"    # permanent failure (403, 404, unknown user): not retried
    SKIPPED = "skipped"                # unconfirmed or undeliverable already reported by an earlier run


@dataclass(frozen=True)
class SendOutcome:
    status: Delivery
    activity_id: str = ""
    detail: str = ""

    @property
    def delivered(self) -> bool:
        return self.status in (Delivery.SENT, Delivery.ALREADY_SENT)


class PermanentDeliveryFailure(Exception):
    """Raised by the edge when a message can never be delivered as addressed (HTTP 403: the bot is not
    installed for that user; 404: conversation not found; no Teams identity known)."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class DeliveryProblem:
    """Told to ``on_problem`` handlers (the edge reports it to the case's facilitator)."""

    case_id: str
    kind: str
    work_key: str
    recipient: str
    status: Delivery
    reason: str
    http_status: int = 0


ProblemHandler = Callable[[DeliveryProblem], Awaitable[None]]
SendFn = Callable[[], Awaitable[str]]


class SendLedger:
    """Per-recipient sub-keys of one piece of work, claimed ("sending") before sending and confirmed
    ("sent", with the activity id) after. One document per work key (``SENDS``), written with its
    etag (a runner that lost its claim stops) and group-committed: sends running together share
    the writes, while each claim is still stored before its own send starts."""

    def __init__(self, store: DocumentStore, work: DueWork, now: datetime,
                 report: Callable[[DeliveryProblem], Awaitable[None]] | None = None) -> None:
        self.store, self.work, self.now, self._report = store, work, now, report
        self.outcomes: dict[str, SendOutcome] = {}
        self._active: set[str] = set()
        self._subs: dict[str, dict[str, Any]] | None = None
        self._etag: str | None = None
        self._load_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._changes = 0          # in-memory changes made
        self._stored = 0           # changes known to be in the store

    async def _load(self) -> dict[str, dict[str, Any]]:
        async with self._load_lock:
            if self._subs is None:
                stored = await self.store.get(SENDS, self.work.key)
                self._subs = dict(stored.data.get("subs", {})) if stored else {}
                self._etag = stored.etag if stored else None
        return self._subs

    async def _set(self, sub: str, record: dict[str, Any]) -> None:
        """Record ``sub``'s state and return once it is in the store (group commit)."""
        subs = await self._load()
        subs[sub] = record
        self._changes += 1
        mine = self._changes
        async with self._write_lock:
            if self._stored >= mine:
                return                       # written by a caller that went before us
            upto = self._changes
            data = {"work": self.work.key, "case_id": self.work.case_id, "subs": dict(subs)}
            if self._etag is None:
                self._etag = await self.store.put(SENDS, self.work.key, data, create_only=True)
            else:
                self._etag = await self.store.put(SENDS, self.work.key, data, etag=self._etag)
            self._stored = upto

    async def once(self, sub: str, send: SendFn, *, recipient: str = "") -> SendOutcome:
        if sub in self.outcomes:             # the same sub-key twice in one run: the first answer holds
            return self.outcomes[sub]
        if sub in self._active:
            return SendOutcome(Delivery.SKIPPED, detail="already being sent by this run")
        self._active.add(sub)
        try:
            return await self._once(sub, send, recipient)
        finally:
            self._active.discard(sub)

    async def _once(self, sub: str, send: SendFn, recipient: str) -> SendOutcome:
        record = (await self._load()).get(sub) or {}
        state = record.get("state")
        if state == "sent":
            outcome = SendOutcome(Delivery.ALREADY_SENT, str(record.get("activity_id", "")))
        elif state in ("unconfirmed", "undeliverable"):
            outcome = SendOutcome(Delivery.SKIPPED, detail=str(record.get("reason", "")))
        elif state == "sending":
            # An earlier run claimed this send and never confirmed it: it may have gone. Never twice.
            await self._set(sub, {**record, "state": "unconfirmed", "found_at": self.now.isoformat()})
            outcome = SendOutcome(Delivery.UNCONFIRMED, detail="crashed between sending and recording")
            await self._problem(recipient or str(record.get("recipient") or sub), outcome, "unconfirmed")
        else:
            outcome = await self._send(sub, send, recipient or sub)
        self.outcomes[sub] = outcome
        return outcome

    async def _send(self, sub: str, send: SendFn, recipient: str) -> SendOutcome:
        claim = {"state": "sending", "recipient": recipient, "claimed_at": self.now.isoformat()}
        await self._set(sub, claim)
        try:
            activity_id = await send()
        except PermanentDeliveryFailure as failure:
            await self._set(sub, {**claim, "state": "undeliverable", "reason": failure.reason,
                                  "http_status": failure.status})
            outcome = SendOutcome(Delivery.UNDELIVERABLE, detail=failure.reason)
            await self._problem(recipient, outcome, failure.reason, failure.status)
            return outcome
        except Exception:
            # The send failed with an answer (or no connection): a later attempt may try again.
            # (Cancelled or killed, the claim stays "sending": unknown, so never sent again.)
            await self._set(sub, {**claim, "state": "failed"})
            raise
        await self._set(sub, {**claim, "state": "sent", "activity_id": activity_id or "",
                              "sent_at": self.now.isoformat()})
        return SendOutcome(Delivery.SENT, activity_id or "")

    async def _problem(self, recipient: str, outcome: SendOutcome, reason: str, http_status: int = 0) -> None:
        if self._report is not None:
            await self._report(DeliveryProblem(self.work.case_id, self.work.kind, self.work.key, recipient,
                                               outcome.status, reason, http_status))


@dataclass(frozen=True)
class RunContext:
    now: datetime
    late: bool                 # past due by more than LATE_AFTER: the message should say it is late
    attempt: int               # >1 when an earlier run claimed it and may or may not have sent
    due_at: datetime | None = None
    sends: SendLedger | None = None

    async def once(self, sub: str, send: SendFn, *, recipient: str = "") -> SendOutcome:
        """Send at most once per (work key, ``sub``), across crashes and restarts."""
        if self.sends is None:       # a handler called outside the runner (tests): just send
            return SendOutcome(Delivery.SENT, await send())
        return await self.sends.once(sub, send, recipient=recipient)

    @property
    def lateness(self) -> timedelta:
        return self.now - self.due_at if self.due_at is not None else timedelta(0)


def late_text(t: Callable[..., str], ctx: RunContext) -> str:
    """The sentence a late message carries ("" when on time). ``t`` is a Catalogue."""
    if not ctx.late or ctx.due_at is None:
        return ""
    return str(t("due.late", due=format_uk_datetime(ctx.due_at)))


class DueWorkSource(Protocol):
    def __call__(self, case: Case) -> list[DueWork]: ...


DueWorkHandler = Callable[[DueWork, RunContext], Awaitable[None]]


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    problems: list[DeliveryProblem] = field(default_factory=list)
    cases_read: int = 0


def shard_of(case_id: str) -> str:
    return f"shard-{zlib.crc32(case_id.encode()) % INDEX_SHARDS:03d}"


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


class DueWorkRunner:
    def __init__(self, cases: CaseRepository, store: DocumentStore, clock: Clock) -> None:
        self.cases, self.store, self.clock = cases, store, clock
        self.sources: list[Callable[[Case], list[DueWork]]] = []
        self._closed_sources: list[Callable[[Case], list[DueWork]]] = []
        self.handlers: dict[str, DueWorkHandler] = {}
        self.problem_handlers: list[ProblemHandler] = []
        self.runner_id = uuid.uuid4().hex[:12]
        self._in_flight: set[str] = set()
        listeners = getattr(cases, "listeners", None)
        if isinstance(listeners, list):
            listeners.append(self.index_case)

    # --- registration -------------------------------------------------------------------------
    def add_source(self, source: Callable[[Case], list[DueWork]], *, include_closed: bool = False) -> None:
        self.sources.append(source)
        if include_closed:
            self._closed_sources.append(source)

    def on(self, kind: str, handler: DueWorkHandler) -> None:
        if kind in self.handlers:
            raise ValueError(f"due-work kind {kind!r} registered twice")
        self.handlers[kind] = handler

    def on_problem(self, handler: ProblemHandler) -> None:
        self.problem_handlers.append(handler)

    def work_for(self, case: Case) -> list[DueWork]:
        sources = self.sources if case.state in OPEN_STATES else self._closed_sources
        found: list[DueWork] = []
        for source in sources:
            try:
                found.extend(source(case))
            except Exception as error:  # one broken source must not stop the others
                log.error("due-work source %s failed for case %s: %s", getattr(source, "__name__", source),
                          case.id, type(error).__name__)
        return found

    # --- the due index ----------------------------------------------------------------------------
    async def _done_keys(self, case_id: str) -> set[str]:
        stored = await self.store.get(DONE, case_id)
        return set(stored.data.get("keys", [])) if stored else set()

    async def _mark_done(self, case_id: str, key: str) -> None:
        for _ in range(20):
            stored = await self.store.get(DONE, case_id)
            keys = list(stored.data.get("keys", [])) if stored else []
            if key in keys:
                return
            keys.append(key)
            try:
                if stored:
                    await self.store.put(DONE, case_id, {"keys": keys}, etag=stored.etag)
                else:
                    await self.store.put(DONE, case_id, {"keys": keys}, create_only=True)
                return
            except VersionConflict:
                continue

    def _next_due(self, work: list[DueWork], done: set[str], retry_at: dict[str, datetime]) -> datetime | None:
        times = [retry_at.get(w.key, w.due_at) for w in work if w.key not in done and w.kind in self.handlers]
        return min(times) if times else None

    async def _write_index(self, case_id: str, next_due: datetime | None, version: int,
                           only_if_version: int | None = None) -> None:
        await self._write_shard(shard_of(case_id), {case_id: (next_due, version, only_if_version)})

    async def _write_shard(self, shard: str,
                           changes: dict[str, tuple[datetime | None, int, int | None]]) -> None:
        """Apply (next due, case version, only-if-version) per case to one index shard, in one write."""
        for _ in range(50):
            stored = await self.store.get(INDEX, shard)
            entries: dict[str, Any] = dict(stored.data.get("cases", {})) if stored else {}
            changed = False
            for case_id, (next_due, version, only_if_version) in changes.items():
                current = entries.get(case_id)
                if only_if_version is not None and current is not None and current[1] > only_if_version:
                    continue             # the case changed meanwhile; its own re-index is newer
                if next_due is None:
                    if case_id in entries:
                        entries.pop(case_id)
                        changed = True
                    continue
                entry = [as_utc(next_due).isoformat(), version]
                if current != entry:
                    entries[case_id] = entry
                    changed = True
            if not changed:
                return
            try:
                if stored:
                    await self.store.put(INDEX, shard, {"cases": entries}, etag=stored.etag)
                else:
                    await self.store.put(INDEX, shard, {"cases": entries}, create_only=True)
                return
            except VersionConflict:
                continue
        raise VersionConflict(f"due index shard {shard} kept changing")

    async def index_case(self, case: Case) -> None:
        """Keep the case's next due time in the index (called on every case change)."""
        try:
            work = self.work_for(case)
            next_due = self._next_due(work, await self._done_keys(case.id) if work else set(), {})
            await self._write_index(case.id, next_due, case.version)
        except Exception as error:  # the index is an optimisation: a rebuild repairs it
            log.error("due index update failed for case %s: %s", case.id, type(error).__name__)

    async def rebuild_index(self) -> int:
        """Scan every case and rewrite the index from scratch. Returns the number of cases indexed."""
        shards: dict[str, dict[str, Any]] = {}
        for count, case_id in enumerate(await self.cases.ids()):
            if count % 100 == 99:
                await asyncio.sleep(0)   # an in-memory store never suspends: let turns in meanwhile
            case = await self.cases.get(case_id)
            if case is None:
                continue
            work = self.work_for(case)
            if not work:
                continue
            next_due = self._next_due(work, await self._done_keys(case.id), {})
            if next_due is not None:
                shards.setdefault(shard_of(case_id), {})[case_id] = [as_utc(next_due).isoformat(), case.version]
        for index in range(INDEX_SHARDS):
            name = f"shard-{index:03d}"
            await self.store.put(INDEX, name, {"cases": shards.get(name, {})})
        await self.store.put(INDEX_META, "meta", {"built_at": self.clock.now().isoformat()})
        return sum(len(v) for v in shards.values())

    async def index_built(self) -> bool:
        return await self.store.get(INDEX_META, "meta") is not None

    async def due_case_ids(self, now: datetime) -> list[str]:
        limit = as_utc(now).isoformat()
        due: list[tuple[str, str]] = []
        shards = await asyncio.gather(*(self.store.get(INDEX, f"shard-{i:03d}") for i in range(INDEX_SHARDS)))
        for stored in shards:
            if stored is None:
                continue
            for case_id, (next_iso, _version) in stored.data.get("cases", {}).items():
                # ISO strings of UTC datetimes with the same offset compare in time order
                if next_iso <= limit:
                    due.append((next_iso, case_id))
        return [case_id for _, case_id in sorted(due)]

    # --- running ------------------------------------------------------------------------------------
    async def run_due(self, now: datetime | None = None) -> RunReport:
        """Run everything due by ``now`` (catching up after downtime), reading only due cases.

        The index is kept by the repository on every case change; ``rebuild_index`` (the scheduler at
        start-up and every few hours, ``run-due`` when it finds no index) covers cases written before
        the index existed or behind the repository's back."""
        now = as_utc(now or self.clock.now())
        report = RunReport()
        due = await self.due_case_ids(now)
        semaphore = asyncio.Semaphore(CONCURRENCY)
        updates: dict[str, dict[str, tuple[datetime | None, int, int | None]]] = {}

        async def one(case_id: str) -> None:
            async with semaphore:
                await self._run_case(case_id, now, report, updates)

        await asyncio.gather(*(one(case_id) for case_id in due))
        # each case's next due time, one write per shard for the whole pass
        await asyncio.gather(*(self._write_shard(shard, changes) for shard, changes in updates.items()))
        return report

    async def run_case(self, case_id: str, now: datetime | None = None) -> RunReport:
        """Run what is due for one case now (after a change that makes work due at once)."""
        report = RunReport()
        await self._run_case(case_id, as_utc(now or self.clock.now()), report)
        return report

    async def _run_case(self, case_id: str, now: datetime, report: RunReport,
                        updates: dict[str, dict[str, tuple[datetime | None, int, int | None]]] | None = None) -> None:
        case = await self.cases.get(case_id)
        report.cases_read += 1
        if case is None:
            await self._write_index(case_id, None, 0)
            return
        work = sorted(self.work_for(case), key=lambda w: w.due_at)
        done = await self._done_keys(case_id) if work else set()
        retry_at: dict[str, datetime] = {}
        for item in work:
            if item.due_at > now or item.key in done or item.kind not in self.handlers:
                continue
            result = await self._run_one(item, now, report)
            if result == "done":
                done.add(item.key)
            elif isinstance(result, datetime):
                retry_at[item.key] = result
        next_due = self._next_due(work, done, retry_at)
        if updates is None:
            await self._write_index(case_id, next_due, case.version, only_if_version=case.version)
        else:
            updates.setdefault(shard_of(case_id), {})[case_id] = (next_due, case.version, case.version)

    async def _run_one(self, work: DueWork, now: datetime, report: RunReport) -> str | datetime | None:
        """Returns "done", a retry time, or None (someone else has it)."""
        handler = self.handlers[work.kind]
        if work.key in self._in_flight:
            report.skipped += 1
            return None
        stored = await self.store.get(LEDGER, work.key)
        if stored and stored.data.get("done"):
            await self._mark_done(work.case_id, work.key)
            report.skipped += 1
            return "done"
        if stored and not stored.data.get("done") and stored.data.get("retry_at") \
                and datetime.fromisoformat(stored.data["retry_at"]) > now:
            return datetime.fromisoformat(stored.data["retry_at"])
        if stored and stored.data.get("runner") != self.runner_id and not stored.data.get("failed_at"):
            claimed = datetime.fromisoformat(stored.data.get("claimed_at", now.isoformat()))
            if now - claimed < CLAIM_TIMEOUT and self.clock.now() - claimed < CLAIM_TIMEOUT:
                report.skipped += 1          # another live runner is on it
                return now + CLAIM_TIMEOUT
        attempt = int(stored.data.get("attempt", 0)) + 1 if stored else 1
        claim = {"kind": work.kind, "case_id": work.case_id, "attempt": attempt, "done": False,
                 "claimed_at": now.isoformat(), "runner": self.runner_id, "due_at": work.due_at.isoformat()}
        try:
            if stored:
                await self.store.put(LEDGER, work.key, claim, etag=stored.etag)
            else:
                await self.store.put(LEDGER, work.key, claim, create_only=True)
        except VersionConflict:
            report.skipped += 1          # another runner has it
            return None
        if work.expires_at is not None and now > work.expires_at:
            await self._finish(work, claim, now, outcome="expired")
            report.expired.append(work.key)
            return "done"
        self._in_flight.add(work.key)
        problems: list[DeliveryProblem] = []

        async def reported(problem: DeliveryProblem) -> None:
            problems.append(problem)
            report.problems.append(problem)
            await self._tell(problem)

        ledger = SendLedger(self.store, work, now, reported)
        ctx = RunContext(now=now, late=now - work.due_at > LATE_AFTER, attempt=attempt, due_at=work.due_at,
                         sends=ledger)
        try:
            await handler(work, ctx)
        except PermanentDeliveryFailure as failure:
            await reported(DeliveryProblem(work.case_id, work.kind, work.key, "", Delivery.UNDELIVERABLE,
                                           failure.reason, failure.status))
            await self._finish(work, claim, now, outcome="undeliverable")
            report.ran.append(work.key)
            return "done"
        except Exception as error:
            log.error("due work %s for case %s failed (attempt %d): %s", work.kind, work.case_id, attempt,
                      type(error).__name__)
            report.failed.append(work.key)
            if attempt >= MAX_ATTEMPTS:
                await self._finish(work, claim, now, outcome="abandoned")
                return "done"
            retry = now + min(timedelta(minutes=2 ** attempt), timedelta(hours=2))
            await self.store.put(LEDGER, work.key, {**claim, "failed_at": now.isoformat(),
                                                    "retry_at": retry.isoformat(), "error": type(error).__name__})
            return retry
        finally:
            self._in_flight.discard(work.key)
        await self._finish(work, claim, now, outcome="done")
        report.ran.append(work.key)
        return "done"

    async def _finish(self, work: DueWork, claim: dict[str, Any], now: datetime, *, outcome: str) -> None:
        await self.store.put(LEDGER, work.key, {**claim, "done": True, "outcome": outcome,
                                                "done_at": now.isoformat()})
        await self._mark_done(work.case_id, work.key)

    async def _tell(self, problem: DeliveryProblem) -> None:
        for handler in self.problem_handlers:
            try:
                await handler(problem)
            except Exception as error:
                log.error("reporting a delivery problem for case %s failed: %s", problem.case_id,
                          type(error).__name__)
