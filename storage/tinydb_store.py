"""The embedded default: TinyDB documents under a data folder.

First version: one TinyDB file per collection, with file I/O run off the event loop.
(Crash safety, single-writer locking and partitioning: see the storage issue.)
"""
from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from supervision.errors import VersionConflict
from supervision.ports import Stored


class TinyDBStore:
    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._dbs: dict[str, TinyDB] = {}
        self._lock = asyncio.Lock()

    def _db(self, collection: str) -> TinyDB:
        if collection not in self._dbs:
            self._dbs[collection] = TinyDB(self.folder / f"{collection}.json")
        return self._dbs[collection]

    async def _run(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    def _get(self, collection: str, key: str) -> Stored | None:
        row = self._db(collection).get(Query().key == key)
        return Stored(row["data"], row["etag"]) if row else None  # type: ignore[index]

    async def get(self, collection: str, key: str) -> Stored | None:
        return await self._run(self._get, collection, key)  # type: ignore[no-any-return]

    def _put(self, collection: str, key: str, data: dict[str, Any], etag: str | None, create_only: bool) -> str:
        current = self._get(collection, key)
        if create_only and current is not None:
            raise VersionConflict(f"{collection}/{key} exists")
        if etag is not None and (current is None or current.etag != etag):
            raise VersionConflict(f"{collection}/{key} changed")
        new_etag = f'"{secrets.token_hex(8)}"'
        self._db(collection).upsert({"key": key, "data": json.loads(json.dumps(data)), "etag": new_etag},
                                    Query().key == key)
        return new_etag

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False) -> str:
        return await self._run(self._put, collection, key, data, etag, create_only)  # type: ignore[no-any-return]

    def _delete(self, collection: str, key: str, etag: str | None) -> None:
        current = self._get(collection, key)
        if current is None:
            return
        if etag is not None and current.etag != etag:
            raise VersionConflict(f"{collection}/{key} changed")
        self._db(collection).remove(Query().key == key)

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None:
        await self._run(self._delete, collection, key, etag)

    async def keys(self, collection: str, prefix: str = "") -> list[str]:
        rows = await self._run(self._db(collection).all)
        return sorted(r["key"] for r in rows if r["key"].startswith(prefix))

    async def append(self, log: str, record: dict[str, Any]) -> None:
        await self._run(self._db(f"log_{log}").insert, record)

    async def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]:
        rows = await self._run(self._db(f"log_{log}").all)
        for row in rows:
            yield dict(row)

    async def close(self) -> None:
        for db in self._dbs.values():
            db.close()
