"""bot/lean_context.py: outgoing activities shallow-copied instead of deep-copied - the same
activities sent, the caller's object untouched; fails if the botbuilder 4.17.1 behaviour relied on
changes."""
from __future__ import annotations

import asyncio
import copy
import inspect
from typing import Any

from botbuilder.core import BotAdapter, MessageFactory, TurnContext
from botbuilder.schema import Activity, Attachment, ChannelAccount, ConversationAccount, ResourceResponse

from bot.lean_context import LeanTurnContext
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex", email="alexw@example.com")

CARD = {"type": "AdaptiveCard", "version": "1.5",
        "body": [{"type": "TextBlock", "text": "Zebedee Example"}, {"type": "Input.Text", "id": "n", "label": "N"}]}


class Capture(BotAdapter):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Activity] = []

    async def send_activities(self, context: TurnContext, activities: list[Activity]) -> list[ResourceResponse]:
        self.sent.extend(activities)
        return [ResourceResponse(id=f"r{len(self.sent)}") for _ in activities]

    async def update_activity(self, context: TurnContext, activity: Activity) -> None:
        return None

    async def delete_activity(self, context: TurnContext, reference: Any) -> None:
        return None


def inbound() -> Activity:
    return Activity(type="message", id="in-1", channel_id="msteams", service_url="https://s/", locale="en-GB",
                    conversation=ConversationAccount(id="a:1"), from_property=ChannelAccount(id="29:u"),
                    recipient=ChannelAccount(id="28:b"), text="hi")


def outgoing() -> list[Activity]:
    card = MessageFactory.attachment(Attachment(content_type="application/vnd.microsoft.card.adaptive",
                                                content=copy.deepcopy(CARD)))
    return [MessageFactory.text("Noted."), card, Activity(text="no type")]


async def send(context_class: type[TurnContext]) -> tuple[list[Activity], list[Activity], list[dict[str, Any]]]:
    adapter = Capture()
    context = context_class(adapter, inbound())
    mine = outgoing()
    before = [a.serialize() for a in mine]
    for activity in mine:
        await context.send_activity(activity)
    assert [a.serialize() for a in mine] == before       # the caller's objects are untouched
    return adapter.sent, mine, before


async def test_a_lean_context_sends_what_the_sdk_context_sends_and_leaves_the_callers_activity_alone() -> None:
    sdk_sent, _, _ = await send(TurnContext)
    lean_sent, mine, _ = await send(LeanTurnContext)
    assert [a.serialize() for a in lean_sent] == [a.serialize() for a in sdk_sent]
    assert all("__deepcopy__" not in a.__dict__ for a in lean_sent)
    assert all(a.__dict__ == b.__dict__ for a, b in zip(lean_sent, sdk_sent, strict=True))
    assert all(sent is not own for sent, own in zip(lean_sent, mine, strict=True))


def test_sdk_deep_copies_and_then_only_assigns_top_level_attributes() -> None:
    """What makes the shallow copy enough: if the SDK starts changing nested objects, look again."""
    assert "deepcopy(act)" in inspect.getsource(TurnContext.send_activities)
    activity = outgoing()[1]
    nested = {k: (v, copy.deepcopy(v)) for k, v in activity.__dict__.items() if v is not None}
    reference = TurnContext.get_conversation_reference(inbound())
    TurnContext.apply_conversation_reference(activity, reference)
    for key, (value, snapshot) in nested.items():
        if key in {"channel_id", "locale", "service_url", "conversation", "from_property", "recipient", "reply_to_id"}:
            continue
        assert activity.__dict__[key] is value and value == snapshot, key


async def test_the_adapter_makes_lean_turn_contexts(harness: BotHarness, monkeypatch: Any) -> None:
    seen: list[type] = []
    original = LeanTurnContext.send_activities

    async def spy(self: TurnContext, activities: list[Activity]) -> Any:
        seen.append(type(self))
        return await original(self, activities)

    monkeypatch.setattr(LeanTurnContext, "send_activities", spy)
    sent = await harness.say(ALEX, "help")
    assert sent and seen and set(seen) == {LeanTurnContext}



# --- a turn's objects are freed when it ends, not by the cyclic collector ---------------------------

def handlers_log() -> tuple[list[str], list[Any]]:
    seen: list[str] = []

    def handler(name: str, skip: bool = False, fail: bool = False) -> Any:
        async def run(context: TurnContext, arg: Any, next_handler: Any) -> Any:
            seen.append(f"{name}:{arg}")
            if fail:
                raise ValueError(name)
            if not skip:
                await next_handler()
            seen.append(f"{name}-after")
        return run

    return seen, [handler("a"), handler("b", skip=True), handler("c")]


async def test_the_handler_chain_runs_as_the_sdks_does() -> None:
    results = []
    for context_class in (TurnContext, LeanTurnContext):
        seen, chain = handlers_log()
        context = context_class(Capture(), inbound())

        async def logic(seen: list[str] = seen) -> str:
            seen.append("logic")
            return "done"

        results.append((await context._emit(chain, "x", logic()), seen))
        seen_fail: list[str] = []

        async def failing(context: TurnContext, arg: Any, next_handler: Any,
                          seen_fail: list[str] = seen_fail) -> None:
            seen_fail.append("f")
            raise ValueError("boom")

        logic_coroutine = logic()
        try:
            await context._emit([failing], "y", logic_coroutine)
        except ValueError as error:
            seen_fail.append(str(error))
        logic_coroutine.close()
        results.append(("failed", seen_fail))
    # a handler that skips next stops the chain; the logic runs afterwards in any case
    assert results[0] == results[2] == ("done", ["a:x", "b:x", "b-after", "a-after", "logic"])
    assert results[1] == results[3] == ("failed", ["f", "boom"])


def test_sdk_emit_builds_a_closure_that_calls_itself() -> None:
    """What LeanTurnContext._emit replaces: botbuilder 4.17.1's recursive ``emit_next`` closure (a
    reference cycle per send). If the SDK's ``_emit`` changes, look again."""
    nested = [c for c in TurnContext._emit.__code__.co_consts if inspect.iscode(c)]
    assert [c.co_name for c in nested] == ["emit_next"]
    assert "emit_next" in nested[0].co_freevars


async def test_a_turn_leaves_nothing_for_the_cyclic_collector(harness: BotHarness) -> None:
    import gc

    from botbuilder.dialogs import DialogContext

    for text in ("help", "my sessions", "no such command"):
        assert (await harness.post(harness.activity(ALEX, text=text, textFormat="plain")))[0] == 200
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for text in ("help", "my sessions", "no such command"):
            assert (await harness.post(harness.activity(ALEX, text=text, textFormat="plain")))[0] == 200
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, (TurnContext, DialogContext))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


async def test_turns_in_flight_set_off_few_young_collections_after_start_up(harness: BotHarness) -> None:
    """With Python's default threshold (700) the live objects of 32 turns in flight set off young
    collections that find nothing; after ``freeze_startup_heap`` (a serving bot's start-up) a tenth
    as many at most (the harness keeps every reply, so some remain)."""
    import gc

    from bot.adapter import freeze_startup_heap

    users = [User(f"29:gc-{n}", f"Gc User {n}", f"aad-gc-{n}", email=f"gc.user{n}@example.com") for n in range(32)]
    for user in users:                       # everyone met once: steady state
        assert (await harness.post(harness.activity(user, text="help", textFormat="plain")))[0] == 200

    async def young_collections() -> int:
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        for _ in range(3):
            statuses = await asyncio.gather(*(harness.post(harness.activity(user, text="my sessions",
                                                                            textFormat="plain"))
                                              for user in users))
            assert [status for status, *_ in statuses] == [200] * len(users)
        return int(gc.get_stats()[0]["collections"] - before)

    threshold = gc.get_threshold()
    try:
        gc.set_threshold(700, *threshold[1:])
        by_default = await young_collections()
        freeze_startup_heap()
        after_start_up = await young_collections()
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert by_default >= 10
    assert after_start_up * 10 <= by_default, (by_default, after_start_up)
