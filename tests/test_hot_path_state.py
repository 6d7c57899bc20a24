"""bot/state_hash.py and bot/state_storage.py's write: the SDK's bot-state behaviour, cheaper; these
tests fail if the botbuilder 4.17.1 behaviour they repeat or replace changes."""
from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botbuilder.core import ConversationState, MemoryStorage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.core.bot_state import BotState, CachedBotState
from botbuilder.dialogs import DialogInstance, DialogState
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount
from jsonpickle import Pickler

from bot.state_hash import QuickCachedBotState, QuickHashState
from bot.state_storage import DocumentBotStorage
from storage.memory import MemoryStore


def context() -> TurnContext:
    return TurnContext(TestAdapter(), Activity(type="message", channel_id="msteams", text="hi",
                                               conversation=ConversationAccount(id="conv-1"),
                                               from_property=ChannelAccount(id="u"), recipient=ChannelAccount(id="b")))


def dialog_state() -> DialogState:
    instance = DialogInstance()
    instance.id, instance.state = "request", {"step": 1, "values": {"a": "b"}, "when": datetime(2026, 1, 5, tzinfo=UTC)}
    return DialogState([instance])


def state() -> dict[str, Any]:
    return {"DialogState": dialog_state(), "bench.state": {"case_id": "c-1", "n": [1, 2.5, None, True]}, "e_tag": "7"}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(s: dict[str, Any]) -> None:
        s[path] = value
    return change


CHANGES: list[Callable[[dict[str, Any]], None]] = [
    lambda s: None,                                                          # unchanged
    lambda s: s["bench.state"].update(case_id="c-2"),
    lambda s: s["bench.state"]["n"].append(1),
    lambda s: s["bench.state"]["n"].__setitem__(1, 2),                       # 2.5 -> 2
    lambda s: s["bench.state"]["n"].__setitem__(3, 1),                       # True -> 1
    lambda s: s["DialogState"].dialog_stack[0].state.__setitem__("step", 2),   # inside an object
    lambda s: s["DialogState"].dialog_stack.pop(),
    lambda s: s["DialogState"].dialog_stack[0].state.__setitem__("when", datetime(2026, 1, 6, tzinfo=UTC)),
    lambda s: setattr(s["DialogState"].dialog_stack[0], "id", "schedule"),
    lambda s: s.pop("bench.state"),
    _set("new", {}),
    _set("e_tag", "8"),
    lambda s: s.update({"bench.state": s.pop("bench.state")}),               # order only
]


@pytest.mark.parametrize("change", CHANGES)
def test_quick_hash_sees_a_change_exactly_when_the_sdk_hash_does(change: Callable[[dict[str, Any]], None]) -> None:
    sdk, quick = CachedBotState(state()), QuickCachedBotState(state())
    change(sdk.state)
    change(quick.state)
    assert quick.is_changed == sdk.is_changed


def test_a_new_conversation_is_saved_once_as_the_sdk_does() -> None:
    """The SDK hashes the storage's ``None`` and then the empty dict it keeps: a first turn saves."""
    assert CachedBotState(None).is_changed and QuickCachedBotState(None).is_changed
    assert not QuickCachedBotState({}).is_changed


def test_state_pickle_cannot_encode_falls_back_to_the_sdk_hash() -> None:
    cached = QuickCachedBotState({"f": lambda: 1})
    assert isinstance(cached.hash, str) and cached.hash.startswith("jsonpickle:")
    assert not cached.is_changed


def test_sdk_bot_state_hashes_with_jsonpickle_and_builds_its_cached_state_in_load() -> None:
    """What QuickHashState replaces: if the SDK changes how it hashes or loads, look again."""
    value = state()
    assert CachedBotState(value).hash == str(Pickler().flatten(value))
    source = inspect.getsource(BotState.load)
    assert "turn_context.turn_state[self._context_service_key] = CachedBotState(val)" in source
    assert "if force or not cached_state or not cached_state.state:" in source
    assert "cached_state.is_changed" in inspect.getsource(BotState.save_changes)
    assert "cached_state.compute_hash(cached_state.state)" in inspect.getsource(BotState.save_changes)


async def test_quick_hash_state_loads_saves_and_skips_unchanged_saves_as_the_sdk_state_does() -> None:
    for storage in (MemoryStorage(), DocumentBotStorage(MemoryStore())):
        writes: list[int] = []
        original = storage.write

        async def counting(changes: dict[str, Any], _original: Any = original, _writes: list[int] = writes) -> None:
            _writes.append(1)
            await _original(changes)

        storage.write = counting  # type: ignore[method-assign]
        sdk, quick = ConversationState(storage), QuickHashState(storage)
        for bot_state, name in ((sdk, "sdk"), (quick, "quick")):
            writes.clear()
            ctx = context()
            prop = bot_state.create_property(f"p-{name}")
            await bot_state.load(ctx)
            assert isinstance(bot_state.get_cached_state(ctx), CachedBotState)
            await prop.set(ctx, {"n": 1})
            await bot_state.save_changes(ctx)
            await bot_state.save_changes(ctx)              # nothing changed since: no write
            ctx2 = context()
            await bot_state.load(ctx2)
            assert await prop.get(ctx2) == {"n": 1}
            await bot_state.save_changes(ctx2)              # read, unchanged: no write
            (await prop.get(ctx2))["n"] = 2
            await bot_state.save_changes(ctx2)
            ctx3 = context()
            await bot_state.load(ctx3)
            assert await prop.get(ctx3) == {"n": 2}
            assert len(writes) == 2, name


async def test_state_storage_writes_the_document_flattening_a_copy_without_its_e_tag_would() -> None:
    store = MemoryStore()
    storage = DocumentBotStorage(store)
    value = state()
    value["shared"] = value["bench.state"]            # a shared reference (a jsonpickle py/id)
    value.pop("e_tag")
    await storage.write({"k": value})
    expected = copy.deepcopy(value)
    expected.pop("e_tag")
    stored = await store.get("bot_state", "k")
    assert stored.data["document"] == Pickler(unpicklable=True).flatten(expected)
    assert value["e_tag"] == stored.etag                # the caller's item carries the new e_tag
    again = await storage.read(["k"])
    assert again["k"]["shared"] is again["k"]["bench.state"]
    item, stale = again["k"], dict(again["k"])
    item["bench.state"]["case_id"] = "c-2"
    await storage.write({"k": item})                     # with its e_tag: an etag-checked write
    expected = copy.deepcopy(item)
    expected.pop("e_tag")
    assert (await store.get("bot_state", "k")).data["document"] == Pickler(unpicklable=True).flatten(expected)
    with pytest.raises(KeyError):
        await storage.write({"k": stale})                # the old e_tag: refused, as before
