"""A chronology submitted end to end through the Microsoft 365 Agents Playground: a scheduled case is
seeded into the bot's store before the stack starts; Patti (GP, lead professional) opens her
chronology from the ``chronology`` command, adds an entry with a bad date (named, values kept) and a
good one, uploads a CSV file sent in chat (a Teams file attachment, served on loopback), submits;
Adele (facilitator) sees the merged chronology, whose signed picture link serves a PNG."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.files import FILE_DOWNLOAD_INFO
from supervision.catalogue import Catalogue
from supervision.models import FacilitatorAssignment, Invitee, InviteStatus, Person
from tests.e2e.playground import PlaygroundClient, Stack, card_actions, seeded_stack, user
from tests.test_chronology import ROWS, _csv, scheduled_case

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")
CASE_ID = "case-e2e-chron"


def seeded_case() -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    case = scheduled_case(CASE_ID, session=(now + timedelta(days=21)).replace(hour=10, minute=0, second=0))
    case.created_at = now - timedelta(days=30)
    case.history[0].at = case.created_at
    case.history[1].at = now - timedelta(days=1)
    r = case.request
    r.requester = Person(name="Alex Wilber", email="alexw@example.com", organisation="School", user_id="user-id-0")
    r.lead_professional = Person(name="Patti Fernandez", email="pattif@example.com", organisation="GP",
                                 user_id="user-id-4")
    r.invitees = [
        Invitee(agency="GP", name="Patti Fernandez", email="pattif@example.com", user_id="user-id-4",
                status=InviteStatus.CONFIRMED),
        Invitee(agency="School", name="Sam Synthetic", email="sam.synthetic@example.com",
                status=InviteStatus.INVITED),
    ]
    case.facilitators = [FacilitatorAssignment(name="Adele Vance", email="adelev@example.com", agency="Health",
                                               user_id="user-id-2", lead=True)]
    return case


@pytest.fixture(scope="module")
def chronology_stack() -> Iterator[Stack]:
    with seeded_stack("e2e-chronology-", [seeded_case()]) as stack:
        yield stack


@pytest.fixture
async def client(chronology_stack: Stack) -> AsyncIterator[PlaygroundClient]:
    async with chronology_stack.client() as playground:
        yield playground


def action(card: dict[str, Any], verb: str) -> dict[str, Any]:
    found = [a for a in card_actions(card) if a.get("data", {}).get("verb") == verb]
    assert found, f"no {verb} button in {[a.get('title') for a in card_actions(card)]}"
    return dict(found[0]["data"])


async def test_a_chronology_is_written_uploaded_and_submitted_in_teams(
        client: PlaygroundClient, chronology_stack: Stack, file_server,
        validate_card: Callable[[dict[str, Any]], None]) -> None:
    title = T("chronology.title", agency="GP")
    said = await client.ask("chronology", user="patti")
    listing = said.card
    assert listing is not None and "GP" in said.all_text
    validate_card(listing)
    chat = said.conversation_id

    async def press(data: dict[str, Any], on: Any, containing: str, **inputs: Any) -> Any:
        pressed = await client.submit({**data, **inputs}, reply_to=on, user="patti")
        return await client.wait_for(lambda m: m.conversation_id == chat and m.card is not None
                                     and containing in m.all_text, after=pressed.mark)

    editor = await press(action(listing, "chronology.open"), said, title)
    validate_card(editor.card)
    assert T("chronology.no_entries") in editor.all_text

    add = action(editor.card, "chronology.add")
    bad = await press(add, editor, "is not a date I recognise", when="the other week", what="Missed asthma review",
                      impact="", kind="worry", source="")
    validate_card(bad.card)
    assert 'Date: "the other week" is not a date I recognise' in bad.all_text
    assert "Missed asthma review" in bad.all_text                 # what was typed is kept

    good = await press(add, bad, T("chronology.added", when="≈ about spring 2025"), when="about spring 2025",
                       what="Missed asthma review", impact="Night-time coughing, tired at school", kind="worry",
                       source="")
    assert "Missed asthma review" in good.all_text

    # upload: press the button, then send the file in chat as Teams does (a file download info attachment)
    files, base = file_server
    files["gp-chronology.csv"] = _csv(ROWS)
    prompt = await press(action(good.card, "chronology.upload"), good, T("chronology.upload_title", agency="GP"))
    validate_card(prompt.card)
    mark = client.mark()
    message = await client.user_activity(chat, user("patti"))      # shaped like the Playground's own messages
    message.update({"type": "message", "text": "", "attachments": [{
        "contentType": FILE_DOWNLOAD_INFO, "name": "gp-chronology.csv",
        "content": {"downloadUrl": base + "gp-chronology.csv", "uniqueId": "e2e-file", "fileType": "csv"}}]})
    await client.custom_activity(message)
    imported = await client.wait_for(lambda m: m.conversation_id == chat and m.card is not None
                                     and "Added 2 entries from gp-chronology.csv" in m.all_text, after=mark)
    validate_card(imported.card)
    assert 'Row 4, column "Date"' in imported.all_text
    assert "Good TA relationship" in imported.all_text

    done = await press(action(imported.card, "chronology.submit"), imported, T("chronology.status_submitted", count=3))
    validate_card(done.card)
    assert {a.get("data", {}).get("verb") for a in card_actions(done.card)} == {"chronology.reopen"}

    # the facilitator sees the merged chronology; its picture is served by the bot through a signed link
    mark = client.mark()
    await client.say("chronology", user="adele")
    merged = await client.wait_for(lambda m: m.card is not None and "Multi-agency chronology" in m.all_text,
                                   after=mark)
    validate_card(merged.card)
    assert "GP" in merged.all_text and "School" in merged.all_text        # School has not submitted
    image = next(b for b in merged.card["body"] if b.get("type") == "Image")
    assert image["url"].startswith(chronology_stack.bot_url + "/downloads/")
    async with aiohttp.ClientSession() as http:
        async with http.get(image["url"]) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/png"
            assert (await response.read()).startswith(b"\x89PNG")
        async with http.get(image["url"][:-3] + "AAA") as response:
            assert response.status == 403
