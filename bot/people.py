"""Who is who: Teams user id, AAD object id, name and email of everyone who has talked to the bot.

Email comes from the Teams roster once per user (then cached in the store), so roles configured by
email work and invitees named by email can be reached in personal chat.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from supervision.ports import DocumentStore

log = logging.getLogger(__name__)
PEOPLE = "people"
BY_EMAIL = "people_by_email"


@dataclass(frozen=True)
class KnownPerson:
    user_id: str
    name: str = ""
    email: str = ""
    aad_object_id: str = ""
    tenant_id: str = ""


class People:
    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def get(self, user_id: str) -> KnownPerson | None:
        stored = await self.store.get(PEOPLE, user_id)
        return KnownPerson(**stored.data) if stored else None

    async def by_email(self, email: str) -> KnownPerson | None:
        stored = await self.store.get(BY_EMAIL, email.lower())
        return await self.get(stored.data["user_id"]) if stored else None

    async def save(self, person: KnownPerson) -> None:
        await self.store.put(PEOPLE, person.user_id, person.__dict__)
        if person.email:
            await self.store.put(BY_EMAIL, person.email.lower(), {"user_id": person.user_id})

    async def remember(self, ctx: TurnContext) -> KnownPerson | None:
        sender = ctx.activity.from_property
        if sender is None or not sender.id:
            return None
        known = await self.get(sender.id)
        if known is not None and known.email:
            return known
        email, aad = "", getattr(sender, "aad_object_id", None) or ""
        try:
            member = await TeamsInfo.get_member(ctx, sender.id)
            email = (getattr(member, "email", None) or getattr(member, "user_principal_name", None) or "").lower()
            aad = aad or getattr(member, "aad_object_id", None) or ""
        except Exception as error:  # not every channel has a roster
            log.info("no roster entry for a user: %s", type(error).__name__)
        tenant = ""
        channel_data = ctx.activity.channel_data or {}
        if isinstance(channel_data, dict):
            tenant = (channel_data.get("tenant") or {}).get("id", "")
        person = KnownPerson(user_id=sender.id, name=sender.name or "", email=email, aad_object_id=aad,
                             tenant_id=tenant)
        if person != known:
            await self.save(person)
        return person
