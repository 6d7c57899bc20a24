"""Bot state (conversation, user and dialog state) on the DocumentStore, so that a dialog survives a
restart and continues on another instance of the bot.

Implements botbuilder's ``Storage``. Values are stored in jsonpickle's flattened form (as botbuilder's
own Azure storages store them), so dialog state objects come back as the classes they were; the
flattening and restoring are bot/state_codec.py's, which give exactly jsonpickle's documents and
objects for the shapes bot state has and hand anything else to jsonpickle. ``e_tag`` semantics as in
botbuilder's storages: a value written with ``e_tag`` ``"*"`` or without one overwrites; a value
carrying an ``e_tag`` is written only if the stored item still has it (otherwise ``KeyError``
"Etag conflict", as MemoryStorage raises); an empty ``e_tag`` is an error. A read returns each item
with its current ``e_tag``; after a write the caller's item carries the new one.
"""
from __future__ import annotations

from typing import Any

from botbuilder.core import Storage

from bot import state_codec
from supervision.errors import VersionConflict
from supervision.ports import DocumentStore

BOT_STATE = "bot_state"
E_TAG = "e_tag"


def _get_etag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get(E_TAG)
    return getattr(value, E_TAG, None)


def _set_etag(value: Any, etag: str) -> None:
    if isinstance(value, dict):
        value[E_TAG] = etag
    else:
        try:
            setattr(value, E_TAG, etag)
        except AttributeError:
            pass


class DocumentBotStorage(Storage):
    def __init__(self, store: DocumentStore, collection: str = BOT_STATE) -> None:
        super().__init__()
        self.store, self.collection = store, collection

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            raise ValueError("read needs keys")
        items: dict[str, Any] = {}
        for key in keys:
            stored = await self.store.get(self.collection, key)
            if stored is None:
                continue
            value = state_codec.restore(stored.data["document"])
            _set_etag(value, stored.etag)
            items[key] = value
        return items

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("write needs changes")
        for key, change in changes.items():
            etag = _get_etag(change)
            if etag == "":
                raise ValueError(f"bot state {key}: e_tag is empty")
            # flattened as it is, then the e_tag dropped from the flattened form (a copy): the same
            # document as flattening a deep copy without its e_tag (a str is never a jsonpickle
            # reference), without the deep copy (tests/test_hot_path_state.py)
            flat = state_codec.flatten(change)
            if isinstance(flat, dict):
                flat.pop(E_TAG, None)
            document = {"document": flat}
            try:
                if etag is None or etag == "*":
                    new_etag = await self.store.put(self.collection, key, document)
                else:
                    new_etag = await self.store.put(self.collection, key, document, etag=etag)
            except VersionConflict:
                raise KeyError(f"Etag conflict: bot state {key} was changed by another turn") from None
            _set_etag(change, new_etag)

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            await self.store.delete(self.collection, key)
