"""Who is who: Teams user id, AAD object id, name and email of everyone who has talked to the bot.

Email comes from the Teams roster once per user (then cached in the store), so roles configured by
email work and invitees named by email can be reached in personal chat.

On the hot path (every turn calls ``remember``): a person whose email we know is kept in memory for
``RECENT_SECONDS`` (no store read per turn), and a user with no roster entry (a guest, another
tenant's user, a channel without a roster) is not asked for again for ``NO_ROSTER_SECONDS`` (no
connector round trip per turn). The roster call goes through the turn's pooled connector client
(bot/connector.py): aiohttp, never blocking the event loop.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from supervision.ports import DocumentStore

log = logging.getLogger(__name__)
PEOPLE = "people"
BY_EMAIL = "people_by_email"
RECENT_SECONDS = 300.0
NO_ROSTER_SECONDS = 3600.0
RECENT_SIZE = 10_000


@dataclass(frozen=True)
class KnownPerson:
    user_id: str
    name: str = ""
    email: str = ""
    aad_object_id: str = ""
    tenant_id: str = ""


class People:
    def __init__(self, store: DocumentStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._recent: OrderedDict[str, tuple[float, KnownPerson]] = OrderedDict()
        self._no_roster: dict[str, float] = {}
        self.roster_lookups = 0

    def _keep(self, person: KnownPerson) -> None:
        self._recent[person.user_id] = (self.clock() + RECENT_SECONDS, person)
        self._recent.move_to_end(person.user_id)
        while len(self._recent) > RECENT_SIZE:
            self._recent.popitem(last=False)

    def _recently_known(self, user_id: str) -> KnownPerson | None:
        found = self._recent.get(user_id)
        if found is None or found[0] <= self.clock():
            return None
        return found[1]

    async def get(self, user_id: str) -> KnownPerson | None:
        stored = await self.store.get(PEOPLE, user_id)
        return KnownPerson(**stored.data) if stored else None

    async def by_email(self, email: str) -> KnownPerson | None:
        stored = await self.store.get(BY_EMAIL, email.lower())
        return await self.get(stored.data["user_id"]) if stored else None

    async def save(self, person: KnownPerson) -> None:
        self._recent.pop(person.user_id, None)
        await self.store.put(PEOPLE, person.user_id, person.__dict__)
        if person.email:
            await self.store.put(BY_EMAIL, person.email.lower(), {"user_id": person.user_id})

    async def remember(self, ctx: TurnContext) -> KnownPerson | None:
        sender = ctx.activity.from_property
        if sender is None or not sender.id:
            return None
        recent = self._recently_known(sender.id)
        if recent is not None:
            return recent
        known = await self.get(sender.id)
        if known is not None and known.email:
            self._keep(known)
            return known
        if known is not None and self._no_roster.get(sender.id, 0.0) > self.clock():
            self._keep(known)
            return known  # asked the roster lately and it had no entry
        email, aad = "", getattr(sender, "aad_object_id", None) or ""
        try:
            self.roster_lookups += 1
            member = await TeamsInfo.get_member(ctx, sender.id)
            email = (getattr(member, "email", None) or getattr(member, "user_principal_name", None) or "").lower()
            aad = aad or getattr(member, "aad_object_id", None) or ""
        except Exception as error:  # not every channel has a roster
            log.info("no roster entry for a user: %s", type(error).__name__)
        if not email:
            self._no_roster[sender.id] = self.clock() + NO_ROSTER_SECONDS
            if len(self._no_roster) > RECENT_SIZE:
                now = self.clock()
                self._no_roster = {k: v for k, v in self._no_roster.items() if v > now}
        tenant = ""
        channel_data = ctx.activity.channel_data or {}
        if isinstance(channel_data, dict):
            tenant = (channel_data.get("tenant") or {}).get("id", "")
        person = KnownPerson(user_id=sender.id, name=sender.name or "", email=email, aad_object_id=aad,
                             tenant_id=tenant)
        if person != known:
            await self.save(person)
        self._keep(person)
        return person
