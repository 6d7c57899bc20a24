"""A turn context that does not deep-copy every outgoing activity.

botbuilder 4.17.1 ``TurnContext.send_activities`` sends ``deepcopy(activity)`` so that addressing
the reply (``apply_conversation_reference``: channel, locale, service URL, conversation, from,
recipient, reply-to id) and its checks (type, input hint, id) never change the caller's object. A
deep copy of a msrest model goes through ``__reduce_ex__`` for every nested model, list and card
dict: for a reply with an Adaptive Card, thousands of objects, on every send.

Those steps only *assign* top-level attributes, so a shallow copy protects the caller just as well.
``LeanTurnContext.send_activities`` hands the SDK a shallow copy that answers the SDK's
``deepcopy`` with itself, once (the hook removes itself). Everything else - the validator, the
send handlers, the adapter - is the SDK's. The adapter makes its turn contexts this class
(bot/adapter.py ``_create_turn_context``). tests/test_hot_path_state.py pins the SDK behaviour
relied on and compares what is sent with the SDK's own ``TurnContext``.

It also runs the send/update/delete handler chain without the SDK's self-referencing closure
(``_Chain``), so a turn's context is freed when the turn ends rather than by the cyclic collector
(tests/test_hot_path_context.py).
"""
from __future__ import annotations

import copy
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ResourceResponse


class _OwnCopy:
    """``deepcopy(activity)`` of a copy that is already private: itself (then the hook is gone)."""

    __slots__ = ("activity",)

    def __init__(self, activity: Activity) -> None:
        self.activity = activity

    def __call__(self, memo: dict[int, Any]) -> Activity:
        self.activity.__dict__.pop("__deepcopy__", None)
        return self.activity


def private_copy(activity: Any) -> Any:
    if type(activity) is not Activity:
        return activity        # anything else: the SDK's deep copy, as before
    own = copy.copy(activity)
    own.__dict__["__deepcopy__"] = _OwnCopy(own)
    return own


class _Chain:
    """The SDK's ``_emit`` chain of send/update/delete handlers without its reference cycle: botbuilder
    4.17.1 builds a closure that calls itself (``emit_next``), so every send left a cycle holding the
    context, the activities and the handlers, for the cyclic collector to find. Same order and the
    same semantics: each handler gets ``next`` and may skip it; ``logic`` is awaited afterwards in
    any case, as the SDK does."""

    __slots__ = ("context", "handlers", "arg")

    def __init__(self, context: TurnContext, handlers: list[Any], arg: Any) -> None:
        self.context, self.handlers, self.arg = context, handlers, arg

    async def run(self, index: int) -> None:
        if index < len(self.handlers):
            await self.handlers[index](self.context, self.arg, lambda: self.run(index + 1))


class LeanTurnContext(TurnContext):  # type: ignore[misc]
    async def send_activities(self, activities: list[Activity]) -> list[ResourceResponse]:
        return await super().send_activities([private_copy(a) for a in activities])  # type: ignore[no-any-return]

    async def _emit(self, plugins: list[Any], arg: Any, logic: Any) -> Any:
        await _Chain(self, list(plugins), arg).run(0)
        return await logic
