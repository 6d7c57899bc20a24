"""Bot state whose change detection costs microseconds, not a jsonpickle pass.

botbuilder 4.17.1's ``BotState`` wraps each turn's state in a ``CachedBotState`` whose
``compute_hash`` is ``str(jsonpickle.Pickler().flatten(state))``, computed three times a turn
(on load, in ``save_changes`` to see whether anything changed, and after the save): ~140 us each
for a small dialog state, ~8% of a turn's CPU.

``QuickHashState`` is the SDK's ``ConversationState`` with one change: ``load`` wraps the state in
``QuickCachedBotState``, whose hash is ``pickle.dumps(state)`` (C, ~7 us). Both encode every
value, its type and every object's attributes, so a state that jsonpickle sees changed pickle sees
changed too (tests/test_hot_path_state.py compares the two on changed and unchanged states). Pickle
is, if anything, more sensitive (it also records which equal strings are the same object): at worst
an unchanged state is saved once more, never a changed one left unsaved. A state pickle cannot
encode falls back to the SDK's jsonpickle hash. ``load`` repeats the SDK's four lines; the test
pins them (the SDK still builds a ``CachedBotState`` from the storage's item the same way).
"""
from __future__ import annotations

import pickle
from typing import Any

from botbuilder.core import ConversationState, TurnContext
from botbuilder.core.bot_assert import BotAssert
from botbuilder.core.bot_state import CachedBotState


class QuickCachedBotState(CachedBotState):  # type: ignore[misc]
    def compute_hash(self, obj: object) -> Any:
        try:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # something pickle cannot encode: the SDK's own hash
            return "jsonpickle:" + super().compute_hash(obj)


class QuickHashState(ConversationState):  # type: ignore[misc]
    async def load(self, turn_context: TurnContext, force: bool = False) -> None:
        """As ``BotState.load`` (botbuilder 4.17.1), with ``QuickCachedBotState``."""
        BotAssert.context_not_none(turn_context)
        cached_state = self.get_cached_state(turn_context)
        storage_key = self.get_storage_key(turn_context)
        if force or not cached_state or not cached_state.state:
            items = await self._storage.read([storage_key])
            val = items.get(storage_key)
            turn_context.turn_state[self._context_service_key] = QuickCachedBotState(val)
