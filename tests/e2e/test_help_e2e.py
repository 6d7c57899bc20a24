"""`help` in personal chat, through the Microsoft 365 Agents Playground's HTTP API."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cards.help import commands_for
from supervision.catalogue import Catalogue
from tests.e2e.playground import PlaygroundClient, Stack, card_actions

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")


async def test_help_in_personal_chat_answers_with_the_help_card(
        playground: PlaygroundClient, stack: Stack, validate_card: Callable[[dict[str, Any]], None]) -> None:
    log_from = stack.log_position()
    said = await playground.say("help", user="alex")
    answer = await playground.reply(said)

    assert said.conversation_id == stack.personal_chat_id
    card = answer.card
    assert card is not None, f"expected a card, got {answer!r}"
    validate_card(card)
    assert card["body"][0]["text"] == T("help.title")
    listed = {fact["title"]: fact["value"] for block in card["body"] if block["type"] == "FactSet"
              for fact in block["facts"]}
    # Alex is a practitioner: no facilitator or administrator commands
    assert list(listed) == [f"**{command}**" for command in commands_for(frozenset())]
    assert "**tracker**" not in listed and "**record session**" not in listed
    assert listed["**request**"] == T("help.request")
    assert "Bolton Safeguarding Children Partnership" in answer.all_text
    assert "msteams" not in card  # the Playground flags full width as unsupported
    assert {a.get("data", {}).get("verb") for a in card_actions(card)} >= {"request.start", "sessions.mine"}
    # exactly one answer, and it is what the Playground page shows in Alex's personal chat
    assert [m.kind for m in await playground.quiet(after=said.mark)] == ["send"]
    shown = [f for f in playground.stream_frames() if f["message"]["messageId"] == answer.id]
    assert shown and shown[0]["actionConversationId"] == stack.personal_chat_id
    assert shown[0]["message"]["attachments"][0]["content"] == card
    assert stack.errors_logged(since=log_from) == []


async def test_help_reaches_another_user_in_their_own_personal_chat(playground: PlaygroundClient,
                                                                     stack: Stack) -> None:
    said = await playground.say("help", user="megan")
    answer = await playground.reply(said)

    assert said.conversation_id != stack.personal_chat_id
    assert answer.card is not None and answer.card["body"][0]["text"] == T("help.title")
    assert answer.activity["recipient"]["id"] == "user-id-1"
