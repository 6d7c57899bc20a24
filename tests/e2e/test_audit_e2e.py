"""`audit log` through the Microsoft 365 Agents Playground: the administrator (Lynne) gets the log with
working export links and a filter that names a bad field; anyone else (Alex) is refused."""
from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from supervision.catalogue import Catalogue
from tests.e2e.playground import PlaygroundClient, Stack, card_actions

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback bot)
        return response.status, response.read()


async def test_audit_log_for_the_administrator_and_refused_to_others(
        playground: PlaygroundClient, stack: Stack, validate_card: Callable[[dict[str, Any]], None]) -> None:
    log_from = stack.log_position()
    refused = await playground.reply(await playground.say("audit log", user="alex"))
    assert refused.text == T("audit.refused") and refused.card is None

    said = await playground.say("audit log", user="lynne")
    answer = await playground.reply(said, lambda m: m.card is not None)
    card = answer.card
    assert card is not None
    validate_card(card)
    assert "msteams" not in card
    assert card["body"][0]["text"] == T("audit.title")
    shown = answer.all_text
    assert "audit.read" in shown and "user-id-0" in shown          # Alex's refused attempt is in the log
    links = {a["title"]: a["url"] for a in card_actions(card) if a["type"] == "Action.OpenUrl"}
    assert set(links) == {T("audit.export_csv"), T("audit.export_json")}
    status, body = await asyncio.to_thread(fetch, links[T("audit.export_csv")])
    assert status == 200 and b"audit.read" in body and body.decode("utf-8-sig").startswith("at,actor,action")

    said = await playground.press(answer, T("audit.filter_button"), {"audit_case": "MAGS-NOPE-0000"}, user="lynne")
    again = await playground.reply(said, lambda m: m.card is not None)
    assert f"{T('audit.filter_case')}: {T('audit.error.unknown_case')}" in again.all_text
    assert stack.errors_logged(since=log_from) == []
