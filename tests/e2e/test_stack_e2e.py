"""The end-to-end stack itself: each Playground user in personal chat, group chat and the General
channel; card submits and invokes; proactive posts to the coordinators' channel; the identifier
check; a second stack with another profile."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

import pytest
from botbuilder.schema import Activity

from bot.app import PARTS, create_app
from bot.config import Config
from storage.tinydb_store import APPLY_PAUSE
from supervision.catalogue import Catalogue
from tests.e2e.playground import (
    GENERAL_CHANNEL,
    USERS,
    BotMessage,
    PlaygroundClient,
    Stack,
    assert_no_identifiers_shared,
)

pytestmark = pytest.mark.e2e
T = Catalogue.for_language("en")


async def test_each_user_is_seen_as_themselves_in_personal_chat(playground: PlaygroundClient, stack: Stack) -> None:
    chats = {}
    for person in USERS.values():
        said = await playground.say(f"e2e-hello-{person.key}", user=person)
        answer = await playground.reply(said)
        assert answer.text == T("command.unknown", text=f"e2e-hello-{person.key}")
        assert answer.activity["recipient"]["id"] == person.id
        chats[person.key] = said.conversation_id
    assert len(set(chats.values())) == len(USERS), "each user has their own personal chat"
    assert chats["alex"] == stack.personal_chat_id
    # the bot looked each user up in the roster: their email is what roles are configured by (read
    # from the store's files, which its applier writes within about a second of each change)
    people = stack.data_dir / "docs" / "people"
    deadline = asyncio.get_running_loop().time() + APPLY_PAUSE + 5
    for person in USERS.values():
        path = people / f"{person.id}.json"
        while not path.exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        stored = json.dumps(json.loads(path.read_text()))
        assert person.email in stored, f"{person.id} not recorded as {person.email}"


async def test_group_chat_and_channel_hear_only_mentions(playground: PlaygroundClient, stack: Stack) -> None:
    said = await playground.say("help", user="patti", conversation="group")
    answer = await playground.reply(said)
    assert said.conversation_id == stack.group_chat_id
    assert answer.card is not None and answer.activity["conversation"]["conversationType"] == "groupChat"

    said = await playground.say("help", user="isaiah", conversation="channel")
    answer = await playground.reply(said)
    assert said.conversation_id.startswith(f"{GENERAL_CHANNEL};messageid=")
    assert answer.activity["conversation"]["conversationType"] == "channel"

    unheard = await playground.say("help", user="alex", conversation="group", mention=False)
    assert await playground.quiet(0.5, after=unheard.mark) == []
    unheard = await playground.say("help", user="alex", conversation="channel", mention=False)
    assert await playground.quiet(0.3, after=unheard.mark) == []


async def test_submit_and_invoke_reach_the_bot(playground: PlaygroundClient) -> None:
    card = await playground.ask("help", user="adele")
    said = await playground.submit({"verb": "e2e.no_such_verb"}, reply_to=card, user="adele")
    answer = await playground.reply(said)
    assert answer.text == T("error.card_payload")

    body = await playground.invoke("e2e.no_such_verb", {"x": 1}, reply_to=card, user="adele")
    assert (body["type"], body["value"]) == ("application/vnd.microsoft.activity.message", T("error.card_payload"))
    shown = playground.messages(card.conversation_id)[-1]  # what replaced the card, for the record
    assert (shown.kind, shown.id, shown.text) == ("invoke", card.id, T("error.card_payload"))


async def test_press_fills_inputs_and_picks_the_action_type(playground: PlaygroundClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "Input.Text", "id": "alias", "label": "Alias", "value": "prefilled"},
        {"type": "Input.Text", "id": "reason", "label": "Reason"}],
        "actions": [{"type": "Action.Submit", "title": "Send", "data": {"verb": "x.send", "case_id": "c1"}},
                    {"type": "Action.Submit", "title": "Cancel", "data": {"verb": "x.cancel"},
                     "associatedInputs": "none"},
                    {"type": "Action.Execute", "title": "Agree", "verb": "x.agree", "data": {"case_id": "c1"}}]}
    message = BotMessage(0, "send", "conv-1", {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}, id="m1")
    calls: list[tuple[str, object]] = []

    async def submit(value: object, **kw: object) -> str:
        calls.append(("submit", value))
        return "said"

    async def invoke(verb: str, data: object, **kw: object) -> str:
        calls.append((verb, data))
        return "body"

    monkeypatch.setattr(playground, "submit", submit)
    monkeypatch.setattr(playground, "invoke", invoke)
    await playground.press(message, "Send", {"reason": "because"})
    await playground.press(message, "Cancel", {})
    await playground.press(message, "Agree", {"alias": "other"})
    assert calls == [("submit", {"verb": "x.send", "case_id": "c1", "alias": "prefilled", "reason": "because"}),
                     ("submit", {"verb": "x.cancel"}),
                     ("x.agree", {"case_id": "c1", "alias": "other"})]
    with pytest.raises(AssertionError, match="no button"):
        await playground.press(message, "Nope")
    with pytest.raises(AssertionError, match="no inputs"):
        await playground.press(message, "Send", {"typo": "x"})


async def test_the_bots_proactive_sends_reach_the_general_channel_and_a_new_personal_chat(
        playground: PlaygroundClient, stack: Stack, make_config: Callable[..., Config]) -> None:
    """What the bot does for COORDINATOR_CONVERSATION_ID=team-id (and for a user who never talked
    to it), with the bot's own Proactive over the stack's connector URL."""
    assert stack.env["COORDINATOR_CONVERSATION_ID"] == GENERAL_CHANNEL
    app = create_app(make_config(), start_background=False)
    proactive = app[PARTS].services.proactive
    mark = playground.mark()
    await proactive.send_to_conversation(GENERAL_CHANNEL, Activity(type="message", text="e2e proactive post"),
                                         service_url=stack.env["COORDINATOR_SERVICE_URL"])
    posted = await playground.wait_for(lambda m: m.text == "e2e proactive post", after=mark)
    assert posted.conversation_id == f"{GENERAL_CHANNEL};messageid={posted.id}"
    frame = next(f for f in playground.stream_frames() if f["message"]["messageId"] == posted.id)
    assert (frame["actionConversationId"], frame["message"]["postConversationId"]) == \
        (GENERAL_CHANNEL, posted.conversation_id)
    said = await playground.submit({"verb": "e2e.no_such_verb"}, reply_to=posted, user="megan")
    assert (await playground.reply(said)).text == T("error.card_payload")

    mark = playground.mark()
    await proactive.send_to_user("user-id-4", Activity(type="message", text="e2e hello Patti"),
                                 service_url=stack.service_url, tenant_id=stack.config["tenantId"])
    hello = await playground.wait_for(lambda m: m.text == "e2e hello Patti", after=mark)
    assert hello.conversation_id == await playground.personal_chat("patti")
    assert not stack.shared_conversation(hello.conversation_id)


async def test_identifier_check_finds_what_reached_shared_conversations(playground: PlaygroundClient,
                                                                        stack: Stack) -> None:
    # canary words only this test uses, so other tests' checks on the shared stack are unaffected
    await playground.ask("e2e-private Quillfeather-Canary", user="alex")  # personal chat: allowed
    await playground.ask("help", user="megan", conversation="channel")
    assert assert_no_identifiers_shared(stack, ["Quillfeather-Canary", "1 Canary Synthetic Row"],
                                        check_log=False) >= 1
    with pytest.raises(AssertionError, match="Bolton Safeguarding"):
        assert_no_identifiers_shared(stack, ["Bolton Safeguarding Children Partnership"], check_log=False)
    said = await playground.say("e2e-shared Inkwell-Canary", user="megan", conversation="group")
    await playground.reply(said)
    with pytest.raises(AssertionError, match="Inkwell-Canary"):
        assert_no_identifiers_shared(stack, ["inkwell-canary"], check_log=False)


async def test_a_second_stack_with_another_profile(start_stack: Callable[[Mapping[str, str]], Stack]) -> None:
    other = start_stack({"DEFAULT_PROFILE": "argyll_bute"})
    async with other.client() as client:
        answer = await client.ask("help", user="lynne")
    other.stop()
    assert "Argyll and Bute Child Protection Committee" in answer.all_text
    assert other.bot is not None and other.bot.poll() is not None
    assert other.playground is not None and other.playground.poll() is not None
