"""Azure Blob Storage behind the DocumentStore port, for several instances of the bot.

Layout in one container::

    docs/<collection>/<key>       one JSON blob per document; the blob's ETag is the document's etag
    logs/<log>/<segment>.jsonl    append blobs, one JSON line per record (a record is one block)
    leases/<name>                 empty blobs whose leases decide who runs the scheduler

``put`` with an etag sends If-Match, ``create_only`` sends If-None-Match: *; a 412 (or 409 for an
existing blob, 404 for a vanished one) becomes ``VersionConflict``, so ``CaseRepository.update``
retries on fresh state and no update is lost. Appends are atomic per block, so several instances
can append to one log; a full append blob (50,000 blocks) rolls over to the next segment.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient

from supervision.errors import VersionConflict
from supervision.ports import Stored

MIN_LEASE, MAX_LEASE = 15, 60          # what Azure allows for a finite lease, in seconds


def _name(value: str) -> str:
    return quote(value, safe="@")


def _conflict(error: HttpResponseError) -> bool:
    return error.status_code in (409, 412)


class BlobStore:
    def __init__(self, connection_string: str, container: str) -> None:
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self.container_name = container
        self.container: ContainerClient = self._service.get_container_client(container)
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._segments: dict[str, int] = {}

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if not self._ready:
                try:
                    await self.container.create_container()
                except ResourceExistsError:
                    pass
                self._ready = True

    @staticmethod
    def _doc(collection: str, key: str) -> str:
        return f"docs/{_name(collection)}/{_name(key)}"

    # --- documents --------------------------------------------------------------------------------
    async def get(self, collection: str, key: str) -> Stored | None:
        await self._ensure()
        blob = self.container.get_blob_client(self._doc(collection, key))
        try:
            download = await blob.download_blob()
            raw = await download.readall()
        except ResourceNotFoundError:
            return None
        return Stored(json.loads(raw), str(download.properties.etag))

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False,
                  with_log: tuple[str, dict[str, Any]] | None = None) -> str:
        """With ``with_log``, the record is appended once the document is written (two blobs: not one
        atomic write; a conflict on the document appends nothing)."""
        await self._ensure()
        blob = self.container.get_blob_client(self._doc(collection, key))
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        options: dict[str, Any] = {"overwrite": True}
        if create_only:
            options = {"overwrite": False}
        elif etag is not None:
            options = {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            result = await blob.upload_blob(payload, **options)
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as error:
            raise VersionConflict(f"{collection}/{key} changed") from error
        except HttpResponseError as error:
            if _conflict(error):
                raise VersionConflict(f"{collection}/{key} changed") from error
            raise
        if with_log is not None:
            await self.append(*with_log)
        return str(result["etag"])

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None:
        await self._ensure()
        blob = self.container.get_blob_client(self._doc(collection, key))
        options: dict[str, Any] = {}
        if etag is not None:
            options = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            await blob.delete_blob(**options)
        except ResourceNotFoundError:
            return
        except (ResourceModifiedError, HttpResponseError) as error:
            if isinstance(error, ResourceModifiedError) or _conflict(error):
                raise VersionConflict(f"{collection}/{key} changed") from error
            raise

    async def keys(self, collection: str, prefix: str = "") -> list[str]:
        await self._ensure()
        folder = f"docs/{_name(collection)}/"
        found = []
        async for blob in self.container.list_blobs(name_starts_with=folder + _name(prefix)):
            found.append(unquote(blob.name[len(folder):]))
        return sorted(k for k in found if k.startswith(prefix))

    # --- append-only logs -------------------------------------------------------------------------
    async def _current_segment(self, log: str) -> int:
        if log not in self._segments:
            highest = 0
            async for blob in self.container.list_blobs(name_starts_with=f"logs/{_name(log)}/"):
                stem = blob.name.rsplit("/", 1)[-1].split(".")[0]
                if stem.isdigit():
                    highest = max(highest, int(stem))
            self._segments[log] = highest
        return self._segments[log]

    async def append(self, log: str, record: dict[str, Any]) -> None:
        await self._ensure()
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        for _ in range(5):
            segment = await self._current_segment(log)
            blob = self.container.get_blob_client(f"logs/{_name(log)}/{segment:06d}.jsonl")
            try:
                await blob.append_block(line)
                return
            except ResourceNotFoundError:
                try:
                    await blob.create_append_blob(match_condition=MatchConditions.IfMissing)
                except ResourceExistsError:
                    pass
            except HttpResponseError as error:
                if error.error_code == "BlockCountExceedsLimit":
                    self._segments[log] = max(self._segments[log], segment + 1)
                    continue
                raise
        raise RuntimeError(f"could not append to log {log}")

    async def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]:
        await self._ensure()
        names = [b.name async for b in self.container.list_blobs(name_starts_with=f"logs/{_name(log)}/")]
        for name in sorted(names):
            download = await self.container.get_blob_client(name).download_blob()
            for line in (await download.readall()).splitlines():
                if line.strip():
                    yield json.loads(line)

    # --- leadership -------------------------------------------------------------------------------
    def leader_election(self) -> BlobLeaderElection:
        return BlobLeaderElection(self)

    async def close(self) -> None:
        await self.container.close()
        await self._service.close()


class BlobLease:
    def __init__(self, lease: BlobLeaseClient, seconds: int) -> None:
        self._lease, self.seconds = lease, seconds
        self._released = False

    @property
    def id(self) -> str:
        return str(self._lease.id)

    async def renew(self) -> bool:
        if self._released:
            return False
        try:
            await self._lease.renew()
            return True
        except HttpResponseError:      # expired and taken by another instance (409), or blob gone
            return False

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            await self._lease.release()
        except HttpResponseError:
            pass


class BlobLeaderElection:
    """Leadership by blob lease: only the instance holding the lease on ``leases/<name>`` leads; a
    lease not renewed expires after ``seconds`` (15 to 60) and another instance can take it."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def try_acquire(self, name: str, seconds: int) -> BlobLease | None:
        await self.store._ensure()
        seconds = min(MAX_LEASE, max(MIN_LEASE, int(seconds)))
        blob = self.store.container.get_blob_client(f"leases/{_name(name)}")
        try:
            await blob.upload_blob(b"", overwrite=False)
        except (ResourceExistsError, HttpResponseError):
            pass
        lease = BlobLeaseClient(blob)
        try:
            await lease.acquire(lease_duration=seconds)
        except HttpResponseError as error:
            if error.status_code == 409:
                return None
            raise
        return BlobLease(lease, seconds)
