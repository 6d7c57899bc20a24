"""An in-memory DocumentStore: the reference behaviour the contract tests hold every backend to."""
from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from typing import Any

from storage.leader import LocalLeaderElection
from supervision.errors import VersionConflict
from supervision.ports import Stored


class MemoryStore:
    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Stored] = {}
        self._logs: dict[str, list[dict[str, Any]]] = {}
        self._counter = itertools.count(1)
        self._leader = LocalLeaderElection()

    async def get(self, collection: str, key: str) -> Stored | None:
        found = self._docs.get((collection, key))
        return Stored(copy.deepcopy(found.data), found.etag) if found else None

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False,
                  with_log: tuple[str, dict[str, Any]] | None = None) -> str:
        current = self._docs.get((collection, key))
        if create_only and current is not None:
            raise VersionConflict(f"{collection}/{key} exists")
        if etag is not None and (current is None or current.etag != etag):
            raise VersionConflict(f"{collection}/{key} changed")
        new_etag = f'"{next(self._counter)}"'
        self._docs[(collection, key)] = Stored(copy.deepcopy(data), new_etag)
        if with_log is not None:                 # with the document, atomically (no await between)
            self._logs.setdefault(with_log[0], []).append(copy.deepcopy(with_log[1]))
        return new_etag

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None:
        current = self._docs.get((collection, key))
        if current is None:
            return
        if etag is not None and current.etag != etag:
            raise VersionConflict(f"{collection}/{key} changed")
        del self._docs[(collection, key)]

    async def keys(self, collection: str, prefix: str = "") -> list[str]:
        return sorted(k for (c, k) in self._docs if c == collection and k.startswith(prefix))

    async def append(self, log: str, record: dict[str, Any]) -> None:
        self._logs.setdefault(log, []).append(copy.deepcopy(record))

    async def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]:
        for record in list(self._logs.get(log, [])):
            yield copy.deepcopy(record)

    def leader_election(self) -> LocalLeaderElection:
        return self._leader

    async def close(self) -> None:
        return None
