"""Leadership inside one process (the TinyDB and in-memory stores have a single writer).

Same contract as the blob lease: ``try_acquire`` returns a Lease or None while someone else holds it;
a lease not renewed within its duration expires and can be taken by another holder.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable


class LocalLease:
    def __init__(self, election: LocalLeaderElection, name: str, token: int, seconds: int) -> None:
        self.election, self.name, self.token, self.seconds = election, name, token, seconds

    async def renew(self) -> bool:
        return self.election._renew(self.name, self.token, self.seconds)

    async def release(self) -> None:
        self.election._release(self.name, self.token)


class LocalLeaderElection:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._held: dict[str, tuple[int, float]] = {}      # name -> (token, expires at)
        self._tokens = itertools.count(1)
        self._lock = asyncio.Lock()
        self._now = monotonic

    async def try_acquire(self, name: str, seconds: int) -> LocalLease | None:
        async with self._lock:
            held = self._held.get(name)
            if held is not None and held[1] > self._now():
                return None
            token = next(self._tokens)
            self._held[name] = (token, self._now() + seconds)
            return LocalLease(self, name, token, seconds)

    def _renew(self, name: str, token: int, seconds: int) -> bool:
        held = self._held.get(name)
        if held is None or held[0] != token or held[1] <= self._now():
            return False
        self._held[name] = (token, self._now() + seconds)
        return True

    def _release(self, name: str, token: int) -> None:
        held = self._held.get(name)
        if held is not None and held[0] == token:
            del self._held[name]
