"""Request drafts: what a practitioner has typed so far, kept in the DocumentStore so that it
survives a restart of the bot. One draft per practitioner; cancelling deletes it.

A draft holds the raw form values (text, exactly as typed) keyed by input id, plus the ids of
the repeating rows (family members, invitees), so a card can always be re-sent with what the
user entered, valid or not.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from supervision.clock import Clock
from supervision.codec import from_data, to_data
from supervision.errors import VersionConflict
from supervision.ports import DocumentStore

DRAFTS = "request_drafts"


@dataclass
class Draft:
    id: str
    owner_id: str
    owner_email: str
    profile_id: str
    step: str
    created_at: datetime
    updated_at: datetime
    values: dict[str, str] = field(default_factory=dict)
    family_rows: list[str] = field(default_factory=list)
    invitee_rows: list[str] = field(default_factory=list)
    open_rows: list[str] = field(default_factory=list)    # rows shown as inputs; the others as one line

    def value(self, key: str) -> str:
        return self.values.get(key, "")


def new_row_id() -> str:
    return secrets.token_hex(3)


class DraftRepository:
    """Drafts keyed by the owner's Teams user id (lower-case)."""

    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def get(self, owner_id: str) -> Draft | None:
        stored = await self.store.get(DRAFTS, owner_id.lower())
        return from_data(Draft, stored.data) if stored else None

    async def new(self, owner_id: str, owner_email: str, profile_id: str, step: str,
                  values: dict[str, str]) -> Draft:
        now = self.clock.now()
        draft = Draft(id=secrets.token_hex(8), owner_id=owner_id, owner_email=owner_email, profile_id=profile_id,
                      step=step, created_at=now, updated_at=now, values=dict(values),
                      family_rows=[], invitee_rows=[new_row_id(), new_row_id()])
        draft.open_rows = list(draft.invitee_rows)
        await self.save(draft)
        return draft

    async def save(self, draft: Draft) -> Draft:
        draft.updated_at = self.clock.now()
        await self.store.put(DRAFTS, draft.owner_id.lower(), to_data(draft))
        return draft

    async def claim(self, owner_id: str, draft_id: str) -> bool:
        """Take the draft for submission exactly once: a second, concurrent submit (a double click,
        two devices) finds it taken. Returns False if the draft is gone, replaced or already taken."""
        stored = await self.store.get(DRAFTS, owner_id.lower())
        if stored is None or stored.data.get("id") != draft_id or stored.data.get("submitting"):
            return False
        try:
            await self.store.put(DRAFTS, owner_id.lower(), {**stored.data, "submitting": True}, etag=stored.etag)
        except VersionConflict:
            return False
        return True

    async def release(self, owner_id: str, draft_id: str) -> None:
        """Undo ``claim`` when the submission did not happen."""
        stored = await self.store.get(DRAFTS, owner_id.lower())
        if stored is not None and stored.data.get("id") == draft_id:
            data = {k: v for k, v in stored.data.items() if k != "submitting"}
            await self.store.put(DRAFTS, owner_id.lower(), data)

    async def delete(self, owner_id: str) -> None:
        await self.store.delete(DRAFTS, owner_id.lower())
