"""Repositories over the DocumentStore port: cases, drafts, indexes and the audit log."""
from __future__ import annotations

import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from supervision.aio import gather_eagerly
from supervision.clock import Clock
from supervision.codec import from_data, to_data
from supervision.errors import NotFound, VersionConflict
from supervision.models import Case
from supervision.ports import DocumentStore

T = TypeVar("T")
CASES = "cases"
USER_INDEX = "user_cases"
AUDIT_LOG = "audit"
MAX_RETRIES = 20


class CaseRepository:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        # called with each case after it is written (the due-work index keeps its next due time)
        self.listeners: list[Callable[[Case], Awaitable[None]]] = []

    async def get(self, case_id: str) -> Case | None:
        stored = await self.store.get(CASES, case_id)
        return from_data(Case, stored.data) if stored else None

    async def require(self, case_id: str) -> Case:
        case = await self.get(case_id)
        if case is None:
            raise NotFound(f"no case {case_id}", case_id=case_id)
        return case

    async def create(self, case: Case) -> Case:
        case.version = 1
        await self.store.put(CASES, case.id, to_data(case), create_only=True)
        await self._index(case)
        await self._changed(case)
        return case

    async def update(self, case_id: str, change: Callable[[Case], Awaitable[T] | T], *,
                     audit: Callable[[Case, T], dict[str, Any] | None] | None = None) -> tuple[Case, T]:
        """Read, change and write back; a conflicting write is retried on fresh state, never lost.

        ``audit(case, result)`` gives the audit record of the change (``AuditLog.entry``), or None when
        there is nothing to record: it is written with the case (the store's ``with_log``: one durable
        write, and neither without the other)."""
        for _ in range(MAX_RETRIES):
            stored = await self.store.get(CASES, case_id)
            if stored is None:
                raise NotFound(f"no case {case_id}", case_id=case_id)
            case = from_data(Case, stored.data)
            result = change(case)
            if hasattr(result, "__await__"):
                result = await result  # type: ignore[misc]
            case.version += 1
            record = audit(case, result) if audit is not None else None  # type: ignore[arg-type]
            try:
                await self.store.put(CASES, case_id, to_data(case), etag=stored.etag,
                                     with_log=(AUDIT_LOG, record) if record is not None else None)
            except VersionConflict:
                continue
            await self._index(case)
            await self._changed(case)
            return case, result  # type: ignore[return-value]
        raise VersionConflict(f"case {case_id} kept changing; gave up after {MAX_RETRIES} tries")

    async def ids(self) -> list[str]:
        return await self.store.keys(CASES)

    async def for_user(self, user_key: str) -> list[Case]:
        stored = await self.store.get(USER_INDEX, user_key.lower())
        cases = []
        for case_id in (stored.data.get("cases", []) if stored else []):
            case = await self.get(case_id)
            if case is not None:
                cases.append(case)
        return cases

    async def _changed(self, case: Case) -> None:
        for listener in self.listeners:
            await listener(case)

    async def _index(self, case: Case) -> None:
        keys = {key.lower() for key in case.member_ids() | case.member_emails()}
        # eagerly: with the case already in every member's index (the usual update) and the store
        # answering from memory, this costs no task and no turn of the event loop
        await gather_eagerly(*(add_to_index(self.store, USER_INDEX, key, case.id) for key in sorted(keys)))


async def add_to_index(store: DocumentStore, collection: str, key: str, value: str) -> None:
    for _ in range(MAX_RETRIES):
        stored = await store.get(collection, key)
        values: list[str] = list(stored.data.get("cases", [])) if stored else []
        if value in values:
            return
        values.append(value)
        try:
            if stored:
                await store.put(collection, key, {"cases": values}, etag=stored.etag)
            else:
                await store.put(collection, key, {"cases": values}, create_only=True)
            return
        except VersionConflict:
            continue


class AuditLog:
    """Append-only: every read and change of case data, with who, when, what and why."""

    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self.store, self.clock = store, clock
        # record ids from a generator seeded once from the OS: unique, not secret, and no system call
        # (with the interpreter lock given up and taken back) on every audited turn
        self._ids = random.Random(secrets.randbits(128))

    def entry(self, *, actor: str, action: str, case_id: str = "", what: str = "", why: str = "",
              allowed: bool = True) -> dict[str, Any]:
        """One audit record, to ``record`` now or to write with a case change (``CaseRepository.update``'s
        ``audit``)."""
        return {"id": f"{self._ids.getrandbits(64):016x}", "at": self.clock.now().isoformat(), "actor": actor,
                "action": action, "case_id": case_id, "what": what, "why": why, "allowed": allowed}

    async def record(self, *, actor: str, action: str, case_id: str = "", what: str = "",
                     why: str = "", allowed: bool = True) -> None:
        await self.store.append(AUDIT_LOG, self.entry(actor=actor, action=action, case_id=case_id, what=what,
                                                      why=why, allowed=allowed))

    async def entries(self, case_id: str | None = None) -> list[dict[str, Any]]:
        found = []
        async for entry in self.store.read_log(AUDIT_LOG):
            if case_id is None or entry.get("case_id") == case_id:
                found.append(entry)
        return found


def new_reference(now: datetime, profile_id: str) -> str:
    """A case reference with no identifying content: MAGS-<profile>-<yymmdd>-<random>."""
    return f"MAGS-{profile_id[:3].upper()}-{now:%y%m%d}-{secrets.token_hex(2).upper()}"
