"""Who is who: Teams user id, AAD object id, name and email of everyone who has talked to the bot.

Email comes from the Teams roster once per user (then cached in the store), so roles configured by
email work and invitees named by email can be reached in personal chat.

Someone named only by email (an invitee, a lead professional, an action owner) who has never talked
to the bot is looked up in the team's roster (``roster``: the coordinators' team, read through the
connector, see ``team_roster``): every member found is kept, and the roster is read again at most
every ``ROSTER_RETRY_SECONDS`` while addresses stay unknown (guests and other tenants' users are not
in it).

On the hot path (every turn calls ``remember``): a person whose email we know is kept in memory for
``RECENT_SECONDS`` (no store read per turn), and a user with no roster entry (a guest, another
tenant's user, a channel without a roster) is not asked for again for ``NO_ROSTER_SECONDS`` (no
connector round trip per turn). The roster call goes through the turn's pooled connector client
(bot/connector.py): aiohttp, never blocking the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from supervision.ports import DocumentStore

log = logging.getLogger(__name__)
PEOPLE = "people"
BY_EMAIL = "people_by_email"
RECENT_SECONDS = 300.0
NO_ROSTER_SECONDS = 3600.0
RECENT_SIZE = 10_000
ROSTER_RETRY_SECONDS = 600.0


@dataclass(frozen=True)
class KnownPerson:
    user_id: str
    name: str = ""
    email: str = ""
    aad_object_id: str = ""
    tenant_id: str = ""


RosterSource = Callable[[], Awaitable[list[KnownPerson]]]


class People:
    def __init__(self, store: DocumentStore, clock: Callable[[], float] = time.monotonic,
                 roster: RosterSource | None = None) -> None:
        self.store = store
        self.clock = clock
        self.roster = roster
        self._recent: OrderedDict[str, tuple[float, KnownPerson]] = OrderedDict()
        self._no_roster: dict[str, float] = {}
        self._team_read_at: float | None = None
        self._team_read: asyncio.Future[None] | None = None
        self.roster_lookups = 0
        self.team_roster_reads = 0

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
        found = await self._stored_by_email(email)
        if found is not None or self.roster is None or not email.strip():
            return found
        if self._team_read is None:            # callers meanwhile wait for the same read
            if self._team_read_at is not None and self.clock() - self._team_read_at < ROSTER_RETRY_SECONDS:
                return None
            self._team_read_at = self.clock()
            self._team_read = asyncio.ensure_future(self._read_team())
        reading = self._team_read
        try:
            await asyncio.shield(reading)
        finally:
            if self._team_read is reading and reading.done():
                self._team_read = None
        return await self._stored_by_email(email)

    async def _read_team(self) -> None:
        assert self.roster is not None
        self.team_roster_reads += 1
        try:
            members = await self.roster()
        except Exception as error:   # no team, not installed there, offline: they stay unknown
            log.info("team roster unavailable: %s", type(error).__name__)
            return
        for member in members:
            if not member.email:
                continue
            known = await self.get(member.user_id)
            if known is None or not known.email:
                await self.save(member)

    async def _stored_by_email(self, email: str) -> KnownPerson | None:
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


def team_roster(proactive: Any, team_channel: str, service_url: str = "") -> RosterSource:
    """The members of the team that holds ``team_channel`` (the coordinators' channel), read through
    the connector in a proactive turn there (``get_paged_team_members``: the non-paged and
    context-bound calls fail in a proactive turn). The team id is the one Teams sent with that
    channel's activities, else the channel id itself (a team's General channel has the team's id)."""

    async def read() -> list[KnownPerson]:
        channel = team_channel.split(";")[0]
        if not channel or proactive is None:
            return []
        team = await proactive.team_of(channel) or channel
        people: list[KnownPerson] = []

        async def work(ctx: TurnContext) -> None:
            token = None
            while True:
                page = await TeamsInfo.get_paged_team_members(ctx, team, token, 500)
                for member in page.members or []:
                    email = (getattr(member, "email", None) or getattr(member, "user_principal_name", None)
                             or "").lower()
                    people.append(KnownPerson(user_id=member.id, name=member.name or "", email=email,
                                              aad_object_id=getattr(member, "aad_object_id", None) or "",
                                              tenant_id=getattr(member, "tenant_id", None) or ""))
                token = page.continuation_token
                if not token:
                    return

        await proactive.in_conversation(channel, work, service_url=service_url)
        return people

    return read
