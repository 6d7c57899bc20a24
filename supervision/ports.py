"""What the use cases need from the outside world, as typing.Protocol ports.

Adapters live outside this package: ``storage/`` (TinyDB, Azure Blob), ``bot/`` (Teams, Graph).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from supervision.clock import Clock

__all__ = ["Clock", "DocumentStore", "Stored", "EventSink", "DomainEvent", "Lease", "LeaderElection"]


@dataclass(frozen=True)
class Stored:
    data: dict[str, Any]
    etag: str


class DocumentStore(Protocol):
    """Documents (JSON objects) in named collections, with optimistic concurrency.

    ``put`` with ``etag`` succeeds only if the stored document still has that etag; with
    ``create_only`` only if no document exists. Both raise ``supervision.errors.VersionConflict``
    otherwise. ``append`` adds to an append-only log; logs are never rewritten.

    ``put`` with ``with_log=(log, record)`` also appends ``record`` to ``log``, in the same write
    where the backend can (memory, TinyDB: both or neither, a conflict writes neither); where it
    cannot (Azure Blob: two blobs), the record is appended right after the document. A change and its
    audit record go together this way, and the caller waits for one durable write instead of two.
    """

    async def get(self, collection: str, key: str) -> Stored | None: ...

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False,
                  with_log: tuple[str, dict[str, Any]] | None = None) -> str: ...

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None: ...

    async def keys(self, collection: str, prefix: str = "") -> list[str]: ...

    async def append(self, log: str, record: dict[str, Any]) -> None: ...

    def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]: ...


class Lease(Protocol):
    async def renew(self) -> bool: ...

    async def release(self) -> None: ...


class LeaderElection(Protocol):
    """Only one instance runs the scheduler: whoever holds the lease."""

    async def try_acquire(self, name: str, seconds: int) -> Lease | None: ...


@dataclass(frozen=True)
class DomainEvent:
    """Something happened that people must be told about. The edge renders and sends it."""

    kind: str
    case_id: str
    at: datetime
    data: dict[str, Any]
    idempotency_key: str = ""


class EventSink(Protocol):
    async def publish(self, event: DomainEvent) -> None: ...
