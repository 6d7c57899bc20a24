"""bot/lean_context.py: outgoing activities shallow-copied instead of deep-copied - the same
activities sent, the caller's object untouched; fails if the botbuilder 4.17.1 behaviour relied on
changes."""
from __future__ import annotations

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

